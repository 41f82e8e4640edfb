"""The real pipeline on the embedded runtime: the synthesized CDK template deployed into
moto, the SQS poller feeding the real ingest handler, the month-close state machine
executed by moto with its Lambda tasks dispatched to the real handlers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from billing.adapters.invoices import DocumentStore
from billing.adapters.store import UsageStore
from billing.cli.stack import Deployed, deployed
from billing.config import client, resource
from billing.local import LocalAws, synth
from billing.local.dispatch import REPO_ROOT
from tests.factories import at, raw

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def aws(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalAws]:
    """The runtime, its functions in this process unless the module sets
    ``FUNCTION_WORKERS`` (then in worker processes, as ``billing demo`` runs them)."""
    assembly = synth(REPO_ROOT, outdir=tmp_path_factory.mktemp("cdk.out"))
    os.environ.update(POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="WARNING")
    workers = bool(getattr(request.module, "FUNCTION_WORKERS", False))
    with LocalAws(max_batching_window_seconds=0, function_workers=workers) as runtime:
        runtime.deploy(assembly, stack_name="Billing-dev")
        deployed.cache_clear()
        client.cache_clear()
        resource.cache_clear()
        yield runtime
    deployed.cache_clear()
    client.cache_clear()
    resource.cache_clear()


@pytest.fixture(scope="module")
def stack(aws: LocalAws) -> Deployed:
    return deployed()


@pytest.fixture(scope="module")
def store(stack: Deployed) -> UsageStore:
    return UsageStore(boto3.resource("dynamodb").Table(stack.table), stack.shards)


@pytest.fixture(scope="module")
def documents(stack: Deployed) -> DocumentStore:
    return DocumentStore(boto3.client("s3"), stack.invoice_bucket)


def repo_path(*parts: str) -> Path:
    return REPO_ROOT.joinpath(*parts)


def sms(account: str, n: int, *, tag: str, numbers: str) -> str:
    """Submitted SMS number ``n`` of ``account`` to France, on October's day 1 + n % 28:
    event and message id ``{tag}-{n}``, end user ``{numbers}{n:04d}``."""
    return json.dumps(
        raw(
            "message.outbound",
            at(1 + n % 28, 10),
            account,
            event_id=f"{tag}-{n}",
            message_id=f"{tag}-{n}",
            channel="sms",
            status="submitted",
            end_user=f"{numbers}{n:04d}",
            country="FR",
        )
    )


def subscribe(aws: LocalAws, stack: Deployed, name: str, detail_types: list[str]) -> str:
    """A consumer of the bus: the URL of a queue ``name`` receiving the events of
    ``detail_types`` (rule ``name`` too)."""
    sqs, events = aws.client("sqs"), aws.client("events")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    events.put_rule(
        Name=name,
        EventBusName=stack.bus,
        EventPattern=json.dumps({"detail-type": detail_types}),
    )
    events.put_targets(
        Rule=name,
        EventBusName=stack.bus,
        Targets=[{"Id": "consumer", "Arn": arn["QueueArn"]}],
    )
    return str(url)


def announcements(aws: LocalAws, url: str) -> list[dict[str, Any]]:
    """The details of every event a :func:`subscribe` queue received so far (consumed)."""
    sqs = aws.client("sqs")
    seen: list[dict[str, Any]] = []
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        seen.extend(json.loads(m["Body"])["detail"] for m in msgs)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
            ],
        )
    return seen
