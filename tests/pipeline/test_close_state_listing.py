"""A unit lists its shards' saved entity state once, not once per storage shard, and
still carries the state exactly from close to close (the invoices of the whole history,
byte-identical re-runs)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from billing.adapters.invoices import DocumentStore
from billing.adapters.state import StateStore
from billing.close import MonthClose, Unit
from tests.pipeline.conftest import SHARDS, Env
from tests.pipeline.test_close_months import (
    ACCOUNT,
    MONTHS,
    PLAN,
    CountingStore,
    by_month,
    history,
    ingest,
    invoice_lines,
    reference_lines,
    run_close,
)


class ListingDocuments(DocumentStore):
    """Remembers the prefixes listed under ``state/``."""

    listed: list[str]

    def list_keys(self, prefix: str) -> Iterator[str]:
        if prefix.startswith("state/"):
            self.listed.append(prefix)
        return super().list_keys(prefix)


@pytest.fixture
def close(env: Env) -> MonthClose:
    boto3.client("events").create_event_bus(Name="bus")
    store = CountingStore(env.table, SHARDS)
    store.put_plan(ACCOUNT, PLAN.effective_from, PLAN.model_dump(mode="json"))
    documents = ListingDocuments(env.s3, "invoices")
    documents.listed = []
    return MonthClose(store, documents, boto3.client("events"), "bus", 0)


def test_a_unit_lists_the_saved_states_once_and_carries_them_exactly(
    env: Env, close: MonthClose
) -> None:
    documents = close.documents
    assert isinstance(documents, ListingDocuments)
    events = history()
    ingest(env, by_month(events, "2026-09"))
    for month in MONTHS:
        ingest(env, by_month(events, month))
        documents.listed.clear()
        invoice = run_close(close, month)
        assert documents.listed == [f"state/{ACCOUNT}/"], month  # one unit of 16 shards
        assert invoice_lines(invoice) == reference_lines(events, month), month


def test_a_unit_of_one_shard_lists_only_that_shard(env: Env, close: MonthClose) -> None:
    documents = close.documents
    assert isinstance(documents, ListingDocuments)
    events = history()
    ingest(env, by_month(events, "2026-10"))
    run_close(close, "2026-10")
    ingest(env, by_month(events, "2026-11"))
    close.freeze("2026-11", settle=0, force=True)
    saved = {key: documents.read(key) for key in documents.list_keys(f"state/{ACCOUNT}/")}
    documents.listed.clear()
    for shard in [f"{n:02d}" for n in range(SHARDS)]:
        close.compute_unit(Unit("2026-11", ACCOUNT, (shard,)))
    assert documents.listed == [f"state/{ACCOUNT}/{n:02d}/" for n in range(SHARDS)]
    # what a unit of all the shards finds: every version saved, by shard
    shards = [f"{n:02d}" for n in range(SHARDS)]
    versions = StateStore(documents).account_versions(ACCOUNT, shards)
    assert sorted(
        f"state/{ACCOUNT}/{shard}/{of}/{as_of}.json.gz"
        for shard, found in versions.items()
        for of, as_of in found
    ) == sorted(documents.list_keys(f"state/{ACCOUNT}/"))
    # the states saved by the October close are read, never rewritten differently
    assert all(documents.read(key) == body for key, body in saved.items())
