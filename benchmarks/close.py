"""Month-end close: time against the number of accounts and against account size.

    python benchmarks/close.py                      # accounts 10,100,1000; 1k,10k,100k events
    python benchmarks/close.py --quick              # smaller figures, about a minute

Two sweeps on the reference mix, each configuration in a fresh table of moto's
``ThreadedMotoServer`` (127.0.0.1, in a child process; see ``common``):

- *accounts*: ``--accounts`` accounts of ``--events-per-account`` events each (every
  account gets its own reference-mix stream: ``generate(seed + i, n, accounts=1)``, its
  ``subject`` set to the account) with ``--accounts-shards`` shards (default 4, so that
  1,000 accounts x 5 units stay within a few minutes on moto);
- *size*: one account of ``--sizes`` events (``generate(seed, n, accounts=1)``) with
  ``--shards`` shards (default 16, the deployed value).

Facts are loaded the way ingest stores them (``fact_item``, BatchWriteItem; not timed),
every account gets an example price plan (round-robin), then ``MonthClose`` runs its
tasks in the state machine's order: freeze (settle 0), list_accounts page by page,
plan_account, compute_unit for every unit, rate_account, finish. Each call is timed in
wall time and in this thread's CPU time (moto runs in another process). moto's Query is not
DynamoDB's: read times are reported but the 100M-event arithmetic models reads from page
latency instead. The projection applies the state machine's concurrency (accounts Map
``close_account_concurrency`` = 10, units Map ``close_shard_concurrency`` = 16, per page of
accounts) to the measured task times, without Lambda/Step Functions overheads.

Then, on the largest account: the engine's rate (``monthly_usage``, CPU, per shard and
for the whole account), the memory per fact (tracemalloc over reading the facts from
DynamoDB-shaped 1 MB pages + ``monthly_usage``), and the arithmetic of a 100M-event month.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import math
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from common import (
    BUS,
    DDB_READ_PER_MILLION,
    KEY,
    Aws,
    human_bytes,
    machine,
    moto_server,
    put_plans,
    rename_account,
)
from pydantic import ValidationError

from billing.adapters.invoices import DocumentStore
from billing.adapters.store import StoredFact, UsageStore, fact_item, fact_of_item
from billing.close import MonthClose
from billing.domain.engine import monthly_usage
from billing.domain.entities import carry_forward
from billing.domain.events import parse_event
from billing.domain.facts import HmacPseudonymizer, to_fact
from billing.domain.periods import Period
from billing.domain.settings import ContractSettings
from billing.gen import account_names, generate

T = TypeVar("T")

ACCOUNT_CONCURRENCY = 10  # infra/config.py close_account_concurrency
SHARD_CONCURRENCY = 16  # infra/config.py close_shard_concurrency
PAGE = 100  # accounts per list_accounts page
COMPUTE_MEMORY_MB = 1769  # infra/month_close.py: CloseComputeShardFunction
LAMBDA_MAX_MB = 10_240
LAMBDA_TIMEOUT_S = 900
QUERY_PAGE_BYTES = 1024 * 1024
ASSUMED_FACT_BYTES = 400
PAGE_LATENCY_MS = (20, 50)  # one Query page of 1 MB, low and high assumption


# --- timing -------------------------------------------------------------------------------


@dataclass
class Timed:
    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: Timed) -> Timed:
        return Timed(self.wall + other.wall, self.cpu + other.cpu)

    def __iadd__(self, other: Timed) -> Timed:
        self.wall += other.wall
        self.cpu += other.cpu
        return self


def timed(call: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, Timed]:
    wall, cpu = time.perf_counter(), time.thread_time()
    out = call(*args, **kwargs)
    return out, Timed(time.perf_counter() - wall, time.thread_time() - cpu)


class MeteredStore(UsageStore):
    """``UsageStore`` that counts the facts a unit reads (its period facts and lifecycle
    facts) and how long that took (wall, and CPU of the calling thread)."""

    def __init__(self, table: Any, shards: int) -> None:
        super().__init__(table, shards)
        self.reads: tuple[int, Timed] = (0, Timed())

    def take(self) -> tuple[int, Timed]:
        out, self.reads = self.reads, (0, Timed())
        return out

    def read_period(
        self, account: str, period: Period, shard: str, lookback_hours: int
    ) -> list[StoredFact]:
        out, spent = timed(super().read_period, account, period, shard, lookback_hours)
        self.reads = (self.reads[0] + len(out), self.reads[1] + spent)
        return out

    def read_lifecycle(self, account: str, period: Period, shard: str) -> list[StoredFact]:
        out, spent = timed(super().read_lifecycle, account, period, shard)
        self.reads = (self.reads[0] + len(out), self.reads[1] + spent)
        return out


def makespan(durations: Iterable[float], slots: int) -> float:
    """Time to run ``durations`` in order on ``slots`` workers (a Map with max concurrency)."""
    free = [0.0] * slots
    end = 0.0
    for d in durations:
        start = heapq.heappop(free)
        heapq.heappush(free, start + d)
        end = max(end, start + d)
    return end


# --- data ---------------------------------------------------------------------------------


@dataclass
class Loaded:
    events: int = 0
    rejected: int = 0
    items: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    load_seconds: float = 0.0


def account_lines(
    seed: int, accounts: Sequence[str], per_account: int, period: str
) -> dict[str, list[str]]:
    """One reference-mix stream per account, re-addressed to it."""
    source = account_names(1)[0]
    return {
        name: [rename_account(x, source, name) for x in generate(seed + i, per_account, period, 1)]
        for i, name in enumerate(accounts)
    }


def load(store: UsageStore, lines: Mapping[str, list[str]], period: str) -> Loaded:
    """Store the facts as ingest does (one item per distinct event, registry items)."""
    out = Loaded()
    pseudonymize = HmacPseudonymizer(KEY)
    for account, raws in lines.items():
        for raw in raws:
            out.events += 1
            try:
                event = parse_event(raw)
            except ValidationError:
                out.rejected += 1
                continue
            item = fact_item(event.subject, to_fact(event, pseudonymize), store.shards)
            out.items[(item["pk"], item["sk"])] = item
        registry = {"pk": f"P#{period}", "sk": f"A#{account}"}
        out.items[(registry["pk"], registry["sk"])] = registry
    start = time.perf_counter()
    store.put_items(list(out.items.values()))
    out.load_seconds = time.perf_counter() - start
    return out


def unit_items(loaded: Loaded) -> dict[str, list[dict[str, Any]]]:
    """Stored fact items by unit of close work: a shard's period and lifecycle facts."""
    by_unit: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (pk, _), item in loaded.items.items():
        if pk.startswith(("F#", "E#")):
            by_unit[pk.rsplit("#", 1)[1]].append(item)
    return by_unit


