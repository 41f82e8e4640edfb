"""The close's work sized to the account: units are groups of storage shards.

A small account is closed by one unit; a larger one by as many as its volume needs (at
most one per storage shard). Facts and carried entity state stay stored per storage
shard; the invoice does not depend on how the shards were grouped, and the rate step
merges exactly the partials of the plan that ran, never those an earlier run left.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing.adapters.invoices import DocumentStore
from billing.adapters.store import ShardKey, UsageStore, shard_groups, shard_labels
from billing.close import MonthClose, Unit
from billing.documents.render import invoice_csv, invoice_json, invoice_pdf
from billing.domain.periods import Period
from billing.domain.plan import load_plan
from tests.factories import mt
from tests.pipeline.conftest import SHARDS, Env, sqs_event
from tests.pipeline.streams import month

PERIOD = "2026-10"
NOW = datetime(2026, 11, 5, 6, tzinfo=UTC)
PLAN = load_plan("examples/plans/retail-eu.yaml")


class Bus:
    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "x"} for _ in Entries]}


def month_close(env: Env, unit_facts: int = 2_500_000) -> MonthClose:
    return MonthClose(
        env.store,
        DocumentStore(env.s3, "invoices"),
        Bus(),
        "bus",
        0,
        clock=lambda: NOW,
        unit_facts=unit_facts,
    )


def ingest(env: Env, bodies: list[str]) -> None:
    ingestor = env.ingestor()
    for start in range(0, len(bodies), 10):
        result = ingestor.handle(sqs_event(bodies[start : start + 10]))
        assert result["batchItemFailures"] == []


def setup_month(env: Env) -> None:
    for account in ("acme", "globex"):
        plan = PLAN.model_copy(update={"account": account})
        env.store.put_plan(account, plan.effective_from, plan.model_dump(mode="json"))
    ingest(env, [json.dumps(e) for e in month()])


def sms(env: Env, account: str, n: int, users: int = 50) -> None:
    """``n`` submitted SMS spread over the month, to ``users`` end users (all shards)."""
    events = [
        mt(
            datetime(2026, 10, 1, tzinfo=UTC) + timedelta(minutes=7 * i),
            f"{account}-{i}",
            end_user=f"+336{i % users:08d}",
        ).model_copy(update={"subject": account})
        for i in range(n)
    ]
    ingest(env, [e.model_dump_json() for e in events])


def facts_stored(store: UsageStore, account: str) -> int:
    return sum(
        1
        for shard in shard_labels(store.shards)
        for f in store.read_period(account, Period.parse(PERIOD), shard, 0)
        if not f.conflict
    )


def documents(mc: MonthClose, account: str) -> tuple[bytes, bytes, bytes]:
    invoice = mc.invoice_for(PERIOD, account)
    return invoice_json(invoice), invoice_csv(invoice), invoice_pdf(invoice)


def compute(mc: MonthClose, account: str, units: Sequence[Unit]) -> None:
    for unit in units:
        mc.compute_unit(unit)


def test_a_small_account_is_one_unit_of_all_its_shards(env: Env) -> None:
    setup_month(env)
    mc = month_close(env)
    mc.freeze(PERIOD, settle=0)
    plan = mc.plan_account(PERIOD, "acme")
    assert plan.units == (Unit(PERIOD, "acme", tuple(shard_labels(SHARDS))),)
    assert plan.payload()["units"] == [
        {"period": PERIOD, "account": "acme", "shard": "00", "shards": shard_labels(SHARDS)}
    ]


def test_the_estimate_counts_a_small_period_exactly(env: Env) -> None:
    setup_month(env)
    sms(env, "acme", 120)
    labels = shard_labels(SHARDS)
    estimate = env.store.estimate_period_facts("acme", Period.parse(PERIOD), labels)
    assert estimate == facts_stored(env.store, "acme") > 120


def test_the_estimate_takes_a_shards_count_from_its_live_item_once_the_period_ended(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One Query of the live items instead of a probe per shard; a live item refreshed
    before the period's end (it may miss facts) is not taken."""
    setup_month(env)
    sms(env, "acme", 120)
    labels = shard_labels(SHARDS)
    period = Period.parse(PERIOD)
    exact = env.store.estimate_period_facts("acme", period, labels)
    queries: list[dict[str, Any]] = []
    query = env.store.table.query

    def counting(**kw: Any) -> Any:
        queries.append(kw)
        return query(**kw)

    monkeypatch.setattr(env.store.table, "query", counting)
    before_end, after_end = period.end_ms - 1, period.end_ms + 60_000
    for shard in labels:
        env.store.put_live_shard(ShardKey("acme", PERIOD, shard), {}, 1000, before_end)
    queries.clear()
    assert env.store.estimate_period_facts("acme", period, labels) == exact  # all probed
    assert len(queries) == 1 + len(labels)
    for shard in labels[1:]:
        env.store.put_live_shard(ShardKey("acme", PERIOD, shard), {}, 1001, after_end)
    queries.clear()
    estimate = env.store.estimate_period_facts("acme", period, labels)
    assert len(queries) == 2  # the live items, and the probe of the one shard without
    assert estimate >= 1001 * (len(labels) - 1)


