"""Scenarios of the reference mix: one function per line of the share table.

A scenario drafts the events of one occurrence (a message and its delivery report, a call
and its legs, a bot session, a burst of recordings...) starting at ``t`` for one account.
Event times never precede ``t``; events after the end of the period are dropped later.
Sub-shares inside a category are kept by a per-account ``Mix``, in events.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from billing.gen import world
from billing.gen.state import Account, Drafts

Scenario = Callable[[Drafts, Account, int], None]

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

OUT = "message.outbound"
IN = "message.inbound"

#: outbound channels reported as a submit, then (for a share) a delivery report.
_DR_RATE = {
    "sms": 0.90,
    "mms": 0.90,
    "rcs": 0.90,
    "viber": 1.0,
    "zalo": 0.95,
    "kakao_notification": 0.95,
    "kakao_friends": 0.95,
    "push": 0.90,
    "messenger": 0.95,
    "telegram": 0.95,
    "google_bm": 0.95,
    "apple_bc": 0.95,
}
_DELIVERED_RATE = {"sms": 0.95, "viber": 0.85}
#: chat channels that report one final status per outbound message.
_SINGLE_STATUS_DELIVERED = 0.97

RECORDING_LIMIT = 10


def _weighted(rng: random.Random, options: dict[str, float]) -> str:
    return rng.choices(list(options), list(options.values()))[0]


def _located(account: Account, person: int) -> dict[str, Any]:
    return {"country": world.COUNTRIES[world.person_country(account.index, person)][0]}


def _mobile(account: Account, person: int) -> dict[str, Any]:
    return {**_located(account, person), "network": world.person_network(account.index, person)}


def outbound(
    d: Drafts,
    a: Account,
    source: str,
    t: int,
    channel: str,
    end_user: str,
    **fields: Any,
) -> int:
    """Draft one outbound message and its status events; returns the last event time."""
    rng = d.rng
    data: dict[str, Any] = {
        "message_id": a.next_id("msg"),
        "channel": channel,
        "status": "submitted",
        "end_user": end_user,
        **{k: v for k, v in fields.items() if v is not None},
    }
    if channel in _DR_RATE:
        d.emit(source, OUT, t, data)
        if rng.random() < _DR_RATE[channel]:
            t += rng.randint(300, 45 * SECOND)
            ok = rng.random() < _DELIVERED_RATE.get(channel, 0.9)
            d.emit(source, OUT, t, {**data, "status": "delivered" if ok else "undelivered"})
    elif channel == "email":
        d.emit(source, OUT, t, data)
    else:
        ok = rng.random() < _SINGLE_STATUS_DELIVERED
        data["status"] = "delivered" if ok else "undelivered"
        d.emit(source, OUT, t, data)
    return t


def inbound(
    d: Drafts,
    a: Account,
    source: str,
    t: int,
    channel: str,
    end_user: str,
    **fields: Any,
) -> None:
    data: dict[str, Any] = {
        "message_id": a.next_id("msg"),
        "channel": channel,
        "end_user": end_user,
        **{k: v for k, v in fields.items() if v is not None},
    }
    d.emit(source, IN, t, data)


# --- SMS (40%) ----------------------------------------------------------------------------


def sms(d: Drafts, a: Account, t: int) -> None:
    rng = d.rng
    mix = a.mix("sms", {"mt": 0.95, "mo": 0.05})
    kind = mix.pick(rng)
    p = a.person(rng)
    user = world.msisdn(a.index, p)
    where = _mobile(a, p)
    before = len(d.events)
    if kind == "mo":
        parts = 2 if rng.random() < 0.05 else 1
        status = "rejected" if rng.random() < 0.01 else None
        inbound(
            d,
            a,
            "platform/sms",
            t,
            "sms",
            user,
            parts=parts if parts > 1 else None,
            status=status,
            **where,
        )
    else:
        mt_parts = rng.randint(2, 4) if rng.random() < 0.20 else None
        signals = None
        if a.signals:
            signals = "blocked" if rng.random() < 0.02 else "passed"
        if signals == "blocked" or rng.random() < 0.10:
            data: dict[str, Any] = {
                "message_id": a.next_id("msg"),
                "channel": "sms",
                "status": "rejected",
                "end_user": user,
                **({"parts": mt_parts} if mt_parts else {}),
                **where,
                **({"signals": signals} if signals else {}),
            }
            d.emit("platform/sms", OUT, t, data)
        else:
            outbound(d, a, "platform/sms", t, "sms", user, parts=mt_parts, signals=signals, **where)
    mix.record(kind, len(d.events) - before)


# --- WhatsApp (18%) -------------------------------------------------------------------------

_CATEGORIES = {"marketing": 0.5, "utility": 0.35, "authentication": 0.15}


def whatsapp(d: Drafts, a: Account, t: int) -> None:
    # per thread: 1 inbound, 4/3 free-form replies, 1/2 template inside the window;
    # plus templates outside any window: inbound 30%, free-form 40%, templates 30% (half in)
    rng = d.rng
    mix = a.mix("whatsapp", {"thread": 0.85, "template": 0.15})
    kind = mix.pick(rng)
    p = a.person(rng)
    user = world.msisdn(a.index, p)
    where = _located(a, p)
    before = len(d.events)
    src = "platform/whatsapp"
    if kind == "thread":
        inbound(d, a, src, t, "whatsapp", user, **where)
        at = t
        for _ in range(1 if rng.random() < 2 / 3 else 2):
            at += rng.randint(5 * SECOND, 30 * MINUTE)
            outbound(d, a, src, at, "whatsapp", user, kind="free_form", **where)
        if rng.random() < 0.5:
            at = t + rng.randint(1 * HOUR, 23 * HOUR)
            outbound(
                d,
                a,
                src,
                at,
                "whatsapp",
                user,
                kind="template",
                category=_weighted(rng, _CATEGORIES),
                **where,
            )
    else:
        outbound(
            d,
            a,
            src,
            t,
            "whatsapp",
            user,
            kind="template",
            category=_weighted(rng, _CATEGORIES),
            **where,
        )
    mix.record(kind, len(d.events) - before)


# --- Email (10%) ----------------------------------------------------------------------------


def email(d: Drafts, a: Account, t: int) -> None:
    rng = d.rng
    src = "platform/email"
    r = rng.random()
    if r < 0.01:  # an invalid address: charged once, bounced, then suppressed
        address = f"{a.next_id('nobody')}@invalid.example"
        data = {
            "message_id": a.next_id("msg"),
            "channel": "email",
            "status": "submitted",
            "end_user": address,
        }
        d.emit(src, OUT, t, data)
        bounced = t + rng.randint(2 * SECOND, 10 * MINUTE)
        d.emit(src, OUT, bounced, {**data, "status": "bounced"})
        a.suppressed.append((address, bounced))
        return
    if r < 0.04 and a.suppressed:  # a later send to a suppressed address
        address, since = a.suppressed[rng.randrange(len(a.suppressed))]
        if since < t:
            d.emit(
                src,
                OUT,
                t,
                {
                    "message_id": a.next_id("msg"),
                    "channel": "email",
                    "status": "suppressed",
                    "end_user": address,
                },
            )
            return
    user = world.email(a.index, a.person(rng))
    status = "rejected" if rng.random() < 0.005 else "submitted"
    d.emit(
        src,
        OUT,
        t,
        {"message_id": a.next_id("msg"), "channel": "email", "status": status, "end_user": user},
    )


# --- Voice (8%) -----------------------------------------------------------------------------

#: voice services by share of call legs (two-leg services count both legs).
_VOICE = {
    "ivr": 0.24,
    "message": 0.14,
    "click_to_call": 0.16,
    "number_masking": 0.16,
    "webrtc": 0.10,
    "sip_trunk": 0.08,
    "forward": 0.08,
    "missed_call": 0.04,
}
_NOT_ANSWERED = {"no_answer": 0.5, "busy": 0.2, "failed": 0.15, "rejected": 0.15}
#: answered share of calls of the services that can be answered (70% of all legs).
_ANSWERED = 0.70 / (1 - 0.04)
_AMD_SERVICES = frozenset({"message", "ivr", "click_to_call"})


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


def voice(d: Drafts, a: Account, t: int) -> None:
    rng = d.rng
    mix = a.mix("voice", _VOICE)
    service = mix.pick(rng)
    p = a.person(rng)
    before = len(d.events)
    call_id = a.next_id("call")
    if service == "missed_call":
        answered, disposition = False, _weighted(rng, {"rejected": 0.7, "no_answer": 0.3})
    elif rng.random() < _ANSWERED:
        answered, disposition = True, "answered"
    else:
        answered, disposition = False, _weighted(rng, _NOT_ANSWERED)
    duration = 0
    if answered:  # log-normal around 90 s
        duration = int(min(max(rng.lognormvariate(math.log(90), 0.8), 1.0), 7200.0) * 1000)
    byoc = a.byoc and rng.random() < 0.4
    common: dict[str, Any] = {"service": service, "disposition": disposition}
    if byoc:
        common["byoc"] = True
    if service == "webrtc" and rng.random() < 0.2:
        common["video"] = True
    customer = world.msisdn(a.index, p)
    agent = world.msisdn(a.index, a.users + 1 + p % 7)  # the account's own agent lines
    if service == "webrtc" and rng.random() < 0.5:
        customer = world.identifier("webrtc", a.index, p)
    legs: list[tuple[str, str]]  # (direction, end user)
    if service == "click_to_call":
        legs = [("outbound", agent), ("outbound", customer)]
    elif service == "number_masking":
        legs = [("inbound", customer), ("outbound", world.msisdn(a.index, a.person(rng)))]
    elif service == "forward":
        legs = [("inbound", customer), ("outbound", agent)]
    elif service in ("message", "sip_trunk"):
        legs = [("outbound", customer)]
    elif service in ("ivr", "webrtc"):
        legs = [(rng.choice(("inbound", "outbound")), customer)]
    else:  # missed_call
        legs = [("inbound", customer)]
    amd = service in _AMD_SERVICES and legs[-1][0] == "outbound" and rng.random() < 0.2
    at = t
    for n, (direction, user) in enumerate(legs, start=1):
        at += rng.randint(2 * SECOND, 25 * SECOND)  # ringing
        seconds = duration if n == 1 else max(duration - rng.randint(0, 5000), 1000)
        data: dict[str, Any] = {
            "call_id": call_id,
            "leg_id": f"L{n}",
            **common,
            "direction": direction,
            "answered_seconds": _seconds(seconds) if answered else "0",
            "end_user": user,
            **_mobile(a, p),
        }
        if amd and n == len(legs):
            data["amd"] = True
        d.emit("platform/voice", "call.leg", at + (seconds if answered else 0), data)
    mix.record(service, len(d.events) - before)


# --- Viber (5%) -----------------------------------------------------------------------------


def viber(d: Drafts, a: Account, t: int) -> None:
    rng = d.rng
    shares = {"service": 0.65, "session": 0.10, "bot_thread": 0.15, "bot_outside": 0.10}
    mix = a.mix("viber", shares)
    kind = mix.pick(rng)
    p = a.person(rng)
    user = world.msisdn(a.index, p)
    where = _located(a, p)
    sender = rng.choice(a.viber_senders)
    src = "platform/viber"
    before = len(d.events)
    if kind == "service":
        outbound(d, a, src, t, "viber", user, sender_id=sender, **where)
    elif kind == "session":  # the end user writes first; session-type replies follow
        inbound(d, a, src, t, "viber", user, sender_id=sender, **where)
        at = t
        for _ in range(rng.randint(1, 2)):
            at += rng.randint(10 * SECOND, 2 * HOUR)
            at = outbound(d, a, src, at, "viber", user, kind="session", sender_id=sender, **where)
    elif kind == "bot_thread":
        inbound(d, a, src, t, "viber_bot", user, **where)
        at = t
        for _ in range(rng.randint(1, 2)):
            at += rng.randint(2 * SECOND, 20 * HOUR)
            outbound(d, a, src, at, "viber_bot", user, **where)
    else:
        outbound(d, a, src, t, "viber_bot", user, **where)
    mix.record(kind, len(d.events) - before)


# --- Answers (4%) ---------------------------------------------------------------------------

_BOT_CHANNELS = {
    "whatsapp": 0.45,
    "messenger": 0.2,
    "telegram": 0.1,
    "live_chat": 0.15,
    "viber_bot": 0.1,
}
BOT_TIMEOUT_MINUTES = 30


def answers(d: Drafts, a: Account, t: int) -> None:
    rng = d.rng
    bot = rng.choice(a.bots)
    channel = _weighted(rng, _BOT_CHANNELS)
    p = a.person(rng)
    user = world.identifier(channel, a.index, p)
    kind = "free_form" if channel == "whatsapp" else None
    src = "platform/answers"
    at = t
    for n in range(rng.randint(1, 4)):
        if n:
            gap = rng.randint(10 * SECOND, 10 * MINUTE)
            if rng.random() < 0.15:  # comes back after the timeout: a new session
                gap = rng.randint(BOT_TIMEOUT_MINUTES * MINUTE + SECOND, 3 * HOUR)
            at += gap
        inbound(
            d,
            a,
            src,
            at,
            channel,
            user,
            via="bot",
            bot_id=bot,
            bot_timeout_minutes=BOT_TIMEOUT_MINUTES,
        )
        at += rng.randint(1 * SECOND, 5 * SECOND)
        at = outbound(d, a, src, at, channel, user, via="bot", bot_id=bot, kind=kind)
    if rng.random() < 0.3:
        reason = "completed" if rng.random() < 0.7 else "transferred"
        d.emit(
            src,
            "bot.session_ended",
            at + rng.randint(1 * SECOND, MINUTE),
            {"bot_id": bot, "end_user": user, "reason": reason},
        )


# --- Moments (4%) ---------------------------------------------------------------------------

_MOMENTS_CHANNELS = {"sms": 0.35, "whatsapp": 0.30, "push": 0.20, "viber": 0.15}


def moments(d: Drafts, a: Account, t: int) -> None:
    rng = d.rng
    mix = a.mix("moments", {"flow": 0.62, "broadcast": 0.28, "flow_in": 0.10})
    kind = mix.pick(rng)
    p = a.person(rng)
    channel = _weighted(rng, _MOMENTS_CHANNELS)
    user = world.identifier(channel, a.index, p)
    person = f"mep-{a.index:03d}-{p:07d}"
    where = _mobile(a, p) if channel == "sms" else {}
    src = "platform/moments"
    before = len(d.events)
    if kind == "flow_in":
        channel = "sms" if channel == "push" else channel
        user = world.identifier(channel, a.index, p)
        inbound(d, a, src, t, channel, user, via="flow", person_id=person, **where)
    else:
        extra: dict[str, Any] = {}
        if channel == "whatsapp":
            extra = {"kind": "template", "category": "marketing"}
        elif channel == "viber":
            extra = {"sender_id": a.viber_senders[0]}
        outbound(d, a, src, t, channel, user, via=kind, person_id=person, **where, **extra)
    mix.record(kind, len(d.events) - before)


# --- Conversations (3%) ---------------------------------------------------------------------

_CONVERSATION_CHANNELS = {"whatsapp": 0.4, "live_chat": 0.3, "messenger": 0.2, "email": 0.1}
_ROLES = {"agent": 0.8, "supervisor": 0.15, "admin": 0.05}


def conversations(d: Drafts, a: Account, t: int) -> None:
    rng = d.rng
    mix = a.mix("conversations", {"thread": 0.8, "seats": 0.2})
    kind = mix.pick(rng)
    before = len(d.events)
    if kind == "thread":
        _conversation(d, a, t)
    else:
        _named_users(d, a, t)
    mix.record(kind, len(d.events) - before)


def _conversation(d: Drafts, a: Account, t: int) -> None:
    rng = d.rng
    channel = _weighted(rng, _CONVERSATION_CHANNELS)
    p = a.person(rng)
    user = world.identifier(channel, a.index, p)
    conversation = a.next_id("conv")
    kind = "free_form" if channel == "whatsapp" else None
    src = "platform/conversations"
    at = t
    for n in range(rng.randint(1, 3)):
        if n:
            at += rng.randint(30 * SECOND, 2 * HOUR)
        inbound(d, a, src, at, channel, user, via="conversations", conversation_id=conversation)
        at += rng.randint(20 * SECOND, 10 * MINUTE)
        at = outbound(
            d,
            a,
            src,
            at,
            channel,
            user,
            via="conversations",
            conversation_id=conversation,
            kind=kind,
        )


def _named_users(d: Drafts, a: Account, t: int) -> None:
    rng = d.rng
    src = "platform/conversations"
    held = [u for u, (since, _, gone) in a.agents.items() if since < t and not gone]
    r = rng.random()
    if not held or r < 0.12 or (r < 0.2 and len(held) < 3):
        user = a.next_id("agent")
        role = _weighted(rng, _ROLES)
        data: dict[str, Any] = (
            {"user_id": user} if role == "agent" else {"user_id": user, "role": role}
        )
        d.emit(src, "named_user.provisioned", t, data)
        a.agents[user] = [t, t, 0]
        return
    user = rng.choice(held)
    state = a.agents[user]
    if r < 0.16 and state[1] < t:
        d.emit(src, "named_user.deprovisioned", t, {"user_id": user})
        state[2] = 1
        return
    if state[1] >= t and rng.random() > 0.03:  # busy; rarely a second, violating session
        return
    session = a.next_id("sess")
    closed = t + rng.randint(30 * MINUTE, 8 * HOUR)
    d.emit(src, "named_user.session_opened", t, {"user_id": user, "session_id": session})
    d.emit(src, "named_user.session_closed", closed, {"user_id": user, "session_id": session})
    state[1] = max(state[1], closed)


# --- other channels (3%, spread evenly) ------------------------------------------------------

_OTHER = (
    "messenger",
    "telegram",
    "google_bm",
    "apple_bc",
    "zalo",
    "kakao_notification",
    "kakao_friends",
    "kakao_consultation",
    "ussd",
    "push",
    "live_chat",
    "social",
)
_OTHER_SOURCE = {
    "kakao_notification": "kakao",
    "kakao_friends": "kakao",
    "kakao_consultation": "kakao",
    "google_bm": "google-bm",
    "apple_bc": "apple-bc",
    "live_chat": "live-chat",
}
_USSD_INITIATORS = {"account": 0.5, "third_party": 0.2, "end_user": 0.3}


def other_channels(d: Drafts, a: Account, t: int) -> None:
    rng = d.rng
    mix = a.mix("other", dict.fromkeys(_OTHER, 1.0))
    channel = mix.pick(rng)
    p = a.person(rng)
    src = f"platform/{_OTHER_SOURCE.get(channel, channel)}"
    before = len(d.events)
    user = world.identifier(channel, a.index, p)
    where = _located(a, p)
    if channel == "ussd":
        d.emit(
            src,
            "ussd.session",
            t,
            {
                "session_id": a.next_id("ussd"),
                "end_user": user,
                "initiator": _weighted(rng, _USSD_INITIATORS),
                **_mobile(a, p),
            },
        )
    elif channel in ("kakao_consultation", "live_chat", "social"):
        inbound(d, a, src, t, channel, user)
        outbound(d, a, src, t + rng.randint(10 * SECOND, 30 * MINUTE), channel, user)
    elif channel in ("messenger", "telegram", "google_bm", "apple_bc") and rng.random() < 0.3:
        inbound(d, a, src, t, channel, user)
    else:
        outbound(d, a, src, t, channel, user, **(where if channel == "zalo" else {}))
    mix.record(channel, len(d.events) - before)


# --- Recordings (2%) ------------------------------------------------------------------------


def _peak_with(intervals: list[tuple[int, int]], start: int, stop: int) -> int:
    """Peak concurrency of ``intervals`` over ``[start, stop)``."""
    points = sorted(
        [(s, 1) for s, e in intervals if s < stop and e > start]
        + [(e, -1) for s, e in intervals if s < stop and e > start]
    )
    live = sum(1 for s, e in intervals if s <= start < e)
    peak = live
    for at, step in points:
        if at <= start:
            continue
        live += step
        peak = max(peak, live)
    return peak


def recordings(d: Drafts, a: Account, t: int) -> None:
    """A burst of calls recorded together (a campaign, a shift starting), up to the limit."""
    rng = d.rng
    a.recordings = [(s, e) for s, e in a.recordings if e > t - HOUR]
    # bursts reach the limit in large accounts; small accounts record a call at a time
    most = max(1, min(RECORDING_LIMIT, a.budget // 600))
    if rng.random() < 0.3:
        burst = rng.randint(max(1, most * 6 // 10), most)
    else:
        burst = rng.randint(1, max(1, min(4, most)))
    src = "platform/recording"
    for _ in range(burst):
        start = t + rng.randint(0, 2 * MINUTE)
        length = int(min(max(rng.lognormvariate(math.log(240), 0.6), 10.0), 3600.0) * 1000)
        stop = start + length
        if _peak_with(a.recordings, start, stop) >= RECORDING_LIMIT:
            continue  # the platform refuses to record beyond the limit
        a.recordings.append((start, stop))
        rec = a.next_id("rec")
        conv = a.conversations_recording and rng.random() < 0.5
        video = rng.random() < 0.1
        flags: dict[str, Any] = {"via_conversations": True} if conv else {}
        call = a.next_id("call")
        d.emit(src, "recording.started", start, {"recording_id": rec, "call_id": call, **flags})
        d.emit(src, "recording.stopped", stop, {"recording_id": rec, "call_id": call})
        stored = stop + rng.randint(1 * SECOND, MINUTE)
        rate = 250_000 if video else 16_000  # bytes per second
        d.emit(
            src,
            "recording.stored",
            stored,
            {
                "recording_id": rec,
                "size_bytes": length * rate // 1000,
                "duration_seconds": _seconds(length),
                **flags,
                **({"video": True} if video else {}),
            },
        )
        if rng.random() < 0.6:
            d.emit(
                src,
                "recording.deleted",
                stored + rng.randint(HOUR, 20 * DAY),
                {"recording_id": rec},
            )


# --- Numbers and lookups (2%) ----------------------------------------------------------------

_NUMBER_TYPES = {"long": 0.4, "toll_free": 0.15, "short_code": 0.1, "voice": 0.35}
_LOOKUP_RESULTS = {"YES": 0.85, "NO": 0.1, "UNKNOWN": 0.05}


def numbers_lookups(d: Drafts, a: Account, t: int) -> None:
    rng = d.rng
    shares = {"provision": 0.2, "release": 0.1, "number_lookup": 0.45, "email_validation": 0.25}
    mix = a.mix("numbers", shares)
    kind = mix.pick(rng)
    before = len(d.events)
    if kind == "release":
        held = [n for n, since in a.numbers.items() if since < t]
        if held:
            number = rng.choice(held)
            del a.numbers[number]
            d.emit("platform/numbers", "number.released", t, {"number": number})
        else:
            kind = "provision"
    if kind == "provision":
        number_type = _weighted(rng, _NUMBER_TYPES)
        iso, code = world.COUNTRIES[a.home if rng.random() < 0.7 else rng.randrange(30)]
        seq = a.next_id("num").rsplit("-", 1)[1]
        number = {
            "long": f"+{code}6{a.index:03d}{int(seq):06d}",
            "voice": f"+{code}5{a.index:03d}{int(seq):06d}",
            "toll_free": f"+{code}800{a.index:03d}{int(seq):05d}",
            "short_code": f"{iso}-{a.index:03d}{int(seq):03d}",
        }[number_type]
        data: dict[str, Any] = {"number": number, "number_type": number_type, "country": iso}
        if number_type == "voice" and rng.random() < 0.25:
            data["missed_call"] = True
        d.emit("platform/numbers", "number.provisioned", t, data)
        a.numbers[number] = t
    elif kind == "number_lookup":
        p = a.person(rng)
        submitted = rng.random() < 0.95
        data = {
            "request_id": a.next_id("lkp"),
            "kind": "number_lookup",
            "status": "submitted" if submitted else "rejected",
            "end_user": world.msisdn(a.index, p),
            **_located(a, p),
        }
        if submitted:
            data["result"] = _weighted(rng, _LOOKUP_RESULTS)
        d.emit("platform/lookup", "lookup", t, data)
    elif kind == "email_validation":
        p = a.person(rng)
        d.emit(
            "platform/lookup",
            "lookup",
            t,
            {
                "request_id": a.next_id("lkp"),
                "kind": "email_validation",
                "status": "submitted",
                "end_user": world.email(a.index, p),
                "result": _weighted(rng, _LOOKUP_RESULTS),
            },
        )
    mix.record(kind, len(d.events) - before)


# --- Things (1%: the remainder of the table) -------------------------------------------------


def things(d: Drafts, a: Account, t: int) -> None:
    rng = d.rng
    src = "platform/things"
    ready = [s for s, (status, since) in a.sims.items() if since < t and status != "terminated"]
    r = rng.random()
    if not ready or r < 0.1:
        sim = a.next_id("sim")
        d.emit(src, "sim.activated", t, {"sim_id": sim})
        a.sims[sim] = ("active", t)
        return
    sim = rng.choice(ready)
    status, _ = a.sims[sim]
    if r < 0.2 or status != "active":
        new = "active" if status == "suspended" else "suspended"
        if rng.random() < 0.1:
            new = "terminated"
        d.emit(src, "sim.status_changed", t, {"sim_id": sim, "status": new})
        a.sims[sim] = (new, t)
        return
    iso = world.COUNTRIES[a.home if rng.random() < 0.85 else rng.randrange(30)][0]
    used = int(rng.lognormvariate(math.log(5e6), 1.2))
    d.emit(src, "sim.data_usage", t, {"sim_id": sim, "bytes": used, "country": iso})


#: category -> (share of all events, scenario). The rows of reference-mix.md.
CATEGORIES: dict[str, tuple[float, Scenario]] = {
    "sms": (0.40, sms),
    "whatsapp": (0.18, whatsapp),
    "email": (0.10, email),
    "voice": (0.08, voice),
    "viber": (0.05, viber),
    "answers": (0.04, answers),
    "moments": (0.04, moments),
    "conversations": (0.03, conversations),
    "other_channels": (0.03, other_channels),
    "recordings": (0.02, recordings),
    "numbers_lookups": (0.02, numbers_lookups),
    "things": (0.01, things),
}

#: event source -> category (every event of a scenario has its category's sources).
SOURCES: dict[str, str] = {
    "platform/sms": "sms",
    "platform/whatsapp": "whatsapp",
    "platform/email": "email",
    "platform/voice": "voice",
    "platform/viber": "viber",
    "platform/answers": "answers",
    "platform/moments": "moments",
    "platform/conversations": "conversations",
    **{f"platform/{_OTHER_SOURCE.get(c, c)}": "other_channels" for c in _OTHER},
    "platform/recording": "recordings",
    "platform/numbers": "numbers_lookups",
    "platform/lookup": "numbers_lookups",
    "platform/things": "things",
}