# --- the close ----------------------------------------------------------------------------


@dataclass
class CloseRun:
    label: str
    accounts: int
    shards: int
    events: int
    facts_stored: int
    load_seconds: float
    facts_read: int = 0
    units: int = 0
    freeze: Timed = field(default_factory=Timed)
    listing: Timed = field(default_factory=Timed)
    pages: list[list[str]] = field(default_factory=list)
    plan: dict[str, Timed] = field(default_factory=dict)
    unit_times: dict[str, list[Timed]] = field(default_factory=dict)
    read: Timed = field(default_factory=Timed)
    rate: dict[str, Timed] = field(default_factory=dict)
    finish: Timed = field(default_factory=Timed)
    issued: int = 0

    @property
    def compute(self) -> Timed:
        total = Timed()
        for times in self.unit_times.values():
            for t in times:
                total += t
        return total

    @property
    def max_unit(self) -> Timed:
        every = [t for times in self.unit_times.values() for t in times]
        return max(every, key=lambda t: t.wall)

    @property
    def sequential(self) -> float:
        return (
            self.freeze.wall
            + self.listing.wall
            + sum(t.wall for t in self.plan.values())
            + self.compute.wall
            + sum(t.wall for t in self.rate.values())
            + self.finish.wall
        )

    def invocations(self, units: int | None = None) -> int:
        """Lambda invocations of the close: Freeze, ListAccounts per page, per account
        PlanAccount + its units' ComputeShard + RateAccount, Finish (with ``units`` total
        units instead of the planned ones: what one unit per storage shard would cost)."""
        planned = self.units if units is None else units
        return 1 + len(self.pages) + 2 * self.accounts + planned + 1

    def projected(self) -> float:
        """Wall time with the state machine's concurrency, from the measured task times."""
        total = self.freeze.wall + self.finish.wall
        pages = max(1, len(self.pages))
        for page in self.pages:
            durations = [
                self.plan[a].wall
                + makespan((t.wall for t in self.unit_times[a]), SHARD_CONCURRENCY)
                + self.rate[a].wall
                for a in page
            ]
            total += self.listing.wall / pages + makespan(durations, ACCOUNT_CONCURRENCY)
        return total


