"""The live view of usage: write and read units, CPU, cost, freshness, `billing usage` reads.

    python benchmarks/live.py            # measured 2,000 lines, model 100,000, usage 1k/10k facts
    python benchmarks/live.py --large    # the same with usage of 1k and 100k facts (~45 min)
    python benchmarks/live.py --measured-events 5000 --events 100000 --stream-batch 500
    python benchmarks/live.py --history-months 12   # one refresh: stored history vs saved state

The default takes about 3 minutes of CPU (5 to 8 minutes wall on 2 cores shared with
other jobs). Most of ``--large``'s time (~28 of ~45 minutes) is the 100k-fact account of
part 3 on moto: its first refresh and its recomputation read every fact through moto's
response serializer.

Three parts, each labelled in the output as **measured** or **computed**:

1. *Measured* (``--measured-events`` lines of the reference mix, in-process moto with the
   table's real stream, ``billing.local.fastpaths``): the real ``Ingestor`` takes SQS
   batches of ``--ingest-batch`` records in this thread while the local runtime's
   ``StreamPoller`` (``--poll-interval``, ``--stream-batch`` records per invocation, the
   event source mapping's filter on ``F#``/``E#``/``PLAN#``) hands the stream to the real
   ``LiveUsage.handle_stream`` in its own thread, as ``billing local start`` does. Every
   item sent is counted by DynamoDB's rule (1 WRU per started KB, conditional puts that
   fail included); every read the live function makes is counted from the responses
   (items, bytes; 1 RRU per started 4 KB per request strongly consistent, 0.5 eventually
   consistent, at least one unit per request). CPU is process time: moto runs in this
   process, so its work answering each function's requests is included (an upper bound).
   Freshness: from the end of the ingest call that stored a fact to the put of the first
   live item of its shard whose refresh started reading after that.
2. *Computed* (``--events`` lines, default 100,000): the same arrival order through the
   real ``Ingestor`` on an in-memory table (no moto: items, conditions, and a
   stream with AWS's rule that an identical rewrite writes no record), then a replay of
   the live function's reads: stream batches of ``--stream-batch`` filtered records,
   delivered once ``--stream-batch`` records are waiting (the batching window never fires
   first: the steady state under load), each refresh reading its shard's partitions as
   stored at that moment. Checked against the measured part with the same arrival order.
3. *`billing usage`* for one account of ``--sizes`` facts (default 1k and 10k; 1k and
   100k with ``--large``): the live view's Query (bytes, time) against the recomputation
   (``current_usage``), on moto; 1M is extrapolated from the two (said so in the output).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import threading
import time
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import accumulate
from typing import Any

from common import (
    DDB_READ_PER_MILLION,
    DDB_WRITE_PER_MILLION,
    KEY,
    LAMBDA_GB_SECOND,
    PLANS_DIR,
    REJECTS_BUCKET,
    create_table,
    machine,
    put_plans,
    sqs_event,
    write_kind,
)
from timings import MotoCpu

import billing.live
from billing.adapters.rejects import RejectStore
from billing.adapters.store import ShardKey, UsageStore, item_write_units, shard_of_item
from billing.domain.facts import HmacPseudonymizer
from billing.domain.periods import MS_PER_HOUR, Period
from billing.domain.settings import DEFAULT_SETTINGS
from billing.gen import generate_lines
from billing.gen.mix import account_names
from billing.ingest import Ingestor, metrics
from billing.live import LiveUsage
from billing.local import fastpaths
from billing.local.streams import MotoStreamReader, StreamPoller
from billing.queries import current_usage

SHARDS = 16
LAMBDA_MEMORY_MB = 1024  # infra/config.py: ingest and live functions
TARGET_WRU = 1.5
SIZES = "1000,10000"  # facts of the `billing usage` account, by default
LARGE_SIZES = "1000,100000"  # --large: ~28 of its ~45 minutes are the 100k-fact account
STREAM_PREFIXES = ("F#", "E#", "PLAN#")  # the live event source mapping's filter
KINDS = ("fact puts", "registry items", "late facts", "markers", "live items")
PAGE = 1024 * 1024  # a Query page
_METER_LOCK = threading.Lock()


# --- sizes and units ----------------------------------------------------------------------


def write_units(item: Mapping[str, Any]) -> int:
    """WRU of a put of ``item`` (``item_write_units``, a binary attribute counted by its
    length: ``item_write_units`` sizes ``bytes`` by their ``repr``)."""
    plain = {k: "x" * len(v) if isinstance(v, bytes | bytearray) else v for k, v in item.items()}
    return item_write_units(plain)


def _py_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | Decimal | float):
        return len(str(value)) // 2 + 1
    if isinstance(value, Mapping):
        return 3 + sum(len(str(k).encode()) + _py_size(v) + 1 for k, v in value.items())
    if isinstance(value, list | set | frozenset | tuple):
        return 3 + sum(_py_size(v) + 1 for v in value)
    return len(str(value))


def item_bytes(item: Mapping[str, Any]) -> int:
    """An item's size by DynamoDB's rule (attribute names + values), from Python values."""
    return sum(len(k.encode()) + _py_size(v) for k, v in item.items())


def _typed_size(value: Mapping[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind == "S":
        return len(str(v).encode())
    if kind == "N":
        return len(str(v)) // 2 + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _typed_size(x) + 1 for k, x in v.items())
    if kind == "L":
        return 3 + sum(_typed_size(x) + 1 for x in v)
    return 3 + sum(len(str(x)) + 1 for x in v)  # SS, NS, BS


def typed_bytes(item: Mapping[str, Any]) -> int:
    """The same size from the typed JSON of a response (``{"S": ...}``)."""
    return sum(len(k.encode()) + _typed_size(v) for k, v in item.items())


def read_units(nbytes: int, consistent: bool) -> float:
    """RRU of one read request returning ``nbytes``: per started 4 KB, at least 1."""
    units = max(1, math.ceil(nbytes / 4096))
    return units if consistent else units / 2


def partition_units(nbytes: int) -> int:
    """Strongly consistent RRU of a Query reading a whole partition of ``nbytes`` (one
    request per 1 MB page, each rounded up to 4 KB, at least one)."""
    pages = max(1, math.ceil(nbytes / PAGE))
    full = (pages - 1) * (PAGE // 4096)
    return full + max(1, math.ceil((nbytes - (pages - 1) * PAGE) / 4096))


def pctl(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


# --- metering on boto3's events -------------------------------------------------------------


def kind_of(item: Mapping[str, Any]) -> str:
    if str(item["pk"]).startswith("L#"):
        return "live items"
    return write_kind(item)


@dataclass
class Reads:
    requests: int = 0
    items: int = 0
    bytes: int = 0
    rru: float = 0.0  # as the code reads (its consistency)
    rru_strong: float = 0.0  # if every read were strongly consistent
    consistent: int = 0  # requests made strongly consistent

    def add(self, items: int, nbytes: int, consistent: bool) -> None:
        self.requests += 1
        self.items += items
        self.bytes += nbytes
        self.rru += read_units(nbytes, consistent)
        self.rru_strong += read_units(nbytes, True)
        self.consistent += consistent


@dataclass
class Meters:
    """Writes (items sent, by kind) and reads (responses, by who read and which
    partition kind), counted outside any timed section where possible."""

    live_thread: set[int] = field(default_factory=set)
    writes: Counter[str] = field(default_factory=Counter)  # units by kind
    write_items: Counter[str] = field(default_factory=Counter)
    live_puts: list[int] = field(default_factory=list)  # units of each live item put
    reads: dict[tuple[str, str], Reads] = field(default_factory=lambda: defaultdict(Reads))
    shards_written: list[tuple[str, int]] = field(default_factory=list)  # (pk, 1) this batch

    def attach(self, client: Any) -> None:
        events = client.meta.events
        events.register("provide-client-params.dynamodb.BatchWriteItem", self._batch)
        events.register("provide-client-params.dynamodb.PutItem", self._put)
        for op in ("Query", "GetItem", "BatchGetItem"):
            events.register(f"provide-client-params.dynamodb.{op}", self._read_params)
            events.register(f"after-call.dynamodb.{op}", self._read)

    def who(self) -> str:
        return "live" if threading.get_ident() in self.live_thread else "ingest"

    def _count(self, item: Mapping[str, Any]) -> None:
        with _METER_LOCK:  # the live function's threads
            self._count_locked(item)

    def _count_locked(self, item: Mapping[str, Any]) -> None:
        kind = kind_of(item)
        units = write_units(item)
        self.writes[kind] += units
        self.write_items[kind] += 1
        if kind == "live items":
            self.live_puts.append(units)
        elif str(item["pk"]).startswith(("F#", "E#")):
            self.shards_written.append((str(item["pk"]), 1))

    def _batch(self, params: Mapping[str, Any], **_: Any) -> None:
        for requests in params.get("RequestItems", {}).values():
            for r in requests:
                if "PutRequest" in r:
                    self._count(r["PutRequest"]["Item"])

    def _put(self, params: Mapping[str, Any], **_: Any) -> None:
        self._count(params["Item"])

    def _read_params(self, params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        # a BatchGetItem says it per table (the only one read here: the usage table)
        tables = params.get("RequestItems", {}).values()
        consistent = params.get("ConsistentRead") or any(t.get("ConsistentRead") for t in tables)
        context["bench_consistent"] = bool(consistent)

    def _read(
        self, parsed: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        consistent = bool(context.get("bench_consistent"))
        who = self.who()
        if model.name == "Query":
            items = parsed.get("Items", [])
            pk = str(items[0].get("pk", {}).get("S", "?")) if items else ""
            kind = pk.split("#", 1)[0] + "#" if pk else "(empty)"
            self.reads[(who, kind)].add(len(items), sum(typed_bytes(i) for i in items), consistent)
        elif model.name == "GetItem":
            item = parsed.get("Item")
            self.reads[(who, "GetItem")].add(int(bool(item)), typed_bytes(item or {}), consistent)
        else:
            for items in parsed.get("Responses", {}).values():
                for item in items:
                    self.reads[(who, "BatchGetItem")].add(1, typed_bytes(item), consistent)


# --- 1. measured: ingest + stream + live function on moto, in-process -----------------------


@dataclass
class Measured:
    lines: int
    accepted_by_account: Counter[str]
    ingest_cpu: float
    live_cpu: float
    ingest_moto: float  # of ingest_cpu, moto's answers (DynamoDB's and S3's work on AWS)
    live_moto: float  # of live_cpu
    ingest_invocations: int
    live_invocations: int
    live_records: int
    refreshes: int
    meters: Meters
    fresh_ms: list[float]
    wall: float
    converged: bool
    order: list[list[str]]  # the arrival order, as SQS batches of lines


def aws_table(ddb: Any, name: str, stream: bool) -> Any:
    table = create_table(ddb, name)
    if stream:
        table.meta.client.update_table(
            TableName=name,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
        )
    return table


def measured_run(args: argparse.Namespace) -> Measured:
    import boto3
    from moto import mock_aws

    lines = list(generate_lines(args.seed, args.measured_events, args.period))
    batches = [
        [line.text for line in lines[i : i + args.ingest_batch]]
        for i in range(0, len(lines), args.ingest_batch)
    ]
    accounts = account_names(50)
    with mock_aws(), MotoCpu() as moto:
        ddb = boto3.resource("dynamodb")
        table = aws_table(ddb, "usage", stream=True)
        arn = table.meta.client.describe_table(TableName="usage")["Table"]["LatestStreamArn"]
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=REJECTS_BUCKET)
        store = UsageStore(table, args.shards)
        put_plans(store, accounts)
        reader = MotoStreamReader(arn, STREAM_PREFIXES)
        while reader.read(10**6):  # the plans' records: no facts to refresh yet
            pass
        meters = Meters()
        meters.attach(table.meta.client)
        # strongly consistent reads, as functions/live builds its store
        live = LiveUsage(UsageStore(table, args.shards, consistent_reads=True))

        # when each refresh started reading, and when it stored its item
        started: dict[ShardKey, float] = {}
        puts: dict[str, list[tuple[float, float]]] = defaultdict(list)  # pk F# -> (read, put)
        original_now = getattr(billing.live, "shard_now")  # noqa: B009
        original_put = live.store.put_live_shard

        def timed_now(store_: UsageStore, key: ShardKey, *a: Any) -> Any:
            started[key] = time.time()
            return original_now(store_, key, *a)

        def timed_put(key: ShardKey, *a: Any, **kw: Any) -> bool:
            done = original_put(key, *a, **kw)
            read_at = started.pop(key, time.time())
            puts[f"{key.account}#{key.period}#{key.shard}"].append((read_at, time.time()))
            return done

        setattr(billing.live, "shard_now", timed_now)  # noqa: B010
        live.store.put_live_shard = timed_put  # type: ignore[method-assign]
        cpu = {"live": 0.0, "live_moto": 0.0, "invocations": 0, "records": 0}

        def invoke(event: dict[str, Any]) -> Any:
            meters.live_thread.add(threading.get_ident())
            start, moto_start = time.thread_time(), moto.of_thread()
            out = live.handle_stream(event["Records"])
            cpu["live"] += time.thread_time() - start
            cpu["live_moto"] += moto.of_thread() - moto_start
            cpu["invocations"] += 1
            cpu["records"] += len(event["Records"])
            return out

        poller = StreamPoller(
            reader, invoke, batch_size=args.stream_batch, interval=args.poll_interval
        )
        ingestor = Ingestor(store, RejectStore(s3, REJECTS_BUCKET), HmacPseudonymizer(KEY))
        stored: list[tuple[float, Counter[str]]] = []
        try:
            poller.start()
            wall = time.perf_counter()
            cpu0 = time.process_time()
            live0, live_moto0, moto0 = cpu["live"], cpu["live_moto"], moto.total()
            for i, batch in enumerate(batches):
                if args.rate:  # paced arrivals: lines per second
                    ahead = wall + i * args.ingest_batch / args.rate - time.perf_counter()
                    time.sleep(max(0.0, ahead))
                meters.shards_written.clear()
                ingestor.handle(sqs_event(batch, i * args.ingest_batch))
                metrics.clear_metrics()
                written = Counter(pk[2:] for pk, _ in meters.shards_written)
                stored.append((time.time(), written))
            ingest_cpu = time.process_time() - cpu0 - (cpu["live"] - live0)
            ingest_moto = moto.total() - moto0 - (cpu["live_moto"] - live_moto0)
            while reader.pending() or poller.busy:
                time.sleep(0.05)
            time.sleep(args.poll_interval * 2)
            while reader.pending() or poller.busy:
                time.sleep(0.05)
            wall = time.perf_counter() - wall
        finally:
            poller.stop()
            setattr(billing.live, "shard_now", original_now)  # noqa: B010
        fresh: list[float] = []
        for at, written in stored:
            for shard, n in written.items():
                later = [p for r, p in puts.get(shard, []) if r >= at]
                if later:
                    fresh.extend([(min(later) - at) * 1000] * n)
        meters_live = meters
        converged = all(
            live.view(a, args.period).usage.to_json()
            == current_usage(store, a, args.period).to_json()
            for a in sorted({line.account for line in lines if line.kind == "event"})
        )
        accepted = Counter(line.account for line in lines if line.kind == "event")
        return Measured(
            lines=len(lines),
            accepted_by_account=accepted,
            ingest_cpu=ingest_cpu,
            live_cpu=cpu["live"],
            ingest_moto=ingest_moto,
            live_moto=cpu["live_moto"],
            ingest_invocations=len(batches),
            live_invocations=int(cpu["invocations"]),
            live_records=int(cpu["records"]),
            refreshes=len(meters_live.live_puts),
            meters=meters_live,
            fresh_ms=fresh,
            wall=wall,
            converged=converged,
            order=batches,
        )


# --- 2. computed: the same arrival order on an in-memory table ------------------------------


def _conditional_failed() -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(  # type: ignore[no-any-return]
        {"Error": {"Code": "ConditionalCheckFailedException", "Message": "failed"}}, "PutItem"
    )


class MemoryTable:
    """The few table calls ingest makes, in memory, with their conditions; a stream of
    the keys of every new or changed item (no record for an identical rewrite, as AWS)."""

    name = "usage"

    def __init__(self) -> None:
        self.items: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.stream: list[tuple[str, str]] = []
        self.units: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.meta = self
        self.client = self
        self._lock = threading.Lock()  # the live function's threads

    def _store(self, item: dict[str, Any]) -> None:
        with self._lock:
            self._store_locked(item)

    def _store_locked(self, item: dict[str, Any]) -> None:
        kind = kind_of(item)
        self.units[kind] += write_units(item)
        self.counts[kind] += 1
        pk, sk = str(item["pk"]), str(item["sk"])
        if self.items[pk].get(sk) != item:
            self.items[pk][sk] = dict(item)
            self.stream.append((pk, sk))

    def batch_write_item(self, RequestItems: Mapping[str, Any]) -> dict[str, Any]:
        for requests in RequestItems.values():
            for r in requests:
                self._store(r["PutRequest"]["Item"])
        return {}

    def put_item(self, Item: dict[str, Any], **kw: Any) -> dict[str, Any]:
        cond = kw.get("ConditionExpression", "")
        seen = self.items[str(Item["pk"])].get(str(Item["sk"]))
        if cond and seen is not None:
            same = cond.startswith("attribute_not_exists(sk) OR (h = :h")
            ok = same and seen.get("h") == kw["ExpressionAttributeValues"][":h"] and "c" not in seen
            if not ok:
                kind = kind_of(Item)
                with self._lock:
                    self.units[kind] += write_units(Item)  # a failed condition costs its units
                    self.counts[kind] += 1
                raise _conditional_failed()
        self._store(Item)
        return {}

    def get_item(self, Key: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        item = self.items.get(str(Key["pk"]), {}).get(str(Key["sk"]))
        return {"Item": dict(item)} if item else {}

    def update_item(self, Key: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        self.items[str(Key["pk"])][str(Key["sk"])]["c"] = True  # the only update: a conflict
        return {}


class NoS3:
    def put_object(self, **_: Any) -> dict[str, Any]:
        return {}


@dataclass
class Model:
    events: int
    lines: int
    units: Counter[str]
    counts: Counter[str]
    batches: int
    records: int
    refreshes: int
    refreshes_by_account: Counter[str]
    read_items: Counter[str]  # by account
    read_bytes: Counter[str]
    read_rru: Counter[str]  # strongly consistent, fact partitions
    read_requests: int
    table: MemoryTable
    accepted_by_account: Counter[str]
    sizes: Counter[str]  # stored facts per account at the end


def memory_ingest(order: Iterator[list[str]], shards: int) -> tuple[MemoryTable, list[int]]:
    """Ingest batch after batch; the stream's length after each batch."""
    table = MemoryTable()
    ingestor = Ingestor(
        UsageStore(table, shards), RejectStore(NoS3(), REJECTS_BUCKET), HmacPseudonymizer(KEY)
    )
    marks = []
    for i, batch in enumerate(order):
        ingestor.handle(sqs_event(batch, i * len(batch)))
        metrics.clear_metrics()
        marks.append(len(table.stream))
    return table, marks


