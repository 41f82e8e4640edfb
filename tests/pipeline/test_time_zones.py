"""Accounts in different time zones on moto: ingest puts each fact in the account's local
period, and the close closes each close group (the accounts whose month ends at the same
instant) after its own local end, late events included."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest

from billing.adapters.ids import IdRow, mark_version
from billing.adapters.invoices import DocumentStore
from billing.adapters.store import fact_of_item
from billing.close import MonthClose, close_groups
from billing.domain.events import Envelope
from billing.domain.facts import event_key
from billing.domain.plan import PricePlan
from billing.domain.settings import ContractSettings
from billing.live import LiveUsage
from tests.factories import mt, number
from tests.pipeline.conftest import Env, sqs_event

ZONES = {"seoul": "Asia/Seoul", "newyork": "America/New_York", "paris": "UTC"}
SEOUL_OCT = "2026-10@+09:00"  # Seoul's October ends 2026-10-31T15:00Z
NEW_YORK_OCT = "2026-10@-04:00"  # New York's ends 2026-11-01T04:00Z (still EDT)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def plan(account: str, zone: str) -> PricePlan:
    return PricePlan(
        account=account,
        currency="EUR",
        effective_from="2026-09",
        settings=ContractSettings(time_zone=zone),
        prices={"sms.mt": Decimal("0.05")},
    )


@pytest.fixture
def close(env: Env) -> MonthClose:
    boto3.client("events").create_event_bus(Name="bus")
    for account, zone in ZONES.items():
        p = plan(account, zone)
        env.store.put_plan(account, p.effective_from, p.model_dump(mode="json"))
    return MonthClose(
        env.store, DocumentStore(env.s3, "invoices"), boto3.client("events"), "bus", 0
    )


def sms(account: str, when: datetime, message_id: str) -> Envelope:
    return mt(when, message_id, account=account, event_id=f"{account}-{message_id}")


def ingest(env: Env, events: list[Envelope]) -> None:
    ingestor = env.ingestor()
    for start in range(0, len(events), 10):
        chunk = [e.model_dump_json() for e in events[start : start + 10]]
        assert ingestor.handle(sqs_event(chunk))["batchItemFailures"] == []


def stored_periods(env: Env) -> dict[str, str]:
    """event id -> the period of the partition its fact is stored in (``+adj`` when late)."""
    ids = {event_key("test", f"{a}-{m}"): f"{a}-{m}" for a in ZONES for m in MESSAGES}
    out = {}
    for item in env.table.scan()["Items"]:
        if item["pk"].startswith("F#"):
            period = item["pk"].split("#")[2]
            late = f"+{item['adj']}" if "adj" in item else ""
            out[ids[fact_of_item(item).id]] = period + late
    return out


BOUNDARY = [
    # account, instant (UTC), its local period: hand-computed
    ("seoul", utc(2026, 9, 30, 14, 59, 59), "2026-09"),  # 09-30 23:59:59 KST
    ("seoul", utc(2026, 9, 30, 15), "2026-10"),  # 10-01 00:00:00 KST
    ("seoul", utc(2026, 10, 31, 14, 59, 59), "2026-10"),  # 10-31 23:59:59 KST
    ("seoul", utc(2026, 10, 31, 15), "2026-11"),  # 11-01 00:00:00 KST
    ("newyork", utc(2026, 10, 1, 3, 59, 59), "2026-09"),  # 09-30 23:59:59 EDT
    ("newyork", utc(2026, 10, 1, 4), "2026-10"),
    ("newyork", utc(2026, 11, 1, 3, 59, 59), "2026-10"),  # 10-31 23:59:59 EDT
    ("newyork", utc(2026, 11, 1, 4), "2026-11"),  # 11-01 00:00 EDT (DST ends at 02:00)
    ("paris", utc(2026, 10, 31, 23, 59, 59), "2026-10"),  # a UTC contract
    ("paris", utc(2026, 11, 1), "2026-11"),
]


def test_ingest_puts_each_fact_in_the_accounts_local_period(env: Env, close: MonthClose) -> None:
    ingest(env, [sms(a, when, f"b{i}") for i, (a, when, _) in enumerate(BOUNDARY)])
    stored = stored_periods(env)
    assert {f"{a}-b{i}": stored[f"{a}-b{i}"] for i, (a, _, _) in enumerate(BOUNDARY)} == {
        f"{a}-b{i}": period for i, (a, _, period) in enumerate(BOUNDARY)
    }


MESSAGES = [*(f"b{i}" for i in range(len(BOUNDARY))), "late", "ontime"]


def run_group(
    close: MonthClose, group: str, now: datetime, *, force: bool = False
) -> dict[str, Any]:
    frozen = close.freeze(group, settle=0, now=now, force=force)
    accounts = close.list_accounts(frozen.period, None).accounts
    for account in accounts:
        for unit in close.plan_account(frozen.period, account).units:
            close.compute_unit(unit)
        close.rate_account(frozen.period, account)
    close.finish(frozen.period, now=now)
    return {"accounts": accounts}


def invoice(close: MonthClose, period: str, account: str) -> dict[str, Any]:
    result = close.store.result(period, account)
    assert result is not None
    assert result["status"] == "issued", result
    return dict(json.loads(close.documents.read(result["keys"]["json"]) or b"{}"))


def sms_lines(doc: dict[str, Any], kind: str = "lines") -> Decimal:
    return sum(
        (Decimal(line["quantity"]) for line in doc[kind] if line["metric"] == "sms.mt"), Decimal(0)
    )


def test_each_close_group_closes_after_its_own_local_end(env: Env, close: MonthClose) -> None:
    ingest(env, [sms(a, when, f"b{i}") for i, (a, when, _) in enumerate(BOUNDARY)])
    assert close_groups(env.store, "2026-10") == [SEOUL_OCT, "2026-10", NEW_YORK_OCT]
    # Seoul's October has ended (and the grace of 1 h passed); New York's and UTC's have not
    now = utc(2026, 10, 31, 16)
    september = close_groups(env.store, "2026-09")
    assert close.due_groups(now, grace_hours=1) == [*september, SEOUL_OCT]
    assert close.due_groups(now, grace_hours=2) == september
    for group in september:
        run_group(close, group, now)
    assert sms_lines(invoice(close, "2026-09", "seoul")) == 1
    assert sms_lines(invoice(close, "2026-09", "newyork")) == 1
    frozen = close.freeze(None, settle=0, now=now, grace_hours=1)
    assert frozen.period == SEOUL_OCT
    assert close.list_accounts(SEOUL_OCT, None).accounts == ["seoul"]
    assert run_group(close, SEOUL_OCT, now)["accounts"] == ["seoul"]
    seoul = invoice(close, "2026-10", "seoul")
    assert sms_lines(seoul) == 2
    assert seoul["period_dates"] == {
        "time_zone": "Asia/Seoul",
        "first_day": "2026-10-01",
        "last_day": "2026-10-31",
    }
    # a late Seoul event (10-31 23:30 KST) is an adjustment; a UTC account's is on time
    ingest(
        env,
        [
            sms("seoul", utc(2026, 10, 31, 14, 30), "late"),
            sms("paris", utc(2026, 10, 31, 14, 30), "ontime"),
        ],
    )
    stored = stored_periods(env)
    assert stored["seoul-late"] == "2026-10+2026-11"
    assert stored["paris-ontime"] == "2026-10"
    # the rest close at 00:00 UTC and 04:00 UTC on 11-01
    later = utc(2026, 11, 1, 4, 30)
    assert close.due_groups(later, grace_hours=1) == ["2026-10"]
    assert close.due_groups(utc(2026, 11, 1, 6), grace_hours=1) == ["2026-10", NEW_YORK_OCT]
    assert run_group(close, "2026-10", later)["accounts"] == ["paris"]
    assert run_group(close, NEW_YORK_OCT, utc(2026, 11, 1, 6))["accounts"] == ["newyork"]
    assert sms_lines(invoice(close, "2026-10", "paris")) == 2
    assert sms_lines(invoice(close, "2026-10", "newyork")) == 2
    assert "period_dates" not in invoice(close, "2026-10", "paris")
    # Seoul's November bills its own event and adjusts October for the late one
    run_group(close, "2026-11@+09:00", utc(2026, 11, 2), force=True)
    november = invoice(close, "2026-11", "seoul")
    assert sms_lines(november) == 1
    assert sms_lines(november, "adjustment_lines") == 1


@pytest.mark.parametrize(
    ("when", "late"),
    [
        pytest.param(utc(2026, 10, 31, 16), False, id="november-in-seoul-october-in-utc"),
        pytest.param(utc(2026, 10, 31, 14), True, id="october-in-seoul"),
    ],
)
def test_a_reused_ids_version_is_judged_in_its_own_accounts_calendar(
    env: Env, close: MonthClose, when: datetime, late: bool
) -> None:
    """Seoul's October is frozen: the id audit's marker next to Seoul's version is a late
    change only when Seoul's calendar puts that version in October, whatever its UTC
    month; Paris's version of the id, in UTC's October still open, is not."""
    first = sms("seoul", when, "r1")
    ingest(env, [first, mt(when, "other-content", account="paris", event_id="seoul-r1")])
    env.store.freeze(SEOUL_OCT, "2026-11-01T00:00:00+00:00")
    frozen = env.store.frozen_periods()
    for item in env.table.scan()["Items"]:
        if str(item["pk"]).startswith("F#"):
            row = IdRow.of(fact_of_item(item), str(item["pk"]))
            assert row.sk == item["sk"]
            assert mark_version(env.store, row, frozen, close.zone_of, 6)
    markers = {
        str(i["pk"]).split("#")[1]: i
        for i in env.table.scan()["Items"]
        if str(i["sk"]).startswith("X#")
    }
    assert sorted(markers) == ["paris", "seoul"]
    assert ("adj" in markers["seoul"]) is late
    assert "adj" not in markers["paris"]


# --- the live view follows the account's calendar ---------------------------------------

SEOUL_NOVEMBER_STARTED = utc(2026, 10, 31, 16)  # 11-01 01:00 KST; still October in UTC


def held_numbers(env: Env) -> None:
    """A number provisioned in October by Seoul and by a UTC account, held on past it."""
    ingest(
        env,
        [
            number(utc(2026, 10, 10), f"+3360000000{i}", account=a, event_id=f"{a}-n1")
            for i, a in enumerate(("seoul", "paris"))
        ],
    )


def live_at(env: Env, when: datetime) -> LiveUsage:
    return LiveUsage(env.store, clock=lambda: when.timestamp())


def test_a_held_entity_refreshes_the_next_period_once_it_has_started_locally(
    env: Env, close: MonthClose
) -> None:
    held_numbers(env)
    live = live_at(env, SEOUL_NOVEMBER_STARTED)
    touched = live.refresh_account("seoul", ["2026-10"]) + live.refresh_account(
        "paris", ["2026-10"]
    )
    assert ("seoul", "2026-11") in touched  # Seoul's November has started
    assert ("paris", "2026-11") not in touched  # UTC's has not
    assert live.view("seoul", "2026-11").shards == 1
    assert live.view("paris", "2026-11").shards == 0


def test_a_plan_change_refreshes_the_accounts_own_current_and_previous_periods(
    env: Env, close: MonthClose, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = live_at(env, SEOUL_NOVEMBER_STARTED)
    asked: dict[str, list[str]] = {}

    def refresh_account(account: str, periods: list[str]) -> list[tuple[str, str]]:
        asked[account] = list(periods)
        return []

    monkeypatch.setattr(live, "refresh_account", refresh_account)
    records = [
        {
            "eventName": "MODIFY",
            "dynamodb": {"Keys": {"pk": {"S": f"PLAN#{a}"}}, "SequenceNumber": str(i)},
        }
        for i, a in enumerate(("seoul", "paris"), start=1)
    ]
    assert live.handle_stream(records)["batchItemFailures"] == []
    assert asked == {"seoul": ["2026-10", "2026-11"], "paris": ["2026-09", "2026-10"]}


def test_the_rollover_carries_each_account_into_its_own_new_month(
    env: Env, close: MonthClose
) -> None:
    held_numbers(env)
    october = live_at(env, utc(2026, 10, 20))
    october.refresh_account("seoul", ["2026-10"])
    october.refresh_account("paris", ["2026-10"])
    # hourly runs around month end: each account once its own November has started
    assert live_at(env, utc(2026, 10, 31, 14, 5)).roll_over() == []
    assert live_at(env, utc(2026, 10, 31, 15, 5)).roll_over() == [("seoul", "2026-11")]
    assert live_at(env, utc(2026, 11, 1, 0, 5)).roll_over() == [("paris", "2026-11")]
    assert live_at(env, utc(2026, 11, 1, 3, 5)).roll_over() == []
    assert live_at(env, utc(2026, 11, 1, 0, 5)).roll_over("2026-11") == [  # every account
        ("paris", "2026-11"),
        ("seoul", "2026-11"),
    ]
