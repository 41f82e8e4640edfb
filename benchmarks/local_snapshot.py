"""Cost of the embedded runtime's durable state: one snapshot and one restore, by size.

    python benchmarks/local_snapshot.py --events 300 --items 10000 50000 200000

Deploys the stack into an in-process runtime with a state directory, ingests ``--events``
events of the reference mix through the queue and the real handler, then grows the usage
table to each ``--items`` count by copying the stored items under new keys (same shapes
as real facts and claims). For each size it prints the time data requests are held back
while a snapshot is captured, the first time (every item encoded) and the next time after
100 more events (only changed items encoded), the time to write it (temporary file, fsync,
rename), the file's size, and the time to restore it into a freshly deployed stack.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _grow(table: Any, target: int) -> None:
    """Copies items under new hash keys until the table holds ``target`` items."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    originals = [(h, dict(v) if isinstance(v, dict) else v) for h, v in list(table.items.items())]
    count = sum(len(v) if isinstance(v, dict) else 1 for _, v in originals)
    round_ = 0
    while count < target:
        round_ += 1
        for hash_key, value in originals:
            new_hash = DynamoType({hash_key.type: f"{hash_key.value}#copy{round_}"})
            if isinstance(value, dict):
                copies = {}
                for range_key, item in value.items():
                    clone = copy.deepcopy(item)
                    clone.hash_key = new_hash
                    clone.attrs[table.hash_key_attr] = new_hash
                    copies[range_key] = clone
                table.items[new_hash] = copies
                count += len(copies)
            else:
                clone = copy.deepcopy(value)
                clone.hash_key = new_hash
                clone.attrs[table.hash_key_attr] = new_hash
                table.items[new_hash] = clone
                count += 1
            if count >= target:
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    args = parser.parse_args()

    from moto.dynamodb.models import dynamodb_backends

    from billing.cli.operations import send_lines
    from billing.cli.stack import deployed
    from billing.gen.mix import generate
    from billing.local import LocalAws, synth
    from billing.local.snapshot import restore

    work = Path(tempfile.mkdtemp(prefix="bench-snapshot-"))
    assembly = synth(REPO, outdir=work / "cdk.out")
    state = work / "state"
    log = work / "handlers.log"
    print(
        f"{'items':>8} {'first held s':>12} {'next held s':>11} {'write s':>8} {'MB':>6}"
        f" {'restore s':>9}"
    )
    for target in args.items:
        with LocalAws(
            max_batching_window_seconds=0, state_dir=state, log_file=log, snapshot_interval=3600
        ) as aws:
            aws.deploy(assembly, stack_name="Billing-dev")
            deployed.cache_clear()
            d = deployed()
            lines = generate(seed=1, size=args.events + 100, period="2026-10", accounts=5)
            for _ in range(0, args.events, 100):
                send_lines(d.queue_url, list(islice(lines, 100)))
                aws.drain(timeout=600)
            next_lines = list(lines)
            stack = aws.stack
            table = dynamodb_backends[stack.account_id][stack.region].tables[d.table]
            _grow(table, target)
            assert aws.gate is not None
            aws.gate.mark_changed()
            started = time.monotonic()
            info = aws.snapshot()  # every item new: all encoded
            total = time.monotonic() - started
            assert info is not None
            held = aws._capture_seconds
            send_lines(d.queue_url, next_lines)  # a few changes, as during ingestion
            aws.drain(timeout=600)
            aws.snapshot()
            warm = aws._capture_seconds
        with LocalAws(max_batching_window_seconds=0, log_file=log) as fresh:
            new_stack = fresh.deploy(assembly, stack_name="Billing-dev", start_pollers=False)
            started = time.monotonic()
            restored = restore(state, new_stack, fresh.client)
            restore_seconds = time.monotonic() - started
        print(
            f"{info.items:>8} {held:>12.2f} {warm:>11.2f} {total - held:>8.2f}"
            f" {info.bytes / 1e6:>6.1f} {restore_seconds:>9.2f}"
        )
        final = aws.last_snapshot
        assert final is not None
        assert restored.items == final.items
        (state / "snapshot.pickle").unlink()
        deployed.cache_clear()


if __name__ == "__main__":
    main()
