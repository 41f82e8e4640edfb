"""The whole cost per million events over the fact log's retention, storage included.

For the reference mix (``billing.gen``: 50 accounts a month), every event is turned into
the item ingest stores (``fact_item``), the archive parts the close writes
(``encode_part``, one per account and storage shard) and the close's id files
(``billing.adapters.ids``: one gzip JSON-lines object per unit and id bucket that has
ids), and their sizes are measured: DynamoDB's item size (attribute names and values)
plus its 100 bytes of overhead per stored item; the gzip bytes of each part and id file.
Nothing runs against AWS or moto: sizes are exact, durations are the settings'.

Printed per million events, over the whole retention (400 days after the period):

- ingest: the figure ``benchmarks/ingest.py`` measured (docs/benchmarks.md, section 1a);
- live view: the figure ``benchmarks/live.py`` measured (docs/benchmarks.md, section 7:
  its live items' writes, its refreshes' reads and its Lambda time at stream batch 500),
  its DynamoDB requests priced in each design's table class;
- close reads: the close's Query of every fact once (eventually consistent, 0.5 RRU per
  4 KB), its archive requests (a conditional PUT per part and per account's manifest);
- id audit: the close's id files (a PUT per unit and id bucket that has ids; one unit
  per account below ``UNIT_FACTS``), the audit's requests (PlanAudit lists the window,
  then each AuditIds task, ``audit_tasks`` of them, lists and reads its buckets' objects
  and the shared ones of the period closed and of the ``AUDIT_PERIODS`` =
  ``max_late_periods`` + 1 periods before it, so every object is read ``AUDIT_PERIODS``
  + 1 times by each task that reads it; the same object count assumed for every period) and
  the files' storage in S3 Standard until their lifecycle expiry (31 x
  (``max_late_periods`` + 3) days, ``infra/storage.py``); no conflict markers (none on
  the reference mix);
- audit memory: the Python heap per id of an AuditIds task (tracemalloc), and what one
  bucket's window would take at 100M events a month;
- expiry guard: every item's TTL deletion reaches ``ExpiryFunction`` (``billing.expiry``)
  through the table's stream: its invocations (batches of 1,000) and duration at 512 MB
  (its CPU per deletion measured here on the mix's items, all archived), a GET per part;
- hot storage: the fact items, from their write to their expiry;
- archive storage: the parts in S3 Intelligent-Tiering until their lifecycle expiry;

for four designs: everything kept 400 days in DynamoDB Standard (before), the same in the
Standard-IA table class, Standard + the S3 archive (this design, ``HOT_MONTHS`` by
default its least value), Standard-IA + archive; then the archived design for 1 to 4 hot
months.

    .venv/bin/python benchmarks/storage.py --events 200000 --seed 1
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from boto3.dynamodb.types import TypeSerializer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import KEY, machine

from billing.adapters.archive import FactArchive, decode_part, encode_part, part_key
from billing.adapters.ids import (
    ID_BUCKETS,
    ROWS_PER_PASS,
    SHARED_ROWS,
    IdRow,
    audit_tasks,
    bucket_of,
    conflicts,
)
from billing.adapters.store import StoredFact, UsageStore, _size, fact_item, fact_of_item
from billing.domain.events import parse_event
from billing.domain.facts import HmacPseudonymizer, to_fact
from billing.domain.lateness import DEFAULT_MAX_LATE_PERIODS
from billing.domain.retention import (
    ARCHIVE_RETENTION_DAYS,
    HOT_MONTHS_FLOOR,
    TTL_MARGIN_DAYS,
)
from billing.expiry import ARCHIVED, TTL_PRINCIPAL, ExpiryGuard
from billing.gen import generate

# --- list prices, us-east-1 (USD) --------------------------------------------------------
DDB_GB_MONTH = {"Standard": 0.25, "Standard-IA": 0.10}
DDB_WRITE_FACTOR = {"Standard": 1.0, "Standard-IA": 1.25}  # IA: $0.78 vs $0.625 per M WRU
DDB_READ_PER_MILLION = {"Standard": 0.125, "Standard-IA": 0.156}
DDB_ITEM_OVERHEAD = 100  # bytes DynamoDB adds to every stored item
S3_PUT_PER_THOUSAND = 0.005  # Intelligent-Tiering and Standard
S3_GET_PER_THOUSAND = 0.0004  # GET, HEAD
S3_LIST_PER_THOUSAND = 0.005
IT_FREQUENT, IT_INFREQUENT, IT_ARCHIVE_INSTANT = 0.023, 0.0125, 0.004  # per GB-month
IT_MONITORING_PER_THOUSAND = 0.0025  # per object-month, objects >= 128 KB only
IT_MIN_MONITORED = 128 * 1024
S3_STANDARD_GB_MONTH = 0.023  # the id files (ids/ in the invoice bucket)
S3_LIST_PAGE = 1000  # keys per ListObjectsV2 page

# --- the live view measured by benchmarks/live.py (docs/benchmarks.md, 7), stream batch 500 --
# per million lines of the mix (97,900 events per 100,000 lines): live items' writes
# (0.3016 WRU), refreshes' reads (6.12 RRU), the live function's CPU (6.426 ms)
LIVE_WRITES, LIVE_READS, LIVE_LAMBDA = 0.1885, 0.7646, 0.1071
EVENTS_PER_LINE = 97_900 / 100_000

# --- the ingest figure measured by benchmarks/ingest.py (docs/benchmarks.md, 1a) -----------
INGEST_TOTAL = 0.7538  # per million events, of which DynamoDB writes:
INGEST_WRITES = 0.6151

DAYS_PER_MONTH = 365.25 / 12
PERIOD = "2026-10"  # the reference mix's period (billing.gen)

# --- the expiry guard (infra/expiry.py): Lambda, 512 MB, batches of 1,000 TTL deletions -----
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1_000_000
GUARD_MEMORY_GB = 0.5
GUARD_BATCH = 1000
GUARD_SAMPLE = 50_000  # TTL deletions the guard's CPU is measured on


def audit_periods(max_late_periods: int) -> int:
    """The periods before the one closed whose ids the audit compares with
    (``billing.adapters.ids.AUDIT_PERIODS``): the lateness bound + 1."""
    return max_late_periods + 1


GB = 1024**3


def item_bytes(item: Mapping[str, Any]) -> int:
    """DynamoDB's stored size of an item: names and values, plus the per-item overhead."""
    return sum(len(k.encode()) + _size(v) for k, v in item.items()) + DDB_ITEM_OVERHEAD