def replay(table: MemoryTable, marks: list[int], stream_batch: int, lookback_hours: int) -> Model:
    """The live function's reads, batch after batch, on the items stored at that moment."""
    position: dict[tuple[str, str], int] = {}  # (pk, sk) -> its place in the stream
    for n, stream_key in enumerate(table.stream):
        position.setdefault(stream_key, n)
    # every partition's items in the order they were stored, with their size and sk
    stored: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
    for pk, partition in table.items.items():
        if pk.startswith(("F#", "E#")):
            for sk, item in partition.items():
                stored[pk].append((position[(pk, sk)], sk, item_bytes(item)))
    for rows in stored.values():
        rows.sort()
    filtered = [(n, pk) for n, (pk, _) in enumerate(table.stream) if pk.startswith(STREAM_PREFIXES)]

    positions = {pk: [r[0] for r in rows] for pk, rows in stored.items()}
    prefix = {pk: list(accumulate((r[2] for r in rows), initial=0)) for pk, rows in stored.items()}

    def read(pk: str, upto: int, min_sk: str = "") -> tuple[int, int, int]:
        if min_sk:
            rows = [r for r in stored.get(pk, []) if r[0] < upto and r[1] >= min_sk]
            nbytes = sum(r[2] for r in rows)
            return len(rows), nbytes, partition_units(nbytes)
        count = bisect_left(positions.get(pk, []), upto)
        nbytes = prefix[pk][count] if pk in prefix else 0
        return count, nbytes, partition_units(nbytes)

    items: Counter[str] = Counter()
    nbytes: Counter[str] = Counter()
    rru: Counter[str] = Counter()
    by_account: Counter[str] = Counter()
    requests = refreshes = batches = 0
    pending: list[tuple[int, str]] = []
    cursor = 0
    for mark in [*marks, None]:
        limit = len(table.stream) if mark is None else mark
        while cursor < len(filtered) and filtered[cursor][0] < limit:
            pending.append(filtered[cursor])
            cursor += 1
        while len(pending) >= stream_batch or (mark is None and pending):
            batch, pending = pending[:stream_batch], pending[stream_batch:]
            batches += 1
            keys = {shard_of_item(pk) for _, pk in batch}
            named = [k for k in keys if k is not None]
            for key in sorted(named, key=lambda k: (k.account, k.period, k.shard)):
                p = Period.parse(key.period)
                since = f"{p.start_ms - lookback_hours * MS_PER_HOUR:013d}"
                reads = [
                    read(f"F#{key.account}#{key.period}#{key.shard}", limit),
                    read(f"F#{key.account}#{p.prev()}#{key.shard}", limit, since),
                    read(f"E#{key.account}#{key.period}#{key.shard}", limit),
                ]
                refreshes += 1
                by_account[key.account] += 1
                requests += len(reads)
                for n_items, n_bytes, units in reads:
                    items[key.account] += n_items
                    nbytes[key.account] += n_bytes
                    rru[key.account] += units
    sizes = Counter(
        pk.split("#")[1] for pk, rows in stored.items() if pk.startswith("F#") for _ in rows
    )
    return Model(
        events=0,
        lines=0,
        units=table.units,
        counts=table.counts,
        batches=batches,
        records=len(filtered),
        refreshes=refreshes,
        refreshes_by_account=by_account,
        read_items=items,
        read_bytes=nbytes,
        read_rru=rru,
        read_requests=requests,
        table=table,
        accepted_by_account=Counter(),
        sizes=sizes,
    )


