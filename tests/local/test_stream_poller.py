"""The local stream poller gathers records while they keep arriving: one invocation covers
a whole window (the live view refreshes each shard it names once per invocation)."""

from __future__ import annotations

import threading
import time
from typing import Any

from billing.local.streams import StreamPoller, partitioned


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


class StoredReader:
    """A stream whose records are all there at once."""

    stream_arn = ArrivingReader.stream_arn

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def pending(self) -> int:
        return len(self.records)

    def read(self, limit: int = 1000) -> list[dict[str, Any]]:
        taken, self.records = self.records[:limit], self.records[limit:]
        return taken


def _keyed(n: int, key: str) -> dict[str, Any]:
    return {**_record(n), "dynamodb": {"Keys": {"pk": {"S": key}}, "SequenceNumber": str(n)}}


def _owned(n: int) -> dict[str, Any]:
    """Record ``n``: one of account ``n % 8``'s facts or lifecycle facts, of one of 2 shards."""
    kind = "F" if n % 3 else "E"
    return _keyed(n, f"{kind}#acct-{n % 8}#2026-10#{n % 2:02d}")


def test_lanes_run_invocations_at_once_with_each_accounts_records_in_one_in_order() -> None:
    records = [_owned(n) for n in range(80)]
    calls: list[list[dict[str, Any]]] = []
    running, most, lock = [0], [0], threading.Lock()
    both = threading.Barrier(2, timeout=10)

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        both.wait()  # the second invocation starts while the first runs
        with lock:
            running[0] -= 1
            calls.append(event["Records"])
        return {"batchItemFailures": []}

    poller = StreamPoller(StoredReader(records), invoke, batch_size=100, lanes=2)
    assert poller.poll_once() == 80
    assert most[0] == 2
    assert len(calls) == 2
    lanes_of: dict[str, set[int]] = {}
    for lane, call in enumerate(calls):
        numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in call]
        assert numbers == sorted(numbers)  # in the stream's order
        for n in numbers:
            lanes_of.setdefault(f"acct-{n % 8}", set()).add(lane)
    assert sorted(n for call in calls for n in (int(r["eventID"]) for r in call)) == list(range(80))
    # every account's records (facts and lifecycle facts, both shards) in one invocation
    assert all(len(lanes) == 1 for lanes in lanes_of.values())
    assert len(lanes_of) == 8


def test_a_failing_lane_is_retried_on_its_own_from_its_failed_record() -> None:
    records = [_owned(n) for n in range(40)]
    delivered: list[int] = []
    failed_once: set[int] = set()
    lock = threading.Lock()
    first_of_each_lane = {3, 12}  # acct-3 and acct-4: not in one lane (crc32 of the owner)

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in event["Records"]]
        with lock:
            for n in numbers:
                if n in first_of_each_lane and n not in failed_once:  # fails once
                    failed_once.add(n)
                    delivered.extend(numbers[: numbers.index(n)])
                    return {"batchItemFailures": [{"itemIdentifier": str(n)}]}
            delivered.extend(numbers)
        return {"batchItemFailures": []}

    assert len(partitioned([_owned(3), _owned(12)], 2)) == 2
    poller = StreamPoller(StoredReader(records), invoke, batch_size=100, lanes=2)
    assert poller.poll_once() == 40
    assert failed_once == first_of_each_lane
    assert sorted(delivered) == list(range(40))  # every record once, none lost or repeated
