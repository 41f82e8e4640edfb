"""Entity state carried across months (billing.domain.entities).

The reference is the usage over an entity's whole history; what the close carries from one
period end to the next must give exactly the same usage in every later period, and must
drop what has ended so that the carried state does not grow with history.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from billing.domain.counting import Sum
from billing.domain.engine import monthly_usage
from billing.domain.entities import NotCarried, carry_forward
from billing.domain.events import Envelope
from billing.domain.facts import Fact, identity, to_fact
from billing.domain.periods import MS_PER_DAY, MS_PER_HOUR, Period
from billing.domain.rules import RULES, Match, rule
from billing.domain.settings import ContractSettings
from tests.factories import (
    number,
    number_released,
    rec_deleted,
    rec_start,
    rec_stop,
    rec_stored,
    seat,
    sim,
    sim_status,
    unseat,
)

PERIODS = [Period(2026, m) for m in (8, 9, 10, 11, 12)]
BOUNDARIES = [p.start_ms for p in PERIODS[1:]]
FIRST, END = PERIODS[0].start_ms, PERIODS[-1].end_ms
EventBuilder = Callable[[datetime, str], Envelope]

# one builder per lifecycle event; several ids per entity kind so that histories interleave
BUILDERS: dict[str, tuple[list[str], EventBuilder]] = {
    "rec_start": (["r1", "r2", "r3"], lambda t, i: rec_start(t, i, f"c-{i}")),
    "rec_stop": (["r1", "r2", "r3"], lambda t, i: rec_stop(t, i, f"c-{i}")),
    "rec_stored": (["r1", "r2", "r3"], lambda t, i: rec_stored(t, i, 10**9, 301)),
    "rec_stored_conv": (
        ["r4"],
        lambda t, i: rec_stored(t, i, 3 * 10**9, 60, via_conversations=True),
    ),
    "rec_deleted": (["r1", "r2", "r3", "r4"], lambda t, i: rec_deleted(t, i)),
    "number": (["n1", "n2"], lambda t, i: number(t, i, "long", country="FR")),
    "short_code": (["n2"], lambda t, i: number(t, i, "short_code", country="DE")),
    "voice": (["n3"], lambda t, i: number(t, i, "voice", missed_call=True, country="FR")),
    "released": (["n1", "n2", "n3"], lambda t, i: number_released(t, i)),
    "seat": (["a1", "a2"], lambda t, i: seat(t, i)),
    "unseat": (["a1", "a2"], lambda t, i: unseat(t, i)),
    "sim": (["s1", "s2"], lambda t, i: sim(t, i)),
    "sim_active": (["s1", "s2"], lambda t, i: sim_status(t, i, "active")),
    "sim_suspended": (["s1", "s2"], lambda t, i: sim_status(t, i, "suspended")),
    "sim_terminated": (["s1", "s2"], lambda t, i: sim_status(t, i, "terminated")),
}


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    """Anywhere from August to December, often right at or next to a month boundary."""
    at = draw(
        st.one_of(
            st.integers(FIRST, END - 1),
            st.builds(
                lambda b, off: b + off,
                st.sampled_from(BOUNDARIES),
                st.sampled_from([-MS_PER_DAY, -1, 0, 1, MS_PER_HOUR, 3 * MS_PER_DAY]),
            ),
        )
    )
    return datetime.fromtimestamp(at / 1000, tz=UTC)


@st.composite
def histories(draw: st.DrawFn) -> list[Fact]:
    events = []
    for n in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(sorted(BUILDERS)))
        ids, build = BUILDERS[kind]
        event = build(draw(instants()), draw(st.sampled_from(ids)))
        events.append(event.model_copy(update={"id": f"e{n}"}))
    return [to_fact(e, identity) for e in events]


SETTINGS = st.builds(
    ContractSettings,
    recording_limit=st.integers(1, 3),
    named_user_service_start=st.none() | st.sampled_from([date(2026, 9, 1), date(2026, 11, 30)]),
)


def usage_json(facts: list[Fact], period: Period, settings: ContractSettings) -> dict[str, Any]:
    return monthly_usage(facts, period, settings).resolved().to_json()


@given(histories(), SETTINGS, st.sampled_from(BOUNDARIES))
def test_carried_state_gives_every_later_month_the_usage_of_the_whole_history(
    facts: list[Fact], settings: ContractSettings, boundary: int
) -> None:
    carried = carry_forward(facts, boundary)
    later = [f for f in facts if f.at >= boundary]
    note(f"{len(carried)} of {sum(f.at < boundary for f in facts)} earlier facts carried")
    for period in PERIODS:
        if period.start_ms >= boundary:
            expected = usage_json(facts, period, settings)
            assert usage_json(carried + later, period, settings) == expected, str(period)


@given(histories(), SETTINGS)
def test_carrying_month_after_month_equals_the_whole_history(
    facts: list[Fact], settings: ContractSettings
) -> None:
    """What the close does: each month carries the previous carry plus its own facts."""
    carried: list[Fact] = []
    for period in PERIODS:
        own = [f for f in facts if period.contains_ms(f.at)]
        assert usage_json(carried + own, period, settings) == usage_json(facts, period, settings)
        carried = carry_forward(carried + own, period.end_ms)
    assert carried == carry_forward(facts, PERIODS[-1].end_ms)


@given(histories(), st.sampled_from(BOUNDARIES), st.randoms(use_true_random=False))
def test_carrying_ignores_order_duplicates_and_later_facts(
    facts: list[Fact], boundary: int, rnd: Any
) -> None:
    shuffled = facts + facts[: len(facts) // 2]
    rnd.shuffle(shuffled)
    assert carry_forward(shuffled, boundary) == carry_forward(facts, boundary)
    assert all(f.at < boundary for f in carry_forward(facts, boundary))


def _facts(*events: Envelope) -> list[Fact]:
    return [to_fact(e.model_copy(update={"id": f"e{n}"}), identity) for n, e in enumerate(events)]


def at(day: int, month: int = 9) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


OCT = Period(2026, 10).start_ms


@pytest.mark.parametrize(
    ("events", "carried_types"),
    [
        pytest.param(
            [rec_start(at(1), "r1"), rec_stop(at(2), "r1"), rec_stored(at(3), "r1", 1, 60)],
            ["recording.stored"],
            id="stored-recording-keeps-only-its-storage",
        ),
        pytest.param(
            [rec_stored(at(1), "r1", 1, 60), rec_deleted(at(2), "r1")],
            [],
            id="deleted-recording-is-dropped",
        ),
        pytest.param([rec_start(at(30), "r1")], ["recording.started"], id="recording-in-progress"),
        pytest.param(
            [number(at(1), "n1"), number_released(at(5), "n1"), number(at(9), "n1")],
            ["number.provisioned"],
            id="number-keeps-its-current-holding-only",
        ),
        pytest.param([number(at(1), "n1"), number_released(at(5), "n1")], [], id="released-number"),
        pytest.param([seat(at(1), "a1")], ["named_user.provisioned"], id="seat-held"),
        pytest.param([seat(at(1), "a1"), unseat(at(2), "a1")], [], id="seat-removed"),
        pytest.param(
            [sim(at(1), "s1"), sim_status(at(2), "s1", "terminated")],
            ["sim.activated", "sim.status_changed"],
            id="terminated-sim-keeps-its-activation-so-it-is-never-charged-twice",
        ),
    ],
)
def test_what_is_carried(events: list[Envelope], carried_types: list[str]) -> None:
    assert [f.type for f in carry_forward(_facts(*events), OCT)] == carried_types


def test_facts_of_the_next_period_and_period_facts_are_never_carried() -> None:
    from tests.factories import mt

    facts = _facts(seat(at(1), "a1"), seat(at(2, 10), "a2"), mt(at(3), "+33600000001"))
    assert [f.key for f in carry_forward(facts, OCT)] == ["user#a1"]


def test_a_rule_over_lifecycle_facts_must_say_what_to_carry() -> None:
    summing = rule("x.bytes", "0", "x", Match("recording.stored"), Sum("x.bytes", "size_bytes"))
    with pytest.raises(NotCarried, match=r"x\.bytes"):
        carry_forward(_facts(rec_stored(at(1), "r1", 1, 60)), OCT, (*RULES, summing))
