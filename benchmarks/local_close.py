"""``billing close`` of one small account on the embedded runtime, through the CLI.

    python benchmarks/local_close.py            # examples/events.jsonl (19 events), 3 runs

Starts the runtime as ``billing local start`` does (in a temporary state directory),
stores a plan for ``acme``, sends ``examples/events.jsonl`` and waits until it is
ingested, then times ``billing close --period 2026-10`` as a user runs it, in a new
process each time (interpreter start and imports included): the first close, then
re-runs (``--force`` is not needed: the month has ended; a re-run keeps the issued
invoice). Prints each run's wall time and the command's own summary line (phases).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BILLING = str(Path(sys.executable).parent / "billing")


def run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [BILLING, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - started, done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default=str(ROOT / "examples" / "events.jsonl"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    from billing.local import service

    with tempfile.TemporaryDirectory(prefix="billing-local-") as state_dir:
        started = time.perf_counter()
        exported = service.start(state_dir, max_batching_window_seconds=0)
        print(f"runtime       started in {time.perf_counter() - started:.1f} s ({state_dir})")
        env = {**os.environ, **exported}
        try:
            local = ["--state-dir", state_dir]
            run(["plans", "put", "examples/plans/retail-eu.yaml", "--account", "acme"], env)
            spent, _ = run(["send", args.events], env)
            lines = sum(1 for line in Path(args.events).read_text().splitlines() if line.strip())
            print(f"send          {lines} events ingested in {spent:.1f} s")
            for n in range(1, args.runs + 1):
                spent, summary = run(["close", "--period", "2026-10", *local], env)
                kind = "first close" if n == 1 else "re-run"
                print(f"close #{n:<6} {spent:.2f} s wall ({kind}): {summary}")
        finally:
            service.stop(state_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
