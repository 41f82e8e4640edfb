"""How usage gets in: the EventBridge bus, the intake queue and the ingest function.

A producer either sends one CloudEvent JSON per SQS message straight to ``IntakeQueue`` or
puts it on ``UsageBus`` with DetailType ``cpaas.usage``; the rule forwards ``$.detail`` (the
CloudEvent) to the same queue, so the ingest function sees one format either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs

from infra.config import BillingConfig
from infra.functions import billing_function, function_name
from infra.nag import acknowledge_findings, arn_ref
from infra.queues import dead_letter_queue
from infra.storage import Storage

# DynamoDB actions of the ingest function: batch puts of facts and markers, conditional
# puts of late facts, reads of the control items. Nothing updates, reads or deletes a
# range of items.
INGEST_TABLE_ACTIONS = (
    "dynamodb:BatchWriteItem",
    "dynamodb:PutItem",
    "dynamodb:GetItem",
)

USAGE_DETAIL_TYPE = "cpaas.usage"
INGEST_HANDLER = "functions.ingest.handler.handler"


@dataclass(frozen=True)
class Intake:
    bus: events.EventBus
    queue: sqs.Queue
    dlq: sqs.Queue
    rule_dlq: sqs.Queue
    rule: events.Rule
    function: lambda_.Function


def build_bus(stack: Stack, config: BillingConfig) -> events.EventBus:
    return events.EventBus(stack, "UsageBus", event_bus_name=f"billing-{config.stage}")


def build_intake(
    stack: Stack,
    config: BillingConfig,
    *,
    bus: events.EventBus,
    storage: Storage,
    code: lambda_.Code,
    environment: dict[str, str],
) -> Intake:
    dlq = dead_letter_queue(stack, "IntakeDlq")
    queue = sqs.Queue(
        stack,
        "IntakeQueue",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        visibility_timeout=Duration.seconds(config.intake_visibility_timeout_seconds),
        retention_period=Duration.days(4),
        dead_letter_queue=sqs.DeadLetterQueue(
            queue=dlq, max_receive_count=config.intake_max_receives
        ),
    )

    # Events EventBridge could not deliver to the queue (after its own retries).
    rule_dlq = dead_letter_queue(
        stack,
        "UsageRuleDlq",
        holds="the one of the UsageToIntakeRule target (EventBridge delivery failures). "
        "SQS3 only recognises redrive policies of queues.",
    )
    rule = events.Rule(
        stack,
        "UsageToIntakeRule",
        event_bus=bus,
        description="Usage CloudEvents on the bus go to the intake queue (body = the CloudEvent)",
        event_pattern=events.EventPattern(detail_type=[USAGE_DETAIL_TYPE]),
        targets=[
            targets.SqsQueue(
                queue,
                message=events.RuleTargetInput.from_event_path("$.detail"),
                dead_letter_queue=rule_dlq,
                retry_attempts=185,
                max_event_age=Duration.hours(24),
            )
        ],
    )

    function = billing_function(
        stack,
        "IngestFunction",
        config=config,
        code=code,
        handler=INGEST_HANDLER,
        name=function_name(config, "ingest"),
        description="Validates, pseudonymizes and records usage events from the intake queue",
        service="billing-ingest",
        environment=environment,
        timeout=Duration.seconds(config.ingest_timeout_seconds),
        memory_mb=config.ingest_memory_mb,
        reserved_concurrency=config.ingest_reserved_concurrency or None,
    )
    # Never let the event source run more copies than the reservation admits: throttled
    # batches would go back to the queue and count towards the DLQ's receive limit.
    max_concurrency = config.ingest_reserved_concurrency or None
    if max_concurrency is not None and max_concurrency < 2:
        max_concurrency = None
    function.add_event_source(
        sources.SqsEventSource(
            queue,
            batch_size=config.ingest_batch_size,
            max_batching_window=Duration.seconds(config.ingest_max_batching_window_seconds),
            report_batch_item_failures=True,
            max_concurrency=max_concurrency,
        )
    )
    assert function.role is not None
    # Only the item actions ingest performs: no Scan, Query or DeleteItem of the table.
    function.role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="WriteFacts",
            actions=list(INGEST_TABLE_ACTIONS),
            resources=[storage.table.table_arn],
        )
    )
    storage.pseudonym_secret.grant_read(function)
    # The rejects key encrypts what ingest stores; ingest can never decrypt it back.
    storage.rejects_key.grant(function, "kms:GenerateDataKey")
    function.role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="WriteRejects",
            actions=["s3:PutObject"],
            resources=[storage.rejects_bucket.arn_for_objects("*")],
        )
    )
    acknowledge_findings(
        function.role,
        "IAM5",
        [f"Resource::{arn_ref(storage.rejects_bucket)}/*"],
        "The ingest function writes one object per rejected event under keys it derives "
        "at run time; it may only PutObject, and only in the rejects bucket.",
    )
    return Intake(bus=bus, queue=queue, dlq=dlq, rule_dlq=rule_dlq, rule=rule, function=function)
