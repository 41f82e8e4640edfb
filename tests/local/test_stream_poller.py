"""The local stream poller gathers records while they keep arriving: one invocation covers
a whole window (the live view refreshes each shard it names once per invocation)."""

from __future__ import annotations

import threading
import time
from typing import Any

from billing.local.streams import StreamPoller


def _record(n: int) -> dict[str, Any]:
    return {
        "eventID": str(n),
        "eventName": "INSERT",
        "dynamodb": {"Keys": {"pk": {"S": f"F#a#{n}"}}, "SequenceNumber": str(100 + n)},
    }


class ArrivingReader:
    """A stream whose records arrive ``burst`` at a time, one burst per look at it, for
    ``bursts`` looks (``None``: for ever)."""

    stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x"

    def __init__(self, burst: int, bursts: int | None) -> None:
        self.burst = burst
        self.bursts = bursts
        self.written = 0
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def pending(self) -> int:
        with self.lock:
            if self.bursts is None or self.bursts > 0:
                if self.bursts is not None:
                    self.bursts -= 1
                for _ in range(self.burst):
                    self.records.append(_record(self.written))
                    self.written += 1
            return len(self.records)

    def read(self, limit: int = 1000) -> list[dict[str, Any]]:
        with self.lock:
            taken, self.records = self.records[:limit], self.records[limit:]
            return taken


def _poller(reader: ArrivingReader, calls: list[list[str]], **kw: Any) -> StreamPoller:
    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        calls.append([r["eventID"] for r in event["Records"]])
        return {"batchItemFailures": []}

    return StreamPoller(reader, invoke, batch_size=10, interval=0.01, **kw)


def test_records_that_keep_arriving_go_to_the_function_in_one_invocation() -> None:
    reader = ArrivingReader(burst=5, bursts=12)
    calls: list[list[str]] = []
    poller = _poller(reader, calls, gather_seconds=60, quiet_seconds=0.3, invocation_size=1000)
    poller.start()
    try:
        deadline = time.monotonic() + 30
        while sum(map(len, calls)) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        poller.stop()
    # twelve bursts, more than the mapping's batch of 10: one invocation, in order
    assert calls == [[str(n) for n in range(60)]]


def test_a_window_ends_at_its_limits_while_records_keep_arriving() -> None:
    calls: list[list[str]] = []
    endless = _poller(ArrivingReader(burst=1, bursts=None), calls, gather_seconds=0.3)
    assert endless.gather() > 0  # ends after gather_seconds
    full = _poller(
        ArrivingReader(burst=5, bursts=None), calls, gather_seconds=60, invocation_size=20
    )
    assert full.gather() >= 20  # ends once an invocation's worth is waiting
    assert calls == []


def test_a_slow_delivery_stretches_the_next_window_to_keep_its_share() -> None:
    calls: list[list[str]] = []
    poller = _poller(
        ArrivingReader(burst=1, bursts=None), calls, gather_seconds=0.1, max_share=0.25
    )
    poller.last_delivery = 0.3  # a quarter of the time at most: a window of 0.9 s
    started = time.monotonic()
    assert poller.gather() > 0
    assert time.monotonic() - started >= 0.85


def test_what_gathered_goes_in_invocations_of_invocation_size() -> None:
    reader = ArrivingReader(burst=25, bursts=1)
    calls: list[list[str]] = []
    poller = _poller(reader, calls, gather_seconds=60, quiet_seconds=0.1, invocation_size=12)
    assert poller.poll_once(limit=poller.gather()) == 25
    assert [len(c) for c in calls] == [12, 12, 1]
    # without a window, the mapping's batch size (10) holds
    calls.clear()
    reader = ArrivingReader(burst=25, bursts=1)
    reader.pending()
    assert _poller(reader, calls).poll_once() == 25
    assert [len(c) for c in calls] == [10, 10, 5]
