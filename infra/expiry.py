"""The expiry guard: the usage table's TTL deletions feed ``ExpiryFunction`` (billing.expiry).

Its event source mapping passes only the stream's records of deletions by DynamoDB's TTL
(``userIdentity``: the DynamoDB service) of fact partitions (``F#``/``E#``); every write,
and every deletion by the application, never invokes it. A deleted item whose close has
not archived it is put back (``ExpiredUnarchived``: the close is overdue, alarm) or
stored as a late change. A batch that fails is retried from the failed record, bisected
on error, and after ``retry_attempts`` its records go to ``ExpiryDlq`` (alarm): each
holds the deleted item, to put back by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs

from infra.config import BillingConfig
from infra.functions import billing_function, function_name, table_stream_source
from infra.nag import acknowledge_findings, arn_ref
from infra.queues import dead_letter_queue
from infra.storage import ARCHIVE_PREFIX, Storage

EXPIRY_HANDLER = "functions.expiry.handler.handler"
# What a decision reads: the frozen periods (CONTROL) and the account's zones (PLAN#)
EXPIRY_READ_KEYS = ("CONTROL", "PLAN#*")
# The item put back, or stored as a late change with its adjustment markers (P#)
EXPIRY_WRITE_KEYS = ("F#*", "E#*", "P#*")
EXPIRY_PREFIXES = ("F#", "E#")
TTL_PRINCIPAL = "dynamodb.amazonaws.com"  # billing.expiry.TTL_PRINCIPAL


def ttl_filter(prefix: str) -> dict[str, object]:
    """The event filter of the TTL deletions of one partition prefix's items."""
    return {
        "eventName": ["REMOVE"],
        "userIdentity": {"type": ["Service"], "principalId": [TTL_PRINCIPAL]},
        "dynamodb": {"Keys": {"pk": {"S": [{"prefix": prefix}]}}},
    }


@dataclass(frozen=True)
class Expiry:
    function: lambda_.Function
    dlq: sqs.Queue


def build_expiry(
    stack: Stack,
    config: BillingConfig,
    *,
    storage: Storage,
    code: lambda_.Code,
    environment: dict[str, str],
) -> Expiry:
    dlq = dead_letter_queue(
        stack,
        "ExpiryDlq",
        holds="the on-failure destination of the expiry guard's stream event source (TTL "
        "deletions of fact items it could not decide on after retries).",
    )
    function = billing_function(
        stack,
        "ExpiryFunction",
        config=config,
        code=code,
        handler=EXPIRY_HANDLER,
        name=function_name(config, "expiry"),
        description="Keeps fact items whose TTL ran out before their close archived them",
        service="billing-expiry",
        environment=environment,
        timeout=Duration.seconds(300),
        memory_mb=512,
    )
    function.add_event_source(
        table_stream_source(
            storage.table,
            dlq=dlq,
            batch_size=1000,
            max_batching_window=Duration.seconds(30),
            filters=[{"pattern": json.dumps(ttl_filter(prefix))} for prefix in EXPIRY_PREFIXES],
        )
    )
    assert function.role is not None
    table = storage.table.table_arn
    function.role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ReadControl",
            actions=["dynamodb:GetItem"],
            resources=[table],
            conditions={
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(EXPIRY_READ_KEYS)}
            },
        )
    )
    function.role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="KeepExpiredFacts",
            # BatchWriteItem: the adjustment markers of a late change
            actions=["dynamodb:PutItem", "dynamodb:BatchWriteItem"],
            resources=[table],
            conditions={
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(EXPIRY_WRITE_KEYS)}
            },
        )
    )
    bucket = storage.invoice_bucket
    function.role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ReadArchive",
            actions=["s3:GetObject"],
            resources=[bucket.arn_for_objects(f"{ARCHIVE_PREFIX}*")],
        )
    )
    function.role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="DecryptArchive",
            actions=["kms:Decrypt"],
            resources=[storage.invoice_key.key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": f"s3.{Stack.of(bucket).region}.amazonaws.com"}
            },
        )
    )
    acknowledge_findings(
        function.role,
        "IAM5",
        [f"Resource::{arn_ref(bucket)}/{ARCHIVE_PREFIX}*"],
        "The expiry guard reads the archive part of an expired item, under a key named after "
        "its account, period and storage shard known at run time; archive/ only, read only.",
    )
    return Expiry(function=function, dlq=dlq)
