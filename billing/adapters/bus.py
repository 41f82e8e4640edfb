"""The event bus: the billing system's own events (invoices, credit notes, thresholds)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SOURCE = "cpaas.billing"


class EventRefused(RuntimeError):
    """EventBridge did not accept the entry (the caller gives back what it claimed)."""


def publish_one(events: Any, bus_name: str, detail_type: str, detail: Mapping[str, Any]) -> None:
    """Put one event on the bus; raises ``EventRefused`` when the entry is not accepted.
    ``events`` is an EventBridge client, or ``None`` where nothing is published (tests)."""
    if events is None:
        return
    response = events.put_events(
        Entries=[
            {
                "Source": SOURCE,
                "DetailType": detail_type,
                "EventBusName": bus_name,
                "Detail": json.dumps(detail, sort_keys=True),
            }
        ]
    )
    if response.get("FailedEntryCount"):
        raise EventRefused(f"{detail_type} not accepted by the bus: {response['Entries']}")
