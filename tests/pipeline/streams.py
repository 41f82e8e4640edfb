"""A small deterministic month of usage for two accounts, across many rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.factories import at, raw


def month(seed: int = 0) -> list[dict[str, Any]]:
    ev: list[dict[str, Any]] = []
    for acct in ("acme", "globex"):
        for u in range(6):
            user = f"+3360000{seed}{u:03d}"
            t = at(3 + u, 10)
            # SMS: submit + delivery report, a 3-part one, a rejected one, an MO
            ev.append(
                raw(
                    "message.outbound",
                    t,
                    acct,
                    message_id=f"s{u}",
                    channel="sms",
                    status="submitted",
                    end_user=user,
                    country="FR",
                    parts=1 + u % 3,
                )
            )
            ev.append(
                raw(
                    "message.outbound",
                    t + timedelta(seconds=5),
                    acct,
                    message_id=f"s{u}",
                    channel="sms",
                    status="delivered",
                    end_user=user,
                    country="FR",
                    parts=1 + u % 3,
                )
            )
            ev.append(
                raw(
                    "message.outbound",
                    t,
                    acct,
                    message_id=f"r{u}",
                    channel="sms",
                    status="rejected",
                    end_user=user,
                )
            )
            ev.append(
                raw("message.inbound", t, acct, message_id=f"mo{u}", channel="sms", end_user=user)
            )
            # WhatsApp: a template outside any window, an inbound, a template inside
            ev.append(
                raw(
                    "message.outbound",
                    t,
                    acct,
                    message_id=f"w{u}a",
                    channel="whatsapp",
                    status="delivered",
                    end_user=user,
                    kind="template",
                )
            )
            ev.append(
                raw(
                    "message.inbound",
                    t + timedelta(hours=1),
                    acct,
                    message_id=f"wi{u}",
                    channel="whatsapp",
                    end_user=user,
                )
            )
            ev.append(
                raw(
                    "message.outbound",
                    t + timedelta(hours=2),
                    acct,
                    message_id=f"w{u}b",
                    channel="whatsapp",
                    status="delivered",
                    end_user=user,
                    kind="template",
                )
            )
            # voice: an answered 61 s leg and a busy one
            ev.append(
                raw(
                    "call.leg",
                    t,
                    acct,
                    call_id=f"c{u}",
                    leg_id="a",
                    service="ivr",
                    direction="outbound",
                    disposition="answered",
                    answered_seconds=str(61 + u),
                    end_user=user,
                    amd=u % 2 == 0,
                )
            )
            ev.append(
                raw(
                    "call.leg",
                    t,
                    acct,
                    call_id=f"c{u}",
                    leg_id="b",
                    service="ivr",
                    direction="outbound",
                    disposition="busy",
                    answered_seconds="0",
                    end_user=user,
                )
            )
            # Answers: inbound to a bot, reply, inbound after the timeout
            ev.append(
                raw(
                    "message.inbound",
                    t,
                    acct,
                    message_id=f"b{u}1",
                    channel="whatsapp",
                    end_user=user,
                    bot_id="bot",
                    bot_timeout_minutes=30,
                )
            )
            ev.append(
                raw(
                    "message.outbound",
                    t + timedelta(minutes=40),
                    acct,
                    message_id=f"b{u}2",
                    channel="whatsapp",
                    status="delivered",
                    end_user=user,
                    bot_id="bot",
                    kind="free_form",
                )
            )
        # recordings overlapping, a number, two named users
        for r in range(3):
            ev.append(
                raw(
                    "recording.started",
                    at(10, 9, r * 10),
                    acct,
                    recording_id=f"rec{r}",
                    call_id=f"c{r}",
                )
            )
            ev.append(
                raw(
                    "recording.stopped",
                    at(10, 9, 25 + r * 10),
                    acct,
                    recording_id=f"rec{r}",
                    call_id=f"c{r}",
                )
            )
            ev.append(
                raw(
                    "recording.stored",
                    at(10, 10),
                    acct,
                    recording_id=f"rec{r}",
                    size_bytes=5_000_000,
                    duration_seconds="300",
                )
            )
        ev.append(
            raw(
                "number.provisioned",
                at(2),
                acct,
                number="+3312345",
                number_type="long",
                country="FR",
            )
        )
        ev.append(raw("named_user.provisioned", at(1), acct, user_id="ann"))
        ev.append(raw("named_user.provisioned", at(5), acct, user_id="bob"))
        ev.append(raw("named_user.deprovisioned", at(6), acct, user_id="bob"))
    return ev