def model_run(args: argparse.Namespace, n: int, batches: list[int]) -> dict[int, Model]:
    """Ingest ``n`` lines once on the in-memory table; replay for each stream batch size."""
    lines = list(generate_lines(args.seed, n, args.period))
    order = (
        [line.text for line in lines[i : i + args.ingest_batch]]
        for i in range(0, len(lines), args.ingest_batch)
    )
    table, marks = memory_ingest(order, args.shards)
    out = {}
    for batch in batches:
        model = replay(table, marks, batch, DEFAULT_SETTINGS.lookback_hours)
        model.lines = len(lines)
        model.events = sum(1 for line in lines if line.kind == "event")
        model.accepted_by_account = Counter(line.account for line in lines if line.kind == "event")
        out[batch] = model
    return out


# --- 3. `billing usage`: the live view against the recomputation ----------------------------


@dataclass
class UsageRead:
    facts: int
    live_items: int
    live_bytes: int
    live_rru: float
    live_ms: float
    recompute_items: int
    recompute_bytes: int
    recompute_rru: float
    recompute_ms: float
    refresh_ms: float
    refresh_cpu: float
    refresh_moto: float  # of refresh_cpu, moto's answers


def usage_read(args: argparse.Namespace, facts: int) -> UsageRead:
    """One account of about ``facts`` stored facts (the largest account of a mix sized
    for it), written straight to moto, then read both ways."""
    import boto3
    from moto import mock_aws

    account = account_names(50)[0]
    size = max(100, round(facts / 0.4 / 0.979))  # acct-001 has 40% of the clean events
    lines = [t for t in generate_lines(args.seed, size, args.period, only=account)]
    order = (
        [line.text for line in lines[i : i + args.ingest_batch]]
        for i in range(0, len(lines), args.ingest_batch)
    )
    memory, _ = memory_ingest(order, args.shards)
    with mock_aws(), MotoCpu() as moto:
        ddb = boto3.resource("dynamodb")
        table = aws_table(ddb, f"usage{facts}", stream=False)
        store = UsageStore(table, args.shards)
        put_plans(store, [account])
        rows = [dict(i) for part in memory.items.values() for i in part.values()]
        for start in range(0, len(rows), 25):
            chunk = [{"PutRequest": {"Item": i}} for i in rows[start : start + 25]]
            table.meta.client.batch_write_item(RequestItems={table.name: chunk})
        stored = sum(1 for pk, part in memory.items.items() if pk.startswith("F#") for _ in part)
        meters = Meters()
        meters.attach(table.meta.client)
        live = LiveUsage(store)
        t0, c0, m0 = time.perf_counter(), time.process_time(), moto.of_thread()
        live.refresh_account(account, [args.period])
        refresh_ms = (time.perf_counter() - t0) * 1000
        refresh_cpu = time.process_time() - c0
        refresh_moto = moto.of_thread() - m0
        meters.reads.clear()
        t0 = time.perf_counter()
        view = live.view(account, args.period)
        live_ms = (time.perf_counter() - t0) * 1000
        live_reads = meters.reads[("ingest", "L#")]
        meters.reads.clear()
        t0 = time.perf_counter()
        recomputed = current_usage(store, account, args.period)
        recompute_ms = (time.perf_counter() - t0) * 1000
        total = Reads()
        for r in meters.reads.values():
            total.requests += r.requests
            total.items += r.items
            total.bytes += r.bytes
            total.rru += r.rru
        assert view.usage.to_json() == recomputed.to_json(), "live view != recomputation"
        return UsageRead(
            facts=stored,
            live_items=live_reads.items,
            live_bytes=live_reads.bytes,
            live_rru=live_reads.rru,
            live_ms=live_ms,
            recompute_items=total.items,
            recompute_bytes=total.bytes,
            recompute_rru=total.rru,
            recompute_ms=recompute_ms,
            refresh_ms=refresh_ms,
            refresh_cpu=refresh_cpu,
            refresh_moto=refresh_moto,
        )


