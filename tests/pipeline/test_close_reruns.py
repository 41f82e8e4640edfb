"""The close run twice, concurrently, early, or with a failing prior-period adjustment.

One close per period at a time (the ``P#{period}/LOCK`` lease), re-runs that change
nothing and announce nothing twice, failed accounts retried by a re-run, no close of a
month that has not ended unless forced, and an adjustment that cannot be rated left out
of the current invoice and reported instead of failing it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing.adapters.invoices import DocumentStore
from billing.adapters.store import CloseInProgress
from billing.close import EarlyClose, MonthClose
from billing.domain.plan import load_plan
from tests.factories import mt
from tests.pipeline.conftest import Env, sqs_event

NOW = datetime(2026, 12, 5, 6, tzinfo=UTC)
PLAN = load_plan("examples/plans/retail-eu.yaml")


class Bus:
    """An EventBridge client that records what is put on the bus."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "x"} for _ in Entries]}

    def announced(self) -> list[tuple[str, str]]:
        return sorted(
            (json.loads(e["Detail"])["account"], json.loads(e["Detail"])["invoice"])
            for e in self.entries
            if e["DetailType"] == "InvoiceIssued"
        )


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def month_close(env: Env, clock: Clock | None = None, settle: int = 0) -> MonthClose:
    return MonthClose(
        env.store,
        DocumentStore(env.s3, "invoices"),
        Bus(),
        "bus",
        settle,
        clock=clock or Clock(NOW),
    )


def put_plan(env: Env, account: str, effective_from: str = "2026-10") -> None:
    plan = PLAN.model_copy(update={"account": account, "effective_from": effective_from})
    env.store.put_plan(account, effective_from, plan.model_dump(mode="json"))


def send(env: Env, account: str, day: int, n: int, month: int = 10) -> None:
    events = [
        mt(
            datetime(2026, month, day, 10, i, tzinfo=UTC), f"{account}-{month}-{day}-{i}"
        ).model_copy(update={"subject": account})
        for i in range(n)
    ]
    result = env.ingestor().handle(sqs_event([e.model_dump_json() for e in events]))
    assert result["batchItemFailures"] == []


def run(mc: MonthClose, period: str, execution: str | None = None) -> dict[str, Any]:
    """The state machine's tasks in its order, with its per-account Catch."""
    mc.freeze(period, settle=0, execution=execution)
    cursor = None
    while True:
        page = mc.list_accounts(period, cursor)
        for account in page.accounts:
            mc.close_account(period, account)
        cursor = page.cursor
        if cursor is None:
            break
    mc.audit_all(period)
    return mc.finish(period, execution=execution).payload()


def objects(env: Env, prefix: str) -> dict[str, bytes]:
    docs = DocumentStore(env.s3, "invoices")
    return {k: docs.read(k) or b"" for k in docs.list_keys(prefix)}


def result(env: Env, period: str, account: str) -> dict[str, Any]:
    found = env.store.result(period, account)
    assert found is not None
    return found


# --- one close per period at a time -----------------------------------------------------


def test_a_second_execution_of_a_period_is_refused_while_the_first_holds_the_lock(
    env: Env,
) -> None:
    mc = month_close(env)
    mc.freeze("2026-10", settle=0, execution="arn:exec:first")
    with pytest.raises(CloseInProgress, match="period 2026-10 is being closed by execution"):
        mc.freeze("2026-10", settle=0, execution="arn:exec:second")
    # a retried Freeze of the holder is fine; another period is independent
    mc.freeze("2026-10", settle=0, execution="arn:exec:first")
    mc.freeze("2026-09", settle=0, execution="arn:exec:second")
    # released by the holder (Finish, or ReleaseLock on a failure), the period is free
    mc.release("2026-10", "arn:exec:second")  # not the holder: nothing happens
    with pytest.raises(CloseInProgress):
        mc.freeze("2026-10", settle=0, execution="arn:exec:second")
    mc.release("2026-10", "arn:exec:first")
    mc.freeze("2026-10", settle=0, execution="arn:exec:second")


def test_finish_releases_the_lock(env: Env) -> None:
    put_plan(env, "acme")
    send(env, "acme", 3, 2)
    mc = month_close(env)
    run(mc, "2026-10", execution="arn:exec:first")
    assert env.store.close_lock("2026-10") is None
    run(mc, "2026-10", execution="arn:exec:second")


def test_an_expired_lease_lets_a_new_execution_run(env: Env) -> None:
    clock = Clock(NOW)
    mc = month_close(env, clock)
    mc.lease_seconds = 3600
    mc.freeze("2026-10", settle=0, execution="arn:exec:crashed")
    clock.now = NOW + timedelta(minutes=59)
    with pytest.raises(CloseInProgress):
        mc.freeze("2026-10", settle=0, execution="arn:exec:next")
    clock.now = NOW + timedelta(minutes=61)
    mc.freeze("2026-10", settle=0, execution="arn:exec:next")
    assert (env.store.close_lock("2026-10") or {})["owner"] == "arn:exec:next"


