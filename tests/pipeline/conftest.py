"""In-process moto fixtures for the ingest and close services (no server, no template).

The end-to-end tests in ``tests/e2e`` deploy the real CDK template instead; these are the
fast ones that inject crashes and throttling between individual writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from billing import envelope
from billing.adapters.rejects import RejectStore
from billing.adapters.store import UsageStore, create_usage_table
from billing.domain.facts import HmacPseudonymizer
from billing.ingest import Ingestor
from billing.local.poller import sqs_record

KEY = b"test-pseudonym-key-0123456789abcdef"
# The clock ingest reads for the future bound: the scenarios span months from 2026-10 on,
# ingested as if each had already happened.
SCENARIO_CLOCK = datetime(2030, 1, 1, tzinfo=UTC)
SHARDS = 4
INTAKE_ARN = "arn:aws:sqs:us-east-1:123456789012:intake"


@dataclass
class Env:
    table: Any
    s3: Any
    store: UsageStore
    rejects: RejectStore

    def ingestor(self) -> Ingestor:
        """A fresh Lambda container: no caches carried over."""
        store = UsageStore(self.table, SHARDS)
        return Ingestor(
            store, self.rejects, HmacPseudonymizer(KEY), wall_clock=lambda: SCENARIO_CLOCK
        )


def create_table(name: str = "usage") -> Any:
    return create_usage_table(boto3.resource("dynamodb"), name)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and region for moto, no endpoint override, no metrics or traces."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def env(aws_env: None) -> Iterator[Env]:
    with mock_aws():
        table = create_table()
        s3 = boto3.client("s3")
        for bucket in ("rejects", "invoices"):
            s3.create_bucket(Bucket=bucket)
        yield Env(table, s3, UsageStore(table, SHARDS), RejectStore(s3, "rejects"))


def sqs_event(
    bodies: Sequence[str], ids: Sequence[str] | None = None, *, json_lines: bool = False
) -> dict[str, Any]:
    """The event Lambda receives from an SQS event source (records as the local poller
    builds them); ``json_lines``: every message carries JSON Lines (``billing.envelope``)."""
    records = []
    for i, body in enumerate(bodies):
        digest = hashlib.md5(body.encode()).hexdigest()
        mid = ids[i] if ids else f"m-{digest[:12]}-{i}"
        message = {
            "MessageId": mid,
            "ReceiptHandle": f"rh-{mid}",
            "Body": body,
            "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
            "MD5OfBody": digest,
            "MessageAttributes": envelope.ATTRIBUTES if json_lines else {},
        }
        records.append(sqs_record(message, event_source_arn=INTAKE_ARN, region="us-east-1"))
    return {"Records": records}


def dumps(events: Sequence[dict[str, Any]]) -> list[str]:
    return [json.dumps(e) for e in events]