# --- 4. one refresh of an account with months of history (--history-months) ---------------


@dataclass
class HistoryRefresh:
    how: str
    refreshes: int  # shard refreshes (every storage shard of the current period)
    requests: int  # DynamoDB requests
    lifecycle_queries: int  # of them, Queries of lifecycle (E#) partitions
    items: int
    rru: float  # strongly consistent, as the live function reads
    s3_requests: int
    ms: float


def history_lines(account: str, months: list[Period]) -> list[str]:
    """Numbers (6 a month, each released 3 months later), seats (2 a month, one given
    back), recordings (8 a month: start, stop, stored) and 40 SMS a month."""
    import json
    from datetime import UTC, datetime, timedelta

    def line(kind: str, when: datetime, eid: str, **data: Any) -> str:
        return json.dumps(
            {
                "specversion": "1.0",
                "id": eid,
                "source": "bench/history",
                "type": f"cpaas.usage.{kind}.v1",
                "subject": account,
                "time": when.isoformat(),
                "data": data,
            }
        )

    out = []
    for m, p in enumerate(months):
        day = datetime(p.year, p.month, 1, tzinfo=UTC)
        for i in range(6):
            num = f"+3310{m:03d}{i:04d}"
            out.append(
                line(
                    "number.provisioned",
                    day + timedelta(days=1 + i),
                    f"n{m}-{i}",
                    number=num,
                    number_type="long",
                    country="FR",
                )
            )
            if m >= 3:
                old = f"+3310{m - 3:03d}{i:04d}"
                out.append(
                    line("number.released", day + timedelta(days=10 + i), f"x{m}-{i}", number=old)
                )
        for i in range(2):
            out.append(
                line(
                    "named_user.provisioned",
                    day + timedelta(days=2, hours=i),
                    f"s{m}-{i}",
                    user_id=f"agent-{m}-{i}",
                )
            )
        if m:
            out.append(
                line(
                    "named_user.deprovisioned",
                    day + timedelta(days=3),
                    f"u{m}",
                    user_id=f"agent-{m - 1}-0",
                )
            )
        for i in range(8):
            rid, at = f"r{m}-{i}", day + timedelta(days=4 + i, hours=9)
            out.append(line("recording.started", at, f"a{rid}", recording_id=rid, call_id=rid))
            out.append(
                line(
                    "recording.stopped",
                    at + timedelta(minutes=20),
                    f"b{rid}",
                    recording_id=rid,
                    call_id=rid,
                )
            )
            out.append(
                line(
                    "recording.stored",
                    at + timedelta(minutes=21),
                    f"c{rid}",
                    recording_id=rid,
                    size_bytes=10**7,
                    duration_seconds="1200",
                )
            )
        for i in range(40):
            out.append(
                line(
                    "message.outbound",
                    day + timedelta(days=i % 27, minutes=i),
                    f"m{m}-{i}",
                    message_id=f"m{m}-{i}",
                    channel="sms",
                    status="submitted",
                    end_user=f"+336{i:08d}",
                    country="FR",
                )
            )
    return out


