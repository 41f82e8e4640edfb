"""The close month after month on moto: entity state carried between closes.

Each close reads the entity state the previous close saved plus its own month's lifecycle
facts, never the account's whole history; the invoices must still be those of the whole
history (the reference: ``monthly_usage`` over every fact), late lifecycle facts included,
and re-runs must stay byte-identical.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from billing.adapters.invoices import DocumentStore
from billing.adapters.store import StoredFact, UsageStore, lifecycle_pk
from billing.close import MonthClose
from billing.domain.engine import monthly_usage
from billing.domain.events import Envelope
from billing.domain.facts import HmacPseudonymizer, to_fact
from billing.domain.periods import Period
from billing.domain.plan import load_plan
from billing.domain.rating import rate
from tests.factories import (
    number,
    number_released,
    rec_deleted,
    rec_start,
    rec_stop,
    rec_stored,
    seat,
    unseat,
)
from tests.pipeline.conftest import KEY, SHARDS, Env, sqs_event

ACCOUNT = "helios-assurances"
PLAN = load_plan("examples/plans/contact-centre.yaml")
MONTHS = ["2026-10", "2026-11", "2026-12", "2027-01"]


def at(month: str, day: int, hour: int = 12) -> datetime:
    year, mon = map(int, month.split("-"))
    return datetime(year, mon, day, hour, tzinfo=UTC)


def history() -> list[Envelope]:
    """Numbers, seats and recordings that span the months; some end, some do not."""
    out = [
        number(at("2026-09", 20), "+33100000003", "toll_free", country="FR"),  # before billing
        number(at("2026-10", 2), "+33100000001", "long", country="FR"),
        number(at("2026-10", 3), "+33100000002", "voice", country="FR"),
        number_released(at("2026-11", 20), "+33100000002"),
        seat(at("2026-10", 12), "agent-1"),
        seat(at("2026-10", 13), "agent-2"),
        unseat(at("2026-12", 5), "agent-2"),
    ]
    for n, month in enumerate(MONTHS):
        for i in range(3):
            rid = f"r{n}-{i}"
            out += [
                rec_start(at(month, 4 + i), rid, f"call-{rid}"),
                rec_stop(at(month, 4 + i, 13), rid, f"call-{rid}"),
                rec_stored(at(month, 4 + i, 14), rid, 10**8, 3600),
            ]
        out.append(rec_deleted(at(month, 25), f"r{n}-0"))
    return [e.model_copy(update={"subject": ACCOUNT}) for e in out]


class CountingStore(UsageStore):
    """Remembers which lifecycle partitions (periods) a close or a live refresh read."""

    def __init__(self, table: Any, shards: int) -> None:
        super().__init__(table, shards)
        self.lifecycle_reads: list[str] = []

    def read_lifecycle(self, account: str, period: Period, shard: str) -> list[StoredFact]:
        self.lifecycle_reads.append(str(period))
        return super().read_lifecycle(account, period, shard)


@pytest.fixture
def close(env: Env) -> MonthClose:
    boto3.client("events").create_event_bus(Name="bus")
    store = CountingStore(env.table, SHARDS)
    store.put_plan(ACCOUNT, PLAN.effective_from, PLAN.model_dump(mode="json"))
    return MonthClose(store, DocumentStore(env.s3, "invoices"), boto3.client("events"), "bus", 0)


def ingest(env: Env, events: list[Envelope]) -> None:
    ingestor = env.ingestor()
    for start in range(0, len(events), 10):
        chunk = [e.model_dump_json() for e in events[start : start + 10]]
        assert ingestor.handle(sqs_event(chunk))["batchItemFailures"] == []


def run_close(mc: MonthClose, period: str) -> dict[str, Any]:
    mc.freeze(period, settle=0, force=True)
    units = mc.plan_account(period, ACCOUNT).units
    for unit in units:
        mc.compute_unit(unit)
    mc.rate_account(period, ACCOUNT)
    mc.finish(period)
    (result,) = [r for r in mc.store.results(period) if r["account"] == ACCOUNT]
    assert result["status"] == "issued", result
    body = mc.documents.read(result["keys"]["json"])
    assert body is not None
    return dict(json.loads(body))


def reference_lines(events: list[Envelope], period: str) -> dict[str, str]:
    facts = [to_fact(e, HmacPseudonymizer(KEY)) for e in events]
    usage = monthly_usage(facts, Period.parse(period), PLAN.settings)
    return {line.metric: str(line.amount) for line in rate(usage, PLAN).lines}


def invoice_lines(invoice: dict[str, Any]) -> dict[str, str]:
    return {line["metric"]: line["amount"] for line in invoice["lines"]}


def by_month(events: list[Envelope], month: str) -> list[Envelope]:
    return [e for e in events if str(Period.of(e.time)) == month]


def test_each_close_reads_its_own_month_and_bills_the_whole_history(
    env: Env, close: MonthClose
) -> None:
    events = history()
    store = close.store
    assert isinstance(store, CountingStore)
    ingest(env, by_month(events, "2026-09"))  # the account's history starts before billing
    for month in MONTHS:
        ingest(env, by_month(events, month))
        store.lifecycle_reads.clear()
        invoice = run_close(close, month)
        assert invoice_lines(invoice) == reference_lines(events, month), month
        # the first close finds no saved state and rebuilds it from the account's history
        assert set(store.lifecycle_reads) == ({"2026-09", month} if month == "2026-10" else {month})
    lines = invoice_lines(invoice)
    # the plan subscribes Conversations: recordings are stored per GB-day
    assert {"recording.storage_gb", "numbers.recurring", "conversations.maa"} <= set(lines)


def test_lifecycle_facts_are_kept_per_period_and_expire(env: Env) -> None:
    ingest(env, history()[1:2])
    items = env.table.scan()["Items"]
    (fact,) = [i for i in items if i["pk"].startswith("E#")]
    assert fact["pk"].startswith(f"E#{ACCOUNT}#2026-10#")
    assert fact["pk"] in {lifecycle_pk(ACCOUNT, "2026-10", s) for s in range(SHARDS)}
    # kept in the table until October ends (HOT_MONTHS 0) + 14 days, then archived
    assert int(fact["expires_at"]) == Period.parse("2026-10").end_ms // 1000 + 14 * 86_400


def test_a_late_lifecycle_fact_adjusts_every_closed_month_it_changes(
    env: Env, close: MonthClose
) -> None:
    events = history()
    ingest(env, by_month(events, "2026-09"))
    for month in MONTHS[:2]:
        ingest(env, by_month(events, month))
        run_close(close, month)
    # after November's close: the long number was in fact released on 15 October
    late = number_released(at("2026-10", 15), "+33100000001").model_copy(
        update={"subject": ACCOUNT}
    )
    ingest(env, [late, *by_month(events, "2026-12")])
    december = run_close(close, "2026-12")
    adjusted = {(a["period"], a["metric"]) for a in december["adjustment_lines"]}
    assert ("2026-11", "numbers.recurring") in adjusted  # no longer held in November
    assert invoice_lines(december) == reference_lines([*events, late], "2026-12")
    # January: another late fact, for November, makes January start again from the state
    # December's close rebuilt for November (which knows the number is gone)
    later = seat(at("2026-11", 3), "agent-7").model_copy(update={"subject": ACCOUNT})
    ingest(env, [later, *by_month(events, "2027-01")])
    january = run_close(close, "2027-01")
    everything = [*events, late, later]
    assert invoice_lines(january) == reference_lines(everything, "2027-01")
    adjusted = {(a["period"], a["metric"]) for a in january["adjustment_lines"]}
    assert adjusted == {("2026-11", "conversations.maa"), ("2026-12", "conversations.maa")}
    # and December re-run after all that reads what it read the first time
    assert run_close(close, "2026-12") == december


def test_rerunning_an_earlier_close_after_later_ones_is_byte_identical(
    env: Env, close: MonthClose
) -> None:
    events = history()
    ingest(env, by_month(events, "2026-09"))
    keys = {}
    for month in MONTHS[:3]:
        ingest(env, by_month(events, month))
        invoice = run_close(close, month)
        keys[month] = f"invoices/{month}/{ACCOUNT}/{invoice['number']}.json"
    first = {m: close.documents.read(k) for m, k in keys.items()}
    late = seat(at("2026-11", 2), "agent-9").model_copy(update={"subject": ACCOUNT})
    ingest(env, [late])
    for month in MONTHS[:3]:
        run_close(close, month)  # writes once: a different invoice would raise
        assert close.documents.read(keys[month]) == first[month]
