"""The embedded runtime at volume: ``billing send`` of N events, then the queue drained.

    python benchmarks/local_ingest.py --events 100000 --seed 1

Starts the local runtime in the background exactly as ``billing local start`` does (its
own process, state in a temporary directory), writes ``--events`` lines of the reference
mix (``billing.gen``) to a JSON Lines file, and sends the file with the function
``billing send`` uses (``send_lines``) from this process, over HTTP, while the runtime's
poller ingests concurrently. Printed:

* the send rate of every block of ``--every`` events (100,000 by default) and overall:
  a steady rate means a receive does not slow down with the queue's depth;
* the end-to-end ingest rate: events divided by the time from the first send to the
  intake queue drained (nothing visible, in flight or delayed), i.e. every event through
  SQS, the poller and the ingest handler (validation, id claim, facts in DynamoDB);
* the facts and rejects the runtime holds afterwards, as a check that nothing was lost.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _timed(lines: Iterator[str], every: int, marks: list[tuple[int, float]]) -> Iterator[str]:
    for count, line in enumerate(lines, 1):
        yield line
        if count % every == 0:
            marks.append((count, time.monotonic()))


def _count_items(dynamodb: Any, table: str) -> int:
    """The table's item count (moto's ``DescribeTable`` counts live; a Scan would read
    every item)."""
    return int(dynamodb.describe_table(TableName=table)["Table"]["ItemCount"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--period", default="2026-10")
    parser.add_argument("--every", type=int, default=100_000, help="report block size")
    parser.add_argument("--timeout", type=float, default=3600, help="drain timeout, seconds")
    parser.add_argument("--keep", action="store_true", help="leave the runtime running")
    args = parser.parse_args()

    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(REPO))
    import boto3

    from billing.cli.operations import send_lines
    from billing.cli.stack import deployed
    from billing.gen.mix import write_jsonl
    from billing.local import service
    from billing.local.poller import drain_queues, queue_depth

    work = Path(tempfile.mkdtemp(prefix="local-ingest-"))
    events_file = work / "events.jsonl"
    started = time.monotonic()
    written = write_jsonl(events_file, args.seed, args.events, args.period, args.accounts)
    print(f"generated {written:,} events in {time.monotonic() - started:.1f} s: {events_file}")

    state_dir = work / "state"
    started = time.monotonic()
    env = service.start(
        state_dir,
        template_dir=REPO / "cdk.out",
        project_root=REPO,
        max_batching_window_seconds=0,
    )
    os.environ.update(env)
    print(f"runtime started in {time.monotonic() - started:.1f} s ({env['AWS_ENDPOINT_URL']})")
    try:
        d = deployed()
        sqs = boto3.client("sqs")
        marks: list[tuple[int, float]] = []

        def lines() -> Iterator[str]:
            with events_file.open(encoding="utf-8") as stream:
                yield from (line.rstrip("\n") for line in stream if line.strip())

        t0 = time.monotonic()
        marks.append((0, t0))
        sent = send_lines(d.queue_url, _timed(lines(), args.every, marks))
        t_sent = time.monotonic()
        if marks[-1][0] != sent:
            marks.append((sent, t_sent))
        print(f"\nsend: {sent:,} events in {t_sent - t0:.1f} s = {sent / (t_sent - t0):,.0f}/s")
        per = args.every
        for (n0, a), (n1, b) in itertools.pairwise(marks):
            rate = (n1 - n0) / (b - a)
            print(
                f"  events {n0 + 1:>9,}-{n1:>9,}: {b - a:7.1f} s, {rate:7,.0f}/s"
                f"  ({per * (b - a) / (n1 - n0):.1f} s per {per:,})"
            )
        backlog = queue_depth(sqs, d.queue_url)
        print(f"queue depth when the send ended: {backlog:,}")
        try:
            t_drained = drain_queues([d.queue_url], timeout=args.timeout, interval=0.2)
        except TimeoutError:
            left = queue_depth(sqs, d.queue_url)
            print(f"NOT drained after {args.timeout:.0f} s: {left:,} messages left")
            return 1
        total = t_drained - t0
        print(
            f"ingest end to end: {sent:,} events in {total:.1f} s = {sent / total:,.0f}/s"
            f" (drained {t_drained - t_sent:.1f} s after the send ended)"
        )
        items = _count_items(boto3.client("dynamodb"), d.table)
        rejects = sum(
            page.get("KeyCount", 0)
            for page in boto3.client("s3")
            .get_paginator("list_objects_v2")
            .paginate(Bucket=d.rejects_bucket)
        )
        dlq = queue_depth(sqs, d.dlq_url) if d.dlq_url else 0
        print(f"afterwards: {items:,} items in the table, {rejects:,} rejects, DLQ {dlq}")
    finally:
        if not args.keep:
            service.stop(state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