def history_refresh(args: argparse.Namespace) -> list[HistoryRefresh]:
    """An account with ``--history-months`` closed months before ``--period`` (each closed
    by the close's own code, which saves the entity state), then one refresh of every
    storage shard of ``--period``: from the stored history (as before) and from the saved
    state, reads counted from the responses."""
    from datetime import UTC, datetime

    import boto3
    from moto import mock_aws

    from billing.adapters.invoices import DocumentStore
    from billing.adapters.state import StateStore
    from billing.close import MonthClose
    from billing.domain.plan import load_plan

    account = "acct-history"
    current = Period.parse(args.period)
    months = [current]
    for _ in range(args.history_months):
        months.insert(0, months[0].prev())
    by_month: dict[str, list[str]] = defaultdict(list)
    for text in history_lines(account, months):
        by_month[text.split('"time": "', 1)[1][:7]].append(text)
    far = datetime(2100, 1, 1, tzinfo=UTC)
    with mock_aws():
        ddb = boto3.resource("dynamodb")
        table = aws_table(ddb, "usage", stream=False)
        s3 = boto3.client("s3")
        for bucket in (REJECTS_BUCKET, "invoices"):
            s3.create_bucket(Bucket=bucket)
        boto3.client("events").create_event_bus(Name="bus")
        store = UsageStore(table, args.shards, consistent_reads=True)
        plan = load_plan(PLANS_DIR / "contact-centre.yaml")
        utc = plan.settings.model_copy(update={"time_zone": "UTC"})
        plan = plan.model_copy(update={"account": account, "settings": utc})
        doc = plan.model_dump(mode="json") | {"effective_from": str(months[0])}
        store.put_plan(account, str(months[0]), doc)
        ingestor = Ingestor(
            store, RejectStore(s3, REJECTS_BUCKET), HmacPseudonymizer(KEY), wall_clock=lambda: far
        )
        documents = DocumentStore(s3, "invoices")
        close = MonthClose(store, documents, boto3.client("events"), "bus", 0)
        for n, p in enumerate(months):
            lines = by_month[str(p)]
            for i in range(0, len(lines), 25):
                ingestor.handle(sqs_event(lines[i : i + 25], n * 10_000 + i))
            if p < current:
                close.freeze(str(p), settle=0, force=True)
                for unit in close.plan_account(str(p), account).units:
                    close.compute_unit(unit)
                close.rate_account(str(p), account)
                close.finish(str(p))
        metrics.clear_metrics()
        meters = Meters()
        meters.attach(table.meta.client)
        s3_calls: Counter[str] = Counter()
        s3.meta.events.register("after-call.s3", lambda model, **_: s3_calls.update([model.name]))
        keys = [ShardKey(account, str(current), f"{n:02d}") for n in range(args.shards)]
        clock = Period.parse(str(current)).start.timestamp() + 86_400 * 20
        lifecycle_reads = [0]
        read_lifecycle = store.read_lifecycle

        def counted(*a: Any) -> Any:
            lifecycle_reads[0] += 1
            return read_lifecycle(*a)

        store.read_lifecycle = counted  # type: ignore[method-assign,assignment]
        out = []
        expected = current_usage(store, account, str(current))
        cached = StateStore(documents, cache=4096)  # as the live function keeps them
        for how, states in (
            ("stored history", None),
            ("saved state", cached),
            ("  (state cached)", cached),
        ):
            live = LiveUsage(store, clock=lambda: clock, states=states)
            meters.reads.clear()
            s3_calls.clear()
            lifecycle_reads[0] = 0
            t0 = time.perf_counter()
            live.refresh(keys, forced=True)
            ms = (time.perf_counter() - t0) * 1000
            assert live.view(account, str(current)).usage.to_json() == expected.to_json(), how
            reads = list(meters.reads.items())
            out.append(
                HistoryRefresh(
                    how=how,
                    refreshes=len(keys),
                    requests=sum(r.requests for _, r in reads),
                    lifecycle_queries=lifecycle_reads[0],
                    items=sum(r.items for _, r in reads),
                    rru=sum(r.rru_strong for _, r in reads),
                    s3_requests=sum(s3_calls.values()),
                    ms=ms,
                )
            )
        return out


