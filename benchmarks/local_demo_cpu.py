"""``billing demo`` in this process, with the CPU each Lambda function's handler took.

    python benchmarks/local_demo_cpu.py --events 10000 --accounts 20 --ingest-only

Runs ``billing.demo.run_demo`` (the embedded runtime, the example plans, the reference
mix, the send, the ingest with the live view, then unless ``--ingest-only`` the closes
and the invoices) and prints the wall time and this process's CPU time, and per function
the invocations, the CPU time of the thread running its handler (``time.thread_time``
around the dispatcher's ``invoke``: work the handler hands to other threads, such as
ingest's pool of id claims, is not in it) and the wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ingest-only", action="store_true", help="no close, no invoices")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))

    from billing import demo
    from billing.local import dispatch

    lock = threading.Lock()
    spent: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    depth = threading.local()
    invoke = dispatch.LambdaDispatcher.invoke

    def timed(self: Any, name: str, event: Any, **kw: Any) -> Any:
        nested = getattr(depth, "n", 0)
        depth.n = nested + 1
        cpu, wall = time.thread_time(), time.monotonic()
        try:
            return invoke(self, name, event, **kw)
        finally:
            depth.n = nested
            if not nested:
                with lock:
                    entry = spent[dispatch.function_name_of(name)]
                    entry[0] += 1
                    entry[1] += time.thread_time() - cpu
                    entry[2] += time.monotonic() - wall

    setattr(dispatch.LambdaDispatcher, "invoke", timed)  # noqa: B010
    if args.ingest_only:
        setattr(demo, "run_close", lambda *a, **k: {})  # noqa: B010
        setattr(demo, "download_period", lambda *a, **k: [])  # noqa: B010
        setattr(demo, "show", lambda *a, **k: None)  # noqa: B010
    os.chdir(tempfile.mkdtemp(prefix="local-demo-cpu-"))  # .billing-local/, out/
    wall, cpu = time.monotonic(), time.process_time()
    try:
        demo.run_demo(args.events, args.accounts, "2026-10", args.seed, Path("out"))
    finally:
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        print(f"demo          {wall:.1f} s wall, {cpu:.1f} s CPU (this process, all threads)")
        for name, (n, thread_cpu, thread_wall) in sorted(spent.items(), key=lambda kv: -kv[1][1]):
            print(
                f"  {name:34s} {int(n):6,} invocations, CPU {thread_cpu:7.1f} s,"
                f" wall {thread_wall:7.1f} s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
