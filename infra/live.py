"""The live view of usage: the usage table's stream feeds ``LiveFunction`` (billing.live).

The function reads the records' keys only. An event filter passes the writes of fact partitions
(``F#``/``E#``: facts, lifecycle facts, conflict markers) and of price plans (``PLAN#``: a
plan change refreshes the account's figures); every other write of the table (claims,
registry, results, the live items themselves) never invokes the function. A batch that
fails is retried from the first failed record (``batchItemFailures``), bisected on error,
and after ``retry_attempts`` its records go to ``LiveDlq`` (alarm); the next record of the
same shard refreshes it again, and ``billing usage --recompute`` is always available.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs

from infra.config import BillingConfig
from infra.functions import billing_function, function_name, table_stream_source
from infra.nag import acknowledge_findings, arn_ref
from infra.queues import dead_letter_queue
from infra.storage import ARCHIVE_PREFIX, STATE_PREFIX, Storage

LIVE_HANDLER = "functions.live.handler.handler"
# What a refresh reads: the shard's facts, the plan, thresholds, live items, the registry
# (and period status, adjustment markers: P#); in S3 the closes' saved state (state/).
LIVE_READ_KEYS = ("F#*", "E#*", "PLAN#*", "THRESHOLD#*", "L#*", "P#*", "ACCOUNTS", "LIVE_DIRTY")
# the live items, the thresholds reached and the deferred refreshes, nothing else
LIVE_WRITE_KEYS = ("L#*", "LIVE_DIRTY")
STREAM_PREFIXES = ("F#", "E#", "PLAN#", "THRESHOLD#")


@dataclass(frozen=True)
class Live:
    function: lambda_.Function
    dlq: sqs.Queue


def build_live(
    stack: Stack,
    config: BillingConfig,
    *,
    storage: Storage,
    bus: events.EventBus,
    code: lambda_.Code,
    environment: dict[str, str],
) -> Live:
    dlq = dead_letter_queue(
        stack,
        "LiveDlq",
        holds="the on-failure destination of the live view's stream event source (records "
        "of batches that kept failing).",
    )
    function = billing_function(
        stack,
        "LiveFunction",
        config=config,
        code=code,
        handler=LIVE_HANDLER,
        name=function_name(config, "live"),
        description="Keeps the live view of usage current from the usage table's stream",
        service="billing-live",
        environment=environment,
        timeout=Duration.seconds(300),
        memory_mb=1024,
    )
    function.add_event_source(
        table_stream_source(
            storage.table,
            dlq=dlq,
            batch_size=config.live_batch_size,
            max_batching_window=Duration.seconds(config.live_max_batching_window_seconds),
            filters=[
                lambda_.FilterCriteria.filter(
                    {
                        # a removal (TTL expiry of an archived period) changes no usage
                        "eventName": lambda_.FilterRule.is_equal("INSERT")
                        + lambda_.FilterRule.is_equal("MODIFY"),
                        "dynamodb": {"Keys": {"pk": {"S": lambda_.FilterRule.begins_with(p)}}},
                    }
                )
                for p in STREAM_PREFIXES
            ],
        )
    )
    assert function.role is not None
    function.role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ReadUsage",
            actions=["dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem"],
            resources=[storage.table.table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(LIVE_READ_KEYS)}},
        )
    )
    function.role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="WriteLiveView",
            # BatchWriteItem: the parts of a shard's document too large for one item
            actions=[
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem",
            ],
            resources=[storage.table.table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(LIVE_WRITE_KEYS)}},
        )
    )
    _grant_saved_state(function.role, storage)
    bus.grant_put_events_to(function)
    # Numbers, recordings and seats held on into a new month are billed in it before any
    # new fact arrives: refresh those shards when each account's month starts (its time
    # zone: from 10:00 UTC on the last day for UTC+14 to 12:00 UTC on the 1st for UTC-12).
    events.Rule(
        stack,
        "LiveRolloverSchedule",
        description="Live view: carry held entities into the new month",
        schedule=events.Schedule.cron(minute="5", hour="*", day="1,28-31", month="*", year="*"),
        targets=[
            targets.LambdaFunction(
                function,
                event=events.RuleTargetInput.from_object({"rollover": True}),
                retry_attempts=4,
            )
        ],
    )
    # A large shard is re-read at most once per its refresh interval (billing.live.
    # RefreshBudget); the records in between mark it deferred, and this sweep refreshes
    # the deferred shards whose interval has passed.
    events.Rule(
        stack,
        "LiveSweepSchedule",
        description="Live view: refresh the large shards whose refresh was deferred",
        schedule=events.Schedule.rate(Duration.minutes(5)),
        targets=[
            targets.LambdaFunction(
                function, event=events.RuleTargetInput.from_object({"sweep": True})
            )
        ],
    )
    return Live(function=function, dlq=dlq)


def _grant_saved_state(role: iam.IRole, storage: Storage) -> None:
    """A refresh starts from the entity state the previous close saved, and reads a closed
    period's expired facts from the close's archive: read (list, get, decrypt) the invoice
    bucket's ``state/`` and ``archive/`` objects, nothing else of the bucket."""
    bucket = storage.invoice_bucket
    prefixes = [STATE_PREFIX, ARCHIVE_PREFIX]
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ReadSavedState",
            actions=["s3:GetObject"],
            resources=[bucket.arn_for_objects(f"{p}*") for p in prefixes],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ListSavedState",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="DecryptSavedState",
            actions=["kms:Decrypt"],
            resources=[storage.invoice_key.key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": f"s3.{Stack.of(bucket).region}.amazonaws.com"}
            },
        )
    )
    acknowledge_findings(
        role,
        "IAM5",
        [f"Resource::{arn_ref(bucket)}/{p}*" for p in prefixes],
        "The live view reads the entity state each close saved and the facts it archived, "
        "under keys named after the account, storage shard and periods it derives at run "
        "time; only state/ and archive/ objects, read only.",
    )
