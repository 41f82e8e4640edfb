"""Where one ingested event's time goes on the embedded runtime.

    python benchmarks/local_ingest_profile.py --events 5000
    PYTHONPATH=/path/to/yappi python benchmarks/local_ingest_profile.py --events 2000 --yappi

Runs ``LocalAws`` in this process with the synthesized template (``cdk.out``), queues
``--events`` lines of the reference mix (``billing.gen``) on the intake queue with the
pollers paused, then lets them ingest and waits until the queue is drained: the figure is
the ingest alone (SQS receive, the ingest handler with its id claims and fact writes,
the deletes), without the send competing for the interpreter. It prints the rate and
the CPU per event of the send and of the ingest, the requests moto's application
answered by API (wall time, and the CPU of the thread each ran in: moto's side of an
in-process call), and with ``--yappi`` (yappi importable, not a dependency of the
project) the CPU time of all threads grouped by package and the functions that cost the
most in themselves. ``--no-live``: the live view's stream poller is not started (the
ingest alone; by default the live view takes in the month at the end, as in ``billing
demo``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _group(path: str) -> str:
    """A profile entry's package, for the summary by package."""
    for marker, name in (
        ("/moto/dynamodb/parsing", "moto dynamodb expressions"),
        ("/moto/dynamodb/", "moto dynamodb"),
        ("/moto/sqs/", "moto sqs"),
        ("/moto/core/", "moto core (dispatch, responses)"),
        ("/moto/", "moto other"),
        ("/botocore/", "botocore"),
        ("/boto3/", "boto3"),
        ("/werkzeug/", "werkzeug"),
        ("/flask/", "flask"),
        ("/aws_lambda_powertools/", "powertools"),
        ("/pydantic", "pydantic"),
        ("/billing/local/", "billing.local (runtime)"),
        ("/billing/", "billing (handler's own)"),
        ("/functions/", "billing (handler's own)"),
        ("/json/", "json"),
        ("/xml", "xml"),
        ("/concurrent/", "threads"),
        ("/threading.py", "threads"),
        ("/queue.py", "threads"),
    ):
        if marker in path:
            return name
    return "other: " + path.rsplit("/", 1)[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--period", default="2026-10")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--yappi", action="store_true", help="profile all threads (CPU)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-live", action="store_true", help="no live view (stream poller)")
    args = parser.parse_args(argv)
    os.environ.update(POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="WARNING")

    import boto3
    from timings import Timings, time_moto_requests

    from billing.cli.operations import send_lines
    from billing.cli.stack import deployed
    from billing.gen.mix import generate
    from billing.local.deploy import synth
    from billing.local.runtime import LocalAws

    requests, request_cpu = Timings(), Timings(time.thread_time)

    def request_key(environ: dict[str, Any]) -> str:
        target = str(environ.get("HTTP_X_AMZ_TARGET", "")).rsplit(".", 1)[-1]
        if target:
            return target
        return f"S3 {environ.get('REQUEST_METHOD', '')}"  # (S3 paths name objects)

    time_moto_requests(requests, request_key, request_cpu)
    if args.no_live:
        from billing.local import poller

        group = poller.PollerGroup.__init__

        def without_streams(self: Any, *a: Any, **k: Any) -> None:
            group(self, *a, **k)
            self.streams = []

        poller.PollerGroup.__init__ = without_streams  # type: ignore[method-assign]

    assembly = synth(ROOT)
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "local-ingest-profile.log"
    with LocalAws(max_batching_window_seconds=0, log_file=log) as aws:
        aws.deploy(assembly, start_pollers=False)
        d = deployed()
        lines = generate(
            seed=args.seed, size=args.events, period=args.period, accounts=args.accounts
        )
        started, cpu = time.perf_counter(), time.process_time()
        sent = send_lines(d.queue_url, lines)
        cpu = time.process_time() - cpu
        print(
            f"queued        {sent:,} events in {time.perf_counter() - started:.1f} s"
            f" (CPU {1000 * cpu / sent:.3f} ms per event, sender and moto)"
        )
        requests.clear()
        request_cpu.clear()
        if args.yappi:
            import yappi  # type: ignore[import-not-found]

            yappi.set_clock_type("cpu")
            yappi.start()
        cpu = time.process_time()
        started = time.perf_counter()
        aws.start_pollers()
        aws.drain(timeout=3600)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        if args.yappi:
            yappi.stop()
        print(
            f"ingested      {sent:,} events in {wall:.2f} s = {sent / wall:,.0f}/s"
            f" (CPU {cpu:.2f} s, {1000 * cpu / sent:.3f} ms per event)"
        )
        items = boto3.client("dynamodb").describe_table(TableName=d.table)["Table"]["ItemCount"]
        print(f"table         {items:,} items")
        requests.print("moto requests (wall time, nested time included)", width=32)
        request_cpu.print("moto requests (CPU of the thread they ran in)", width=32)
        if args.yappi:
            stats = yappi.get_func_stats()
            total = sum(s.tsub for s in stats)
            by_group: dict[str, float] = defaultdict(float)
            for s in stats:
                by_group[_group(s.module)] += s.tsub
            print(f"CPU by package (own time, all threads, {total:.2f} s):")
            for name, spent in sorted(by_group.items(), key=lambda kv: -kv[1])[: args.top]:
                print(f"  {name:40s} {spent:7.2f} s {100 * spent / total:5.1f}%")
            print("functions by own time:")
            for s in sorted(stats, key=lambda s: -s.tsub)[: args.top]:
                where = f"{s.module.rsplit('site-packages/', 1)[-1]}:{s.lineno} {s.name}"
                print(f"  {where[-70:]:70s} {s.ncall:8,} {s.tsub:7.2f} s {s.ttot:7.2f} s")
            print("functions by total time:")
            for s in sorted(stats, key=lambda s: -s.ttot)[: args.top]:
                where = f"{s.module.rsplit('site-packages/', 1)[-1]}:{s.lineno} {s.name}"
                print(f"  {where[-70:]:70s} {s.ncall:8,} {s.tsub:7.2f} s {s.ttot:7.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
