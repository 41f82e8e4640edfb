"""Malformed lines: what broken producers send, each of which the contract must reject."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from billing.gen.world import Clock

#: the ways a line is broken; every one fails ``billing.domain.events.parse_event``.
KINDS: tuple[str, ...] = (
    "truncated_json",
    "missing_subject",
    "missing_time",
    "missing_id",
    "missing_payload_field",
    "time_without_zone",
    "unknown_type",
    "negative_duration",
    "unknown_payload_field",
    "bad_subject",
    "bad_specversion",
    "bad_status",
)


def corrupt(
    rng: random.Random,
    event: dict[str, Any],
    at: int,
    clock: Clock,
    number: int,
    kind: str | None = None,
) -> tuple[str, str]:
    """A broken copy of ``event`` (a valid CloudEvent dict at ``at``): (kind, line)."""
    if kind is None:
        kind = rng.choice(KINDS)
    elif kind not in KINDS:
        raise ValueError(f"unknown kind of malformed line: {kind}")
    env = copy.deepcopy(event)
    env["id"] = f"bad-{number}"
    data: dict[str, Any] = env["data"]
    if kind == "truncated_json":
        text = json.dumps(env, separators=(",", ":"))
        return kind, text[: rng.randint(1, len(text) - 1)]
    if kind == "missing_subject":
        del env["subject"]
    elif kind == "missing_time":
        del env["time"]
    elif kind == "missing_id":
        del env["id"]
    elif kind == "missing_payload_field":
        del data[next(iter(data))]  # the first field of every payload is required
    elif kind == "time_without_zone":
        env["time"] = clock.naive(at)
    elif kind == "unknown_type":
        env["type"] = "cpaas.usage.fax.sent.v1"
    elif kind == "negative_duration":
        env["type"] = "cpaas.usage.call.leg.v1"
        env["data"] = {
            "call_id": f"bad-call-{number}",
            "leg_id": "L1",
            "service": "ivr",
            "direction": "inbound",
            "disposition": "answered",
            "answered_seconds": f"-{rng.randint(1, 600)}.{rng.randint(0, 999):03d}",
            "end_user": str(data.get("end_user", "+33600000000")),
        }
    elif kind == "unknown_payload_field":
        data["unit_price"] = "0.05"
    elif kind == "bad_subject":
        env["subject"] = f"{env['subject']} / {rng.randint(1, 99)}"
    elif kind == "bad_specversion":
        env["specversion"] = "0.3"
    else:  # bad_status: a status the contract does not know (or a field the type lacks)
        data["status"] = "sent"
    return kind, json.dumps(env, separators=(",", ":"))
