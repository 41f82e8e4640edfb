"""Builders for usage events in tests: readable one-liners that produce valid CloudEvents."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from billing.domain.events import TYPE_PREFIX, Envelope, parse_event_obj

T0 = datetime(2026, 10, 1, tzinfo=UTC)
_ids = itertools.count(1)


def at(day: int = 1, hour: int = 0, minute: int = 0, second: float = 0, month: int = 10) -> datetime:
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


def mt(when: datetime, message_id: str, status: str = "submitted", channel: str = "sms",
       end_user: str = "+33600000001", **kw: Any) -> Envelope:
    return event("message.outbound", when, message_id=message_id, channel=channel,
                 status=status, end_user=end_user, **kw)


def mo(when: datetime, message_id: str, channel: str = "sms", end_user: str = "+33600000001",
       **kw: Any) -> Envelope:
    return event("message.inbound", when, message_id=message_id, channel=channel,
                 end_user=end_user, **kw)


def leg(when: datetime, seconds: float, service: str = "ivr", call_id: str = "c1",
        leg_id: str = "l1", disposition: str = "answered", **kw: Any) -> Envelope:
    return event("call.leg", when, call_id=call_id, leg_id=leg_id, service=service,
                 direction=kw.pop("direction", "outbound"), disposition=disposition,
                 answered_seconds=str(seconds), end_user=kw.pop("end_user", "+33600000009"), **kw)
