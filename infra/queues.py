"""The dead-letter queues of the stack: one shape for all of them.

Each is encrypted with SQS-managed keys, refuses plain HTTP and keeps what it receives for
14 days (alarms watch them: infra/monitoring.py). cdk-nag's SQS3 (a queue without a
dead-letter queue of its own) recognises a dead-letter queue only by another queue's
redrive policy: one that receives the failures of an event source mapping or of a rule
target acknowledges the finding, saying whose dead letters it holds.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge

DEAD_LETTER_RETENTION = Duration.days(14)


def dead_letter_queue(
    scope: Construct, construct_id: str, *, holds: str | None = None
) -> sqs.Queue:
    """A dead-letter queue. ``holds``: whose dead letters it receives, when no queue's
    redrive policy names it (acknowledges SQS3 with it)."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=DEAD_LETTER_RETENTION,
    )
    if holds is not None:
        acknowledge(queue, "SQS3", f"This queue is itself a dead-letter queue: {holds}")
    return queue
