"""Where the month close's time goes on the embedded runtime.

    python benchmarks/local_close_profile.py --accounts 1 --events 19
    python benchmarks/local_close_profile.py --accounts 20 --events 4000
    python benchmarks/local_close_profile.py --accounts 100 --events 100000

Runs ``LocalAws`` in this process with the synthesized template (``cdk.out``), stores an
example plan per account, loads the reference mix's facts straight into the table
(``fact_item`` + the account registry, BatchWriteItem: not timed), waits for the live view
to take them in from the table's stream (not timed either: ``billing demo`` drains before
it closes), then runs the month-close state machine (settle 0) and prints: the wall time,
the CPU of this process and of the PDF workers (``billing.local.offload``), each Lambda
handler's calls and time, and the requests moto's server answered by API with their time
(nested: a Lambda Invoke includes the requests its handler makes; summed over concurrent
threads), and the span of each state in the last execution (first entered to last
exited). For one account it also prints the execution history's timeline. ``--drafts``
runs a draft close of every group first (timed apart), as ``billing demo`` does.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--period", default="2026-10")
    parser.add_argument(
        "--drafts",
        action="store_true",
        help="a draft close first, as billing demo runs (timed apart)",
    )
    args = parser.parse_args(argv)
    os.environ.update(POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="WARNING")

    import boto3
    from timings import Timings, time_moto_requests

    from billing.adapters.store import UsageStore, fact_item
    from billing.cli.stack import deployed
    from billing.close import close_groups
    from billing.domain.events import parse_event
    from billing.domain.facts import HmacPseudonymizer, to_fact
    from billing.domain.plan import load_plan
    from billing.gen.mix import generate
    from billing.local import dispatch, offload
    from billing.local.deploy import synth
    from billing.local.runtime import LocalAws

    requests, handlers = Timings(), Timings()

    def request_key(environ: dict[str, Any]) -> str:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if "DynamoDB" in target:
            return f"dynamodb.{target.rsplit('.', 1)[-1]}"
        if target:
            return target
        if "/functions/" in str(environ.get("PATH_INFO", "")):
            return "lambda.Invoke"
        return f"s3 {environ.get('REQUEST_METHOD', '')}"

    time_moto_requests(requests, request_key)

    invoke: Callable[..., Any] = dispatch.LambdaDispatcher.invoke

    def timed_invoke(self: Any, name: str, event: Any, **kw: Any) -> Any:
        started = time.perf_counter()
        try:
            return invoke(self, name, event, **kw)
        finally:
            handlers.count(dispatch.function_name_of(name), started)

    dispatch.LambdaDispatcher.invoke = timed_invoke  # type: ignore[method-assign,assignment]

    assembly = synth(ROOT)
    # what the handlers print (log lines, metrics) goes to the runtime's log file
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "local-close-profile.log"
    with LocalAws(max_batching_window_seconds=0, log_file=log) as aws:
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
        # the live view takes in the loaded month from the table's stream first, as it
        # does during ingest (`billing demo` drains before it closes): not the close's CPU
        started = time.perf_counter()
        aws.drain(timeout=3600)
        print(f"live view     caught up in {time.perf_counter() - started:.1f} s")
        if args.drafts:  # as `billing demo` and the draft schedule: drafts, then the close
            started = time.perf_counter()
            for group in close_groups(store, args.period):
                aws.run_state_machine(
                    "MonthCloseStateMachine",
                    {"period": group, "settle_seconds": 0, "draft": True},
                    timeout=3600,
                )
            print(f"drafts        {time.perf_counter() - started:.2f} s wall")
        requests.clear()
        handlers.clear()
        started = time.perf_counter()
        cpu = time.process_time()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        # one execution per close group (an example plan bills in Asia/Seoul), as
        # `billing close` runs them: earliest local month end first
        for group in close_groups(store, args.period):
            desc = aws.run_state_machine(
                "MonthCloseStateMachine", {"period": group, "settle_seconds": 0}, timeout=3600
            )
            print(f"close {group:<18} {desc['status']} {desc.get('outputJson')}")
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        print(f"close         {wall:.2f} s wall")
        print(f"              {cpu:.2f} s CPU (all threads of this process)")
        offload.shutdown()  # the PDF workers (billing.local.offload) end: their CPU counts
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        workers = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        print(f"              {workers:.2f} s CPU of PDF workers")
        handlers.print("handlers")
        requests.print("moto requests")
        history = aws.client("stepfunctions").get_execution_history(
            executionArn=desc["executionArn"], maxResults=1000
        )["events"]
        phases: dict[str, list[float]] = {}
        origin = history[0]["timestamp"]
        for e in history:
            name = e.get("stateEnteredEventDetails", e.get("stateExitedEventDetails", {})).get(
                "name", ""
            )
            if name:
                at = (e["timestamp"] - origin).total_seconds()
                span = phases.setdefault(name, [at, at])
                span[0], span[1] = min(span[0], at), max(span[1], at)
        print(f"states of the last execution ({group}), first entered - last exited:")
        for name, (first, last) in sorted(phases.items(), key=lambda kv: kv[1][0]):
            print(f"  {first:8.2f} - {last:8.2f} s  {name}")
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
