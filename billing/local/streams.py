"""DynamoDB Streams event source mappings: read the table's stream, invoke the handler.

What the Lambda service does for a stream event source: read each shard of the stream in
order, hand the function batches of records (``BatchSize``), and on a
``batchItemFailures`` report retry from the first failed record (bisecting is not needed
here: the handler reports the exact record). A batch that raises is retried whole, up to
``MaximumRetryAttempts``; then the records are dropped, as on AWS (where they would go to
the on-failure destination) and the failure is logged.

Locally the function shares the interpreter with ingest, so :class:`StreamPoller` can
gather records for longer than AWS would (``gather_seconds``): once records are waiting,
it waits while more keep arriving (a new one within ``quiet_seconds``), up to
``gather_seconds`` (longer when the last delivery took more than ``max_share`` of its
window: deliveries then take at most that share of the time while records keep coming)
or ``invocation_size`` records, then delivers all of them in invocations of up to
``invocation_size`` records. A handler whose work follows the keys its records name (the
live view refreshes each named shard once per invocation) then does that work once per
window rather than once per ``BatchSize`` records. While the runtime's other pollers still
have messages to handle (``backlog``: ingest is busy and its writes will keep coming), a
window does not end at its quiet or time limit, up to ``busy_seconds`` from its start: a
bulk load is then refreshed once per long window, not once per few seconds of it.

AWS splits a table's stream into shards by partition key and runs a function's invocations
for different shards at once; moto keeps one shard. A poller with ``lanes`` above 1 splits
what one read takes the same way, into that many invocations at once (:func:`partitioned`):
every record of one key owner (the partition key's first two ``#`` fields: an account's
facts, lifecycle facts, plans and thresholds) in one lane, in order, so the live view reads
each account's plan and history once; each lane is retried on its own. The runtime gives
lanes to a stream function that runs in worker processes (``billing.local.workers``).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from billing.local.polling import PollingThread

LOG = logging.getLogger(__name__)

Invoke = Callable[[dict[str, Any]], Any]


class Reader(Protocol):
    stream_arn: str

    def read(self, limit: int = 1000) -> list[dict[str, Any]]: ...

    def pending(self) -> int: ...


class StreamReader:
    """Every record of a table's stream from its start, in order, batch after batch, through
    the DynamoDB Streams API."""

    def __init__(self, client: Any, stream_arn: str) -> None:
        self.client = client
        self.stream_arn = stream_arn
        self.iterators: dict[str, str] = {}

    def _shards(self) -> list[str]:
        description = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        return [shard["ShardId"] for shard in description["Shards"]]

    def pending(self) -> int:
        return 0  # the API cannot tell without reading

    def read(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The next records (at most ``limit`` per shard), empty when none is new."""
        out: list[dict[str, Any]] = []
        for shard in self._shards():
            if shard not in self.iterators:
                self.iterators[shard] = self.client.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            response = self.client.get_records(ShardIterator=self.iterators[shard], Limit=limit)
            self.iterators[shard] = response["NextShardIterator"]
            out.extend(response["Records"])
        return out


class MotoStreamReader:
    """Reads a table's stream straight from the in-process moto backend and forgets what
    it read (moto keeps every record of a stream in memory otherwise). Sequence numbers
    stay increasing: moto numbers a record by its position plus the shard's start."""

    def __init__(self, stream_arn: str, prefixes: tuple[str, ...] | None = None) -> None:
        self.stream_arn = stream_arn
        self.prefixes = prefixes
        _, _, _, self.region, self.account_id, resource = stream_arn.split(":", 5)
        self.table_name = resource.split("/")[1]
        self._lock = threading.Lock()

    def _shard(self) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        table = dynamodb_backends[self.account_id][self.region].get_table(self.table_name)
        return table.stream_shard

    def pending(self) -> int:
        shard = self._shard()
        return len(shard.items) if shard is not None else 0

    def read(self, limit: int = 1000) -> list[dict[str, Any]]:
        with self._lock:
            shard = self._shard()
            if shard is None or not shard.items:
                return []
            taken = shard.items[:limit]
            del shard.items[: len(taken)]
            shard.starting_sequence_number += len(taken)
        out = []
        for record in taken:
            body = dict(record.record)
            dynamodb = dict(body["dynamodb"])
            created = dynamodb.get("ApproximateCreationDateTime")
            if isinstance(created, datetime):
                dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
            body["dynamodb"] = dynamodb
            if body.get("eventName") == "REMOVE":
                continue  # the mapping's filter: insertions and modifications only
            if self.prefixes is not None:
                pk = next(iter(dynamodb["Keys"].values())).get("S", "")
                if not pk.startswith(self.prefixes):
                    continue  # the event source mapping's filter
            out.append(body)
        return out


