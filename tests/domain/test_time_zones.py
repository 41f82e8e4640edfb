"""The contract's time zone: periods and local days in the account's calendar."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from billing.domain.engine import usage_of_events
from billing.domain.periods import Period, period_at, zoned, zones_from
from billing.domain.plan import PricePlan, zone_change_refusal, zone_of, zoned_period
from billing.domain.settings import ContractSettings
from tests.factories import mt, number, rec_stored, seat

EAST_AND_WEST = [
    "UTC",
    "Asia/Seoul",  # UTC+9
    "Europe/Paris",  # DST: last Sunday of March / October
    "America/New_York",  # DST: second Sunday of March / first Sunday of November
    "Pacific/Kiritimati",  # UTC+14
    "Etc/GMT+12",  # UTC-12
]


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(
    zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(zone))


def sms(period: Period, when: datetime, zone: str) -> Decimal:
    """How many SMS of one sent at ``when`` the account in ``zone`` is billed in ``period``."""
    usage = usage_of_events(
        [mt(when, "m1")], period, ContractSettings(time_zone=zone, lookback_hours=24)
    )
    return usage.by_metric().get("sms.mt", Decimal(0))


# --- bounds -----------------------------------------------------------------------------

BOUNDS = [
    # zone, period, first instant (UTC), exclusive end (UTC): hand-computed
    ("UTC", "2026-10", utc(2026, 10, 1), utc(2026, 11, 1)),
    ("Asia/Seoul", "2026-10", utc(2026, 9, 30, 15), utc(2026, 10, 31, 15)),
    ("Europe/Paris", "2026-10", utc(2026, 9, 30, 22), utc(2026, 10, 31, 23)),  # 31 d + 1 h
    ("Europe/Paris", "2026-03", utc(2026, 2, 28, 23), utc(2026, 3, 31, 22)),  # 31 d - 1 h
    ("America/New_York", "2026-11", utc(2026, 11, 1, 4), utc(2026, 12, 1, 5)),  # 30 d + 1 h
    ("America/New_York", "2026-03", utc(2026, 3, 1, 5), utc(2026, 4, 1, 4)),  # 31 d - 1 h
    ("Pacific/Kiritimati", "2026-10", utc(2026, 9, 30, 10), utc(2026, 10, 31, 10)),
    ("Etc/GMT+12", "2026-10", utc(2026, 10, 1, 12), utc(2026, 11, 1, 12)),
]


@pytest.mark.parametrize(("zone", "label", "start", "end"), BOUNDS)
def test_period_bounds_are_local_midnights(
    zone: str, label: str, start: datetime, end: datetime
) -> None:
    p = Period.parse(label).in_zone(zone)
    assert (p.start, p.end) == (start, end)
    assert p == Period.parse(label)  # the zone is not part of the period's identity
    assert Period.parse_label(p.label).end == end
    assert p.days == Period.parse(label).days  # calendar days, DST or not


@pytest.mark.parametrize("zone", EAST_AND_WEST)
@pytest.mark.parametrize("month", [3, 10, 11])
@pytest.mark.parametrize(
    ("when", "billed_in"),
    [
        # (local date and time, which month bills it relative to ``month``)
        (lambda m: (m, 1, 0, 0, 0), 0),  # first instant of the first day
        (lambda m: (m, 1, 23, 59, 59), 0),  # last second of the first day
        (lambda m: (m, _last(m), 0, 0, 0), 0),  # first instant of the last day
        (lambda m: (m, _last(m), 23, 59, 59), 0),  # last second of the last day
        (lambda m: (m - 1, _last(m - 1), 23, 59, 59), -1),  # the second before the period
        (lambda m: (m + 1, 1, 0, 0, 0), 1),  # the first instant after it
    ],
)
def test_local_boundary_table(zone: str, month: int, when: Any, billed_in: int) -> None:
    m, d, h, mi, s = when(month)
    at = local(zone, 2026, m, d, h, mi, s)
    p = Period(2026, month)
    expected = {p.prev(): 0, p: 0, p.next(): 0}
    expected[{-1: p.prev(), 0: p, 1: p.next()}[billed_in]] = 1
    assert {q: sms(q, at, zone) for q in expected} == expected


def _last(month: int) -> int:
    return Period(2026, month).days


# --- local days ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "start_day", "provisioned", "initial"),
    [
        # the 25 h day (DST ends): a seat at 23:30 local is still on the start day
        ("Europe/Paris", date(2026, 10, 25), local("Europe/Paris", 2026, 10, 25, 23, 30), 1),
        ("Europe/Paris", date(2026, 10, 25), local("Europe/Paris", 2026, 10, 26, 0, 0), 0),
        # the 23 h day (DST starts): 23:59:59 is on it, the next midnight is not
        (
            "America/New_York",
            date(2026, 3, 8),
            local("America/New_York", 2026, 3, 8, 23, 59, 59),
            1,
        ),
        ("America/New_York", date(2026, 3, 8), local("America/New_York", 2026, 3, 9), 0),
        # east of UTC the local day starts the evening before in UTC
        ("Asia/Seoul", date(2026, 10, 15), utc(2026, 10, 14, 15), 1),
        ("Asia/Seoul", date(2026, 10, 15), utc(2026, 10, 15, 15), 0),  # Oct 16 00:00 KST
    ],
)
def test_named_user_start_day_is_a_local_day(
    zone: str, start_day: date, provisioned: datetime, initial: int
) -> None:
    """The first month's proration counts the seats held on the local start day."""
    period = Period(start_day.year, start_day.month)
    settings = ContractSettings(time_zone=zone, named_user_service_start=start_day)
    figures = usage_of_events([seat(provisioned, "u1")], period, settings).by_metric()
    assert figures.get("conversations.maa.initial", Decimal(0)) == initial
    assert figures["conversations.maa"] == 1