def run_close(
    aws: Aws, label: str, lines: Mapping[str, list[str]], shards: int, period: str, n: int
) -> tuple[CloseRun, Loaded, ContractSettings]:
    table = aws.new_table(f"usage-{n}")
    bucket = aws.new_bucket(f"invoices-{n}")
    store = MeteredStore(table, shards)
    accounts = sorted(lines)
    put_plans(store, accounts)
    loaded = load(store, lines, period)
    facts = sum(1 for pk, _ in loaded.items if pk.startswith(("F#", "E#")))
    run = CloseRun(label, len(accounts), shards, loaded.events, facts, loaded.load_seconds)
    close = MonthClose(store, DocumentStore(aws.s3, bucket), aws.events, BUS, settle_seconds=0)

    _, run.freeze = timed(close.freeze, period, settle=0)
    cursor: str | None = None
    while True:
        page, spent = timed(close.list_accounts, period, cursor, PAGE)
        run.listing += spent
        run.pages.append(list(page.accounts))
        cursor = page.cursor
        for account in page.accounts:
            plan, run.plan[account] = timed(close.plan_account, period, account)
            times: list[Timed] = []
            for unit in plan.units:
                _, spent = timed(close.compute_unit, unit)
                times.append(spent)
                read_facts, read_time = store.take()
                run.facts_read += read_facts
                run.read += read_time
            run.unit_times[account] = times
            run.units += len(times)
            _, run.rate[account] = timed(close.rate_account, period, account)
        if not cursor:
            break
    result, run.finish = timed(close.finish, period)
    run.issued = result.issued
    if result.failed:
        raise RuntimeError(f"accounts failed to close: {result.failed}")
    largest = max(accounts, key=lambda a: len(lines[a]))
    return run, loaded, close.settings_for(largest, period)


def report_run(run: CloseRun) -> list[str]:
    compute = run.compute
    rate = list(run.rate.values())
    rate_mean = statistics.fmean(t.wall for t in rate)
    per_unit = compute.wall / run.units
    return [
        f"[{run.label}] {run.accounts:,} accounts, SHARDS={run.shards}, {run.events:,} events, "
        f"{run.facts_stored:,} facts stored (loaded in {run.load_seconds:.1f} s, not timed)",
        f"  facts read      {run.facts_read:,} in {run.units:,} units, read "
        f"{run.read.wall:.2f} s wall / {run.read.cpu:.2f} s CPU "
        f"({run.read.cpu / max(1, run.facts_read) * 1e6:.1f} us CPU/fact client side)",
        f"  compute_unit    total {compute.wall:.2f} s wall / {compute.cpu:.2f} s CPU; "
        f"per unit mean {per_unit * 1000:.1f} ms, max {run.max_unit.wall:.2f} s "
        f"({run.max_unit.cpu:.2f} s CPU)",
        f"  rate_account    {rate_mean * 1000:.0f} ms/account mean "
        f"(max {max(t.wall for t in rate) * 1000:.0f} ms), "
        f"{statistics.fmean(t.cpu for t in rate) * 1000:.0f} ms CPU",
        f"  other tasks     freeze {run.freeze.wall * 1000:.0f} ms, list_accounts "
        f"{len(run.pages)} page(s) {run.listing.wall * 1000:.0f} ms, plan_account "
        f"{sum(t.wall for t in run.plan.values()) * 1000:.0f} ms in all, finish "
        f"{run.finish.wall * 1000:.0f} ms ({run.issued} invoices)",
        f"  close           {run.sequential:.1f} s sequential; projected {run.projected():.1f} s "
        f"with Map {ACCOUNT_CONCURRENCY} accounts x {SHARD_CONCURRENCY} units in parallel",
        f"  invocations     {run.invocations():,} Lambda invocations ({run.units:,} units of "
        f"{run.accounts:,} accounts sized to their volume); one unit per storage shard: "
        f"{run.invocations(run.accounts * run.shards):,}",
    ]


