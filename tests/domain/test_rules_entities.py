"""Entities that live across months: recordings (licences, storage), numbers and short
codes, and Things SIMs."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from billing.domain.events import Envelope
from billing.domain.periods import Period
from tests.factories import (
    at,
    ms,
    number,
    number_released,
    rec_deleted,
    rec_start,
    rec_stop,
    rec_stored,
    sim,
    sim_data,
    sim_status,
    totals,
    usage,
)

H = timedelta(hours=1)
DAY = timedelta(days=1)
OCT, NOV, SEP = Period(2026, 10), Period(2026, 11), Period(2026, 9)

# --- recording licences ---------------------------------------------------------------------


def recording(
    start_day: int,
    start_hour: int,
    stop_day: int,
    stop_hour: int,
    rid: str,
    month: int = 10,
    **kw: object,
) -> list[Envelope]:
    return [
        rec_start(at(start_day, start_hour, month=month), rid, call_id=f"c-{rid}", **kw),
        rec_stop(at(stop_day, stop_hour, month=month), rid, call_id=f"c-{rid}"),
    ]


@pytest.mark.parametrize(
    ("events", "licences"),
    [
        pytest.param(recording(2, 10, 2, 11, "r1"), 1, id="one"),
        pytest.param(
            recording(2, 10, 2, 12, "r1") + recording(2, 11, 2, 13, "r2"), 2, id="overlapping"
        ),
        pytest.param(
            recording(2, 10, 2, 11, "r1") + recording(2, 11, 2, 12, "r2"),
            1,
            id="stop-exactly-at-the-next-start",
        ),
        pytest.param(
            recording(2, 10, 2, 11, "r1") + recording(3, 10, 3, 11, "r2"), 1, id="different-days"
        ),
        pytest.param(
            recording(2, 10, 2, 20, "r1")
            + recording(2, 11, 2, 12, "r2")
            + recording(2, 13, 2, 14, "r3")
            + recording(2, 13, 2, 15, "r4"),
            3,
            id="peak-not-sum",
        ),
        pytest.param(
            [rec_start(at(30, 22, month=9), "r1")], 1, id="still-recording-from-last-month"
        ),
        pytest.param(recording(30, 10, 30, 11, "r1", month=9), 0, id="done-last-month"),
        pytest.param(
            recording(2, 10, 2, 11, "r1", via_conversations=True), 0, id="conversations-excluded"
        ),
    ],
)
def test_recording_licences_are_the_peak_of_simultaneous_recordings(
    events: list[Envelope], licences: int
) -> None:
    assert totals(events).get("recording.licence", 0) == licences


def test_recording_stop_arriving_before_its_start_gives_the_same_licences() -> None:
    events = recording(2, 10, 2, 12, "r1") + recording(2, 11, 2, 13, "r2")
    assert totals(list(reversed(events))) == totals(events) == {"recording.licence": 2}


def test_recording_licences_capped_at_the_recording_limit_with_a_note() -> None:
    events = [e for i in range(12) for e in recording(2, 10, 2, 11, f"r{i}")]
    u = usage(events)
    assert u.by_metric() == {"recording.licence": 10}
    assert u.resolved().note_counts == {"recording.licence.above_limit": 1}
    assert "12" in u.resolved().notes()[0].detail


def test_recording_limit_raised_in_writing() -> None:
    events = [e for i in range(12) for e in recording(2, 10, 2, 11, f"r{i}")]
    u = usage(events, recording_limit=15)
    assert u.by_metric() == {"recording.licence": 12}
    assert u.note_counts == {}


def test_recording_at_the_limit_is_not_reported() -> None:
    events = [e for i in range(10) for e in recording(2, 10, 2, 11, f"r{i}")]
    assert usage(events).note_counts == {}
    assert usage(events).by_metric() == {"recording.licence": 10}


# --- recording storage ----------------------------------------------------------------------

CREATED = at(5, 10)
FIVE_MINUTES = 300
FIVE_GB = 5 * 10**9


@pytest.mark.parametrize(
    ("kept", "days"),
    [
        pytest.param(ms(1), 1, id="1ms"),
        pytest.param(24 * H - ms(1), 1, id="24h-minus-1ms"),
        pytest.param(24 * H, 1, id="24h-exactly-1-day"),
        pytest.param(24 * H + ms(1), 2, id="24h-plus-1ms-2-days"),
        pytest.param(2 * DAY, 2, id="2-days"),
        pytest.param(2 * DAY + ms(1), 3, id="2-days-plus-1ms"),
    ],
)
def test_storage_minutes_per_started_day(kept: timedelta, days: int) -> None:
    events = [rec_stored(CREATED, "r1", 10**6, FIVE_MINUTES), rec_deleted(CREATED + kept, "r1")]
    assert usage(events).figures() == {("recording.storage_minutes", ()): 5 * days}


def test_five_minute_recording_kept_two_days_is_ten_minute_days() -> None:
    events = [
        *recording(5, 9, 5, 10, "r1"),
        rec_stored(CREATED, "r1", 10**6, FIVE_MINUTES),
        rec_deleted(CREATED + 2 * DAY, "r1"),
    ]
    assert totals(events) == {"recording.licence": 1, "recording.storage_minutes": 10}


@pytest.mark.parametrize(
    ("kept", "gb_days"),
    [
        pytest.param(2 * DAY, 10, id="5GB-2-days"),
        pytest.param(24 * H, 5, id="5GB-24h-exactly"),
        pytest.param(24 * H + ms(1), 10, id="5GB-24h-plus-1ms"),
    ],
)
def test_conversations_storage_in_gb_days(kept: timedelta, gb_days: int) -> None:
    events = [
        rec_start(CREATED - H, "r1", via_conversations=True),
        rec_stop(CREATED, "r1"),
        rec_stored(CREATED, "r1", FIVE_GB, 3600, via_conversations=True),
        rec_deleted(CREATED + kept, "r1"),
    ]
    assert usage(events).figures() == {("recording.storage_gb", ()): gb_days}


def test_gigabyte_is_10_to_the_9_bytes_unless_agreed() -> None:
    events = [
        rec_stored(CREATED, "r1", 1_500_000_000, 60, via_conversations=True),
        rec_deleted(CREATED + DAY, "r1"),
    ]
    assert totals(events) == {"recording.storage_gb": Decimal("1.5")}
    assert totals(events, gigabyte_bytes=3 * 10**9) == {"recording.storage_gb": Decimal("0.5")}


def test_recording_not_yet_deleted_is_charged_for_days_starting_in_the_month() -> None:
    events = [rec_stored(at(30, 12), "r1", 0, FIVE_MINUTES)]
    assert totals(events, OCT) == {"recording.storage_minutes": 10}  # Oct 30 and 31, 12:00
    assert totals(events, NOV) == {"recording.storage_minutes": 5 * 30}


def test_recording_spanning_months_charges_each_day_in_the_month_it_starts() -> None:
    events = [
        rec_stored(at(31, 12), "r1", 0, FIVE_MINUTES),
        rec_deleted(at(2, 0, month=11), "r1"),  # days start Oct 31 12:00 and Nov 1 12:00
    ]
    assert totals(events, OCT) == {"recording.storage_minutes": 5}
    assert totals(events, NOV) == {"recording.storage_minutes": 5}


def test_recording_stored_months_ago_is_still_charged() -> None:
    events = [rec_stored(at(15, 8, month=8), "r1", 0, 120), rec_deleted(at(3, 9), "r1")]
    # days start on the 15th of August at 08:00, ..., October 1st and 2nd and 3rd 08:00
    assert totals(events, OCT) == {"recording.storage_minutes": 2 * 3}


def test_recording_deleted_before_the_month_costs_nothing() -> None:
    events = [rec_stored(at(15, month=9), "r1", 0, 120), rec_deleted(at(20, month=9), "r1")]
    assert totals(events, OCT) == {}
    assert totals(events, SEP) == {"recording.storage_minutes": 2 * 5}


def test_conversations_and_other_recordings_are_stored_on_separate_lines() -> None:
    events = [
        rec_stored(CREATED, "r1", FIVE_GB, FIVE_MINUTES, via_conversations=True),
        rec_deleted(CREATED + DAY, "r1"),
        rec_stored(CREATED, "r2", FIVE_GB, FIVE_MINUTES),
        rec_deleted(CREATED + DAY, "r2"),
    ]
    assert totals(events) == {"recording.storage_gb": 5, "recording.storage_minutes": 5}


def test_video_recordings_are_stored_and_charged_the_same_way() -> None:
    events = [
        rec_stored(CREATED, "r1", 10**9, FIVE_MINUTES, video=True),
        rec_deleted(CREATED + DAY, "r1"),
    ]
    assert totals(events) == {"recording.storage_minutes": 5}


def test_a_recording_without_storage_has_no_storage_charge() -> None:
    assert totals(recording(2, 10, 2, 11, "r1")) == {"recording.licence": 1}


# --- numbers and short codes ----------------------------------------------------------------


@pytest.mark.parametrize("number_type", ["long", "toll_free", "short_code"])
def test_number_setup_in_the_provisioning_month_and_recurring_every_month(
    number_type: str,
) -> None:
    events = [number(at(5, month=9), "n1", number_type, country="FR")]
    dims = (("country", "FR"), ("number_type", number_type))
    assert usage(events, SEP).figures() == {
        ("numbers.recurring", dims): 1,
        ("numbers.setup", dims): 1,
    }
    assert usage(events, OCT).figures() == {("numbers.recurring", dims): 1}
    assert usage(events, NOV).figures() == {("numbers.recurring", dims): 1}


@pytest.mark.parametrize(
    ("events", "oct_recurring", "nov_recurring"),
    [
        pytest.param([number(at(31, 23, 59), "n1")], 1, 1, id="provisioned-on-the-last-day"),
        pytest.param(
            [number(at(5, month=9), "n1"), number_released(at(1, 10), "n1")],
            1,
            0,
            id="released-on-the-1st",
        ),
        pytest.param(
            [number(at(5), "n1"), number_released(at(5, 1), "n1")], 1, 0, id="held-one-hour"
        ),
        pytest.param(
            [number(at(5, month=9), "n1"), number_released(at(1, 10, month=11), "n1")],
            1,
            1,
            id="released-on-next-1st",
        ),
        pytest.param(
            [number(at(5, month=9), "n1"), number_released(at(30, month=9), "n1")],
            0,
            0,
            id="released-last-month",
        ),
        pytest.param(
            [number(at(5), "n1"), number_released(at(6), "n1"), number(at(20), "n1")],
            1,
            1,
            id="released-and-re-provisioned",
        ),
    ],
)
def test_recurring_fee_for_every_month_held_on_any_day(
    events: list[Envelope], oct_recurring: int, nov_recurring: int
) -> None:
    assert totals(events, OCT).get("numbers.recurring", 0) == oct_recurring
    assert totals(events, NOV).get("numbers.recurring", 0) == nov_recurring


def test_setup_fee_per_provisioning_recurring_fee_once_per_number_and_month() -> None:
    events = [
        number(at(5), "n1"),
        number_released(at(6), "n1"),
        number(at(20), "n1"),
        number(at(21), "n2", "short_code"),
    ]
    assert usage(events).figures() == {
        ("numbers.recurring", (("number_type", "long"),)): 1,
        ("numbers.recurring", (("number_type", "short_code"),)): 1,
        ("numbers.setup", (("number_type", "long"),)): 2,
        ("numbers.setup", (("number_type", "short_code"),)): 1,
    }


def test_voice_numbers_are_not_messaging_numbers() -> None:
    events = [number(at(5), "v1", "voice")]
    assert totals(events) == {"voice.number": 1}


# --- Things (IoT SIMs) ----------------------------------------------------------------------


def test_sim_activation_is_charged_in_the_month_of_activation() -> None:
    events = [sim(at(5), "s1"), sim(at(6), "s2"), sim(at(5, month=9), "s3")]
    assert totals(events)["things.activation"] == 2
    assert totals(events, SEP)["things.activation"] == 1


def test_sim_activation_is_charged_once_per_sim() -> None:
    events = [sim(at(5), "s1", event_id="a1"), sim(at(5, 1), "s1", event_id="a2")]
    assert totals(events)["things.activation"] == 1
    earlier = [sim(at(5, month=9), "s1", event_id="a1"), sim(at(5), "s1", event_id="a2")]
    assert "things.activation" not in totals(earlier)


@pytest.mark.parametrize(
    ("events", "subscriptions"),
    [
        pytest.param([sim(at(5), "s1")], 1, id="activated-this-month"),
        pytest.param([sim(at(5, month=8), "s1")], 1, id="active-since-august"),
        pytest.param(
            [sim(at(5, month=8), "s1"), sim_status(at(9, month=9), "s1", "suspended")],
            0,
            id="suspended-all-month",
        ),
        pytest.param(
            [sim(at(5, month=8), "s1"), sim_status(at(9, month=9), "s1", "terminated")],
            0,
            id="terminated-last-month",
        ),
        pytest.param(
            [sim(at(5, month=8), "s1"), sim_status(at(9), "s1", "suspended")],
            1,
            id="suspended-mid-month",
        ),
        pytest.param(
            [
                sim(at(5, month=8), "s1"),
                sim_status(at(9, month=9), "s1", "suspended"),
                sim_status(at(31, 23), "s1", "active"),
            ],
            1,
            id="resumed-on-the-last-day",
        ),
        pytest.param(
            [
                sim(at(5, month=8), "s1"),
                sim_status(at(9), "s1", "suspended"),
                sim_status(at(12), "s1", "active"),
            ],
            1,
            id="suspended-and-resumed",
        ),
        pytest.param([sim(at(5), "s1"), sim(at(5), "s2"), sim(at(5), "s3")], 3, id="three-sims"),
    ],
)
def test_sim_subscription_for_sims_active_on_any_day(
    events: list[Envelope], subscriptions: int
) -> None:
    assert totals(events).get("things.subscription", 0) == subscriptions


def test_sim_data_in_megabytes_by_country() -> None:
    events = [
        sim_data(at(5), "s1", 1_500_000, "FR"),
        sim_data(at(6), "s1", 500_000, "FR"),
        sim_data(at(7), "s1", 2_000_000, "DE"),
        sim_data(at(7), "s2", 250_000, "DE"),
        sim_data(at(30, month=9), "s1", 9_000_000, "FR"),
    ]
    assert usage(events).figures() == {
        ("things.data", (("country", "DE"),)): Decimal("2.25"),
        ("things.data", (("country", "FR"),)): 2,
    }


def test_sim_data_report_redelivered_is_counted_once() -> None:
    events = [
        sim_data(at(5), "s1", 1_000_000, event_id="d1"),
        sim_data(at(5), "s1", 1_000_000, event_id="d1"),
    ]
    assert totals(events) == {"things.data": 1}


def test_a_duplicate_provisioning_of_a_held_number_adds_no_setup_fee() -> None:
    events = [number(at(5), "n1"), number(at(7), "n1")]  # two events, one holding
    assert totals(events)["numbers.setup"] == 1
