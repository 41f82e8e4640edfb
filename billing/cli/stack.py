"""Finding the deployed system: the physical resources of the CloudFormation stack.

Works the same against real AWS and the embedded local runtime (boto3 resolves the
endpoint from ``AWS_ENDPOINT_URL``). Each resource may be overridden by an environment
variable (``BILLING_QUEUE_URL``, ``TABLE_NAME``...).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import boto3


@dataclass(frozen=True)
class Deployed:
    stack: str
    queue_url: str
    dlq_url: str
    table: str
    invoice_bucket: str
    rejects_bucket: str
    bus: str
    state_machine_arn: str
    shards: int


def _pick(
    resources: list[dict[str, str]], rtype: str, contains: str = "", excludes: str = ""
) -> str:
    for r in resources:
        lid = r["LogicalResourceId"]
        if r["ResourceType"] == rtype and contains in lid and not (excludes and excludes in lid):
            return r["PhysicalResourceId"]
    return ""


@cache
def deployed(stage: str | None = None) -> Deployed:
    stage = stage or os.environ.get("STAGE", "dev")
    name = os.environ.get("BILLING_STACK", f"Billing-{stage}")
    cfn = boto3.client("cloudformation")
    resources: list[dict[str, str]] = []
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=name):
        resources.extend(page["StackResourceSummaries"])
    env = os.environ
    queue = env.get("BILLING_QUEUE_URL") or _pick(resources, "AWS::SQS::Queue", "IntakeQueue")
    dlq = env.get("BILLING_DLQ_URL") or _pick(resources, "AWS::SQS::Queue", "IntakeDlq")
    sqs = boto3.client("sqs")
    if queue and not queue.startswith("http"):
        queue = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    if dlq and not dlq.startswith("http"):
        dlq = sqs.get_queue_url(QueueName=dlq)["QueueUrl"]
    return Deployed(
        stack=name,
        queue_url=queue,
        dlq_url=dlq,
        table=env.get("TABLE_NAME") or _pick(resources, "AWS::DynamoDB::Table", "UsageTable"),
        invoice_bucket=env.get("INVOICE_BUCKET")
        or _pick(resources, "AWS::S3::Bucket", "InvoiceBucket"),
        rejects_bucket=env.get("REJECTS_BUCKET")
        or _pick(resources, "AWS::S3::Bucket", "RejectsBucket"),
        bus=env.get("BUS_NAME") or _pick(resources, "AWS::Events::EventBus", "UsageBus"),
        state_machine_arn=env.get("STATE_MACHINE_ARN")
        or _pick(resources, "AWS::StepFunctions::StateMachine", "MonthClose"),
        shards=int(env.get("SHARDS", "16")),
    )