def history_report(args: argparse.Namespace) -> None:
    print(*machine(), sep="\n")
    print(f"command       {' '.join(sys.argv)}")
    print(
        f"parameters    {args.history_months} closed months before {args.period}, "
        f"SHARDS={args.shards}; one refresh of every shard of {args.period}"
    )
    print("measured (moto, reads counted from the responses; RRU strongly consistent)")
    print(
        f"{'refresh from':<16} {'DDB requests':>12} {'E# queries':>10} {'items':>7} "
        f"{'RRU':>7} {'S3 requests':>11} {'per shard: requests':>19} {'RRU':>6} {'ms':>6}"
    )
    for r in history_refresh(args):
        per = max(r.refreshes, 1)
        print(
            f"{r.how:<16} {r.requests:>12} {r.lifecycle_queries:>10} {r.items:>7} "
            f"{r.rru:>7.1f} {r.s3_requests:>11} {(r.requests + r.s3_requests) / per:>19.1f} "
            f"{r.rru / per:>6.1f} {r.ms / per:>6.1f}"
        )


# --- report ---------------------------------------------------------------------------------


def lambda_usd(cpu_s: float, events: int) -> float:
    """Lambda duration per million events at 1,024 MB, billed time = handler CPU."""
    return cpu_s / events * 1e6 * (LAMBDA_MEMORY_MB / 1024) * LAMBDA_GB_SECOND


