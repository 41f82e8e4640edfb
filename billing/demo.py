"""``billing demo``: the whole system on one machine, events in, invoices out.

Starts the embedded runtime (moto on loopback with the synthesized CDK template deployed
and the real handlers attached), stores example price plans, generates a month of the
reference traffic mix for several accounts, sends it through the intake queue, runs the
month-close state machine and copies the invoices out of S3.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import boto3
from rich.console import Console
from rich.table import Table

from billing.adapters.store import FinanceStore, UsageStore
from billing.cli.operations import (
    SendRate,
    counted,
    download_period,
    run_close,
    send_lines,
    send_progress,
)
from billing.cli.stack import deployed
from billing.close import close_groups
from billing.domain.plan import load_plan
from billing.domain.profile import load_profile, load_seller
from billing.gen.mix import generate
from billing.live import LiveUsage
from billing.local.deploy import Synthesis
from billing.local.runtime import LocalAws

ROOT = Path(__file__).resolve().parent.parent
PLANS = ROOT / "examples" / "plans"
PROFILES = ROOT / "examples" / "profiles"  # one per plan, same file name
SELLERS = ROOT / "examples" / "sellers"
console = Console(stderr=True)
DEMO_LOG = Path(".billing-local") / "demo.log"


def run_demo(events: int, accounts: int, period: str, seed: int, out_dir: Path) -> None:
    started = time.monotonic()
    synthesis = Synthesis(ROOT)  # the CDK app runs in its own process while the runtime starts
    # Batches are handed over as soon as they are full or the queue is empty: on AWS the
    # 5 s batching window saves invocations; locally it would only add waiting.
    # What the handlers print (log lines, metrics) goes to the runtime's log file.
    # The ingest function and the close's tasks run in worker processes, on the other core.
    with LocalAws(max_batching_window_seconds=0, log_file=DEMO_LOG, function_workers=True) as aws:
        with console.status("synthesizing the CDK app"):
            assembly = synthesis.result()
        with console.status("deploying the stack into the local runtime"):
            aws.deploy(assembly)
        d = deployed()
        store = UsageStore(boto3.resource("dynamodb").Table(d.table), d.shards)
        plans = sorted(PLANS.glob("*.yaml"))
        names = [f"acct-{n:03d}" for n in range(1, accounts + 1)]
        finance = FinanceStore(store.table)
        for path in sorted(SELLERS.glob("*.yaml")):
            seller = load_seller(path)
            finance.put_seller(seller.id, seller.effective_from, seller.model_dump(mode="json"))
        for i, account in enumerate(names):
            plan = load_plan(plans[i % len(plans)]).model_copy(update={"account": account})
            store.put_plan(account, plan.effective_from, plan.model_dump(mode="json"))
            profile = load_profile(PROFILES / plans[i % len(plans)].name)
            doc = {**profile.model_dump(mode="json"), "account": account}
            finance.put_profile(account, profile.effective_from, doc)
        console.print(
            f"price plans and billing profiles stored for {accounts} accounts "
            f"({len(plans)} examples)"
        )
        lines = generate(seed=seed, size=events, period=period, accounts=accounts)
        # One stream, as producers send: the runtime's queue costs the same per receive
        # whatever its depth, and the pollers ingest while the events arrive.
        ingest_started = time.monotonic()
        with send_progress() as progress:
            rate = SendRate(100_000, progress.console.print)
            sent = send_lines(d.queue_url, lines, progress, total=events, rate=rate)
        console.print(rate.summary())
        timeout = max(600.0, events / 10)
        with console.status("ingesting"):  # through SQS and the ingest handler
            aws.drain(timeout=timeout, streams=False)
        ingest_seconds = time.monotonic() - ingest_started
        console.print(
            f"ingested in {ingest_seconds:.1f} s ({sent / ingest_seconds:,.0f} events/s end to end)"
        )
        live_started = time.monotonic()
        with console.status("live view catching up"):  # the table's stream, every shard
            aws.drain(timeout=timeout)
        console.print(f"live view caught up in {time.monotonic() - live_started:.1f} s")
        rejected = sum(
            1
            for _ in boto3.client("s3").list_objects_v2(Bucket=d.rejects_bucket).get("Contents", [])
        )
        console.print(f"ingested {sent} events ({rejected} rejected with their reasons)")
        show_live(store, period, names)
        # the close at the period's end writes drafts; finalizing numbers them. Each time
        # zone's group closes on its own (Seoul's accounts first: its month ends first).
        groups = close_groups(store, period)
        closing = time.monotonic()
        drafts = sum(run_close(d, g, settle=0, draft=True).get("drafts", 0) for g in groups)
        console.print(
            f"{counted(drafts, 'draft')} written (drafts/{period}/)"
            f" in {time.monotonic() - closing:.1f} s"
        )
        closing = time.monotonic()
        failed: list[str] = []
        for group in groups:  # each close reports its own group's accounts
            failed += run_close(d, group, settle=0).get("failed", [])
        console.print(f"{period} closed in {time.monotonic() - closing:.1f} s")
        files = download_period(d, period, out_dir)
        show(store, period, failed)
    console.print(f"\n{len(files)} files written under {out_dir / 'invoices' / period}/")
    console.print(f"done in {time.monotonic() - started:.0f} s")


def show_live(store: UsageStore, period: str, accounts: list[str]) -> None:
    """What ``billing usage`` shows before the close: the live view and its estimate."""
    live = LiveUsage(store)
    table = Table(
        "account", "metrics", "estimated so far", "shards", title=f"live usage of {period}"
    )
    for account in accounts:
        view = live.view(account, period)
        estimate = live.estimate(account, period, view.usage)
        shown = f"{estimate.total:,.2f} {estimate.currency}" if estimate else "no plan"
        table.add_row(account, str(len(view.usage.by_metric())), shown, str(view.shards))
    Console().print(table)


def show(store: UsageStore, period: str, failed: list[str]) -> None:
    table = Table("account", "invoice", "net", "tax", "gross", title=f"invoices for {period}")
    for r in sorted(store.results(period), key=lambda r: r["account"]):
        if r["status"] == "issued":
            amounts = [r.get(k, r["total"] if k != "tax" else "0") for k in ("net", "tax", "gross")]
            shown = [f"{Decimal(str(a)):,.2f} {r['currency']}" for a in amounts]
            table.add_row(r["account"], r["invoice"], *shown)
        else:
            table.add_row(r["account"], "[red]failed[/]", str(r.get("error", ""))[:60], "", "")
    Console().print(table)