@dataclass
class Measured:
    events: int
    accounts: int
    facts: int
    fact_bytes: int  # stored size of the fact items
    parts: list[int]  # gzip bytes of each archive part
    id_file_keys: list[tuple[str, int | None]]  # account and id bucket (None: shared)
    id_files: list[int]  # gzip bytes of each id file (one unit per account)
    id_bodies: list[bytes]  # the id files
    id_rows: int  # ids written to them
    id_json_bytes: int  # their JSON lines, uncompressed
    guard_ms: float = 0.0  # the expiry guard's CPU per expired item (``guard_cpu``)

    def per_million(self, value: float) -> float:
        return value * 1_000_000 / self.events


def measure(seed: int, events: int, shards: int) -> Measured:
    pseudonymize = HmacPseudonymizer(KEY)
    items: dict[tuple[str, str], dict[str, Any]] = {}
    stored: dict[tuple[str, str], list[StoredFact]] = defaultdict(list)
    lifecycle: dict[tuple[str, str], list[StoredFact]] = defaultdict(list)
    accounts: set[str] = set()
    counted = 0
    for raw in generate(seed, events):
        try:
            event = parse_event(raw)
        except ValueError:
            continue
        counted += 1
        item = fact_item(event.subject, to_fact(event, pseudonymize), shards)
        items[(item["pk"], item["sk"])] = item
    for item in items.values():
        _, account, _period, shard = str(item["pk"]).split("#")
        accounts.add(account)
        fact = StoredFact(fact_of_item(item), None)
        (lifecycle if "e" in item else stored)[(account, shard)].append(fact)
    bodies_by_key = {
        part_key(PERIOD, account, shard, "base"): encode_part(
            stored[(account, shard)], lifecycle[(account, shard)]
        ).body
        for account, shard in sorted(set(stored) | set(lifecycle))
    }
    parts = [len(body) for body in bodies_by_key.values()]
    id_lines = id_file_lines(items.values())
    bodies = [gzip.compress(lines.encode(), mtime=0) for lines in id_lines.values()]
    return Measured(
        events=counted,
        accounts=len(accounts),
        facts=len(items),
        fact_bytes=sum(item_bytes(i) for i in items.values()),
        parts=parts,
        id_file_keys=list(id_lines),
        id_files=[len(b) for b in bodies],
        id_bodies=bodies,
        id_rows=sum(lines.count("\n") for lines in id_lines.values()),
        id_json_bytes=sum(len(lines.encode()) for lines in id_lines.values()),
        guard_ms=guard_cpu(list(items.values()), bodies_by_key),
    )


