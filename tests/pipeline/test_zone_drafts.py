"""Close groups (time zones) with an invoice grace, on the close's tasks (in-process moto):
the draft schedule drafts each group once after its own local end, the finalize schedule
numbers each group when its own end + close grace + invoice grace has passed (never
before), numbers stay gap-free across groups, two groups finishing at once both end up
in the period's manifest, and a group without any account is settled without a close."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

import boto3
import pytest

from billing.adapters.store import FinanceStore, UsageStore
from billing.close import MonthClose, close_groups
from billing.domain.periods import UTC_ZONE
from billing.domain.profile import load_profile, load_seller
from tests.pipeline.conftest import SHARDS, Env
from tests.pipeline.test_close_reruns import PLAN, Bus, Clock, month_close, objects, result
from tests.pipeline.test_time_zones import SEOUL_OCT, ingest, sms, utc

GRACE_HOURS = 6  # close_grace_hours
INVOICE_GRACE_DAYS = 3  # invoice_grace_days: the finalize schedule's grace is 6 + 72 h
FINAL_HOURS = GRACE_HOURS + 24 * INVOICE_GRACE_DAYS


def put_profile(env: Env, account: str) -> None:
    """A billing profile of the seller ``cpaas-fr`` (one number series: EU-2026-...)."""
    seller = load_seller("examples/sellers/cpaas-fr.yaml")
    profile = load_profile("examples/profiles/retail-eu.yaml")
    fin = FinanceStore(env.table)
    fin.put_seller(seller.id, seller.effective_from, seller.model_dump(mode="json"))
    doc = {**profile.model_dump(mode="json"), "account": account}
    fin.put_profile(account, profile.effective_from, doc)


def put_plan(env: Env, account: str, zone: str, effective_from: str = "2026-10") -> None:
    settings = PLAN.settings.model_copy(update={"time_zone": zone})
    plan = PLAN.model_copy(
        update={"account": account, "effective_from": effective_from, "settings": settings}
    )
    env.store.put_plan(account, effective_from, plan.model_dump(mode="json"))


def september_closed(env: Env) -> None:
    """The previous month is closed: the schedule looks at October's groups only."""
    for group in close_groups(env.store, "2026-09"):
        env.store.freeze(group, "2026-10-02T00:00:00+00:00")
        env.store.mark_closed(group, "2026-10-02T00:00:00+00:00")


def scheduled(
    mc: MonthClose, now: datetime, grace_hours: int, *, draft: bool = False
) -> dict[str, Any] | None:
    """One scheduled execution of the state machine at ``now``: Freeze picks the group due
    (None: NothingDue), then the group's accounts are closed and Finish runs."""
    assert isinstance(mc.clock, Clock)
    mc.clock.now = now
    execution = f"exec-{now.isoformat()}"
    frozen = mc.freeze(
        None, settle=0, now=now, grace_hours=grace_hours, draft=draft, execution=execution
    )
    group = frozen.period
    if group is None:
        return None
    for account in mc.list_accounts(group, None).accounts:
        for unit in mc.plan_account(group, account).units:
            mc.compute_unit(unit)
        mc.rate_account(group, account)
    done = mc.finish(group, now=now, execution=execution)
    return {"group": group, **done.payload()}


def statuses(env: Env) -> dict[str, str]:
    return {a: result(env, "2026-10", a)["status"] for a in ("paris", "seoul")}


