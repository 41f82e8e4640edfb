"""What one pass of the live view over a stored month costs on moto, in this process.

    python benchmarks/local_live_refresh.py --events 3000 --accounts 6

Stores a month of ``--events`` lines of the reference mix (``billing.gen``) for
``--accounts`` accounts with the example plans (in-process moto, the table's stream on,
the embedded runtime's fast paths installed, 16 shards), then hands every stream record
the live view's mapping keeps (``F#``/``E#``/``PLAN#``/``THRESHOLD#``) to
``LiveUsage.handle_stream`` in batches of ``--batch`` records, and then the last 50
records once more (a small batch over a full month). ``--lanes N`` splits the records as
the embedded runtime splits the stream for its function workers (by key owner: each
account's records in one lane), the lanes run one after the other: what the split costs in
work and requests, not its concurrency. Printed: the CPU time of this process and the
wall time of each, and the DynamoDB requests made, by API.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
KEPT = ("F#", "E#", "PLAN#", "THRESHOLD#")  # the live event source mapping's filter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--accounts", type=int, default=6)
    parser.add_argument("--batch", type=int, default=2000, help="stream records per call")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--lanes",
        type=int,
        default=1,
        help="the records split by key owner into lanes as the embedded runtime splits the "
        "stream for its function workers (run one after the other: the work, not the "
        "concurrency)",
    )
    args = parser.parse_args(argv)
    os.environ.pop("AWS_ENDPOINT_URL", None)  # in-process moto (common sets the rest)
    sys.path.insert(0, str(REPO))

    import boto3
    from botocore.config import Config
    from common import create_table, sqs_event  # first: the environment of the handlers
    from moto import mock_aws

    from billing.adapters.rejects import RejectStore
    from billing.adapters.store import UsageStore
    from billing.domain.facts import HmacPseudonymizer
    from billing.domain.plan import load_plan
    from billing.gen.mix import generate
    from billing.ingest import Ingestor
    from billing.live import LiveUsage
    from billing.local import fastpaths
    from billing.local.streams import StreamReader, deliver, partitioned

    fastpaths.install()
    with mock_aws():
        table = create_table(boto3.resource("dynamodb"), "usage")
        table.meta.client.update_table(
            TableName=table.name,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
        )
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="rejects")
        store = UsageStore(table, 16)
        plans = sorted((REPO / "examples" / "plans").glob("*.yaml"))
        for i in range(args.accounts):
            account = f"acct-{i + 1:03d}"
            plan = load_plan(plans[i % len(plans)]).model_copy(update={"account": account})
            store.put_plan(account, plan.effective_from, plan.model_dump(mode="json"))
        description = table.meta.client.describe_table(TableName=table.name)["Table"]
        streams = boto3.client(
            "dynamodbstreams", config=Config(account_id_endpoint_mode="disabled")
        )
        reader = StreamReader(streams, description["LatestStreamArn"])
        ingestor = Ingestor(store, RejectStore(s3, "rejects"), HmacPseudonymizer(b"k" * 32))
        lines = list(generate(args.seed, args.events, "2026-10", args.accounts))
        started = time.perf_counter()
        for start in range(0, len(lines), 100):
            ingestor.handle(sqs_event(lines[start : start + 100], start))
        print(f"stored        {len(lines):,} events in {time.perf_counter() - started:.1f} s")
        records: list[dict[str, Any]] = []
        while batch := reader.read(10_000):
            records.extend(batch)
        kept = [r for r in records if str(r["dynamodb"]["Keys"]["pk"]["S"]).startswith(KEPT)]
        print(f"stream        {len(records):,} records, {len(kept):,} kept by the filter")

        live = LiveUsage(UsageStore(table, 16, consistent_reads=True))
        calls: Counter[str] = Counter()
        api_call = table.meta.client._make_api_call

        def counting(operation: str, params: Any) -> Any:
            calls[operation] += 1
            return api_call(operation, params)

        table.meta.client._make_api_call = counting

        def run(title: str, batch: list[dict[str, Any]]) -> None:
            calls.clear()
            wall, cpu = time.perf_counter(), time.process_time()
            for part in partitioned(batch, args.lanes):
                deliver(part, lambda e: live.handle_stream(e["Records"]), batch_size=args.batch)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            requests = ", ".join(f"{k} {v:,}" for k, v in sorted(calls.items()))
            print(f"{title:13s} CPU {cpu:6.2f} s, wall {wall:6.2f} s; {requests}")

        run("every record", kept)
        run("last 50", kept[-50:])
    fastpaths.uninstall()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