class _Parts:
    """The archive as the expiry guard reads it: the parts the close wrote, decoded."""

    def __init__(self, bodies: Mapping[str, bytes]) -> None:
        self.bodies = bodies

    def part(self, key: str) -> list[tuple[str, dict[str, Any]]]:
        return decode_part(self.bodies[key], None)


class _Table:
    """What the guard asks the table when every item is archived: nothing."""

    def frozen_periods(self) -> frozenset[str]:
        return frozenset({PERIOD})


def guard_cpu(items: Sequence[Mapping[str, Any]], bodies: Mapping[str, bytes]) -> float:
    """CPU milliseconds the expiry guard spends per TTL deletion of an archived item (the
    usual case): its stream records (old images) in batches of ``GUARD_BATCH``, each part
    read once per batch, as ``ExpiryGuard.handle`` does."""
    serialize = TypeSerializer().serialize
    sample = sorted(items, key=lambda i: (str(i["pk"]), str(i["sk"])))[:GUARD_SAMPLE]
    records = [
        {
            "eventName": "REMOVE",
            "userIdentity": {"type": "Service", "principalId": TTL_PRINCIPAL},
            "dynamodb": {
                "OldImage": {k: serialize(v) for k, v in item.items()},
                "SequenceNumber": str(n),
            },
        }
        for n, item in enumerate(sample)
    ]
    guard = ExpiryGuard(cast(UsageStore, _Table()), cast(FactArchive, _Parts(bodies)))
    start = time.process_time()
    for at in range(0, len(records), GUARD_BATCH):
        outcome = guard.handle(records[at : at + GUARD_BATCH])
        assert outcome.counts[ARCHIVED] == len(records[at : at + GUARD_BATCH])
    return (time.process_time() - start) * 1000 / max(len(records), 1)


def id_file_lines(items: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int | None], str]:
    """The JSON lines of each id file the close writes (``IdFiles.write_unit``), by account
    and id bucket (``None``: the one shared file of an account with at most
    ``SHARED_ROWS`` ids): every account of the mix is one unit (far below ``UNIT_FACTS``),
    and every stored fact of the period is read by it (no conflicts on the mix)."""
    per_account: dict[str, list[IdRow]] = defaultdict(list)
    for item in items:
        account = str(item["pk"]).split("#")[1]
        per_account[account].append(IdRow.of(fact_of_item(item), str(item["pk"])))
    rows: dict[tuple[str, int | None], list[IdRow]] = defaultdict(list)
    for account, found in per_account.items():
        for row in found:
            bucket = None if len(found) <= SHARED_ROWS else bucket_of(row.id)
            rows[(account, bucket)].append(row)
    return {
        key: "".join(json.dumps(r.to_json(), separators=(",", ":")) + "\n" for r in found)
        for key, found in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1] or -1))
    }


def months_hot(hot_months: int | None) -> float:
    """Mean months an item is stored: written on average half a period before its period
    ends; expires ``hot_months`` periods (+ the TTL margin) after it, or after 400 days."""
    after = (
        ARCHIVE_RETENTION_DAYS / DAYS_PER_MONTH
        if hot_months is None
        else hot_months + TTL_MARGIN_DAYS / DAYS_PER_MONTH
    )
    return 0.5 + after