def report(args: argparse.Namespace) -> None:
    def out(*parts: Any, sep: str = " ") -> None:
        print(*parts, sep=sep, flush=True)

    out(*machine(), sep="\n")
    out(f"command       {' '.join(sys.argv)}")
    out(
        f"parameters    seed {args.seed}, period {args.period}, SHARDS={args.shards}, ingest batch "
        f"{args.ingest_batch}, stream batch {args.stream_batch} records, measured "
        f"{args.measured_events:,} lines at {args.rate or 'full'} lines/s, computed "
        f"{args.events:,} lines, poll interval "
        f"{args.poll_interval} s, usage sizes {args.sizes}"
    )

    started, cpu_started = time.perf_counter(), time.process_time()

    # --- 1. measured
    fastpaths.install()
    t0 = time.perf_counter()
    m = measured_run(args)
    ev = sum(m.accepted_by_account.values())
    mw = m.meters.writes
    out("")
    out(
        f"== MEASURED: {m.lines:,} lines ({ev:,} events), ingest + stream + live function, "
        f"in-process moto ({time.perf_counter() - t0:.0f} s)"
    )
    out(
        f"ingest        {m.ingest_invocations:,} invocations; live: {m.live_invocations:,} "
        f"invocations, {m.live_records:,} stream records, {m.refreshes:,} shard refreshes "
        f"({m.refreshes / max(m.live_invocations, 1):.1f} per invocation)"
    )
    total = sum(mw.values())
    out(f"write units   {total:,} = {total / m.lines:.3f} per line (target <= {TARGET_WRU})")
    for kind in KINDS:
        out(
            f"  {kind:14s} {m.meters.write_items[kind]:>8,} items {mw[kind]:>8,} WRU "
            f"{mw[kind] / m.lines:.4f} per line"
        )
    if mw["other"]:
        out(f"  {'other':14s} {mw['other']:>8,} WRU")
    live_put = statistics.fmean(m.meters.live_puts) if m.meters.live_puts else 0.0
    out(
        f"live item     {live_put:.2f} WRU per put on average "
        f"(max {max(m.meters.live_puts, default=0)})"
    )
    out("reads of the live function (by partition kind of the items returned):")
    live_reads = {k: r for (who, k), r in sorted(m.meters.reads.items()) if who == "live"}
    lr = Reads()
    for kind, r in live_reads.items():
        out(
            f"  {kind:12s} {r.requests:>7,} requests {r.items:>9,} items {r.bytes:>12,} B "
            f"{r.rru:>9,.1f} RRU as read ({r.consistent:,} strongly consistent) "
            f"{r.rru_strong:>9,.1f} RRU if all strongly consistent"
        )
        for attr in ("requests", "items", "bytes", "rru", "rru_strong"):
            setattr(lr, attr, getattr(lr, attr) + getattr(r, attr))
    fact_reads = [r for k, r in live_reads.items() if k in ("F#", "E#")]
    other_strong = lr.rru_strong - sum(r.rru_strong for r in fact_reads)
    out(
        f"  total        {lr.requests:>7,} requests {lr.items:>9,} items {lr.bytes:>12,} B "
        f"{lr.rru:>9,.1f} RRU as read, {lr.rru_strong:,.1f} strongly consistent = "
        f"{lr.rru_strong / m.lines:.3f} RRU per line"
    )
    ingest_ms = m.ingest_cpu / m.lines * 1000
    live_ms = m.live_cpu / m.lines * 1000
    out(
        f"handler CPU   ingest {m.ingest_cpu:.1f} s = {ingest_ms:.3f} ms/line; "
        f"live {m.live_cpu:.1f} s "
        f"= {live_ms:.3f} ms/line ({m.live_cpu / max(m.refreshes, 1) * 1000:.1f} ms per shard "
        "refresh)  [process CPU, in-process moto's work included: upper bounds]"
    )
    ingest_own, live_own = m.ingest_cpu - m.ingest_moto, m.live_cpu - m.live_moto
    out(
        f"  without moto  ingest {ingest_own:.1f} s = {ingest_own / m.lines * 1000:.3f} ms/line; "
        f"live {live_own:.1f} s = {live_own / m.lines * 1000:.3f} ms/line "
        f"({live_own / max(m.refreshes, 1) * 1000:.1f} ms per shard refresh)  [moto's answers "
        f"took {m.ingest_moto:.1f} s and {m.live_moto:.1f} s: DynamoDB's work on AWS, which "
        "Lambda does not bill]"
    )
    out(
        "freshness     fact stored -> live item including it: "
        f"p50 {pctl(m.fresh_ms, 0.5):,.0f} ms, "
        f"p95 {pctl(m.fresh_ms, 0.95):,.0f} ms, max {max(m.fresh_ms, default=0):,.0f} ms over "
        f"{len(m.fresh_ms):,} facts (local StreamPoller, poll interval {args.poll_interval} s, "
        f"{args.stream_batch} records per invocation, loaded machine)"
    )
    out(f"converged     live view == current_usage for every account: {m.converged}")
    out(f"wall          {m.wall:.1f} s")

    # --- model check against the measured run, then the full run
    t0 = time.perf_counter()
    check = model_run(args, args.measured_events, [args.stream_batch])[args.stream_batch]
    fact_items_measured = sum(r.items for r in fact_reads)
    out(
        f"model check   the replay of the same {m.lines:,} lines: {check.refreshes:,} refreshes, "
        f"{sum(check.read_items.values()):,} fact items read, "
        f"{sum(check.read_bytes.values()):,} B "
        f"(measured: {m.refreshes:,} refreshes, {fact_items_measured:,} items, "
        f"{sum(r.bytes for r in fact_reads):,} B; the local poller's batches follow "
        f"the ingest's pace, not full {args.stream_batch}-record batches; moto also streams "
        f"identical rewrites) ({time.perf_counter() - t0:.0f} s)"
    )

    out("")
    results = [usage_read(args, int(size)) for size in args.sizes.split(",")]
    other_per_refresh = other_strong / max(m.refreshes, 1)
    t0 = time.perf_counter()
    models = model_run(args, args.events, sorted({args.stream_batch, *args.compare_batches}))
    for batch, c in models.items():
        n = c.lines
        live_units = c.refreshes * live_put
        units = sum(c.units.values()) + live_units
        out(
            f"== COMPUTED: {n:,} lines ({c.events:,} events), stream batch {batch}: real Ingestor "
            f"on an in-memory table, replay of the refresh reads ({time.perf_counter() - t0:.0f} s)"
        )
        out(
            f"stream        {c.records:,} filtered records, {c.batches:,} live invocations, "
            f"{c.refreshes:,} shard refreshes "
            f"({c.refreshes / max(c.batches, 1):.0f} per invocation)"
        )
        out(
            f"write units   {units:,.0f} = {units / n:.3f} per line, target <= {TARGET_WRU}: "
            f"{'met' if units / n <= TARGET_WRU else 'NOT met'}"
        )
        for kind in KINDS:
            value = live_units if kind == "live items" else c.units[kind]
            count = c.refreshes if kind == "live items" else c.counts[kind]
            note = (
                f" (refreshes x {live_put:.2f} WRU measured per put)"
                if kind == "live items"
                else ""
            )
            out(
                f"  {kind:14s} {count:>9,} items {value:>10,.0f} WRU {value / n:.4f} per line{note}"
            )
        fact_rru = sum(c.read_rru.values())
        other = c.refreshes * other_per_refresh
        rru = fact_rru + other
        out(
            f"read units    refreshes read {sum(c.read_items.values()):,} fact items, "
            f"{sum(c.read_bytes.values()) / 1e6:,.1f} MB: {fact_rru:,.0f} RRU strongly consistent "
            f"+ {other:,.0f} RRU of other reads ({other_per_refresh:.2f} per refresh, measured) = "
            f"{rru / n:.2f} RRU per line ({rru / 2 / n:.2f} eventually consistent)"
        )
        out("  per account (events, stored facts, refreshes, items read per event, RRU per event):")
        ranked = c.accepted_by_account.most_common()
        picks = [ranked[0], ranked[1], ranked[len(ranked) // 2], ranked[-1]]
        for account, events in picks:
            out(
                f"  {account}  {events:>7,} events {c.sizes[account]:>7,} facts "
                f"{c.refreshes_by_account[account]:>6,} refreshes "
                f"{c.read_items[account] / events:>8.1f} items/event "
                f"{c.read_rru[account] / events:>7.2f} RRU/event"
            )
        if batch == args.stream_batch:
            ddb_w = units / n * 1e6 * DDB_WRITE_PER_MILLION / 1e6
            ddb_r = rru / n * 1e6 * DDB_READ_PER_MILLION / 1e6
            # Lambda bills the function's own CPU: moto's answers (DynamoDB's work) excluded
            ingest_own = m.ingest_cpu - m.ingest_moto
            lam_i = lambda_usd(ingest_own, m.lines)
            ingest_ms = ingest_own / m.lines * 1000
            big = results[-1]
            # a refresh of large shards: per fact read
            per_item = (big.refresh_cpu - big.refresh_moto) / max(big.facts, 1)
            # small shards: fixed costs
            per_refresh = (m.live_cpu - m.live_moto) / max(m.refreshes, 1)
            live_cpu = per_refresh * c.refreshes + per_item * sum(c.read_items.values())
            lam_l = lambda_usd(live_cpu, n)
            out(
                "cost per million lines, us-east-1 on-demand (WRU $0.625/M, RRU $0.125/M, Lambda "
                "$0.0000166667 per GB-s at 1,024 MB, billed time = measured CPU of the "
                "functions, without moto's answers):"
            )
            out(f"  DynamoDB writes  {units / n:.3f} WRU/line                     ${ddb_w:.4f}")
            out(f"  DynamoDB reads   {rru / n:.2f} RRU/line (live refreshes)      ${ddb_r:.4f}")
            out(f"  Lambda ingest    {ingest_ms:.3f} ms/line (measured)           ${lam_i:.4f}")
            out(
                f"  Lambda live      {live_cpu / n * 1000:.3f} ms/line = "
                f"refreshes x {per_refresh * 1000:.1f} ms "
                f"(measured run) + items read x {per_item * 1e6:.0f} us (refresh of the "
                f"{big.facts:,}-fact account)  ${lam_l:.4f}"
            )
            out(
                f"  total            ${ddb_w + ddb_r + lam_i + lam_l:.4f} "
                "(without SQS, requests, S3: "
                "section 1)"
            )
        out("")

    # --- 3. billing usage
    out(
        "== `billing usage` of one account: the live view's Query against the recomputation "
        "(moto in-process, times include moto)"
    )
    for u in results:
        out(
            f"  {u.facts:>9,} facts  live view: {u.live_items} items {u.live_bytes:,} B "
            f"{u.live_rru:g} RRU {u.live_ms:,.1f} ms   recompute: {u.recompute_items:,} items "
            f"{u.recompute_bytes / 1e6:,.2f} MB {u.recompute_rru:,.1f} RRU "
            f"{u.recompute_ms / 1000:,.2f} s  "
            f"(first refresh of all shards {u.refresh_ms / 1000:,.2f} s, CPU "
            f"{u.refresh_cpu:,.2f} s of which moto {u.refresh_moto:,.2f} s)"
        )
    big = results[-1]
    scale = 1_000_000 / big.facts
    small = results[0] if len(results) > 1 else None
    slope = (
        (big.live_bytes - small.live_bytes) / (big.facts - small.facts)
        if small is not None and big.facts != small.facts
        else 0.0
    )
    live_1m = big.live_bytes + slope * (1_000_000 - big.facts)
    out(
        f"  1,000,000 facts  live view: {args.shards} items, ~{live_1m:,.0f} B, "
        f"~{max(1, math.ceil(live_1m / 4096)):,} RRU (EXTRAPOLATED linearly in the facts from "
        f"the two sizes measured: the shard items grow with the usage document, "
        f"~{live_1m / args.shards / 1024:,.0f} KB each; DynamoDB's item limit is 400 KB)   "
        f"recompute: ~{big.recompute_rru * scale:,.0f} RRU "
        f"~{big.recompute_ms * scale / 1000:,.0f} s (EXTRAPOLATED linearly from {big.facts:,})"
    )
    out("")
    out(
        f"run           {time.perf_counter() - started:,.0f} s wall, "
        f"{time.process_time() - cpu_started:,.0f} s CPU (this process, all threads)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="lines of the computed run")
    parser.add_argument("--measured-events", type=int, default=2_000, help="lines measured on moto")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--period", default="2026-10")
    parser.add_argument("--shards", type=int, default=SHARDS)
    parser.add_argument("--ingest-batch", type=int, default=100, help="SQS records per invocation")
    parser.add_argument(
        "--stream-batch", type=int, default=500, help="stream records per invocation"
    )
    parser.add_argument(
        "--compare-batches", default="100,2000", help="other stream batch sizes (computed only)"
    )
    parser.add_argument(
        "--rate", type=float, default=0.0, help="measured: lines per second (0: at once)"
    )
    parser.add_argument("--poll-interval", type=float, default=0.2, help="local poller, seconds")
    parser.add_argument(
        "--sizes", default=None, help=f"facts of the `billing usage` account ({SIZES})"
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help=f"`billing usage` of {LARGE_SIZES} facts unless --sizes is given (~45 min)",
    )
    parser.add_argument(
        "--history-months",
        type=int,
        default=None,
        help="only: one refresh of an account with this many closed months before --period, "
        "from its stored history and from the saved state",
    )
    args = parser.parse_args(argv)
    if args.history_months is not None:
        history_report(args)
        return 0
    args.sizes = args.sizes or (LARGE_SIZES if args.large else SIZES)
    args.compare_batches = [int(b) for b in args.compare_batches.split(",") if b]
    report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