# --- the largest account: engine rate and memory --------------------------------------------


def engine_rate(
    by_pk: Mapping[str, list[dict[str, Any]]], period: Period, settings: ContractSettings
) -> tuple[int, float, float]:
    """(facts, CPU s of monthly_usage over the units one by one, CPU s over the whole
    account as one unit). Only the facts of the unit being computed are alive, as in a
    ComputeShard container."""
    facts = 0
    shards = 0.0
    for items in by_pk.values():
        group = [fact_of_item(i) for i in items]
        facts += len(group)
        start = time.process_time()
        monthly_usage(group, period, settings)
        shards += time.process_time() - start
        del group
    everything = [fact_of_item(i) for items in by_pk.values() for i in items]
    start = time.process_time()
    monthly_usage(everything, period, settings)
    whole = time.process_time() - start
    return facts, shards, whole


def item_bytes(item: Mapping[str, Any]) -> int:
    """DynamoDB's item size: attribute names + values (numbers ~1 byte per 2 digits)."""

    def size(value: Any) -> int:
        if isinstance(value, str):
            return len(value.encode())
        if isinstance(value, bool) or value is None:
            return 1
        if isinstance(value, int | float) or type(value).__name__ == "Decimal":
            return len(str(value)) // 2 + 1
        if isinstance(value, Mapping):
            return 3 + sum(len(k.encode()) + size(v) + 1 for k, v in value.items())
        if isinstance(value, list | tuple | set | frozenset):
            return 3 + sum(size(v) + 1 for v in value)
        return len(str(value))

    return sum(len(k.encode()) + size(v) for k, v in item.items())