def archive_part_cost(size: int) -> float:
    """USD of one part over its life: from the close (a few days after its period) until
    the lifecycle rule deletes it (retention + 31 days after it was written)."""
    months = (ARCHIVE_RETENTION_DAYS + 31) / DAYS_PER_MONTH
    gb = size / GB
    if size < IT_MIN_MONITORED:  # not monitored: stays in the frequent tier, no fee
        return gb * IT_FREQUENT * months
    frequent, infrequent = 1.0, 2.0  # days 0-30, 30-90, then Archive Instant Access
    rest = max(months - frequent - infrequent, 0.0)
    tiers = gb * (IT_FREQUENT * frequent + IT_INFREQUENT * infrequent + IT_ARCHIVE_INSTANT * rest)
    return tiers + months * IT_MONITORING_PER_THOUSAND / 1000


@dataclass
class Design:
    name: str
    table_class: str
    hot_months: int | None  # None: no archive, items kept 400 days
    audit_periods: int  # the id audit's window (periods before the one closed)


@dataclass
class IdAuditCost:
    puts: int
    lists: int
    gets: int
    storage_usd: float  # the id files over their life
    months: float  # their life
    tasks: int = ID_BUCKETS  # AuditIds tasks per close (``audit_tasks``)

    @property
    def requests_usd(self) -> float:
        return (
            self.puts * S3_PUT_PER_THOUSAND / 1000
            + self.lists * S3_LIST_PER_THOUSAND / 1000
            + self.gets * S3_GET_PER_THOUSAND / 1000
        )

    @property
    def usd(self) -> float:
        return self.requests_usd + self.storage_usd


