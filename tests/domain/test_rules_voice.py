"""Section 4 of the rulebook: voice and video call legs, AMD, BYOC, voice numbers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.domain.events import VoiceService
from billing.domain.settings import Increment
from tests.factories import at, leg, number, number_released, totals, usage

BILLED_SERVICES = [s.value for s in VoiceService if s is not VoiceService.MISSED_CALL]


@pytest.mark.parametrize(
    ("seconds", "scheme", "billable"),
    [
        pytest.param(59, Increment(), 60, id="60/60-59s"),
        pytest.param(60, Increment(), 60, id="60/60-60s"),
        pytest.param(61, Increment(), 120, id="60/60-61s"),
        pytest.param(0.5, Increment(), 60, id="60/60-half-second"),
        pytest.param(120.001, Increment(), 180, id="60/60-120.001s"),
        pytest.param(59, Increment(first=1, next=1), 59, id="1/1-59s"),
        pytest.param(59.2, Increment(first=1, next=1), 60, id="1/1-59.2s"),
        pytest.param(1, Increment(first=1, next=1), 1, id="1/1-1s"),
        pytest.param(0.2, Increment(first=1, next=1), 1, id="1/1-0.2s"),
        pytest.param(1, Increment(first=30, next=6), 30, id="30/6-1s"),
        pytest.param(30, Increment(first=30, next=6), 30, id="30/6-30s"),
        pytest.param(31, Increment(first=30, next=6), 36, id="30/6-31s"),
        pytest.param(36, Increment(first=30, next=6), 36, id="30/6-36s"),
        pytest.param(37, Increment(first=30, next=6), 42, id="30/6-37s"),
        pytest.param(61, Increment(first=30, next=6), 66, id="30/6-61s"),
    ],
)
def test_answered_call_is_billed_in_increments(
    seconds: float, scheme: Increment, billable: int
) -> None:
    events = [leg(at(3, 10), seconds, service="ivr", country="FR")]
    figures = usage(events, voice_increment=scheme).figures()
    assert figures == {("voice.ivr", (("country", "FR"), ("direction", "outbound"))): billable}
    assert scheme.billable_seconds(Decimal(str(seconds))) == billable


def test_zero_answered_seconds_bill_nothing() -> None:
    assert Increment().billable_seconds(Decimal(0)) == 0
    assert totals([leg(at(3), 0, service="ivr")]) == {}


@pytest.mark.parametrize("service", BILLED_SERVICES)
def test_each_voice_service_is_billed_per_answered_leg(service: str) -> None:
    figures = usage([leg(at(3), 61, service=service, direction="inbound")]).figures()
    assert figures == {(f"voice.{service}", (("direction", "inbound"),)): 120}


@pytest.mark.parametrize("disposition", ["no_answer", "busy", "failed", "rejected"])
@pytest.mark.parametrize("service", [s.value for s in VoiceService])
def test_unanswered_calls_are_not_charged(service: str, disposition: str) -> None:
    events = [leg(at(3), 0, service=service, disposition=disposition, amd=True, byoc=True)]
    assert totals(events) == {}


def test_missed_call_service_has_no_per_call_charge() -> None:
    assert totals([leg(at(3), 45, service="missed_call", direction="inbound")]) == {}


def test_click_to_call_is_two_legs_both_charged() -> None:
    events = [
        leg(at(3, 9), 30, service="click_to_call", call_id="c1", leg_id="agent"),
        leg(at(3, 9), 61, service="click_to_call", call_id="c1", leg_id="customer"),
    ]
    assert totals(events) == {"voice.click_to_call": 180}
    assert usage(events).evidence(("voice.click_to_call", (("direction", "outbound"),))) == 2


def test_click_to_call_with_one_leg_unanswered_charges_the_answered_one() -> None:
    events = [
        leg(at(3, 9), 30, service="click_to_call", call_id="c1", leg_id="agent"),
        leg(
            at(3, 9),
            0,
            service="click_to_call",
            call_id="c1",
            leg_id="customer",
            disposition="no_answer",
        ),
    ]
    assert totals(events) == {"voice.click_to_call": 60}


def test_masked_call_is_the_inbound_leg_plus_the_forwarded_leg() -> None:
    events = [
        leg(at(3, 9), 90, service="number_masking", call_id="m1", leg_id="in", direction="inbound"),
        leg(
            at(3, 9), 75, service="number_masking", call_id="m1", leg_id="fwd", direction="outbound"
        ),
    ]
    assert usage(events).figures() == {
        ("voice.number_masking", (("direction", "inbound"),)): 120,
        ("voice.number_masking", (("direction", "outbound"),)): 120,
    }


def test_masked_call_never_connected_is_not_charged() -> None:
    events = [
        leg(
            at(3, 9),
            0,
            service="number_masking",
            call_id="m1",
            leg_id="in",
            direction="inbound",
            disposition="no_answer",
        ),
    ]
    assert totals(events) == {}


def test_duplicate_leg_with_a_different_event_id_is_charged_once() -> None:
    events = [
        leg(at(3, 9), 61, service="ivr", call_id="c1", leg_id="l1", event_id="cdr-1", amd=True),
        leg(
            at(3, 9), 61, service="ivr", call_id="c1", leg_id="l1", event_id="cdr-1-retry", amd=True
        ),
    ]
    assert totals(events) == {"voice.amd": 1, "voice.ivr": 120}


def test_same_leg_id_in_another_call_is_another_leg() -> None:
    events = [
        leg(at(3, 9), 10, call_id="c1", leg_id="a"),
        leg(at(3, 9), 10, call_id="c2", leg_id="a"),
    ]
    assert totals(events) == {"voice.ivr": 120}


@pytest.mark.parametrize(
    ("disposition", "seconds", "amd_charged"),
    [
        pytest.param("answered", 20, 1, id="answered"),
        pytest.param("no_answer", 0, 0, id="no-answer"),
        pytest.param("busy", 0, 0, id="busy"),
        pytest.param("failed", 0, 0, id="failed"),
    ],
)
def test_amd_is_charged_per_request_only_when_answered(
    disposition: str, seconds: int, amd_charged: int
) -> None:
    events = [
        leg(at(3), seconds, service="message", disposition=disposition, amd=True, country="DE")
    ]
    figures = usage(events).figures()
    assert figures.get(("voice.amd", (("country", "DE"),)), 0) == amd_charged


def test_amd_not_requested_is_not_charged() -> None:
    assert "voice.amd" not in totals([leg(at(3), 20, service="message")])


@pytest.mark.parametrize(
    ("seconds", "minutes_billed"),
    [pytest.param(1, 60, id="1s"), pytest.param(60, 60, id="60s"), pytest.param(61, 120, id="61s")],
)
@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_byoc_is_billed_per_minute_over_any_service(
    direction: str, seconds: int, minutes_billed: int
) -> None:
    events = [leg(at(3), seconds, service="webrtc", byoc=True, direction=direction)]
    figures = usage(events, voice_increment=Increment(first=1, next=1)).figures()
    assert figures[("voice.byoc", (("direction", direction),))] == minutes_billed
    # the service itself follows the contract's (here per-second) scheme
    assert figures[("voice.webrtc", (("direction", direction),))] == seconds


def test_byoc_on_a_missed_call_number_bills_the_byoc_minutes_only() -> None:
    events = [leg(at(3), 10, service="missed_call", byoc=True, direction="inbound")]
    assert totals(events) == {"voice.byoc": 60}


def test_per_service_increment_override() -> None:
    events = [
        leg(at(3), 31, service="sip_trunk", call_id="a"),
        leg(at(3), 31, service="ivr", call_id="b"),
    ]
    result = totals(events, voice_increments={VoiceService.SIP_TRUNK: Increment(first=30, next=6)})
    assert result == {"voice.ivr": 60, "voice.sip_trunk": 36}


def test_legs_are_split_by_country_and_direction() -> None:
    events = [
        leg(at(3), 10, call_id="a", country="FR"),
        leg(at(3), 10, call_id="b", country="FR"),
        leg(at(3), 10, call_id="c", country="DE"),
        leg(at(3), 10, call_id="d", country="DE", direction="inbound"),
    ]
    assert usage(events).figures() == {
        ("voice.ivr", (("country", "DE"), ("direction", "inbound"))): 60,
        ("voice.ivr", (("country", "DE"), ("direction", "outbound"))): 60,
        ("voice.ivr", (("country", "FR"), ("direction", "outbound"))): 120,
    }


def test_video_call_is_billed_like_audio() -> None:
    assert totals([leg(at(3), 61, service="webrtc", video=True)]) == {"voice.webrtc": 120}


def test_call_belongs_to_the_month_of_its_event_time() -> None:
    events = [
        leg(at(30, 23, 59, month=9), 61, call_id="sep"),
        leg(at(1), 61, call_id="oct"),
        leg(at(1, month=11), 61, call_id="nov"),
    ]
    assert totals(events) == {"voice.ivr": 120}


# --- voice numbers ------------------------------------------------------------------------


def test_voice_number_lease_is_monthly_per_number() -> None:
    events = [
        number(at(5), "+3311", "voice", country="FR"),
        number(at(6), "+3312", "voice", country="FR"),
    ]
    figures = usage(events).figures()
    assert figures[("voice.number", (("country", "FR"),))] == 2
    assert ("numbers.setup", (("country", "FR"), ("number_type", "voice"))) not in figures
    assert ("numbers.recurring", (("country", "FR"), ("number_type", "voice"))) not in figures


def test_voice_number_held_from_an_earlier_month_is_charged_again() -> None:
    events = [number(at(5, month=8), "+3311", "voice")]
    assert totals(events) == {"voice.number": 1}


def test_voice_number_released_before_the_month_is_not_charged() -> None:
    events = [number(at(5, month=8), "+3311", "voice"), number_released(at(30, month=9), "+3311")]
    assert totals(events) == {}


def test_missed_call_number_is_charged_monthly() -> None:
    events = [number(at(5, month=9), "+3319", "voice", missed_call=True, country="FR")]
    figures = usage(events).figures()
    assert figures == {("voice.missed_call", (("country", "FR"),)): 1}


def test_number_not_configured_for_missed_calls_has_no_missed_call_fee() -> None:
    assert "voice.missed_call" not in totals([number(at(5), "+3319", "voice")])
