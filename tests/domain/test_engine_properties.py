"""Properties of the usage engine (rulebook section 6) on random streams of events across
every event type: order independence, exactly-once under redelivery, and exact sharding
(the month-end close computes per storage shard and merges)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial, reduce
from typing import Any

import pytest
from hypothesis import Phase, find, given, note, settings
from hypothesis import strategies as st

from billing.domain.engine import monthly_usage
from billing.domain.events import PAYLOADS, TYPE_PREFIX, Envelope, parse_event
from billing.domain.facts import Fact, HmacPseudonymizer, shard_of, to_fact
from billing.domain.periods import MS_PER_HOUR, Period
from billing.domain.settings import ContractSettings, Increment
from billing.domain.usage import Usage
from tests.factories import (
    bot_end,
    leg,
    login,
    logout,
    lookup,
    mo,
    mt,
    number,
    number_released,
    rec_deleted,
    rec_start,
    rec_stop,
    rec_stored,
    seat,
    sim,
    sim_data,
    sim_status,
    unseat,
    ussd,
)

PERIOD = Period(2026, 10)
PSEUDONYMIZE = HmacPseudonymizer(b"property-test-key-0123456789")
LOOKBACK_START = PERIOD.start_ms - 48 * MS_PER_HOUR
ENTITY_START = Period(2026, 8).start_ms
USERS = ["+33600000001", "+33600000002", "+33600000003", "+4915100000004"]
OFFSETS_MS = [0, 1, 59_999, 30 * 60_000, 24 * MS_PER_HOUR - 1]
CHANNELS = [
    "sms",
    "mms",
    "rcs",
    "email",
    "viber",
    "viber_bot",
    "whatsapp",
    "messenger",
    "telegram",
    "zalo",
    "google_bm",
    "apple_bc",
    "kakao_notification",
    "kakao_friends",
    "kakao_consultation",
    "push",
    "live_chat",
    "social",
]
OUT_STATUSES = ["submitted", "rejected", "delivered", "undelivered", "suppressed", "bounced"]

maybe = st.none().__or__  # maybe(x): x or None


def times(lo: int = LOOKBACK_START) -> st.SearchStrategy[datetime]:
    """Hours clustered around the month's edges, plus small offsets that create ties and
    window boundaries (equal instants, 1 ms, just under 24 h)."""
    hours = (PERIOD.end_ms - lo) // MS_PER_HOUR
    near_start = (PERIOD.start_ms - lo) // MS_PER_HOUR
    hour = st.one_of(
        st.integers(0, hours - 1),
        st.integers(max(0, near_start - 30), near_start + 50),
        st.integers(hours - 50, hours - 1),
    )
    return st.builds(
        lambda h, off: datetime.fromtimestamp(
            min(lo + h * MS_PER_HOUR + off, PERIOD.end_ms - 1) / 1000, tz=UTC
        ),
        hour,
        st.sampled_from(OFFSETS_MS),
    )


EventBuilder = Callable[..., Envelope]  # called with event_id=...


def _outbound() -> st.SearchStrategy[EventBuilder]:
    @st.composite
    def build(draw: st.DrawFn) -> EventBuilder:
        when = draw(times())
        kw: dict[str, Any] = {
            "channel": draw(st.sampled_from(CHANNELS)),
            "end_user": draw(st.sampled_from(USERS)),
            "parts": draw(st.integers(1, 3)),
            "kind": draw(st.sampled_from(["standard", "template", "free_form", "session"])),
            "via": draw(st.sampled_from(["api", "flow", "broadcast", "bot"])),
        }
        optional = {
            "country": st.sampled_from(["FR", "DE"]),
            "category": st.sampled_from(["marketing", "utility", "authentication"]),
            "person_id": st.sampled_from(["p1", "p2", "p3"]),
            "conversation_id": st.sampled_from(["t1", "t2", "t3"]),
            "sender_id": st.sampled_from(["S1", "S2"]),
            "bot_id": st.sampled_from(["b1", "b2"]),
            "signals": st.sampled_from(["passed", "passed", "blocked"]),
        }
        for name, values in optional.items():
            if (value := draw(maybe(values))) is not None:
                kw[name] = value
        message = draw(st.sampled_from(["m1", "m2", "m3", "m4", "m5"]))
        status = draw(st.sampled_from(OUT_STATUSES))
        return lambda event_id: mt(when, message, status, event_id=event_id, **kw)

    return build()


def _inbound() -> st.SearchStrategy[EventBuilder]:
    @st.composite
    def build(draw: st.DrawFn) -> EventBuilder:
        when = draw(times())
        kw: dict[str, Any] = {
            "channel": draw(st.sampled_from(CHANNELS)),
            "end_user": draw(st.sampled_from(USERS)),
            "status": draw(st.sampled_from(["accepted", "accepted", "rejected"])),
            "parts": draw(st.integers(1, 3)),
            "via": draw(st.sampled_from(["api", "flow"])),
        }
        optional = {
            "person_id": st.sampled_from(["p1", "p2", "p3"]),
            "conversation_id": st.sampled_from(["t1", "t2", "t3"]),
            "bot_id": st.sampled_from(["b1", "b2"]),
            "bot_timeout_minutes": st.sampled_from([1, 30, 1440]),
            "signals": st.sampled_from(["passed", "blocked"]),
            "country": st.sampled_from(["FR", "DE"]),
        }
        for name, values in optional.items():
            if (value := draw(maybe(values))) is not None:
                kw[name] = value
        message = draw(st.sampled_from(["i1", "i2", "i3", "i4"]))
        return lambda event_id: mo(when, message, event_id=event_id, **kw)

    return build()


def _bot_end() -> st.SearchStrategy[EventBuilder]:
    return st.builds(
        lambda when, bot, user, reason: (
            lambda event_id: bot_end(when, bot, user, reason, event_id=event_id)
        ),
        times(),
        st.sampled_from(["b1", "b2"]),
        st.sampled_from(USERS),
        st.sampled_from(["completed", "transferred"]),
    )


def _ussd() -> st.SearchStrategy[EventBuilder]:
    return st.builds(
        lambda when, sid, initiator, user: (
            lambda event_id: ussd(when, sid, initiator, user, event_id=event_id)
        ),
        times(),
        st.sampled_from(["u1", "u2", "u3"]),
        st.sampled_from(["account", "third_party", "end_user"]),
        st.sampled_from(USERS),
    )


def _lookup() -> st.SearchStrategy[EventBuilder]:
    return st.builds(
        lambda when, rid, kind, status, user, result: (
            lambda event_id: lookup(
                when,
                rid,
                kind,
                status,
                user,
                event_id=event_id,
                **({} if result is None else {"result": result}),
            )
        ),
        times(),
        st.sampled_from(["r1", "r2", "r3"]),
        st.sampled_from(["number_lookup", "email_validation"]),
        st.sampled_from(["submitted", "rejected"]),
        st.sampled_from(USERS),
        maybe(st.sampled_from(["YES", "NO", "UNKNOWN"])),
    )


def _leg() -> st.SearchStrategy[EventBuilder]:
    @st.composite
    def build(draw: st.DrawFn) -> EventBuilder:
        when = draw(times())
        call = draw(st.sampled_from(["c1", "c2", "c3", "c4"]))
        disposition = draw(st.sampled_from(["answered", "answered", "no_answer", "busy"]))
        seconds = draw(st.sampled_from([0.5, 1, 30, 59, 60, 61, 125.25]))
        kw: dict[str, Any] = {
            "service": draw(
                st.sampled_from(
                    [
                        "webrtc",
                        "message",
                        "ivr",
                        "click_to_call",
                        "number_masking",
                        "sip_trunk",
                        "forward",
                        "missed_call",
                    ]
                )
            ),
            "direction": draw(st.sampled_from(["inbound", "outbound"])),
            "amd": draw(st.booleans()),
            "byoc": draw(st.booleans()),
            # one end user per call: a leg is a leg of one call with one party
            "end_user": USERS[int(call[1:]) % len(USERS)],
        }
        if (country := draw(maybe(st.sampled_from(["FR", "DE"])))) is not None:
            kw["country"] = country
        legid = draw(st.sampled_from(["l1", "l2"]))
        return lambda event_id: leg(
            when,
            seconds if disposition == "answered" else 0,
            call_id=call,
            leg_id=legid,
            disposition=disposition,
            event_id=event_id,
            **kw,
        )

    return build()


RECORDINGS = ["r1", "r2", "r3", "r4"]


def _recording() -> st.SearchStrategy[EventBuilder]:
    @st.composite
    def build(draw: st.DrawFn) -> EventBuilder:
        when = draw(times(ENTITY_START))
        rid = draw(st.sampled_from(RECORDINGS))
        via = rid == "r4"  # a Conversations recording, consistently flagged
        kind = draw(st.sampled_from(["started", "stopped", "stored", "deleted"]))
        if kind == "started":
            return lambda event_id: rec_start(
                when, rid, f"c-{rid}", via_conversations=via, event_id=event_id
            )
        if kind == "stopped":
            return lambda event_id: rec_stop(when, rid, f"c-{rid}", event_id=event_id)
        if kind == "stored":
            size = draw(st.sampled_from([0, 10**9, 5 * 10**9 + 1]))
            secs = draw(st.sampled_from([1, 300, 301]))
            return lambda event_id: rec_stored(
                when, rid, size, secs, via_conversations=via, event_id=event_id
            )
        return lambda event_id: rec_deleted(when, rid, event_id=event_id)

    return build()


NUMBERS = {
    "n1": ("long", False),
    "n2": ("short_code", False),
    "n3": ("voice", True),
    "n4": ("voice", False),
    "n5": ("toll_free", False),
}


def _number() -> st.SearchStrategy[EventBuilder]:
    @st.composite
    def build(draw: st.DrawFn) -> EventBuilder:
        when = draw(times(ENTITY_START))
        num = draw(st.sampled_from(sorted(NUMBERS)))
        if draw(st.booleans()):
            return lambda event_id: number_released(when, num, event_id=event_id)
        number_type, missed = NUMBERS[num]
        return lambda event_id: number(
            when, num, number_type, missed_call=missed, country="FR", event_id=event_id
        )

    return build()


def _named_user() -> st.SearchStrategy[EventBuilder]:
    @st.composite
    def build(draw: st.DrawFn) -> EventBuilder:
        user = draw(st.sampled_from(["a1", "a2", "a3"]))
        kind = draw(st.sampled_from(["seat", "unseat", "login", "logout"]))
        if kind in ("seat", "unseat"):
            when = draw(times(ENTITY_START))
            builder = seat if kind == "seat" else unseat
            return lambda event_id: builder(when, user, event_id=event_id)
        when = draw(times())
        session = draw(st.sampled_from(["s1", "s2"]))
        builder2 = login if kind == "login" else logout
        return lambda event_id: builder2(when, user, session, event_id=event_id)

    return build()


def _sim() -> st.SearchStrategy[EventBuilder]:
    @st.composite
    def build(draw: st.DrawFn) -> EventBuilder:
        sid = draw(st.sampled_from(["sim1", "sim2"]))
        kind = draw(st.sampled_from(["activated", "status", "data"]))
        if kind == "activated":
            when = draw(times(ENTITY_START))
            return lambda event_id: sim(when, sid, event_id=event_id)
        if kind == "status":
            when = draw(times(ENTITY_START))
            status = draw(st.sampled_from(["active", "suspended", "terminated"]))
            return lambda event_id: sim_status(when, sid, status, event_id=event_id)
        when = draw(times())
        nbytes = draw(st.sampled_from([0, 1, 1_500_000, 10**9]))
        country = draw(st.sampled_from(["FR", "DE"]))
        return lambda event_id: sim_data(when, sid, nbytes, country, event_id=event_id)

    return build()


GAPS_MS = [0, 1, 30 * 60_000, MS_PER_HOUR, 23 * MS_PER_HOUR, 24 * MS_PER_HOUR - 1, 24 * MS_PER_HOUR]


def _dialogue() -> st.SearchStrategy[list[EventBuilder]]:
    """A burst of messages between one end user and the account on a channel with windows
    or sessions, with gaps at the window boundaries (this is where the rules are subtle)."""

    @st.composite
    def build(draw: st.DrawFn) -> list[EventBuilder]:
        channel = draw(st.sampled_from(["whatsapp", "viber", "viber_bot", "kakao_consultation"]))
        user = draw(st.sampled_from(USERS[:2]))
        bot = draw(maybe(st.just("b1")))
        at_ms = int(draw(times()).timestamp() * 1000)
        out: list[EventBuilder] = []
        for _ in range(draw(st.integers(2, 8))):
            at_ms += draw(st.sampled_from(GAPS_MS))
            when = datetime.fromtimestamp(min(at_ms, PERIOD.end_ms - 1) / 1000, tz=UTC)
            step = draw(st.sampled_from(["in", "in", "out", "out", "out", "end"]))
            common: dict[str, Any] = {"channel": channel, "end_user": user}
            if bot is not None:
                common["bot_id"] = bot
            message = draw(st.sampled_from(["d1", "d2", "d3", "d4", "d5", "d6"]))
            if step == "in":
                out.append(partial(mo, when, message, **common))
            elif step == "end":
                out.append(partial(bot_end, when, "b1", user))
            else:
                kind = draw(st.sampled_from(["template", "free_form", "session", "standard"]))
                if category := draw(maybe(st.sampled_from(["marketing", "utility"]))):
                    common["category"] = category
                status = draw(st.sampled_from(["delivered", "delivered", "submitted"]))
                out.append(partial(mt, when, message, status, kind=kind, **common))
        return out

    return build()


SINGLE = st.one_of(
    _outbound(),
    _outbound(),
    _inbound(),
    _bot_end(),
    _ussd(),
    _lookup(),
    _leg(),
    _recording(),
    _number(),
    _named_user(),
    _sim(),
)
BURSTS = st.one_of(SINGLE.map(lambda b: [b]), SINGLE.map(lambda b: [b]), _dialogue())


@st.composite
def streams(draw: st.DrawFn, max_size: int = 30) -> list[Envelope]:
    """A stream of distinct events (unique CloudEvent ids from two sources)."""
    bursts = draw(st.lists(BURSTS, min_size=1, max_size=max_size))
    builders = [b for burst in bursts for b in burst]
    sources = draw(
        st.lists(
            st.sampled_from(["sms-gw", "voice-gw"]), min_size=len(builders), max_size=len(builders)
        )
    )
    out = []
    for i, (build, source) in enumerate(zip(builders, sources, strict=True)):
        e = build(event_id=f"ev-{i}")
        out.append(e.model_copy(update={"source": source}))
    return out


SETTINGS = st.builds(
    ContractSettings,
    whatsapp_model=st.sampled_from(["template", "conversation"]),
    viber_model=st.sampled_from(["message", "session", "mmc"]),
    viber_session_message_limit=st.integers(1, 3),
    mep_counts_broadcast=st.booleans(),
    sms_count_parts=st.booleans(),
    recording_limit=st.integers(1, 3),
    voice_increment=st.sampled_from(
        [Increment(), Increment(first=1, next=1), Increment(first=30, next=6)]
    ),
    named_user_service_start=maybe(st.sampled_from([date(2026, 10, 1), date(2026, 10, 31)])),
)


def facts_of(events: list[Envelope]) -> list[Fact]:
    return [to_fact(e, PSEUDONYMIZE) for e in events]


def usage_json(facts: list[Fact], settings: ContractSettings) -> dict[str, Any]:
    return monthly_usage(facts, PERIOD, settings).to_json()


@pytest.mark.parametrize("type_name", sorted(PAYLOADS))
def test_the_generator_produces_every_event_type(type_name: str) -> None:
    full = TYPE_PREFIX + type_name
    found = find(
        SINGLE.map(lambda build: build(event_id="x")),
        lambda e: e.type == full,
        settings=settings(max_examples=5_000, database=None, phases=[Phase.generate]),
    )
    assert found.type == full


@given(streams(), SETTINGS, st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_usage(
    events: list[Envelope], settings: ContractSettings, rnd: Any
) -> None:
    facts = facts_of(events)
    expected = usage_json(facts, settings)
    shuffled = facts[:]
    rnd.shuffle(shuffled)
    assert usage_json(shuffled, settings) == expected
    assert usage_json(facts[::-1], settings) == expected


@given(
    streams(),
    SETTINGS,
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 3)), max_size=15),
    st.randoms(use_true_random=False),
)
def test_redelivered_events_change_nothing(
    events: list[Envelope],
    settings: ContractSettings,
    repeats: list[tuple[int, int]],
    rnd: Any,
) -> None:
    expected = usage_json(facts_of(events), settings)
    redelivered = events[:]
    for index, times_ in repeats:
        for _ in range(times_):
            # a redelivery: the same CloudEvent (id and source) sent and parsed again
            again = parse_event(events[index % len(events)].model_dump_json())
            redelivered.insert(rnd.randrange(len(redelivered) + 1), again)
    note(f"{len(redelivered) - len(events)} redeliveries")
    assert usage_json(facts_of(redelivered), settings) == expected


@given(streams(), SETTINGS, st.integers(1, 5))
def test_sharded_usage_merges_to_the_usage_of_the_whole(
    events: list[Envelope], settings: ContractSettings, shards: int
) -> None:
    facts = facts_of(events)
    parts: list[list[Fact]] = [[] for _ in range(shards)]
    for f in facts:  # lifecycle facts are sharded by their entity, like the close does
        parts[shard_of(f.key, shards)].append(f)
    partials = [monthly_usage(p, PERIOD, settings) for p in parts]
    # partials are stored as JSON between the shard computations and the merge: mix both
    partials = [
        Usage.from_json(json.loads(u.dumps())) if i % 2 else u for i, u in enumerate(partials)
    ]
    merged = reduce(Usage.merge, partials, Usage(str(PERIOD)))
    whole = monthly_usage(facts, PERIOD, settings)
    assert merged.to_json() == whole.to_json()
    assert merged.figures() == whole.figures()
    assert merged.dumps() == whole.dumps()


@given(streams(), SETTINGS)
def test_events_of_other_months_do_not_leak_into_the_period(
    events: list[Envelope], settings: ContractSettings
) -> None:
    """Adding the same traffic 100 days later (after the period) changes nothing in this period."""
    facts = facts_of(events)
    later = [
        to_fact(
            e.model_copy(update={"id": f"later-{i}", "time": e.time + timedelta(days=100)}),
            PSEUDONYMIZE,
        )
        for i, e in enumerate(events)
    ]
    assert usage_json(facts + later, settings) == usage_json(facts, settings)
