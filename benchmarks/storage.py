"""The whole cost per million events over the fact log's retention, storage included.

For the reference mix (``billing.gen``: 50 accounts a month), every event is turned into
the item ingest stores (``fact_item``) and into the archive parts the close writes
(``encode_part``, one per account and storage shard), and their sizes are measured:
DynamoDB's item size (attribute names and values) plus its 100 bytes of overhead per
stored item; the gzip bytes of each part.
Nothing runs against AWS or moto: sizes are exact, durations are the settings'.

Printed per million events, over the whole retention (400 days after the period):

- ingest: the figure ``benchmarks/ingest.py`` measured (docs/benchmarks.md, section 1a);
- live view: not measured here;
- close reads: the close's Query of every fact once (eventually consistent, 0.5 RRU per
  4 KB), its archive requests (a HEAD and a PUT per part, a manifest per account);
- hot storage: the fact items, from their write to their expiry;
- archive storage: the parts in S3 Intelligent-Tiering until their lifecycle expiry;

for four designs: everything kept 400 days in DynamoDB Standard (before), the same in the
Standard-IA table class, Standard + the S3 archive (this design), Standard-IA + archive.

    .venv/bin/python benchmarks/storage.py --events 200000 --seed 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import KEY, machine

from billing.adapters.archive import encode_part
from billing.adapters.store import StoredFact, _size, fact_item
from billing.domain.events import parse_event
from billing.domain.facts import Fact, HmacPseudonymizer, to_fact
from billing.domain.retention import (
    ARCHIVE_RETENTION_DAYS,
    TTL_MARGIN_DAYS,
    default_hot_months,
)
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

# --- the ingest figure measured by benchmarks/ingest.py (docs/benchmarks.md, 1a) -----------
INGEST_TOTAL = 1.4671  # per million events, of which DynamoDB writes:
INGEST_WRITES = 1.2395

DAYS_PER_MONTH = 365.25 / 12
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
        fact = StoredFact(Fact.from_item(item), None)
        (lifecycle if "e" in item else stored)[(account, shard)].append(fact)
    parts = [
        len(encode_part(stored[key], lifecycle[key]).body)
        for key in sorted(set(stored) | set(lifecycle))
    ]
    return Measured(
        events=counted,
        accounts=len(accounts),
        facts=len(items),
        fact_bytes=sum(item_bytes(i) for i in items.values()),
        parts=parts,
    )


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


def costs(m: Measured, d: Design) -> dict[str, float]:
    ingest = INGEST_TOTAL + INGEST_WRITES * (DDB_WRITE_FACTOR[d.table_class] - 1)
    # A Query reads items back to back: 0.5 RRU per started 4 KB of the page (1 MB pages)
    read_units = m.fact_bytes / 4096 * 0.5
    close = read_units * DDB_READ_PER_MILLION[d.table_class] / 1e6
    if d.hot_months is not None:
        puts = len(m.parts) + m.accounts  # parts + one manifest per account
        heads = 2 * len(m.parts) + m.accounts  # put_once's HEAD, the seal's HEAD
        lists = m.accounts  # the seal's listing
        close += puts * S3_PUT_PER_THOUSAND / 1000 + heads * S3_GET_PER_THOUSAND / 1000
        close += lists * S3_LIST_PER_THOUSAND / 1000
    hot_gb = m.fact_bytes / GB
    hot = hot_gb * DDB_GB_MONTH[d.table_class] * months_hot(d.hot_months)
    archive = sum(archive_part_cost(p) for p in m.parts) if d.hot_months is not None else 0.0
    out = {
        "ingest": ingest,
        "close reads": close,
        "hot storage": hot,
        "archive storage": archive,
    }
    return {k: m.per_million(v) if k != "ingest" else v for k, v in out.items()}


def table(m: Measured, designs: Sequence[Design]) -> list[str]:
    rows = ["ingest", "live view", "close reads", "hot storage", "archive storage"]
    figures = [costs(m, d) for d in designs]
    width = 22
    lines = ["".ljust(18) + "".join(d.name.rjust(width) for d in designs)]
    for row in rows:
        cells = "".join(
            ("n/a".rjust(width) if row == "live view" else f"${f[row]:.4f}".rjust(width))
            for f in figures
        )
        lines.append(row.ljust(18) + cells)
    storage = [f["hot storage"] + f["archive storage"] for f in figures]
    whole = [sum(f.values()) for f in figures]
    lines.append("storage".ljust(18) + "".join(f"${s:.4f}".rjust(width) for s in storage))
    lines.append("whole".ljust(18) + "".join(f"${w:.4f}".rjust(width) for w in whole))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--max-late-periods", type=int, default=3)
    args = parser.parse_args(argv)
    m = measure(args.seed, args.events, args.shards)
    hot = default_hot_months(args.max_late_periods)
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
        f"retention     items hot {months_hot(hot):.2f} months (HOT_MONTHS={hot} ="
        f" max_late_periods {args.max_late_periods} + 1, + {TTL_MARGIN_DAYS} days, written half"
        f" a month before the period ends) vs {months_hot(None):.2f} months (400 days);"
        f" archive {(ARCHIVE_RETENTION_DAYS + 31) / DAYS_PER_MONTH:.2f} months"
    )
    print()
    print("cost per million events over the whole retention, us-east-1 list prices:")
    designs = [
        Design("Standard 400 d", "Standard", None),
        Design("Standard-IA 400 d", "Standard-IA", None),
        Design(f"Standard+S3 (hot {hot})", "Standard", hot),
        Design(f"Standard-IA+S3 ({hot})", "Standard-IA", hot),
    ]
    for line in table(m, designs):
        print("  " + line)
    print()
    print("hot months by lateness bound (Standard + S3 archive):")
    by_late = [
        Design(f"late {n}: hot {default_hot_months(n)}", "Standard", default_hot_months(n))
        for n in (0, 1, 2, 3)
    ]
    for line in table(m, by_late):
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