def test_same_traffic_under_utc_and_seoul_differs_as_hand_computed() -> None:
    """Seoul is UTC+9 without DST: October runs 2026-09-30T15:00Z .. 2026-10-31T15:00Z."""
    events = [
        mt(utc(2026, 9, 30, 20), "a"),  # Oct 1 05:00 KST: Seoul October, UTC September
        mt(utc(2026, 9, 30, 20, 30), "b"),
        *(mt(utc(2026, 10, 15, h), f"mid{h}") for h in range(5)),  # both: October
        mt(utc(2026, 10, 31, 16), "c"),  # Nov 1 01:00 KST: UTC October, Seoul November
        mt(utc(2026, 10, 31, 17), "d"),
        mt(utc(2026, 10, 31, 18), "e"),
        number(utc(2026, 10, 31, 20), "+33100000001"),  # held in UTC October only
        rec_stored(utc(2026, 10, 31, 12), "r1", duration_seconds=61),  # 2 min, no deletion
    ]
    oct_ = Period(2026, 10)
    in_utc = usage_of_events(events, oct_, ContractSettings()).by_metric()
    in_seoul = usage_of_events(events, oct_, ContractSettings(time_zone="Asia/Seoul")).by_metric()
    assert in_utc["sms.mt"] == 5 + 3
    assert in_seoul["sms.mt"] == 2 + 5
    assert in_utc["numbers.recurring"] == 1
    assert "numbers.recurring" not in in_seoul
    # storage: days of 24 h from 12:00Z; UTC October holds the day starting 10-31T12:00Z,
    # and so does Seoul's (it ends 15:00Z): one day of 2 minutes either way
    assert in_utc["recording.storage_minutes"] == in_seoul["recording.storage_minutes"] == 2
    nov_seoul = usage_of_events(
        events, Period(2026, 11), ContractSettings(time_zone="Asia/Seoul")
    ).by_metric()
    assert nov_seoul["sms.mt"] == 3
    assert nov_seoul["numbers.recurring"] == 1


# --- zone changes -------------------------------------------------------------------------


def plan(effective_from: str, zone: str) -> PricePlan:
    return PricePlan(
        account="acme",
        currency="EUR",
        effective_from=effective_from,
        settings=ContractSettings(time_zone=zone),
    )