def test_a_run_that_finds_the_period_frozen_waits_the_rest_of_the_settle_time(
    env: Env,
) -> None:
    clock = Clock(NOW)
    mc = month_close(env, clock, settle=120)
    assert mc.freeze("2026-10").settle_seconds == 120
    clock.now = NOW + timedelta(seconds=50)
    assert mc.freeze("2026-10").settle_seconds == 70
    clock.now = NOW + timedelta(seconds=500)
    assert mc.freeze("2026-10").settle_seconds == 0


# --- early close ----------------------------------------------------------------------------


def test_a_month_that_has_not_ended_is_closed_only_when_forced(env: Env) -> None:
    mc = month_close(env, Clock(datetime(2026, 10, 20, tzinfo=UTC)))
    with pytest.raises(EarlyClose, match="2026-10 has not ended"):
        mc.freeze("2026-10", settle=0)
    assert env.store.period_status("2026-10") is None
    assert "2026-10" not in env.store.frozen_periods()
    assert mc.freeze("2026-10", settle=0, force=True).period == "2026-10"
    # the scheduled run (no period) closes the previous month
    assert mc.freeze(None, settle=0).period == "2026-09"


# --- re-runs --------------------------------------------------------------------------------


def test_a_rerun_after_success_changes_nothing_and_announces_nothing(env: Env) -> None:
    for account in ("acme", "zenith"):
        put_plan(env, account)
        send(env, account, 3, 3)
    mc = month_close(env)
    bus = mc.events
    assert isinstance(bus, Bus)
    first = run(mc, "2026-10")
    assert first["issued"] == 2
    before = objects(env, "invoices/2026-10/")
    results = {a: result(env, "2026-10", a) for a in ("acme", "zenith")}
    assert len(bus.announced()) == 2
    again = run(mc, "2026-10")
    assert again["issued"] == 2
    assert again["announced"] == 0
    assert objects(env, "invoices/2026-10/") == before
    assert {a: result(env, "2026-10", a) for a in ("acme", "zenith")} == results
    assert len(bus.announced()) == 2


def test_a_rerun_retries_the_account_that_failed_and_announces_only_it(env: Env) -> None:
    put_plan(env, "acme")
    send(env, "acme", 3, 3)
    send(env, "noplan", 3, 2)
    mc = month_close(env)
    bus = mc.events
    assert isinstance(bus, Bus)
    first = run(mc, "2026-10")
    assert first["failed"] == ["noplan"]
    assert "MissingPlan" in result(env, "2026-10", "noplan")["error"]
    acme = result(env, "2026-10", "acme")
    put_plan(env, "noplan")  # the cause is fixed
    again = run(mc, "2026-10")
    assert again["failed"] == []
    assert again["issued"] == 2
    assert again["announced"] == 1
    assert result(env, "2026-10", "noplan")["status"] == "issued"
    assert result(env, "2026-10", "acme") == acme
    assert [a for a, _ in bus.announced()] == ["acme", "noplan"]
    manifest = json.loads(
        objects(env, "invoices/2026-10/manifest.json")["invoices/2026-10/manifest.json"]
    )
    assert manifest["failed"] == 0
    assert manifest["issued"] == 2


def test_a_failure_never_overwrites_an_issued_result(env: Env) -> None:
    put_plan(env, "acme")
    send(env, "acme", 3, 1)
    mc = month_close(env)
    run(mc, "2026-10")
    issued = result(env, "2026-10", "acme")
    mc.record_failure("2026-10", "acme", {"Cause": "InvoiceConflict: a concurrent run"})
    assert result(env, "2026-10", "acme") == issued


def test_an_issued_result_whose_documents_are_missing_is_reported_failed(env: Env) -> None:
    put_plan(env, "acme")
    send(env, "acme", 3, 1)
    mc = month_close(env)
    bus = mc.events
    assert isinstance(bus, Bus)
    mc.freeze("2026-10", settle=0)
    for unit in mc.plan_account("2026-10", "acme").units:
        mc.compute_unit(unit)
    mc.rate_account("2026-10", "acme")
    pdf = result(env, "2026-10", "acme")["keys"]["pdf"]
    env.s3.delete_object(Bucket="invoices", Key=pdf)
    done = mc.finish("2026-10")
    assert done.failed == ["acme"]
    assert done.issued == 0
    assert result(env, "2026-10", "acme")["status"] == "failed"
    manifest = json.loads(
        objects(env, "invoices/2026-10/manifest.json")["invoices/2026-10/manifest.json"]
    )
    assert manifest["failures"][0]["account"] == "acme"
    assert "missing" in manifest["failures"][0]["error"]
    assert bus.announced() == []


# --- prior-period adjustments ------------------------------------------------------------