def pages_of(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The items as the bodies of Query responses of at most 1 MB (DynamoDB's typed JSON)."""
    from boto3.dynamodb.types import TypeSerializer

    serialize = TypeSerializer().serialize
    pages: list[str] = []
    page: list[dict[str, Any]] = []
    size = 0
    for item in items:
        page.append({k: serialize(v) for k, v in item.items()})
        size += item_bytes(item)
        if size >= QUERY_PAGE_BYTES:
            pages.append(json.dumps({"Items": page, "Count": len(page)}))
            page, size = [], 0
    if page:
        pages.append(json.dumps({"Items": page, "Count": len(page)}))
    return pages


def client_reader() -> Callable[[str], list[StoredFact]]:
    """What ``UsageStore.read_unit`` does with one Query response body, in process:
    botocore's JSON parser with the Query output shape, the DynamoDB resource's
    deserialization (``TransformationInjector``), then ``StoredFact``."""
    import botocore.parsers
    import botocore.session
    from boto3.dynamodb.transform import TransformationInjector

    operation = botocore.session.get_session().get_service_model("dynamodb")
    model = operation.operation_model("Query")
    parser = botocore.parsers.create_parser("json")
    injector = TransformationInjector()

    def read(body: str) -> list[StoredFact]:
        response = {"body": body.encode(), "headers": {}, "status_code": 200}
        parsed = parser.parse(response, model.output_shape)
        injector.inject_attribute_value_output(parsed, model=model)
        return [StoredFact(fact_of_item(i), i.get("adj")) for i in parsed["Items"]]

    return read


def read_cpu_per_fact(bodies: Sequence[str], pages: int = 8) -> float:
    """CPU seconds per fact of turning Query pages into facts (best of 3 over the first
    ``pages`` pages)."""
    read = client_reader()
    bodies = bodies[:pages]
    runs = []
    for _ in range(3):
        start = time.process_time()
        count = sum(len(read(body)) for body in bodies)
        runs.append((time.process_time() - start) / count)
    return min(runs)


@dataclass(frozen=True)
class Traced:
    facts: int
    held: int  # bytes held by the facts once read
    read_peak: int  # peak while reading (the facts so far and one page being parsed)
    engine_peak: int  # peak during monthly_usage (the facts included)


def traced(bodies: Sequence[str], period: Period, settings: ContractSettings) -> Traced:
    """tracemalloc over what ComputeShard holds: the facts read from 1 MB pages (one page
    alive at a time), then ``monthly_usage`` over them."""
    read = client_reader()
    read(bodies[0])  # the parser's caches, not the facts
    tracemalloc.start()
    try:
        stored: list[StoredFact] = []
        for body in bodies:
            stored.extend(read(body))
        facts = [s.fact for s in stored if s.adj is None]
        held, read_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        monthly_usage(facts, period, settings)
        _, engine_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return Traced(len(facts), held, read_peak, engine_peak)


def memory_per_fact(
    bodies: Sequence[str], period: Period, settings: ContractSettings
) -> tuple[Traced, float, float]:
    """``traced`` over all the pages, and the marginal bytes per fact (held, engine peak)
    between half of the pages and all of them: what each further fact costs."""
    full = traced(bodies, period, settings)
    half = traced(bodies[: max(1, len(bodies) // 2)], period, settings)
    if full.facts == half.facts:
        return full, full.held / full.facts, full.engine_peak / full.facts
    extra = full.facts - half.facts
    return (
        full,
        (full.held - half.held) / extra,
        (full.engine_peak - half.engine_peak) / extra,
    )


def runtime_baseline_mb() -> float:
    """Resident memory (VmRSS) of a fresh interpreter that imported the close and made a
    DynamoDB client: what a ComputeShard container holds before reading any fact."""
    code = (
        "import boto3, billing.close, billing.adapters.store;"
        "boto3.client('dynamodb', region_name='us-east-1');"
        "print([r for r in open('/proc/self/status') if r.startswith('VmRSS')][0].split()[1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024


@dataclass(frozen=True)
class Measured:
    """What the arithmetic takes from the measurements."""

    engine_rate: float  # facts/s, CPU
    bytes_per_fact: float  # peak of reading + monthly_usage
    read_cpu: float  # CPU s per fact read (client side)
    item_bytes: float  # mean stored item
    stored_per_event: float  # facts stored per event (duplicates and rejects collapse)
    entity_share: float  # of the stored facts, lifecycle facts
    carried_share: float  # of a month's lifecycle facts, still carried after its end
    baseline_mb: float  # runtime before any fact
    page_mb: float  # transient while one 1 MB page is parsed


@dataclass(frozen=True)
class UnitCost:
    facts: float
    pages: int
    read_lo: float
    read_hi: float
    read_cpu: float
    engine: float
    memory_mb: float

    @property
    def seconds_hi(self) -> float:
        return self.read_hi + self.read_cpu + self.engine

    @property
    def seconds_lo(self) -> float:
        return self.read_lo + self.read_cpu + self.engine


def unit_cost(facts: float, m: Measured) -> UnitCost:
    pages = math.ceil(facts * ASSUMED_FACT_BYTES / QUERY_PAGE_BYTES)
    lo, hi = PAGE_LATENCY_MS
    return UnitCost(
        facts=facts,
        pages=pages,
        read_lo=pages * lo / 1000,
        read_hi=pages * hi / 1000,
        read_cpu=facts * m.read_cpu,
        engine=facts / m.engine_rate,
        memory_mb=facts * m.bytes_per_fact / 2**20 + m.baseline_mb + m.page_mb,
    )


def arithmetic(m: Measured, lookback_hours: int) -> list[str]:
    total_events = 100_000_000
    largest_events = int(total_events * 0.40)
    stored = largest_events * m.stored_per_event
    period_facts = stored * (1 - m.entity_share)
    lookback = 1 + lookback_hours / (30 * 24)  # each unit also reads the previous tail
    per_page = QUERY_PAGE_BYTES // ASSUMED_FACT_BYTES
    lo, hi = PAGE_LATENCY_MS
    out = [
        "",
        "THE ARITHMETIC: a 100M-event month, largest account 40% = "
        f"{largest_events / 1e6:.0f}M events = {stored / 1e6:.1f}M stored facts "
        f"({m.stored_per_event:.3f} per event), {period_facts / 1e6:.1f}M in the period "
        f"shards, {stored * m.entity_share / 1e6:.2f}M lifecycle facts",
        f"  assumptions: Query pages of 1 MB at {ASSUMED_FACT_BYTES} B/fact = {per_page:,} "
        f"facts/page (measured mean item {m.item_bytes:.0f} B: conservative), {lo}-{hi} ms per "
        "page, pages read one after the other within a unit; each unit also reads the "
        f"{lookback_hours} h look-back of the previous month (+{lookback - 1:.1%})",
        f"  measured:    read CPU {m.read_cpu * 1e6:.1f} us/fact (botocore + deserialization + "
        f"Fact), engine {m.engine_rate:,.0f} facts/s (one core: ComputeShard at "
        f"{COMPUTE_MEMORY_MB} MB has 1 vCPU), memory {m.bytes_per_fact:,.0f} B/fact (peak) + "
        f"{m.baseline_mb:.0f} MB runtime + {m.page_mb:.0f} MB for the page being parsed; "
        f"limits: {LAMBDA_TIMEOUT_S} s, ComputeShard "
        f"{COMPUTE_MEMORY_MB} MB (infra/month_close.py), Lambda max {LAMBDA_MAX_MB:,} MB",
        f"  {'SHARDS':>6} {'facts/unit':>11} {'pages':>6} {'read s':>8} {'read CPU':>9} "
        f"{'engine':>7} {'unit s':>8} {'memory':>9} {'of 1769MB':>9} {'of 10GB':>7}",
    ]
    entity_month = stored * m.entity_share
    carried_month = entity_month * m.carried_share

    def per_unit(shards: int, months: int) -> UnitCost:
        """A unit's facts: its shard of the period (and look-back), of the month's lifecycle
        facts, and of the entity state carried in after ``months`` months of history."""
        return unit_cost(
            (period_facts * lookback + entity_month + carried_month * months) / shards, m
        )

    for shards in (16, 32, 64, 128):
        u = per_unit(shards, 12)
        out.append(
            f"  {shards:>6} {u.facts:>11,.0f} {u.pages:>6,} {u.read_lo:>3.0f}-{u.read_hi:<4.0f} "
            f"{u.read_cpu:>8.0f}s {u.engine:>6.0f}s {u.seconds_lo:>3.0f}-{u.seconds_hi:<4.0f} "
            f"{u.memory_mb:>7,.0f}MB {u.memory_mb / COMPUTE_MEMORY_MB:>9.0%} "
            f"{u.memory_mb / LAMBDA_MAX_MB:>7.0%}"
        )
    out.append(
        f"    (each unit: its shard of the {period_facts / 1e6:.1f}M period facts, of the "
        f"{entity_month / 1e6:.2f}M lifecycle facts of the month, and of the entity state "
        f"carried in: {m.carried_share:.1%} of a month's lifecycle facts stay carried (stored, "
        f"undeleted recordings; held numbers and seats; SIMs) = {carried_month / 1e6:.2f}M "
        "facts more per month of history; the table assumes 12 months)"
    )
    for months in (1, 12, 36, 120):
        u16, u64 = per_unit(16, months), per_unit(64, months)
        out.append(
            f"  after {months:>3} month(s) of history: carried state "
            f"{carried_month * months / 1e6:>6.2f}M facts; unit at SHARDS=16 "
            f"{u16.seconds_lo:,.0f}-{u16.seconds_hi:,.0f} s {u16.memory_mb:,.0f} MB, at "
            f"SHARDS=64 {u64.seconds_lo:,.0f}-{u64.seconds_hi:,.0f} s {u64.memory_mb:,.0f} MB"
        )
    reads = total_events * m.stored_per_event * lookback * m.item_bytes / 4096 * 0.5
    out.append(
        f"  read units of one close: {reads / 1e6:,.1f}M RRU (eventually consistent Query, "
        f"{m.item_bytes:.0f} B/fact) = ${reads * DDB_READ_PER_MILLION / 1e6:.2f}"
    )

    def smallest(memory_mb: int) -> int | None:
        for shards in (16, 32, 64, 128, 256, 512):
            u = per_unit(shards, 12)
            if u.seconds_hi <= LAMBDA_TIMEOUT_S / 3 and u.memory_mb <= 0.6 * memory_mb:
                return shards
        return None

    out.append(
        "  smallest SHARDS keeping every unit (12 months of history) under 300 s (1/3 of the "
        "timeout, slow pages) and under 60% of its memory: "
        + ", ".join(f"{mb:,} MB -> {smallest(mb)}" for mb in (1769, 3008, 5120, 10240))
    )
    return out


# --- main -----------------------------------------------------------------------------------


def ints(text: str) -> list[int]:
    return [int(x.replace("_", "").replace("k", "000")) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=ints, default=None, help="e.g. 10,100,1000")
    parser.add_argument("--events-per-account", type=int, default=None)
    parser.add_argument("--accounts-shards", type=int, default=4)
    parser.add_argument("--sizes", type=ints, default=None, help="events of one account")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--period", default="2026-10")
    parser.add_argument("--quick", action="store_true", help="smaller figures")
    args = parser.parse_args(argv)
    accounts_sweep = args.accounts or ([10, 100] if args.quick else [10, 100, 1000])
    per_account = args.events_per_account or (50 if args.quick else 100)
    sizes = args.sizes or ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    period = Period.parse(args.period)

    print("\n".join(machine()), flush=True)
    print(
        f"close         MonthClose tasks in state-machine order on moto ThreadedMotoServer; "
        f"accounts sweep: {per_account} events/account, SHARDS={args.accounts_shards}; "
        f"size sweep: one account, SHARDS={args.shards}; seed {args.seed}, period {period}\n",
        flush=True,
    )
    runs: list[CloseRun] = []
    biggest: tuple[Loaded, ContractSettings] | None = None
    moto_read_cpu = 0.0
    started = time.perf_counter()
    with moto_server() as aws:
        n = 0
        for count in accounts_sweep:
            n += 1
            names = account_names(count)
            lines = account_lines(args.seed, names, per_account, str(period))
            run, _, _ = run_close(
                aws, f"{count} accounts", lines, args.accounts_shards, str(period), n
            )
            runs.append(run)
            print("\n".join(report_run(run)), flush=True)
            aws.drop(f"usage-{n}")
        for size in sizes:
            n += 1
            name = account_names(1)[0]
            lines = {name: list(generate(args.seed, size, str(period), 1))}
            run, loaded, settings = run_close(
                aws, f"1 account x {size:,}", lines, args.shards, str(period), n
            )
            runs.append(run)
            print("\n".join(report_run(run)), flush=True)
            if biggest is None or loaded.events >= biggest[0].events:
                biggest = (loaded, settings)
                moto_read_cpu = run.read.cpu / max(1, run.facts_read)
            aws.drop(f"usage-{n}")
    assert biggest is not None
    loaded, settings = biggest

    print("\nsummary")
    print(
        f"  {'configuration':24s} {'accts':>5} {'shards':>6} {'events':>8} {'facts read':>10} "
        f"{'compute s':>9} {'max unit s':>10} {'rate ms/acct':>12} {'close s':>8} "
        f"{'projected s':>11} {'units':>6} {'invocations':>11} {'1 unit/shard':>12}"
    )
    for r in runs:
        print(
            f"  {r.label:24s} {r.accounts:>5,} {r.shards:>6} {r.events:>8,} {r.facts_read:>10,} "
            f"{r.compute.wall:>9.2f} {r.max_unit.wall:>10.2f} "
            f"{statistics.fmean(t.wall for t in r.rate.values()) * 1000:>12.0f} "
            f"{r.sequential:>8.1f} {r.projected():>11.1f} {r.units:>6,} {r.invocations():>11,} "
            f"{r.invocations(r.accounts * r.shards):>12,}"
        )

    # The benchmark's own data (every line, every stored item) stays alive from here on;
    # a ComputeShard container holds only its unit. Keep it out of the cyclic collector's
    # way so that collections cost what they cost there.
    gc.collect()
    gc.freeze()
    by_pk = unit_items(loaded)
    facts, shard_cpu, whole_cpu = engine_rate(by_pk, period, settings)
    fact_items = [i for (pk, _), i in loaded.items.items() if pk.startswith(("F#", "E#"))]
    kinds = Counter(
        "entity" if pk.startswith("E#") else "period"
        for pk, _ in loaded.items
        if pk.startswith(("F#", "E#"))
    )
    entity_share = kinds["entity"] / max(1, kinds["entity"] + kinds["period"])
    lifecycle = [fact_of_item(i) for i in fact_items if "e" in i]
    carried_share = len(carry_forward(lifecycle, period.end_ms)) / max(1, len(lifecycle))
    mean_bytes = statistics.fmean(item_bytes(i) for i in fact_items)
    bodies = pages_of(fact_items)
    read_cpu = read_cpu_per_fact(bodies)
    mem, held_marginal, peak_marginal = memory_per_fact(bodies, period, settings)
    counted = mem.facts
    baseline = runtime_baseline_mb()
    rate = facts / shard_cpu
    print(
        f"\nlargest account ({loaded.events:,} events, {facts:,} stored facts, "
        f"{entity_share:.1%} of them lifecycle facts, {carried_share:.1%} of those carried past "
        f"the period end; mean item {mean_bytes:.0f} B)"
    )
    print(
        f"  engine          {rate:,.0f} facts/s CPU over its {len(by_pk)} units one by one "
        f"({shard_cpu:.2f} s); {facts / whole_cpu:,.0f} facts/s as one unit ({whole_cpu:.2f} s)"
    )
    print(
        f"  memory          {counted:,} facts read from {len(bodies)} pages of 1 MB hold "
        f"{human_bytes(mem.held)} ({mem.held / counted:,.0f} B/fact; reading peaks at "
        f"{human_bytes(mem.read_peak)} with a page being parsed), monthly_usage peaks at "
        f"{human_bytes(mem.engine_peak)} ({mem.engine_peak / counted:,.0f} B/fact); marginal "
        f"from half to all the pages: {held_marginal:,.0f} B/fact held, {peak_marginal:,.0f} "
        f"B/fact at the engine's peak (tracemalloc counts Python allocations, not the "
        f"allocator's overhead); runtime baseline {baseline:.0f} MB RSS"
    )
    print(
        f"  read CPU        {read_cpu * 1e6:.1f} us/fact in process (botocore parser + resource "
        f"deserialization + StoredFact over {min(8, len(bodies))} 1 MB pages); "
        f"{moto_read_cpu * 1e6:.1f} us/fact measured against moto (HTTP included)"
    )
    measured = Measured(
        engine_rate=rate,
        bytes_per_fact=max(peak_marginal, mem.engine_peak / counted),
        read_cpu=read_cpu,
        item_bytes=mean_bytes,
        stored_per_event=facts / loaded.events,
        entity_share=entity_share,
        carried_share=carried_share,
        baseline_mb=baseline,
        page_mb=max(0, mem.read_peak - mem.held) / 2**20,
    )
    print("\n".join(arithmetic(measured, settings.lookback_hours)))
    print(f"\n(whole run {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