def test_drafts_and_finalization_run_per_close_group_at_each_groups_own_time(env: Env) -> None:
    for account, zone in (("seoul", "Asia/Seoul"), ("paris", UTC_ZONE)):
        put_plan(env, account, zone)
        put_profile(env, account)  # the same seller: one number series
    september_closed(env)
    ingest(
        env,
        [
            sms("seoul", utc(2026, 10, 31, 14, 59, 59), "s1"),  # 10-31 23:59:59 KST
            sms("seoul", utc(2026, 10, 31, 15), "s2"),  # Seoul's November
            sms("paris", utc(2026, 10, 31, 14, 59, 59), "p1"),
            sms("paris", utc(2026, 10, 31, 15), "p2"),
        ],
    )
    mc = month_close(env)
    draft = {"grace_hours": GRACE_HOURS, "draft": True}

    # the draft schedule (every 15 min): Seoul's October ended at 15:00 UTC (+ 6 h grace)
    assert scheduled(mc, utc(2026, 10, 31, 20, 45), **draft) is None
    seoul = scheduled(mc, utc(2026, 10, 31, 21), **draft)
    assert seoul is not None
    assert (seoul["group"], seoul["drafts"]) == (SEOUL_OCT, 1)
    manifest = json.loads(
        objects(env, "drafts/2026-10/manifest.json")["drafts/2026-10/manifest.json"]
    )
    assert [d["account"] for d in manifest["drafts"]] == ["seoul"]
    for minute in (15, 30, 45):  # drafted once: the next runs have nothing to do
        assert scheduled(mc, utc(2026, 10, 31, 21, minute), **draft) is None
    assert scheduled(mc, utc(2026, 11, 1, 5, 45), **draft) is None
    paris = scheduled(mc, utc(2026, 11, 1, 6), **draft)  # UTC's ended at 00:00 (+ 6 h)
    assert paris is not None
    assert (paris["group"], paris["drafts"]) == ("2026-10", 1)  # the group's drafts
    assert scheduled(mc, utc(2026, 11, 1, 6, 15), **draft) is None
    manifest = json.loads(objects(env, "drafts/")["drafts/2026-10/manifest.json"])
    assert [d["account"] for d in manifest["drafts"]] == ["paris", "seoul"]  # every group
    assert statuses(env) == {"paris": "draft", "seoul": "draft"}
    assert objects(env, "invoices/") == {}

    # the finalize schedule: each group 6 h + 3 days after its own end, never before
    final = {"grace_hours": FINAL_HOURS}
    assert scheduled(mc, utc(2026, 11, 3, 20, 45), **final) is None
    assert statuses(env) == {"paris": "draft", "seoul": "draft"}
    seoul = scheduled(mc, utc(2026, 11, 3, 21), **final)
    assert seoul is not None
    assert (seoul["group"], seoul["issued"]) == (SEOUL_OCT, 1)
    assert statuses(env) == {"paris": "draft", "seoul": "issued"}
    manifest = json.loads(objects(env, "drafts/")["drafts/2026-10/manifest.json"])
    assert [d["account"] for d in manifest["drafts"]] == ["paris"]  # Seoul's is final now
    # an event of UTC's October arriving now is on time: Paris's invoice is still a draft
    ingest(env, [sms("paris", utc(2026, 10, 31, 23, 30), "p3")])
    assert scheduled(mc, utc(2026, 11, 4, 5, 45), **final) is None
    paris = scheduled(mc, utc(2026, 11, 4, 6), **final)
    assert paris is not None
    assert (paris["group"], paris["issued"]) == ("2026-10", 1)  # the group's invoices
    assert scheduled(mc, utc(2026, 11, 4, 6, 15), **final) is None
    manifest = json.loads(objects(env, "drafts/")["drafts/2026-10/manifest.json"])
    assert manifest["drafts"] == []

    assert isinstance(mc.events, Bus)
    finalized = [json.loads(e["Detail"])["account"] for e in mc.events.entries]
    assert finalized == ["seoul", "paris"]  # each announced once, by its own group
    numbers = {a: result(env, "2026-10", a)["invoice"] for a in ("paris", "seoul")}
    assert numbers == {"seoul": "EU-2026-000001", "paris": "EU-2026-000002"}  # gap-free
    invoices = objects(env, "invoices/2026-10/")
    listed = json.loads(invoices["invoices/2026-10/manifest.json"])
    assert sorted(i["account"] for i in listed["invoices"]) == ["paris", "seoul"]
    evidence = {
        a: sum(
            line["evidence"]
            for line in json.loads(invoices[result(env, "2026-10", a)["keys"]["json"]])["lines"]
        )
        for a in ("paris", "seoul")
    }
    assert evidence == {"seoul": 1, "paris": 3}  # Seoul's 15:00 UTC event is November's


