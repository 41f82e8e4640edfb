"""Section 2 of the rulebook: SaaS packages (named-user seats, MAC, MEP, Answers sessions)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from billing.domain.events import Envelope
from billing.domain.periods import Period
from tests.factories import (
    OCTOBER,
    at,
    bot_end,
    login,
    logout,
    mo,
    ms,
    mt,
    seat,
    totals,
    unseat,
    usage,
)

H = timedelta(hours=1)
MIN = timedelta(minutes=1)
USER = "+33611111111"

# --- conversations.maa: named-user seats ----------------------------------------------------


@pytest.mark.parametrize(
    ("events", "seats"),
    [
        pytest.param([seat(at(2), "a")], 1, id="one-user"),
        pytest.param([seat(at(2), "a"), seat(at(3), "b")], 2, id="two-overlapping"),
        pytest.param(
            [seat(at(2), "a"), unseat(at(10), "a"), seat(at(11), "b")], 1, id="sequential"
        ),
        pytest.param(
            [seat(at(2), "a"), unseat(at(10, 9), "a"), seat(at(10, 9), "b")],
            1,
            id="replaced-at-the-same-instant",
        ),
        pytest.param(
            [seat(at(2), "a"), unseat(at(5), "a"), seat(at(8), "a")],
            1,
            id="deprovision-then-re-add",
        ),
        pytest.param(
            [
                seat(at(2), "a"),
                unseat(at(5), "a"),
                seat(at(8), "a"),
                unseat(at(9), "a"),
                seat(at(20), "a"),
            ],
            1,
            id="re-added-twice",
        ),
        pytest.param(
            [
                seat(at(2), "a"),
                seat(at(2), "b"),
                unseat(at(3), "a"),
                seat(at(4), "c"),
                unseat(at(5), "b"),
                seat(at(6), "d"),
            ],
            2,
            id="peak-not-sum",
        ),
        pytest.param([seat(at(2, month=8), "a")], 1, id="held-since-an-earlier-month"),
        pytest.param(
            [seat(at(2, month=8), "a"), unseat(at(30, month=9), "a")], 0, id="gone-before"
        ),
        pytest.param(
            [seat(at(2, month=8), "a"), unseat(at(1, 10), "a")], 1, id="removed-on-the-1st"
        ),
        pytest.param([seat(at(1, month=11), "a")], 0, id="added-next-month"),
        pytest.param(
            [seat(at(2), "a", role="admin"), seat(at(2), "b", role="supervisor")],
            2,
            id="any-role",
        ),
        pytest.param([seat(at(2), "a"), seat(at(3), "a")], 1, id="provisioned-twice"),
    ],
)
def test_named_user_seats_are_the_peak_of_concurrently_provisioned_users(
    events: list[Envelope], seats: int
) -> None:
    assert totals(events).get("conversations.maa", 0) == seats


@pytest.mark.parametrize(
    ("start", "events", "initial", "seats"),
    [
        pytest.param(
            date(2026, 10, 1),
            [seat(at(1), "a"), seat(at(1, 17), "b"), seat(at(12), "c")],
            2,
            3,
            id="start-on-the-1st",
        ),
        pytest.param(
            date(2026, 10, 15),
            [seat(at(14), "a"), seat(at(15, 9), "b"), seat(at(16), "c")],
            2,
            3,
            id="start-on-the-15th",
        ),
        pytest.param(
            date(2026, 10, 31),
            [seat(at(31, 8), "a"), seat(at(31, 23, 59), "b")],
            2,
            2,
            id="start-on-the-last-day",
        ),
        pytest.param(
            date(2026, 10, 15),
            [seat(at(15, 8), "a"), seat(at(15, 9), "b"), unseat(at(15, 10), "a")],
            2,
            2,
            id="peak-during-the-start-day",
        ),
    ],
)
def test_first_month_proration_inputs(
    start: date, events: list[Envelope], initial: int, seats: int
) -> None:
    result = totals(events, named_user_service_start=start)
    assert result == {"conversations.maa": seats, "conversations.maa.initial": initial}


def test_no_proration_input_outside_the_first_month() -> None:
    events = [seat(at(2, month=9), "a")]
    assert totals(events, named_user_service_start=date(2026, 9, 2)) == {"conversations.maa": 1}
    september = totals(events, Period(2026, 9), named_user_service_start=date(2026, 9, 2))
    assert september == {"conversations.maa": 1, "conversations.maa.initial": 1}


def test_no_proration_input_without_a_service_start() -> None:
    assert totals([seat(at(1), "a")]) == {"conversations.maa": 1}


def test_second_concurrent_session_of_one_user_is_a_violation_not_a_charge() -> None:
    events = [seat(at(1), "a"), login(at(2, 9), "a", "s1"), login(at(2, 10), "a", "s2")]
    u = usage(events)
    assert u.by_metric() == {"conversations.maa": 1}
    assert u.note_counts == {"conversations.licence_violation": 1}
    (note,) = u.notes()
    assert note.at == int(at(2, 10).timestamp() * 1000)


@pytest.mark.parametrize(
    "events",
    [
        pytest.param(
            [login(at(2, 9), "a", "s1"), logout(at(2, 10), "a", "s1"), login(at(2, 10), "a", "s2")],
            id="sequential-sessions",
        ),
        pytest.param(
            [login(at(2, 9), "a", "s1"), login(at(2, 9), "b", "s2")],
            id="two-users-one-session-each",
        ),
        pytest.param(
            [login(at(2, 9), "a", "s1"), login(at(2, 9, 1), "a", "s1")],
            id="same-session-reported-twice",
        ),
    ],
)
def test_no_violation_without_two_simultaneous_sessions_of_one_user(
    events: list[Envelope],
) -> None:
    u = usage(events)
    assert u.note_counts == {}
    assert u.by_metric() == {}


# --- conversations.mac ----------------------------------------------------------------------


def test_mac_counts_distinct_conversations_with_a_message_in_the_month() -> None:
    events = [
        mo(at(2), "i1", channel="whatsapp", conversation_id="t1"),
        mt(at(2, 1), "o1", "submitted", channel="whatsapp", conversation_id="t1"),
        mt(at(3), "o2", "delivered", channel="live_chat", conversation_id="t2", end_user="u2"),
        mt(at(3), "o3", "submitted", channel="sms", conversation_id="t3", end_user="u3"),
        mt(at(4), "o4", "rejected", channel="sms", conversation_id="t4"),
        mo(at(4), "i4", channel="sms", conversation_id="t5", status="rejected"),
        mt(at(4), "o5", "submitted", channel="sms"),  # not a Conversations thread
        mo(at(30, month=9), "i6", channel="sms", conversation_id="t6"),  # last month
        mo(at(5), "i7", channel="email", conversation_id="t1", end_user="someone-else"),
    ]
    u = usage(events)
    assert u.figures()[("conversations.mac", ())] == 3
    assert u.distinct[("conversations.mac", ())] == {"t1", "t2", "t3"}


def test_mac_conversation_counted_once_however_many_messages() -> None:
    events = [mo(at(d), f"i{d}", channel="whatsapp", conversation_id="t1") for d in range(1, 31)]
    assert totals(events)["conversations.mac"] == 1


# --- moments.mep ---------------------------------------------------------------------------


def flow(
    when: datetime,
    message_id: str,
    person: str,
    status: str = "delivered",
    via: str = "flow",
    channel: str = "sms",
    **kw: Any,
) -> Envelope:
    return mt(
        when,
        message_id,
        status,
        channel=channel,
        via=via,
        person_id=person,
        end_user=f"+33{person}",
        **kw,
    )


def test_mep_counts_persons_reached_by_flow_on_any_channel() -> None:
    events = [
        flow(at(2), "m1", "p1", channel="sms"),
        flow(at(3), "m2", "p1", channel="whatsapp", kind="template"),
        flow(at(3), "m3", "p2", channel="email"),
        flow(at(3), "m4", "p3", status="undelivered"),
        flow(at(3), "m5", "p4", status="submitted"),
        flow(at(3), "m6", "p5", via="api"),
        flow(at(30, month=9), "m7", "p6"),
    ]
    assert usage(events).figures()[("moments.mep", ())] == 2


def test_mep_counts_persons_entering_a_flow_by_an_inbound_message() -> None:
    events = [
        mo(at(2), "i1", channel="whatsapp", via="flow", person_id="p1"),
        mo(at(2), "i2", channel="whatsapp", via="flow", person_id="p2", status="rejected"),
        mo(at(2), "i3", channel="whatsapp", person_id="p3"),
    ]
    assert totals(events)["moments.mep"] == 1


def test_mep_broadcast_only_recipients_not_counted_by_default() -> None:
    events = [
        flow(at(2), "b1", "p1", via="broadcast"),
        flow(at(2), "b2", "p2", via="broadcast"),
        flow(at(2), "f1", "p2"),
    ]
    assert totals(events)["moments.mep"] == 1
    assert totals(events, mep_counts_broadcast=True)["moments.mep"] == 2


def test_mep_broadcast_undelivered_not_counted_even_when_broadcast_counts() -> None:
    events = [flow(at(2), "b1", "p1", via="broadcast", status="undelivered")]
    assert totals(events, mep_counts_broadcast=True) == {}


def test_mep_persons_are_pseudonymized_like_end_users() -> None:
    from billing.domain.engine import usage_of_events
    from billing.domain.facts import HmacPseudonymizer
    from billing.domain.settings import ContractSettings

    pseudonymize = HmacPseudonymizer(b"k" * 16)
    u = usage_of_events(
        [flow(at(2), "m1", "person-1")], Period(2026, 10), ContractSettings(), pseudonymize
    )
    assert u.distinct[("moments.mep", ())] == {pseudonymize("person-1")}


# --- answers.mas ----------------------------------------------------------------------------

T = at(10, 12)


def to_bot(
    when: datetime, message_id: str, bot: str = "b1", end_user: str = USER, **kw: Any
) -> Envelope:
    return mo(when, message_id, channel="whatsapp", bot_id=bot, end_user=end_user, **kw)


def from_bot(when: datetime, message_id: str, bot: str = "b1", **kw: Any) -> Envelope:
    return mt(when, message_id, "delivered", channel="whatsapp", bot_id=bot, end_user=USER, **kw)


def sessions(events: list[Envelope], period: Period = OCTOBER, **settings: Any) -> int:
    return int(totals(events, period, **settings).get("answers.mas", 0))


def test_session_opened_by_an_inbound_message_to_a_bot() -> None:
    assert sessions([to_bot(T, "i1")]) == 1
    assert usage([to_bot(T, "i1")]).figures() == {("answers.mas", ()): 1}


def test_no_session_without_a_bot_or_for_a_rejected_message() -> None:
    events = [mo(T, "i1", channel="whatsapp"), to_bot(T, "i2", status="rejected")]
    assert sessions(events) == 0


def test_unlimited_messages_in_one_session() -> None:
    events = [to_bot(T, "i1")]
    for i in range(50):
        events.append(from_bot(T + i * MIN + ms(1), f"o{i}"))
        events.append(to_bot(T + i * MIN + ms(2), f"i{i + 2}"))
    assert sessions(events) == 1


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        pytest.param(24 * H - ms(1), 1, id="default-just-before-24h"),
        pytest.param(24 * H, 2, id="default-at-24h"),
        pytest.param(30 * H, 2, id="default-after-24h"),
    ],
)
def test_default_inactivity_timeout_is_24h(gap: timedelta, expected: int) -> None:
    assert sessions([to_bot(T, "i1"), to_bot(T + gap, "i2")]) == expected


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        pytest.param(30 * MIN - ms(1), 1, id="just-before-the-timeout"),
        pytest.param(30 * MIN, 2, id="at-the-timeout"),
        pytest.param(31 * MIN, 2, id="after-the-timeout"),
    ],
)
def test_bot_timeout_minutes_respected(gap: timedelta, expected: int) -> None:
    events = [
        to_bot(T, "i1", bot_timeout_minutes=30),
        to_bot(T + gap, "i2", bot_timeout_minutes=30),
    ]
    assert sessions(events) == expected


def test_contract_default_timeout_when_the_bot_does_not_say() -> None:
    events = [to_bot(T, "i1"), to_bot(T + 2 * H, "i2")]
    assert sessions(events) == 1
    assert sessions(events, answers_default_timeout_minutes=60) == 2


def test_activity_inside_the_session_keeps_it_open() -> None:
    events = [to_bot(T + i * 20 * MIN, f"i{i}", bot_timeout_minutes=30) for i in range(10)]
    assert sessions(events) == 1


@pytest.mark.parametrize("reason", ["completed", "transferred"])
def test_completion_or_transfer_closes_the_session(reason: str) -> None:
    events = [
        to_bot(T, "i1"),
        bot_end(T + MIN, reason=reason, end_user=USER),
        to_bot(T + 2 * MIN, "i2"),
    ]
    assert sessions(events) == 2


def test_outbound_after_closure_opens_nothing() -> None:
    events = [
        to_bot(T, "i1"),
        bot_end(T + MIN, end_user=USER),
        from_bot(T + 2 * MIN, "o1"),
        from_bot(T + 3 * MIN, "o2"),
    ]
    assert sessions(events) == 1


def test_outbound_bot_message_alone_opens_nothing() -> None:
    assert sessions([from_bot(T, "o1")]) == 0


def test_session_end_of_another_bot_does_not_close() -> None:
    events = [
        to_bot(T, "i1"),
        bot_end(T + MIN, bot_id="b2", end_user=USER),
        to_bot(T + 2 * MIN, "i2"),
    ]
    assert sessions(events) == 1


def test_sessions_are_per_end_user_and_bot() -> None:
    events = [
        to_bot(T, "i1", bot="b1"),
        to_bot(T, "i2", bot="b2"),
        to_bot(T, "i3", bot="b1", end_user="+33622222222"),
    ]
    assert sessions(events) == 3


def test_session_belongs_to_the_month_it_starts() -> None:
    events = [
        to_bot(at(31, 23), "i1"),
        to_bot(at(1, 1, month=11), "i2"),
        to_bot(at(1, 20, month=11), "i3"),
    ]
    assert sessions(events, Period(2026, 10)) == 1
    assert sessions(events, Period(2026, 11)) == 0


def test_session_from_last_month_is_not_charged_again() -> None:
    events = [to_bot(at(30, 23, month=9), "i1"), to_bot(at(1, 10), "i2")]
    assert sessions(events) == 0
    assert sessions(events, Period(2026, 9)) == 1
