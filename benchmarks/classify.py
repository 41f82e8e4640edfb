"""Classification throughput on one core, on the reference mix.

    python benchmarks/classify.py --events 100000 --seed 1

The reference mix is generated in memory first (not timed). Then, in CPU time
(``time.process_time``) on one core:

- classification, per line: ``parse_event(raw)`` -> ``to_fact(event, pseudonymizer)`` ->
  ``shard_of(fact.key, 16)``; malformed lines fail validation and are counted as rejected.
  One ``HmacPseudonymizer`` serves the whole run, as in a warm worker;
- the usage engine: ``monthly_usage`` over every fact of the largest account (duplicates
  and late events included, as ingest stores them).

Below the target (50,000 events/s per core), or with ``--profile``, the stages are timed
separately and cProfile's hotspots are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import platform
import pstats
import statistics
import time
from collections import Counter
from collections.abc import Sequence

from common import cpu_model
from pydantic import ValidationError

from billing.domain.engine import monthly_usage
from billing.domain.events import Envelope, parse_event
from billing.domain.facts import Fact, HmacPseudonymizer, shard_of, to_fact
from billing.domain.periods import Period
from billing.gen import Line, account_names, generate_lines

TARGET = 50_000
SHARDS = 16
KEY = b"benchmark-pseudonymization-key-32"


def pin_to_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def classify(raws: Sequence[str], keep: bool = False) -> tuple[list[Fact], Counter[int], int]:
    """The timed path: validate, reduce to a fact, pick the storage shard.

    Facts are dropped once sharded (a worker writes them out batch by batch) unless
    ``keep``: holding 100k objects makes the cyclic GC a visible part of the cost.
    """
    pseudonymize = HmacPseudonymizer(KEY)
    facts: list[Fact] = []
    shards: Counter[int] = Counter()
    rejected = 0
    for raw in raws:
        try:
            event = parse_event(raw)
        except ValidationError:
            rejected += 1
            continue
        fact = to_fact(event, pseudonymize)
        shards[shard_of(fact.key, SHARDS)] += 1
        if keep:
            facts.append(fact)
    return facts, shards, rejected


def facts_of(lines: Sequence[Line], account: str) -> list[Fact]:
    """Every fact of one account, duplicates and late events included (not timed)."""
    pseudonymize = HmacPseudonymizer(KEY)
    return [
        to_fact(parse_event(x.text), pseudonymize)
        for x in lines
        if x.account == account and x.kind != "malformed"
    ]


def stages(raws: Sequence[str]) -> dict[str, float]:
    """CPU seconds of each stage alone, over the same lines (results not kept while timed)."""
    pseudonymize = HmacPseudonymizer(KEY)
    t0 = time.process_time()
    for raw in raws:
        with contextlib.suppress(ValidationError):
            parse_event(raw)
    t1 = time.process_time()
    events: list[Envelope] = []
    for raw in raws:
        with contextlib.suppress(ValidationError):
            events.append(parse_event(raw))
    keys: list[str] = []
    t2 = time.process_time()
    for event in events:
        keys.append(to_fact(event, pseudonymize).key)
    t3 = time.process_time()
    for key in keys:
        shard_of(key, SHARDS)
    t4 = time.process_time()
    return {"parse_event": t1 - t0, "to_fact": t3 - t2, "shard_of": t4 - t3}


def hotspots(raws: Sequence[str], top: int) -> str:
    profile = cProfile.Profile()
    profile.enable()
    classify(raws)
    profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--period", default="2026-10")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (best is reported)")
    parser.add_argument("--profile", action="store_true", help="profile even above target")
    parser.add_argument("--top", type=int, default=25, help="functions listed by the profile")
    parser.add_argument(
        "--keep-facts", action="store_true", help="keep every fact in memory while timing"
    )
    args = parser.parse_args(argv)

    pinned = pin_to_one_core()
    t0 = time.perf_counter()
    lines: list[Line] = list(generate_lines(args.seed, args.events, args.period))
    generated = time.perf_counter() - t0
    raws = [line.text for line in lines]
    largest = account_names(50)[0]

    runs: list[float] = []
    shards: Counter[int] = Counter()
    rejected = 0
    for _ in range(max(1, args.repeat)):
        start = time.process_time()
        _, shards, rejected = classify(raws, keep=args.keep_facts)
        runs.append(time.process_time() - start)
    best = min(runs)
    rate = len(raws) / best

    mine = facts_of(lines, largest)
    engine_runs: list[float] = []
    usage = None
    for _ in range(max(1, args.repeat)):
        start = time.process_time()
        usage = monthly_usage(mine, Period.parse(args.period))
        engine_runs.append(time.process_time() - start)
    engine = min(engine_runs)
    assert usage is not None

    runs_text = ", ".join(f"{r:.3f}" for r in runs)
    kept = ", facts kept in memory" if args.keep_facts else ""
    met = rate >= TARGET
    report = [
        f"python        {platform.python_version()} ({platform.python_implementation()})",
        f"cpu           {cpu_model()} ({pinned})",
        f"events        {len(raws):,} lines, seed {args.seed}, period {args.period} "
        f"(generated in {generated:.1f} s, not timed)",
        f"rejected      {rejected:,} malformed lines (validation errors)",
        f"classify      {best:.3f} s CPU  {rate:,.0f} events/s  "
        f"({best / len(raws) * 1e6:.1f} us/event; best of {runs_text} s; "
        f"median {statistics.median(runs):.3f} s{kept})",
        f"shards        {SHARDS}: {min(shards.values()):,} to {max(shards.values()):,} "
        "facts per shard",
        f"usage engine  {largest}: {len(mine):,} facts in {engine:.3f} s CPU  "
        f"{len(mine) / engine:,.0f} facts/s  ({len(usage.figures())} usage lines)",
        f"target        >= {TARGET:,} events/s per core for classification: "
        f"{'met' if met else 'NOT met'}",
    ]
    print("\n".join(report))

    if not met or args.profile:
        split = stages(raws)
        total = sum(split.values())
        print("\nstages (each alone, CPU):")
        for name, seconds in split.items():
            per_event = seconds / len(raws) * 1e6
            print(
                f"  {name:12s} {seconds:7.3f} s  {per_event:6.2f} us/event  {seconds / total:6.1%}"
            )
        print("\ncProfile of one classification run:")
        print(hotspots(raws, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