def stream_event(records: list[dict[str, Any]], stream_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda passes for a DynamoDB stream event source."""
    return {
        "Records": [
            {
                "eventID": r.get("eventID", ""),
                "eventName": r.get("eventName", ""),
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": region,
                "dynamodb": r["dynamodb"],
                "eventSourceARN": stream_arn,
            }
            for r in records
        ]
    }


def deliver(
    records: list[dict[str, Any]],
    invoke: Invoke,
    *,
    stream_arn: str = "",
    region: str = "us-east-1",
    batch_size: int = 100,
    max_retries: int = 3,
) -> int:
    """Hand ``records`` to the function in batches, as the event source mapping does;
    returns the number of records dropped after ``max_retries`` failed attempts."""
    dropped = 0
    start = 0
    attempts = 0
    while start < len(records):
        batch = records[start : start + batch_size]
        try:
            response = invoke(stream_event(batch, stream_arn, region)) or {}
            failures = response.get("batchItemFailures") or []
        except Exception:
            LOG.exception("stream batch failed")
            failures = [{"itemIdentifier": batch[0]["dynamodb"]["SequenceNumber"]}]
        if not failures:
            start += len(batch)
            attempts = 0
            continue
        attempts += 1
        failed = min(int(f["itemIdentifier"]) for f in failures)
        offsets = [int(r["dynamodb"]["SequenceNumber"]) for r in batch]
        at = offsets.index(failed) if failed in offsets else 0
        if attempts > max_retries:
            LOG.error("dropping %d stream records after %d attempts", len(batch) - at, attempts)
            dropped += len(batch) - at
            start += len(batch)
            attempts = 0
            continue
        start += at  # retry from the first failed record
    return dropped


def key_owner(record: Mapping[str, Any]) -> str:
    """Whom a stream record's item belongs to: its partition key's first two ``#`` fields
    (``F#acct-001#2026-10#03`` -> ``F#acct-001``... the account, whatever the kind)."""
    keys = record["dynamodb"].get("Keys") or {}
    value: Mapping[str, Any] = next(iter(keys.values()), {})
    pk = str(next(iter(value.values()), ""))
    return "#".join(pk.split("#")[1:2]) or pk


def partitioned(records: list[dict[str, Any]], lanes: int) -> list[list[dict[str, Any]]]:
    """``records`` in at most ``lanes`` lists: every record of one key owner in one list,
    in their order."""
    if lanes <= 1 or len(records) <= 1:
        return [records] if records else []
    lists: list[list[dict[str, Any]]] = [[] for _ in range(lanes)]
    for record in records:
        lists[zlib.crc32(key_owner(record).encode()) % lanes].append(record)
    return [one for one in lists if one]


class StreamPoller(PollingThread):
    """Polls one stream and delivers its records to a function, in a thread.

    Without ``gather_seconds``: every ``interval``, whatever is waiting, in invocations of
    ``batch_size`` records. With it (and a reader that counts what is waiting): records
    gather while they keep arriving, see the module's docstring."""

    def __init__(
        self,
        reader: Reader,
        invoke: Invoke,
        *,
        batch_size: int = 100,
        interval: float = 0.2,
        region: str = "us-east-1",
        gather_seconds: float = 0.0,
        quiet_seconds: float = 1.0,
        invocation_size: int | None = None,
        max_share: float = 1.0,
        backlog: Callable[[], int] | None = None,
        busy_seconds: float = 0.0,
        lanes: int = 1,
    ) -> None:
        super().__init__("stream-poller")
        self.reader = reader
        self.invoke = invoke
        self.batch_size = batch_size
        self.interval = interval
        self.region = region
        self.gather_seconds = gather_seconds
        self.quiet_seconds = quiet_seconds
        self.invocation_size = max(invocation_size or batch_size, 1)
        self.max_share = min(max(max_share, 0.01), 1.0)
        self.last_delivery = 0.0  # seconds the last delivery of a window took
        self.backlog = backlog  # messages the runtime's other pollers have yet to handle
        self.busy_seconds = busy_seconds
        self._busy_seen = (-1.0, False)  # (when, whether) the backlog was last looked at
        self.lanes = max(lanes, 1)  # invocations at once, each key owner's records in one

    def poll_once(self, limit: int | None = None) -> int:
        """Read up to ``limit`` records (at least a batch) and deliver them: the number
        delivered (the reader leaves out what the mapping's filter drops)."""
        self._busy.set()
        try:
            size = self.invocation_size if self.gather_seconds > 0 else self.batch_size
            records = self.reader.read(limit=limit or max(size, 1000))
            lists = partitioned(records, self.lanes)

            def one(part: list[dict[str, Any]]) -> int:
                return deliver(
                    part,
                    self.invoke,
                    stream_arn=self.reader.stream_arn,
                    region=self.region,
                    batch_size=size,
                )

            if len(lists) == 1:
                one(lists[0])
            elif lists:
                with concurrent.futures.ThreadPoolExecutor(len(lists)) as pool:
                    list(pool.map(one, lists))
            return len(records)
        finally:
            self._busy.clear()

    def drain(self) -> None:
        """Deliver until the stream has nothing new."""
        while self.poll_once():
            pass

    def ingest_busy(self) -> bool:
        """Whether the other pollers have messages left (looked at once a second at most:
        each look is a request the runtime answers)."""
        if self.backlog is None:
            return False
        now = time.monotonic()
        when, busy = self._busy_seen
        if now - when >= 1.0:
            try:
                busy = self.backlog() > 0
            except Exception:  # the window ends as without a backlog
                LOG.debug("backlog unknown", exc_info=True)
                busy = False
            self._busy_seen = (now, busy)
        return busy

    def gather(self) -> int:
        """Wait while records keep arriving (one within ``quiet_seconds``), at most
        ``gather_seconds`` (or long enough for the last delivery to have taken at most
        ``max_share`` of the window) and until ``invocation_size`` are waiting: how many
        are. While the other pollers have a backlog, the quiet and time limits wait too,
        up to ``busy_seconds`` from the window's start."""
        waiting = self.reader.pending()
        if not waiting:
            return 0
        started = changed = time.monotonic()
        limit = max(self.gather_seconds, self.last_delivery * (1 / self.max_share - 1))
        step = min(0.1, self.quiet_seconds / 4)
        while not self._stop.is_set():
            now = time.monotonic()
            if waiting >= self.invocation_size:
                break
            ended = now - started >= limit or now - changed >= self.quiet_seconds
            if ended and (now - started >= self.busy_seconds or not self.ingest_busy()):
                break  # (ingest still busy: more records are coming, the window goes on)
            self._stop.wait(step)
            count = self.reader.pending()
            if count != waiting:
                waiting, changed = count, time.monotonic()
        return waiting

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._stop.wait(self.interval)  # the batching window
                if self.gather_seconds > 0:
                    waiting = self.gather()
                    if waiting:  # what gathered, in one go (delivered in invocations)
                        started = time.monotonic()
                        self.poll_once(limit=waiting)
                        self.last_delivery = time.monotonic() - started
                    continue
                while self.poll_once() >= self.batch_size and not self._stop.is_set():
                    pass  # a full batch: the next one is ready too
            except Exception:  # keep polling, as the service does
                LOG.exception("stream poll failed")
                self._stop.wait(self.interval)