def test_the_estimate_extrapolates_a_full_page_over_the_period(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    sms(env, "acme", 400)  # evenly spread over the month
    monkeypatch.setattr("billing.adapters.store.PROBE_PAGE", 20)
    labels = shard_labels(SHARDS)
    estimate = env.store.estimate_period_facts("acme", Period.parse(PERIOD), labels)
    assert 0.8 * 400 <= estimate <= 1.25 * 400


def test_units_follow_the_volume_up_to_one_per_shard(env: Env) -> None:
    setup_month(env)
    sms(env, "globex", 200)
    facts = facts_stored(env.store, "globex")
    mc = month_close(env, unit_facts=facts // 2 + 1)  # two units' worth
    mc.freeze(PERIOD, settle=0)
    units = mc.plan_account(PERIOD, "globex").units
    assert [list(u.shards) for u in units] == shard_groups(shard_labels(SHARDS), 2)
    assert [u.shard for u in units] == ["00", "02"]
    tiny = month_close(env, unit_facts=1)
    assert len(tiny.plan_account(PERIOD, "globex").units) == SHARDS


def test_shard_groups_are_contiguous_and_cover_every_shard() -> None:
    labels = shard_labels(16)
    for count in range(1, 20):
        groups = shard_groups(labels, count)
        assert len(groups) == min(count, 16)
        assert [s for g in groups for s in g] == labels
        assert max(map(len, groups)) - min(map(len, groups)) <= 1


def test_the_invoice_does_not_depend_on_how_shards_are_grouped(env: Env) -> None:
    setup_month(env)
    sms(env, "acme", 60)
    mc = month_close(env)
    mc.freeze(PERIOD, settle=0)
    got = []
    for count in (1, 3, SHARDS):
        units = [Unit(PERIOD, "acme", tuple(g)) for g in shard_groups(shard_labels(SHARDS), count)]
        compute(mc, "acme", units)
        got.append(documents(mc, "acme"))
    assert got[0] == got[1] == got[2]
    assert json.loads(got[0][0])["lines"]


def test_the_rate_step_reads_only_the_partials_of_the_plan_that_ran(env: Env) -> None:
    """Partials of a plan with one unit per shard are left in S3; then more facts arrive
    and a one-unit plan runs: the invoice is that of all facts, counted once."""
    setup_month(env)
    mc = month_close(env)
    one_per_shard = month_close(env, unit_facts=1)
    compute(mc, "acme", one_per_shard.plan_account(PERIOD, "acme").units)
    sms(env, "acme", 30)
    fresh = mc.plan_account(PERIOD, "acme").units
    assert len(fresh) == 1
    compute(mc, "acme", fresh)
    merged = documents(mc, "acme")
    compute(mc, "acme", one_per_shard.plan_account(PERIOD, "acme").units)
    assert documents(mc, "acme") == merged
    lines = json.loads(merged[0])["lines"]
    assert sum(int(line["quantity"]) for line in lines if line["metric"] == "sms.mt") > 30


def test_carried_state_is_saved_per_storage_shard_by_a_unit_of_many(env: Env) -> None:
    setup_month(env)
    mc = month_close(env)
    mc.freeze(PERIOD, settle=0)
    (unit,) = mc.plan_account(PERIOD, "acme").units
    mc.compute_unit(unit)
    saved = set(DocumentStore(env.s3, "invoices").list_keys("state/acme/"))
    assert {key.split("/")[2] for key in saved} == set(shard_labels(SHARDS))


def test_a_failed_account_is_retried_with_one_unit_per_shard(env: Env) -> None:
    setup_month(env)
    mc = month_close(env)
    mc.freeze(PERIOD, settle=0)
    assert len(mc.plan_account(PERIOD, "acme").units) == 1
    mc.record_failure(PERIOD, "acme", {"Error": "States.Timeout", "Cause": "ran out of time"})
    units = mc.plan_account(PERIOD, "acme").units
    assert [u.shards for u in units] == [(s,) for s in shard_labels(SHARDS)]
    compute(mc, "acme", units)
    assert mc.rate_account(PERIOD, "acme").status == "issued"


def test_a_unit_travels_through_the_state_machine_as_json_and_back() -> None:
    unit = Unit(PERIOD, "acme", ("04", "05", "06"))
    payload = json.loads(json.dumps(unit.payload()))
    assert payload == {
        "period": PERIOD,
        "account": "acme",
        "shard": "04",
        "shards": ["04", "05", "06"],
    }
    assert Unit.from_payload(payload) == unit
    # a unit planned before units were sized to the account: one storage shard, no "shards"
    assert Unit.from_payload({"period": PERIOD, "account": "acme", "shard": "03"}).shards == ("03",)