def test_a_failing_prior_period_adjustment_does_not_block_the_current_invoice(
    env: Env,
) -> None:
    put_plan(env, "acme", effective_from="2026-11")  # no plan in force for October
    send(env, "acme", 3, 2, month=11)
    mc = month_close(env)
    mc.freeze("2026-10", settle=0)
    send(env, "acme", 20, 3, month=10)  # late facts of the frozen October
    assert env.store.adjustment_periods("2026-11", "acme") == ["2026-10"]
    done = run(mc, "2026-11")
    assert done["failed"] == []
    assert done["issued"] == 1
    issued = result(env, "2026-11", "acme")
    assert issued["status"] == "issued"
    (failure,) = issued["adjustment_failures"]
    assert failure["period"] == "2026-10"
    assert "MissingPlan" in failure["reason"]
    invoice = json.loads(objects(env, issued["keys"]["json"])[issued["keys"]["json"]])
    assert invoice["adjustment_lines"] == []
    assert invoice["lines"]
    manifest = json.loads(
        objects(env, "invoices/2026-11/manifest.json")["invoices/2026-11/manifest.json"]
    )
    assert manifest["adjustment_failures"] == [
        {
            "account": "acme",
            "period": "2026-10",
            "reason": failure["reason"],
            "carried_to": "2026-12",
        }
    ]


def adjustment_quantities(env: Env, period: str, account: str) -> dict[str, Decimal]:
    """source period -> quantity adjusted on the account's invoice for ``period``."""
    key = result(env, period, account)["keys"]["json"]
    invoice = json.loads(objects(env, key)[key])
    out: dict[str, Decimal] = {}
    for line in invoice["adjustment_lines"]:
        source = line["period"]
        out[source] = out.get(source, Decimal(0)) + Decimal(line["quantity"])
    return out


def test_an_adjustment_that_could_not_be_rated_is_billed_by_a_later_close(env: Env) -> None:
    put_plan(env, "acme", effective_from="2026-11")  # no plan in force for October yet
    send(env, "acme", 3, 2, month=11)
    mc = month_close(env)
    mc.freeze("2026-10", settle=0)
    send(env, "acme", 20, 3, month=10)  # late October facts, for November's invoice
    run(mc, "2026-11")
    (failure,) = result(env, "2026-11", "acme")["adjustment_failures"]
    assert failure["carried_to"] == "2026-12"
    assert env.store.adjustment_periods("2026-12", "acme") == ["2026-10"]

    # December: still no October plan, and one more late October fact arrives
    send(env, "acme", 21, 1, month=10)
    send(env, "acme", 4, 1, month=12)
    december = month_close(env, Clock(datetime(2027, 1, 5, 6, tzinfo=UTC)))
    run(december, "2026-12")
    (again,) = result(env, "2026-12", "acme")["adjustment_failures"]
    assert (again["period"], again["carried_to"]) == ("2026-10", "2027-01")
    assert adjustment_quantities(env, "2026-12", "acme") == {}

    # January: the plan is fixed; every late October fact is billed, once
    put_plan(env, "acme", effective_from="2026-10")
    january = month_close(env, Clock(datetime(2027, 2, 5, 6, tzinfo=UTC)))
    run(january, "2027-01")
    assert "adjustment_failures" not in result(env, "2027-01", "acme")
    assert adjustment_quantities(env, "2027-01", "acme") == {"2026-10": Decimal(4)}
    manifest = json.loads(
        objects(env, "invoices/2027-01/manifest.json")["invoices/2027-01/manifest.json"]
    )
    assert "adjustment_failures" not in manifest

    # nothing is carried further, and a re-run of January changes nothing
    assert env.store.adjustment_periods("2027-02", "acme") == []
    before = objects(env, "invoices/2027-01/")
    run(january, "2027-01")
    assert objects(env, "invoices/2027-01/") == before


def test_a_carried_adjustment_bills_only_what_was_not_billed_before(env: Env) -> None:
    """October was invoiced (2 facts); its late facts fail to rate in November (the plan of
    October was withdrawn), then December bills exactly those, not October's own."""
    put_plan(env, "acme", effective_from="2026-10")
    send(env, "acme", 3, 2, month=10)
    run(month_close(env, Clock(datetime(2026, 11, 5, 6, tzinfo=UTC))), "2026-10")
    send(env, "acme", 20, 3, month=10)  # late: adjusted on November's invoice
    october_plan = env.store.plan_document("acme", "2026-10")
    assert october_plan is not None
    env.table.delete_item(Key={"pk": "PLAN#acme", "sk": "2026-10"})
    put_plan(env, "acme", effective_from="2026-11")
    run(month_close(env), "2026-11")
    assert result(env, "2026-11", "acme")["adjustment_failures"][0]["period"] == "2026-10"
    env.store.put_plan("acme", "2026-10", october_plan)
    run(month_close(env, Clock(datetime(2027, 1, 5, 6, tzinfo=UTC))), "2026-12")
    assert adjustment_quantities(env, "2026-12", "acme") == {"2026-10": Decimal(3)}
