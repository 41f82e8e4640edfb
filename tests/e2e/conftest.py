"""The real pipeline on the embedded runtime: the synthesized CDK template deployed into
moto, the SQS poller feeding the real ingest handler, the month-close state machine
executed by moto with its Lambda tasks dispatched to the real handlers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from billing.adapters.invoices import DocumentStore
from billing.adapters.store import UsageStore
from billing.cli.stack import Deployed, deployed
from billing.config import client, resource
from billing.local import LocalAws, synth
from billing.local.dispatch import REPO_ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    assembly = synth(REPO_ROOT, outdir=tmp_path_factory.mktemp("cdk.out"))
    os.environ.update(POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="WARNING")
    with LocalAws(max_batching_window_seconds=0) as runtime:
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
