"""Builders for usage events in tests: readable one-liners that produce valid CloudEvents."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from billing.domain.engine import usage_of_events
from billing.domain.events import TYPE_PREFIX, Envelope, parse_event_obj
from billing.domain.periods import Period
from billing.domain.settings import ContractSettings
from billing.domain.usage import Usage

T0 = datetime(2026, 10, 1, tzinfo=UTC)
_ids = itertools.count(1)


def at(
    day: int = 1, hour: int = 0, minute: int = 0, second: float = 0, month: int = 10
) -> datetime:
    base = datetime(2026, month, day, hour, minute, tzinfo=UTC)
    return base + timedelta(seconds=second)


def event(
    type_: str,
    when: datetime,
    account: str = "acme",
    event_id: str | None = None,
    source: str = "test",
    **data: Any,
) -> Envelope:
    return parse_event_obj(raw(type_, when, account, event_id, source, **data))


def raw(
    type_: str,
    when: datetime,
    account: str = "acme",
    event_id: str | None = None,
    source: str = "test",
    **data: Any,
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or f"e{next(_ids)}",
        "source": source,
        "type": f"{TYPE_PREFIX}{type_}.v1",
        "subject": account,
        "time": when.isoformat(),
        "data": data,
    }


def mt(
    when: datetime,
    message_id: str,
    status: str = "submitted",
    channel: str = "sms",
    end_user: str = "+33600000001",
    **kw: Any,
) -> Envelope:
    return event(
        "message.outbound",
        when,
        message_id=message_id,
        channel=channel,
        status=status,
        end_user=end_user,
        **kw,
    )


def mo(
    when: datetime, message_id: str, channel: str = "sms", end_user: str = "+33600000001", **kw: Any
) -> Envelope:
    return event(
        "message.inbound", when, message_id=message_id, channel=channel, end_user=end_user, **kw
    )


def leg(
    when: datetime,
    seconds: float,
    service: str = "ivr",
    call_id: str = "c1",
    leg_id: str = "l1",
    disposition: str = "answered",
    **kw: Any,
) -> Envelope:
    return event(
        "call.leg",
        when,
        call_id=call_id,
        leg_id=leg_id,
        service=service,
        direction=kw.pop("direction", "outbound"),
        disposition=disposition,
        answered_seconds=str(seconds),
        end_user=kw.pop("end_user", "+33600000009"),
        **kw,
    )


# --- more builders: one per event type, keyword arguments for the optional fields -------

OCTOBER = Period(2026, 10)


def ms(milliseconds: int) -> timedelta:
    return timedelta(milliseconds=milliseconds)


def bot_end(
    when: datetime,
    bot_id: str = "b1",
    end_user: str = "+33600000001",
    reason: str = "completed",
    **kw: Any,
) -> Envelope:
    return event("bot.session_ended", when, bot_id=bot_id, end_user=end_user, reason=reason, **kw)


def ussd(
    when: datetime,
    session_id: str,
    initiator: str = "account",
    end_user: str = "+33600000001",
    **kw: Any,
) -> Envelope:
    return event(
        "ussd.session", when, session_id=session_id, initiator=initiator, end_user=end_user, **kw
    )


def lookup(
    when: datetime,
    request_id: str,
    kind: str = "number_lookup",
    status: str = "submitted",
    end_user: str = "+33600000001",
    **kw: Any,
) -> Envelope:
    return event(
        "lookup", when, request_id=request_id, kind=kind, status=status, end_user=end_user, **kw
    )


def rec_start(when: datetime, recording_id: str, call_id: str = "c1", **kw: Any) -> Envelope:
    return event("recording.started", when, recording_id=recording_id, call_id=call_id, **kw)


def rec_stop(when: datetime, recording_id: str, call_id: str = "c1", **kw: Any) -> Envelope:
    return event("recording.stopped", when, recording_id=recording_id, call_id=call_id, **kw)


def rec_stored(
    when: datetime,
    recording_id: str,
    size_bytes: int = 0,
    duration_seconds: float | str = 0,
    **kw: Any,
) -> Envelope:
    return event(
        "recording.stored",
        when,
        recording_id=recording_id,
        size_bytes=size_bytes,
        duration_seconds=str(duration_seconds),
        **kw,
    )


def rec_deleted(when: datetime, recording_id: str, **kw: Any) -> Envelope:
    return event("recording.deleted", when, recording_id=recording_id, **kw)


def number(when: datetime, number: str, number_type: str = "long", **kw: Any) -> Envelope:
    return event("number.provisioned", when, number=number, number_type=number_type, **kw)


def number_released(when: datetime, number: str, **kw: Any) -> Envelope:
    return event("number.released", when, number=number, **kw)


def seat(when: datetime, user_id: str, **kw: Any) -> Envelope:
    return event("named_user.provisioned", when, user_id=user_id, **kw)


def unseat(when: datetime, user_id: str, **kw: Any) -> Envelope:
    return event("named_user.deprovisioned", when, user_id=user_id, **kw)


def login(when: datetime, user_id: str, session_id: str, **kw: Any) -> Envelope:
    return event("named_user.session_opened", when, user_id=user_id, session_id=session_id, **kw)


def logout(when: datetime, user_id: str, session_id: str, **kw: Any) -> Envelope:
    return event("named_user.session_closed", when, user_id=user_id, session_id=session_id, **kw)


def sim(when: datetime, sim_id: str, **kw: Any) -> Envelope:
    return event("sim.activated", when, sim_id=sim_id, **kw)


def sim_status(when: datetime, sim_id: str, status: str, **kw: Any) -> Envelope:
    return event("sim.status_changed", when, sim_id=sim_id, status=status, **kw)


def sim_data(when: datetime, sim_id: str, nbytes: int, country: str = "FR", **kw: Any) -> Envelope:
    return event("sim.data_usage", when, sim_id=sim_id, bytes=nbytes, country=country, **kw)


# --- running the engine -----------------------------------------------------------------


def usage(events: Iterable[Envelope], period: Period = OCTOBER, **settings: Any) -> Usage:
    """The usage of ``events`` for ``period`` under the rulebook defaults plus ``settings``."""
    return usage_of_events(list(events), period, ContractSettings(**settings))


def totals(
    events: Iterable[Envelope], period: Period = OCTOBER, **settings: Any
) -> dict[str, Decimal]:
    """Billable quantity per metric (every dimension summed)."""
    return usage(events, period, **settings).by_metric()


def total(
    metric: str, events: Iterable[Envelope], period: Period = OCTOBER, **settings: Any
) -> Decimal:
    """Billable quantity of one metric (0 when the metric has no line)."""
    return totals(events, period, **settings).get(metric, Decimal(0))