def test_zone_change_moves_one_boundary_and_loses_nothing() -> None:
    """UTC until September, Seoul from October, New York from December: October starts
    where UTC September ended; November ends in Seoul; December ends in New York."""
    plans = [
        plan("2026-01", "UTC"),
        plan("2026-10", "Asia/Seoul"),
        plan("2026-12", "America/New_York"),
    ]
    oct_, nov, dec = (zoned_period(plans, f"2026-{m}") for m in (10, 11, 12))
    assert oct_.start == utc(2026, 10, 1)
    assert oct_.end == utc(2026, 10, 31, 15)
    assert nov.start == oct_.end
    assert nov.end == utc(2026, 11, 30, 15)
    assert dec.start == nov.end
    assert dec.end == utc(2027, 1, 1, 5)
    # every instant around the boundaries is billed exactly once
    boundary_events = [mt(oct_.end + timedelta(seconds=s), f"x{s}") for s in (-1, 0, 1)] + [
        mt(nov.end + timedelta(seconds=s), f"y{s}") for s in (-1, 0, 1)
    ]
    counts = [
        usage_of_events(boundary_events, p, ContractSettings(time_zone=p.zone)).by_metric()
        for p in (oct_, nov, dec)
    ]
    assert [c.get("sms.mt", 0) for c in counts] == [1, 3, 2]


ZONES = st.sampled_from(EAST_AND_WEST)


@settings(max_examples=200, deadline=None)
@given(
    zones=st.lists(ZONES, min_size=14, max_size=14),
    at=st.integers(
        min_value=int(utc(2026, 1, 2).timestamp() * 1000),
        max_value=int(utc(2026, 12, 30).timestamp() * 1000),
    ),
)
def test_zoned_periods_partition_time(zones: list[str], at: int) -> None:
    """Whatever the zone of each month, consecutive periods abut and exactly one of them
    holds any instant (``period_at`` finds it)."""

    def zone(p: Period) -> str:
        return zones[(p.year - 2025) * 12 + p.month - 12]

    months = [zoned(Period(2026, m), zone) for m in range(1, 13)]
    for a, b in itertools.pairwise(months):
        assert a.end_ms == b.start_ms
    holders = [p for p in months if p.contains_ms(at)]
    assert len(holders) == 1
    found = period_at(at, zone)
    assert found == holders[0]
    assert found.start_ms == holders[0].start_ms


def test_zone_change_only_for_a_period_not_started() -> None:
    versions = [("2026-01", "UTC")]
    seoul = plan("2026-11", "Asia/Seoul")

    def ms(d: datetime) -> int:
        return int(d.timestamp() * 1000)

    assert zone_change_refusal(versions, seoul, ms(utc(2026, 10, 20))) is None
    refusal = zone_change_refusal(versions, seoul, ms(utc(2026, 11, 1, 0, 5)))
    assert refusal is not None
    assert "refused" in refusal
    # the start is the end of October in October's zone (UTC), even for an eastern zone,
    # and the change must come an hour ahead
    assert zone_change_refusal(versions, seoul, ms(utc(2026, 10, 31, 23, 30))) is not None
    # a plan that keeps the zone is never refused; replacing a version counts as a change
    assert zone_change_refusal(versions, plan("2026-01", "UTC"), ms(utc(2026, 11, 2))) is None
    moved = [("2026-01", "UTC"), ("2026-11", "Asia/Seoul")]
    assert zone_change_refusal(moved, plan("2026-11", "UTC"), ms(utc(2026, 11, 2))) is not None
    assert zone_of([plan("2026-01", "UTC"), seoul])(Period(2026, 12)) == "Asia/Seoul"


@pytest.mark.parametrize("bad", ["Mars/Olympus", "utc+9", "", "Asia/Seoul@x", "../etc/passwd"])
def test_unknown_zone_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        ContractSettings(time_zone=bad)


def test_before_its_first_plan_an_account_keeps_that_plans_zone() -> None:
    """The calendar does not change where the first plan starts: facts stored before it
    (a plan effective 2026-10 for a Seoul account) fall in Seoul periods too."""
    seoul_from_october = zones_from([("2026-10", "Asia/Seoul"), ("2027-01", "UTC")])
    assert seoul_from_october(Period(2026, 9)) == "Asia/Seoul"
    assert seoul_from_october(Period(2027, 2)) == "UTC"
    assert zones_from([])(Period(2026, 10)) == "UTC"
    october = zoned(Period(2026, 10), seoul_from_october)
    assert october.start == utc(2026, 9, 30, 15)