def audit_memory(bodies: Sequence[bytes]) -> tuple[int, float, float]:
    """Python heap per id of an AuditIds task (tracemalloc): the rows read as
    ``IdFiles.rows`` yields them, held; and at the peak of ``conflicts`` over them.
    The number of ids, bytes per id held, bytes per id at the peak."""
    tracemalloc.start()
    try:
        rows: list[IdRow] = []
        for body in bodies:
            for line in gzip.decompress(body).decode().splitlines():
                fact_id, digest, pk, at = json.loads(line)
                rows.append(IdRow(str(fact_id), str(digest), str(pk), int(at)))
        held = tracemalloc.get_traced_memory()[0]
        conflicts(rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return len(rows), held / len(rows), peak / len(rows)


def id_audit(m: Measured, periods: int) -> IdAuditCost:
    """The id audit's S3 cost for one period's events: the close's PUT per id file; the
    closes of this period and of the ``periods`` next ones each audit it: PlanAudit lists
    every period of the window once to size the audit (``audit_tasks``: the buckets in as
    few tasks as hold the window's ids in one pass each, the same count of files per
    period), then each task lists its buckets' prefixes and the shared one and reads their
    files, each once. The files expire 31 x (``periods`` + 2) days after they are written
    (``infra/storage.py``: 31 x (``max_late_periods`` + 3))."""
    reads = periods + 1
    per_bucket = [0] * ID_BUCKETS
    shared = 0
    for _account, bucket in m.id_file_keys:
        if bucket is None:
            shared += 1
        else:
            per_bucket[bucket] += 1
    tasks = audit_tasks(list(range(ID_BUCKETS)), sum(m.id_files) * reads)
    plan_pages = max(1, -(-len(m.id_files) // S3_LIST_PAGE))
    task_pages = sum(
        sum(max(1, -(-per_bucket[b] // S3_LIST_PAGE)) for b in task)
        + max(1, -(-shared // S3_LIST_PAGE))
        for task in tasks
    )
    months = 31 * (periods + 2) / DAYS_PER_MONTH
    return IdAuditCost(
        puts=len(m.id_files),
        lists=(plan_pages + task_pages) * reads,
        gets=(sum(per_bucket) + shared * len(tasks)) * reads,
        storage_usd=sum(m.id_files) / GB * S3_STANDARD_GB_MONTH * months,
        months=months,
        tasks=len(tasks),
    )


def live_view(table_class: str) -> float:
    """The live view per million events (section 7), its DynamoDB requests priced in the
    table class."""
    writes = LIVE_WRITES * DDB_WRITE_FACTOR[table_class]
    reads = LIVE_READS * DDB_READ_PER_MILLION[table_class] / DDB_READ_PER_MILLION["Standard"]
    return (writes + reads + LIVE_LAMBDA) / EVENTS_PER_LINE


def costs(m: Measured, d: Design) -> dict[str, float]:
    ingest = INGEST_TOTAL + INGEST_WRITES * (DDB_WRITE_FACTOR[d.table_class] - 1)
    # A Query reads items back to back: 0.5 RRU per started 4 KB of the page (1 MB pages)
    read_units = m.fact_bytes / 4096 * 0.5
    close = read_units * DDB_READ_PER_MILLION[d.table_class] / 1e6
    if d.hot_months is not None:
        # parts + one manifest per account, each one conditional PUT; the seal writes the
        # manifest from the entries the units hand over (no listing, no HEAD)
        puts = len(m.parts) + m.accounts
        close += puts * S3_PUT_PER_THOUSAND / 1000
    hot_gb = m.fact_bytes / GB
    hot = hot_gb * DDB_GB_MONTH[d.table_class] * months_hot(d.hot_months)
    archive = sum(archive_part_cost(p) for p in m.parts) if d.hot_months is not None else 0.0
    guard = 0.0
    if d.hot_months is not None:  # every item's TTL deletion reaches the guard
        invocations = -(-m.facts // GUARD_BATCH)
        seconds = m.facts * m.guard_ms / 1000
        guard = invocations * LAMBDA_REQUEST + seconds * GUARD_MEMORY_GB * LAMBDA_GB_SECOND
        guard += len(m.parts) * S3_GET_PER_THOUSAND / 1000  # each part read once
    out = {
        "ingest": ingest,
        "live view": live_view(d.table_class),
        "close reads": close,
        "id audit": id_audit(m, d.audit_periods).usd,
        "hot storage": hot,
        "archive storage": archive,
        "expiry guard": guard,
    }
    measured = {"ingest", "live view"}  # already per million events
    return {k: v if k in measured else m.per_million(v) for k, v in out.items()}


def table(m: Measured, designs: Sequence[Design]) -> list[str]:
    rows = [
        "ingest",
        "live view",
        "close reads",
        "id audit",
        "expiry guard",
        "hot storage",
        "archive storage",
    ]
    figures = [costs(m, d) for d in designs]
    width = 22
    lines = ["".ljust(18) + "".join(d.name.rjust(width) for d in designs)]
    for row in rows:
        cells = "".join(f"${f[row]:.4f}".rjust(width) for f in figures)
        lines.append(row.ljust(18) + cells)
    # storage: the items, the archive and the id files (the storage part of "id audit")
    storage = [
        f["hot storage"]
        + f["archive storage"]
        + m.per_million(id_audit(m, d.audit_periods).storage_usd)
        for f, d in zip(figures, designs, strict=True)
    ]
    whole = [sum(f.values()) for f in figures]
    lines.append("storage".ljust(18) + "".join(f"${s:.4f}".rjust(width) for s in storage))
    lines.append("whole".ljust(18) + "".join(f"${w:.4f}".rjust(width) for w in whole))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--max-late-periods", type=int, default=DEFAULT_MAX_LATE_PERIODS)
    parser.add_argument("--hot-months", type=int, default=HOT_MONTHS_FLOOR)
    args = parser.parse_args(argv)
    m = measure(args.seed, args.events, args.shards)
    hot = args.hot_months
    late = args.max_late_periods
    window = audit_periods(late)
    for line in machine():
        print(line)
    print(
        f"events        {m.events:,} valid events of {args.events:,} lines, seed {args.seed},"
        f" {m.accounts} accounts, SHARDS={args.shards}: {m.facts:,} fact items"
    )
    print(
        f"items         fact {m.fact_bytes / m.facts:.0f} B (stored size: names + values +"
        f" 100 B overhead); {m.facts / m.events:.3f} per event"
    )
    sizes = sorted(m.parts)
    print(
        f"archive       {len(m.parts):,} parts (account x shard), {sum(sizes):,} B gzip ="
        f" {sum(sizes) / m.facts:.1f} B per fact; part sizes median {statistics.median(sizes):,.0f}"
        f" B, largest {sizes[-1]:,} B ({sum(1 for s in sizes if s >= IT_MIN_MONITORED)} of"
        f" {len(sizes)} >= 128 KB)"
    )
    print(
        f"retention     items hot {months_hot(hot):.2f} months (HOT_MONTHS={hot}: periods"
        f" after the one whose close bills them, + {TTL_MARGIN_DAYS} days; written half a"
        f" month before the period ends) vs {months_hot(None):.2f} months (400 days);"
        f" archive {(ARCHIVE_RETENTION_DAYS + 31) / DAYS_PER_MONTH:.2f} months"
    )
    audit = id_audit(m, window)
    print(
        f"id files      {len(m.id_files):,} (account x id bucket with ids, or one shared file"
        f" for an account of at most {SHARED_ROWS:,} ids:"
        f" {sum(1 for _, b in m.id_file_keys if b is None)} of {m.accounts} accounts;"
        f" {ID_BUCKETS} buckets, one unit per account), {m.id_rows:,} ids,"
        f" {m.id_json_bytes / m.id_rows:.1f} B per id as JSON lines,"
        f" {sum(m.id_files):,} B gzip = {sum(m.id_files) / m.id_rows:.1f} B per id; kept"
        f" 31 x (max_late_periods {late} + 3) days = {audit.months:.2f} months in S3 Standard"
    )
    print(
        f"id audit      per period closed: {audit.puts:,} PUT (the units' id files);"
        f" {audit.lists:,} LIST + {audit.gets:,} GET (PlanAudit and the {audit.tasks}"
        f" AuditIds task(s) of this close and of the {window} next read the period's files:"
        f" {window + 1} times each) ="
        f" ${m.per_million(audit.requests_usd):.4f} + storage"
        f" ${m.per_million(audit.storage_usd):.4f} per million events"
    )
    print(
        f"expiry guard  every item's TTL deletion reaches it (stream records: free for a"
        f" Lambda trigger): {m.guard_ms:.3f} ms of CPU per deletion of an archived item"
        f" (measured on {min(GUARD_SAMPLE, m.facts):,}, parts read once per batch of"
        f" {GUARD_BATCH:,}); one invocation per batch, {GUARD_MEMORY_GB * 1024:.0f} MB, a GET"
        f" per part"
    )
    ids, held, peak = audit_memory(m.id_bodies)
    ids_window = 100_000_000 / ID_BUCKETS * m.facts / m.events * (window + 1)
    passes = -(-int(ids_window) // ROWS_PER_PASS)
    print(
        f"audit memory  {ids:,} ids read as IdFiles.rows yields them: {held:.0f} B per id"
        f" held, {peak:.0f} B at the peak of conflicts() (tracemalloc); one bucket's window at"
        f" 100M events a month ({ids_window / 1e6:.1f}M ids: {window + 1} periods):"
        f" ~{ids_window * peak / 1e9:.1f} GB in one pass; in {passes} passes of at most"
        f" {ROWS_PER_PASS:,} rows (ROWS_PER_PASS, each reading every file again):"
        f" ~{ROWS_PER_PASS * peak / 1e9:.2f} GB each"
    )
    print()
    print("cost per million events over the whole retention, us-east-1 list prices:")
    designs = [
        Design("Standard 400 d", "Standard", None, window),
        Design("Standard-IA 400 d", "Standard-IA", None, window),
        Design(f"Standard+S3 (hot {hot})", "Standard", hot, window),
        Design(f"Standard-IA+S3 ({hot})", "Standard-IA", hot, window),
    ]
    for line in table(m, designs):
        print("  " + line)
    print()
    print(f"hot months (Standard + S3 archive, max_late_periods {late}):")
    by_hot = [Design(f"HOT_MONTHS {n}", "Standard", n, window) for n in range(HOT_MONTHS_FLOOR, 5)]
    for line in table(m, by_hot):
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
