"""Usage figures: merge, JSON round-trip, distinct union semantics, notes, the sink and the
de-duplication of facts."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest

from billing.domain.facts import Fact
from billing.domain.periods import MS_PER_HOUR, Period
from billing.domain.settings import DEFAULT_SETTINGS
from billing.domain.usage import MAX_NOTE_EXAMPLES, Note, Sink, Usage, unique_facts
from tests.factories import at, leg, mo, mt, number, seat, usage

OCT = Period(2026, 10)


def sample() -> Usage:
    return usage(
        [
            mt(at(2), "m1", parts=3, country="FR", network="20801"),
            mt(at(2), "m2", "delivered", channel="viber", sender_id="S1", country="FR"),
            mt(at(3), "m3", "delivered", channel="messenger", end_user="u1"),
            mt(at(3), "m4", "delivered", channel="whatsapp", kind="free_form", end_user="w1"),
            leg(at(4), 61, country="DE"),
            number(at(5), "+331", "short_code", country="FR"),
            seat(at(1), "agent-1"),
        ],
        viber_model="mmc",
    )


def u_with(period: str = "2026-10", **distinct: set[str]) -> Usage:
    u = Usage(period)
    for metric, members in distinct.items():
        for m in members:
            u.add_distinct(metric.replace("_", "."), (), m)
    return u


def test_json_round_trip_is_exact() -> None:
    u = sample()
    doc = u.to_json()
    back = Usage.from_json(json.loads(json.dumps(doc)))
    assert back.to_json() == doc
    assert back.figures() == u.figures()
    assert back.dumps() == u.dumps()
    assert back.by_metric() == u.by_metric()


def test_round_trip_keeps_dimension_keys_so_merges_add_up() -> None:
    u = sample()
    back = Usage.from_json(u.to_json())
    merged = u.merge(back)
    assert set(merged.figures()) == set(u.figures())
    for key, qty in u.quantities.items():
        assert merged.quantities[key] == 2 * qty
    for key, members in u.distinct.items():
        assert merged.distinct[key] == members  # the same members: union, not sum


def test_json_shape() -> None:
    u = Usage("2026-10")
    u.add("sms.mt", (("network", "20801"), ("country", "FR")), 3)
    u.add("sms.mt", (("country", "FR"), ("network", "20801")), Decimal("2"))
    u.add_distinct("whatsapp.mau", (), "b")
    u.add_distinct("whatsapp.mau", (), "a")
    u.add_note(Note("whatsapp.outside_window", 5, "free_form outside the window"))
    assert u.to_json() == {
        "period": "2026-10",
        "lines": [
            {
                "metric": "sms.mt",
                "dims": {"country": "FR", "network": "20801"},
                "quantity": "5",
                "events": 2,
            },
        ],
        "distinct": [{"metric": "whatsapp.mau", "dims": {}, "members": ["a", "b"]}],
        "notes": {
            "counts": {"whatsapp.outside_window": 1},
            "examples": [["whatsapp.outside_window", 5, "free_form outside the window"]],
        },
        "peaks": [],
    }


def test_dumps_is_canonical() -> None:
    a, b = Usage("2026-10"), Usage("2026-10")
    for metric in ("x", "y", "z"):
        a.add(metric, (), 1)
    for metric in ("z", "x", "y"):
        b.add(metric, (), 1)
    assert a.dumps() == b.dumps()


def test_distinct_members_merge_as_a_union() -> None:
    left = u_with(whatsapp_mau={"u1", "u2"}, conversations_mac={"t1"})
    right = u_with(whatsapp_mau={"u2", "u3"})
    merged = left.merge(right)
    assert merged.figures() == {
        ("conversations.mac", ()): 1,
        ("whatsapp.mau", ()): 3,
    }
    assert merged.evidence(("whatsapp.mau", ())) == 3
    # the inputs are untouched
    assert left.distinct[("whatsapp.mau", ())] == {"u1", "u2"}
    assert right.distinct[("whatsapp.mau", ())] == {"u2", "u3"}


def test_quantities_and_events_add() -> None:
    left, right = Usage("2026-10"), Usage("2026-10")
    left.add("voice.ivr", (("direction", "outbound"),), 120)
    right.add("voice.ivr", (("direction", "outbound"),), 60)
    right.add("voice.ivr", (("direction", "outbound"),), Decimal("0.5"))
    right.add("sms.mt", (), 1)
    merged = left.merge(right)
    assert merged.figures() == {
        ("sms.mt", ()): 1,
        ("voice.ivr", (("direction", "outbound"),)): Decimal("180.5"),
    }
    assert merged.evidence(("voice.ivr", (("direction", "outbound"),))) == 3
    assert left.figures() == {("voice.ivr", (("direction", "outbound"),)): 120}


def test_merge_is_commutative_associative_and_has_an_identity() -> None:
    a = sample()
    b = u_with(whatsapp_mau={"w1", "w9"})
    b.add("sms.mt", (("country", "FR"), ("network", "20801")), 2)
    b.add_note(Note("k", 1, "d"))
    c = u_with(messenger_active_users={"u1", "u2"})
    c.add_note(Note("k", 0, "d"))
    assert a.merge(b).dumps() == b.merge(a).dumps()
    assert a.merge(b).merge(c).dumps() == a.merge(b.merge(c)).dumps()
    assert a.merge(Usage("2026-10")).dumps() == a.dumps()
    assert Usage("2026-10").merge(a).dumps() == a.dumps()


def test_merge_refuses_another_period() -> None:
    with pytest.raises(ValueError, match="2026-11"):
        Usage("2026-10").merge(Usage("2026-11"))


def test_dimension_order_does_not_split_a_line() -> None:
    u = Usage("2026-10")
    u.add("viber", (("sender_id", "S1"), ("country", "FR")), 1)
    u.add("viber", (("country", "FR"), ("sender_id", "S1")), 1)
    u.add_distinct("m", (("b", "1"), ("a", "2")), "x")
    u.add_distinct("m", (("a", "2"), ("b", "1")), "y")
    assert u.figures() == {
        ("m", (("a", "2"), ("b", "1"))): 2,
        ("viber", (("country", "FR"), ("sender_id", "S1"))): 2,
    }


def test_by_metric_sums_dimensions_and_counts_distinct() -> None:
    u = Usage("2026-10")
    u.add("sms.mt", (("country", "FR"),), 3)
    u.add("sms.mt", (("country", "DE"),), 2)
    u.add_distinct("whatsapp.mau", (), "a")
    assert u.by_metric() == {"sms.mt": 5, "whatsapp.mau": 1}


# --- notes ------------------------------------------------------------------------------


def noted(notes: list[Note]) -> Usage:
    u = Usage("2026-10")
    for n in notes:
        u.add_note(n)
    return u.compact()


NOTES = [
    Note(
        "whatsapp.outside_window" if i % 2 else "conversations.licence_violation",
        1_000 + i,
        f"n{i}",
    )
    for i in range(45)
]


def test_notes_are_counted_in_full_and_capped_as_examples() -> None:
    u = noted(NOTES)
    assert u.note_counts == {"conversations.licence_violation": 23, "whatsapp.outside_window": 22}
    assert len(u.notes()) == MAX_NOTE_EXAMPLES
    assert len(u.to_json()["notes"]["examples"]) == MAX_NOTE_EXAMPLES


def test_note_examples_do_not_depend_on_arrival_order() -> None:
    shuffled = NOTES[:]
    random.Random(7).shuffle(shuffled)
    assert noted(shuffled).dumps() == noted(NOTES).dumps()
    assert noted(NOTES).notes() == sorted(NOTES)[:MAX_NOTE_EXAMPLES]


def test_merged_notes_equal_the_notes_of_the_whole() -> None:
    whole = noted(NOTES)
    left = noted(NOTES[::2])
    right = noted(NOTES[1::2])
    merged = left.merge(right)
    assert merged.note_counts == whole.note_counts
    assert merged.notes() == whole.notes()
    assert merged.dumps() == whole.dumps()


def test_notes_survive_the_json_round_trip() -> None:
    u = noted(NOTES)
    back = Usage.from_json(json.loads(u.dumps()))
    assert back.notes() == u.notes()
    assert back.note_counts == u.note_counts


# --- the sink ---------------------------------------------------------------------------


def test_sink_keeps_only_what_falls_inside_the_period() -> None:
    u = Usage("2026-10")
    sink = Sink(u, OCT, DEFAULT_SETTINGS)
    sink.charge("a", (), 1, OCT.start_ms - 1)
    sink.charge("a", (), 1, OCT.start_ms)
    sink.charge("a", (), 1, OCT.end_ms - 1)
    sink.charge("a", (), 1, OCT.end_ms)
    sink.charge("b", (), 0, OCT.start_ms)  # nothing to bill: no line
    sink.count_distinct("c", (), "x", OCT.end_ms)
    sink.count_distinct("c", (), "y", OCT.start_ms)
    sink.note("n", OCT.start_ms - 1, "before")
    sink.note("n", OCT.start_ms, "inside")
    assert u.figures() == {("a", ()): 2, ("c", ()): 1}
    assert u.note_counts == {"n": 1}


# --- de-duplication and the look-back ---------------------------------------------------


def fact(fid: str, at_ms: int, entity: str | None = None, **attrs: object) -> Fact:
    return Fact(fid, "message.outbound", at_ms, "k", attrs, entity)


def test_unique_facts_keeps_one_per_id_whatever_the_order() -> None:
    a = fact("x", OCT.start_ms + 5, status="submitted")
    b = fact("x", OCT.start_ms + 5, status="delivered")
    assert unique_facts([a, b], OCT, 48) == unique_facts([b, a], OCT, 48)
    assert len(unique_facts([a, b, a], OCT, 48)) == 1


def test_unique_facts_keeps_the_lookback_and_drops_the_rest() -> None:
    since = OCT.start_ms - 48 * MS_PER_HOUR
    facts = [
        fact("too-old", since - 1),
        fact("lookback", since),
        fact("inside", OCT.start_ms),
        fact("last-ms", OCT.end_ms - 1),
        fact("next-month", OCT.end_ms),
        fact("old-entity", since - 10**10, entity="num#1"),
    ]
    kept = [f.id for f in unique_facts(facts, OCT, 48)]
    assert kept == ["old-entity", "lookback", "inside", "last-ms"]


def test_processing_order_is_time_then_inbound_first() -> None:
    t = OCT.start_ms + 100
    outbound = Fact("a", "message.outbound", t, "k", {})
    inbound = Fact("b", "message.inbound", t, "k", {})
    ended = Fact("0", "bot.session_ended", t, "k", {})
    earlier = Fact("z", "bot.session_ended", t - 1, "k", {})
    ordered = unique_facts([ended, outbound, earlier, inbound], OCT, 48)
    assert [f.id for f in ordered] == ["z", "b", "a", "0"]


def test_usage_of_one_redelivered_event_is_unchanged() -> None:
    event = mo(at(2), "i1", parts=2)
    assert usage([event, event, event]).dumps() == usage([event]).dumps()