def test_two_groups_finishing_at_once_both_end_up_in_the_manifest(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seoul's Finish reads the results before Paris's are written and is held there
    while Paris's close finishes: the manifest written last must still list both."""
    for account, zone in (("seoul", "Asia/Seoul"), ("paris", UTC_ZONE)):
        put_plan(env, account, zone)
    ingest(env, [sms("seoul", utc(2026, 10, 5), "s1"), sms("paris", utc(2026, 10, 5), "p1")])
    now = utc(2026, 11, 2)

    def closer() -> MonthClose:  # each finisher with its own table resource (thread)
        store = UsageStore(boto3.resource("dynamodb").Table(env.table.name), SHARDS)
        return month_close(Env(store.table, env.s3, store, env.rejects), Clock(now))

    mc = closer()
    for group, account in ((SEOUL_OCT, "seoul"), ("2026-10", "paris")):
        mc.freeze(group, settle=0, now=now)
        for unit in mc.plan_account(group, account).units:
            mc.compute_unit(unit)
    mc.rate_account(SEOUL_OCT, "seoul")

    seoul_read, paris_waits, seoul_done = threading.Event(), threading.Event(), threading.Event()
    seoul, paris = closer(), closer()
    read_results = seoul.store.results

    def results_then_pause(period: str) -> list[dict[str, Any]]:
        found = read_results(period)
        seoul_read.set()
        paris_waits.wait(timeout=20)  # Paris has finished (or waits for the documents)
        return found

    monkeypatch.setattr(seoul.store, "results", results_then_pause)
    acquire = getattr(paris.store, "acquire_documents_lock", None)  # the lock, if any

    def acquire_or_signal(*args: Any) -> bool:
        assert acquire is not None
        taken = bool(acquire(*args))
        if not taken:
            paris_waits.set()
            seoul_done.wait(timeout=20)
        return taken

    monkeypatch.setattr(paris.store, "acquire_documents_lock", acquire_or_signal, raising=False)
    errors: list[BaseException] = []

    def finish_seoul() -> None:
        try:
            seoul.finish(SEOUL_OCT, now=now)
        except BaseException as err:  # reported below
            errors.append(err)
        finally:
            seoul_done.set()

    thread = threading.Thread(target=finish_seoul)
    thread.start()
    assert seoul_read.wait(timeout=20)
    paris.rate_account("2026-10", "paris")
    paris.finish("2026-10", now=now)
    paris_waits.set()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert errors == []
    docs = objects(env, "invoices/2026-10/")
    listed = json.loads(docs["invoices/2026-10/manifest.json"])
    assert sorted(i["account"] for i in listed["invoices"]) == ["paris", "seoul"]
    summary = docs["invoices/2026-10/summary.csv"].decode()
    assert "seoul" in summary
    assert "paris" in summary
    period_items = {i["sk"] for i in env.table.scan()["Items"] if i["pk"] == "P#2026-10"}
    assert "DOCS" not in period_items  # released


@pytest.mark.parametrize("draft", [False, True], ids=["final", "drafts"])
def test_a_group_without_any_account_is_settled_without_a_close(env: Env, draft: bool) -> None:
    """New York is named by a plan (the account left it in October): its October group has
    no account, so the scheduled run settles it without closing or writing anything."""
    put_plan(env, "paris", UTC_ZONE)
    put_plan(env, "mover", "America/New_York", "2026-09")
    put_plan(env, "mover", UTC_ZONE, "2026-10")
    september_closed(env)
    ingest(env, [sms("paris", utc(2026, 10, 5), "p1")])
    mc = month_close(env)
    new_york = "2026-10@-04:00"
    assert close_groups(env.store, "2026-10") == ["2026-10", new_york]
    done = scheduled(mc, utc(2026, 11, 1, 6), GRACE_HOURS, draft=draft)
    assert done is not None
    assert done["group"] == "2026-10"
    assert sorted(mc.list_accounts("2026-10", None).accounts) == ["mover", "paris"]
    before = objects(env, "")
    assert scheduled(mc, utc(2026, 11, 1, 10, 15), GRACE_HOURS, draft=draft) is None
    assert objects(env, "") == before  # nothing written
    status = env.store.period_status(new_york) or {}
    if draft:
        assert "drafted_at" in status
        assert "frozen_at" not in status
    else:
        assert status["state"] == "closed"
        assert env.store.close_lock(new_york) is None
    assert mc.due_groups(utc(2026, 11, 1, 10, 30), GRACE_HOURS) == (
        ["2026-10", new_york] if draft else []  # drafted groups stay due for finalization
    )
    assert scheduled(mc, utc(2026, 11, 1, 10, 30), GRACE_HOURS, draft=draft) is None
