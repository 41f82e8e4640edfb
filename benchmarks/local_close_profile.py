"""Where the month close's time goes on the embedded runtime.

    python benchmarks/local_close_profile.py --accounts 1 --events 19
    python benchmarks/local_close_profile.py --accounts 20 --events 4000
    python benchmarks/local_close_profile.py --accounts 100 --events 100000

Runs ``LocalAws`` in this process with the synthesized template (``cdk.out``), stores an
example plan per account, loads the reference mix's facts straight into the table
(``fact_item`` + the account registry, BatchWriteItem: not timed), then runs the
month-close state machine (settle 0) and prints: the wall time, each Lambda handler's
calls and time, and the requests moto's server answered by API with their time (nested:
a Lambda Invoke includes the requests its handler makes; summed over concurrent
threads). For one account it also prints the execution history's timeline.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--period", default="2026-10")
    args = parser.parse_args(argv)
    os.environ.update(POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="WARNING")

    import boto3
    from moto.moto_server import werkzeug_app

    from billing.adapters.store import UsageStore, fact_item
    from billing.cli.stack import deployed
    from billing.domain.events import parse_event
    from billing.domain.facts import HmacPseudonymizer, to_fact
    from billing.domain.plan import load_plan
    from billing.gen.mix import generate
    from billing.local import dispatch
    from billing.local.deploy import synth
    from billing.local.runtime import LocalAws

    lock = threading.Lock()
    requests: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    handlers: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def count(table: dict[str, list[float]], key: str, started: float) -> None:
        with lock:
            table[key][0] += 1
            table[key][1] += time.perf_counter() - started

    serve: Callable[..., Any] = werkzeug_app.DomainDispatcherApplication.__call__

    def timed_request(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        started = time.perf_counter()
        try:
            return serve(self, environ, start_response)
        finally:
            target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
            if "DynamoDB" in target:
                key = f"dynamodb.{target.rsplit('.', 1)[-1]}"
            elif target:
                key = target
            elif "/functions/" in str(environ.get("PATH_INFO", "")):
                key = "lambda.Invoke"
            else:
                key = f"s3 {environ.get('REQUEST_METHOD', '')}"
            count(requests, key, started)

    invoke: Callable[..., Any] = dispatch.LambdaDispatcher.invoke

    def timed_invoke(self: Any, name: str, event: Any, **kw: Any) -> Any:
        started = time.perf_counter()
        try:
            return invoke(self, name, event, **kw)
        finally:
            count(handlers, dispatch.function_name_of(name), started)

    werkzeug_app.DomainDispatcherApplication.__call__ = timed_request  # type: ignore[method-assign]
    dispatch.LambdaDispatcher.invoke = timed_invoke  # type: ignore[method-assign,assignment]

    assembly = synth(ROOT)
    with LocalAws(max_batching_window_seconds=0) as aws:
        aws.deploy(assembly)
        d = deployed()
        store = UsageStore(boto3.resource("dynamodb").Table(d.table), d.shards)
        plans = sorted((ROOT / "examples" / "plans").glob("*.yaml"))
        names = [f"acct-{n:03d}" for n in range(1, args.accounts + 1)]
        for i, account in enumerate(names):
            plan = load_plan(plans[i % len(plans)]).model_copy(update={"account": account})
            store.put_plan(account, plan.effective_from, plan.model_dump(mode="json"))
        pseudonymize = HmacPseudonymizer(b"benchmark-pseudonym-key-0123456789")
        items: dict[tuple[str, str], dict[str, Any]] = {}
        for line in generate(seed=7, size=args.events, period=args.period, accounts=args.accounts):
            try:
                event = parse_event(line)
            except ValueError:
                continue
            item = fact_item(event.subject, to_fact(event, pseudonymize), d.shards)
            items[(item["pk"], item["sk"])] = item
            registry = {"pk": f"P#{args.period}", "sk": f"A#{event.subject}"}
            items[(registry["pk"], registry["sk"])] = registry
        started = time.perf_counter()
        store.put_items(list(items.values()))
        print(f"loaded        {len(items):,} items in {time.perf_counter() - started:.1f} s")
        requests.clear()
        handlers.clear()
        started = time.perf_counter()
        cpu = time.process_time()
        desc = aws.run_state_machine(
            "MonthCloseStateMachine",
            {"period": args.period, "settle_seconds": 0},
            timeout=3600,
        )
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        print(f"close         {desc['status']} {desc.get('outputJson')} in {wall:.2f} s wall")
        print(f"              {cpu:.2f} s CPU (all threads of this process)")
        for title, table in (("handlers", handlers), ("moto requests", requests)):
            print(f"{title}:")
            for key, (n, spent) in sorted(table.items(), key=lambda kv: -kv[1][1]):
                print(f"  {key:40s} {int(n):6,} {spent:9.2f} s {1000 * spent / n:9.1f} ms/call")
        if args.accounts == 1:
            history = aws.client("stepfunctions").get_execution_history(
                executionArn=desc["executionArn"], maxResults=1000
            )["events"]
            first = history[0]["timestamp"]
            for e in history:
                name = e.get("stateEnteredEventDetails", {}).get("name", "")
                print(f"  {(e['timestamp'] - first).total_seconds():7.3f} {e['type']:30s} {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
