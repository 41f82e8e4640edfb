"""``billing``: the command line of the billing system.

It talks to whatever AWS endpoint boto3 resolves: real AWS, or the embedded local runtime
through ``AWS_ENDPOINT_URL`` (``billing local start`` prints what to export).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from billing.adapters.invoices import INVOICES, DocumentStore, invoice_key
from billing.adapters.rejects import RejectStore, mask
from billing.adapters.store import UsageStore
from billing.cli.stack import Deployed, deployed
from billing.domain.events import validate_account_id
from billing.domain.invoice import Invoice
from billing.domain.plan import load_plan
from billing.queries import current_usage

app = typer.Typer(no_args_is_help=True, help=__doc__, pretty_exceptions_show_locals=False)
local_app = typer.Typer(no_args_is_help=True, help="The embedded local runtime (moto on loopback).")
plans_app = typer.Typer(no_args_is_help=True, help="Price plans (customer contracts).")
invoices_app = typer.Typer(no_args_is_help=True, help="Issued invoices in S3.")
app.add_typer(local_app, name="local")
app.add_typer(plans_app, name="plans")
app.add_typer(invoices_app, name="invoices")
console = Console(stderr=True)
out = Console()

PeriodOpt = Annotated[str, typer.Option("--period", "-p", help="billing period YYYY-MM")]
AccountOpt = Annotated[str, typer.Option("--account", "-a", help="account id")]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _store(d: Deployed) -> UsageStore:
    return UsageStore(boto3.resource("dynamodb").Table(d.table), d.shards)


def _documents(d: Deployed) -> DocumentStore:
    return DocumentStore(boto3.client("s3"), d.invoice_bucket)


# --- events in ----------------------------------------------------------------------------


def _lines(source: str) -> Iterator[str]:
    if source == "-":
        yield from (line.rstrip("\n") for line in sys.stdin if line.strip())
        return
    with Path(source).open(encoding="utf-8") as stream:
        yield from (line.rstrip("\n") for line in stream if line.strip())


def send_lines(queue_url: str, lines: Iterable[str], progress: Progress | None = None) -> int:
    """Send raw event lines to the intake queue, 10 per request. Returns how many."""
    sqs = boto3.client("sqs")
    batch: list[str] = []
    sent = 0
    task = progress.add_task("sending", total=None) if progress else None

    def flush() -> None:
        nonlocal sent
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(batch)]
        resp = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if resp.get("Failed"):
            raise RuntimeError(f"queue refused {len(resp['Failed'])} messages: {resp['Failed'][0]}")
        sent += len(batch)
        batch.clear()
        if progress and task is not None:
            progress.update(task, completed=sent)

    for line in lines:
        batch.append(line)
        if len(batch) == 10:
            flush()
    if batch:
        flush()
    return sent


def wait_until_ingested(queue_url: str, timeout: float = 300) -> bool:
    """Wait until the intake queue has nothing visible or in flight (twice in a row)."""
    sqs = boto3.client("sqs")
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + timeout
    empty_checks = 0
    while time.monotonic() < deadline:
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        empty_checks = empty_checks + 1 if all(int(attrs[n]) == 0 for n in names) else 0
        if empty_checks >= 2:
            return True
        time.sleep(0.5)
    return False


@app.command()
def send(
    file: Annotated[str, typer.Argument(help="JSON Lines of CloudEvents, or - for stdin")],
    wait: Annotated[bool, typer.Option(help="wait until the queue has been ingested")] = True,
) -> None:
    """Send usage events to the intake queue."""
    d = deployed()
    with _progress() as progress:
        n = send_lines(d.queue_url, _lines(file), progress)
    console.print(f"sent {n} events to {d.queue_url}")
    if wait:
        with console.status("waiting for ingestion"):
            done = wait_until_ingested(d.queue_url)
        console.print("ingested" if done else "[yellow]still ingesting[/]: check again later")


@app.command()
def replay(
    dlq: Annotated[bool, typer.Option(help="re-send the dead-letter queue")] = True,
    rejected: Annotated[bool, typer.Option(help="re-send the rejected-events store")] = True,
) -> None:
    """Re-ingest what could not be processed, after a fix: the DLQ and rejected events."""
    d = deployed()
    sqs = boto3.client("sqs")
    moved = 0
    if dlq and d.dlq_url:
        while True:
            msgs = sqs.receive_message(QueueUrl=d.dlq_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not msgs:
                break
            moved += send_lines(d.queue_url, [m["Body"] for m in msgs])
            sqs.delete_message_batch(
                QueueUrl=d.dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
                ],
            )
    resent = 0
    if rejected and d.rejects_bucket:
        store = RejectStore(boto3.client("s3"), d.rejects_bucket)
        for key in list(store.list_keys()):
            send_lines(d.queue_url, [store.get(key)["body"]])
            store.delete(key)  # if it is still bad, ingest rejects (and stores) it again
            resent += 1
    console.print(f"replayed {moved} from the DLQ and {resent} rejected events")


@app.command()
def rejects(limit: Annotated[int, typer.Option(help="how many to show")] = 20) -> None:
    """Show rejected events with their reasons."""
    d = deployed()
    store = RejectStore(boto3.client("s3"), d.rejects_bucket)
    table = Table("key", "reason", "errors")
    for i, key in enumerate(store.list_keys()):
        if i >= limit:
            break
        doc = store.get(key)
        errors = "; ".join(f"{e['field']}: {e['error']}" for e in doc["errors"][:3])
        # the stored body is kept exact for replay; what is shown has identifiers masked
        table.add_row(key.rsplit("/", 1)[-1][:16], mask(doc["reason"]), mask(errors))
    out.print(table)


# --- usage --------------------------------------------------------------------------------


@app.command()
def usage(
    account: AccountOpt,
    period: PeriodOpt,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Current usage figures of an account for a period."""
    result = current_usage(_store(deployed()), account, period)
    if as_json:
        out.print_json(json.dumps({"account": account, **result.to_json()}))
        return
    table = Table("metric", "dimensions", "quantity", "events", title=f"{account} {period}")
    for (metric, dims), qty in result.figures().items():
        shown = ", ".join(f"{k}={v}" for k, v in dims)
        table.add_row(metric, shown, f"{qty.normalize():f}", str(result.evidence((metric, dims))))
    out.print(table)
    for kind, n in sorted(result.note_counts.items()):
        out.print(f"[yellow]note[/] {kind}: {n}")


# --- plans --------------------------------------------------------------------------------


@plans_app.command("put")
def plans_put(
    file: Annotated[Path, typer.Argument(help="a price plan, YAML or JSON")],
    account: Annotated[str | None, typer.Option(help="store it for this account instead")] = None,
) -> None:
    """Validate a price plan and store it for its account."""
    plan = load_plan(file)
    if account:
        plan = plan.model_copy(update={"account": account})
    try:
        validate_account_id(plan.account)
    except ValueError as err:
        message = f"account {plan.account!r}: {err}"
        raise typer.BadParameter(message, param_hint="--account") from err
    _store(deployed()).put_plan(plan.account, plan.effective_from, plan.model_dump(mode="json"))
    console.print(f"plan for {plan.account} effective {plan.effective_from} stored")


# --- close and invoices ---------------------------------------------------------------------


class CloseRefused(RuntimeError):
    pass


def running_closes(d: Deployed, period: str) -> list[str]:
    """Executions closing ``period`` now: those started for it by this command, and the
    holder of the period's close lock if it is still running."""
    sfn = boto3.client("stepfunctions")
    found: list[str] = []
    for page in sfn.get_paginator("list_executions").paginate(
        stateMachineArn=d.state_machine_arn, statusFilter="RUNNING"
    ):
        found += [
            e["executionArn"]
            for e in page["executions"]
            if e["name"].startswith(f"close-{period}-")
        ]
    holder = str((_store(d).close_lock(period) or {}).get("owner", ""))
    if holder and holder not in found:
        try:
            if sfn.describe_execution(executionArn=holder)["status"] == "RUNNING":
                found.append(holder)
        except sfn.exceptions.ClientError:
            pass
    return found


def run_close(
    d: Deployed,
    period: str,
    timeout: float = 1800,
    settle: int | None = None,
    *,
    force: bool = False,
    wait: bool = False,
) -> dict[str, Any]:
    """Start the close of ``period`` and wait for it. Another close of the period still
    running is refused (``CloseRefused``), or waited for first with ``wait``."""
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while running := running_closes(d, period):
        if not wait:
            raise CloseRefused(
                f"CloseInProgress: period {period} is being closed by execution {running[0]}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"close of {period} still running after {timeout} s: {running}")
        time.sleep(1)
    name = f"close-{period}-{time.time_ns()}"
    start: dict[str, Any] = {"period": period}
    if settle is not None:
        start["settle_seconds"] = settle
    if force:
        start["force"] = True
    arn = sfn.start_execution(
        stateMachineArn=d.state_machine_arn, name=name, input=json.dumps(start)
    )["executionArn"]
    with _progress() as progress:
        task = progress.add_task(f"closing {period}", total=None)
        while True:
            desc = sfn.describe_execution(executionArn=arn)
            if desc["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"close of {period} still running after {timeout} s: {arn}")
            done = len(_store(d).results(period))
            progress.update(task, completed=done)
            time.sleep(0.5)
    if desc["status"] != "SUCCEEDED":
        raise RuntimeError(f"close {desc['status']}: {desc.get('error')} {desc.get('cause')}")
    result: dict[str, Any] = json.loads(desc.get("output") or "{}")
    return result


@app.command()
def close(
    period: PeriodOpt,
    force: Annotated[
        bool, typer.Option("--force", help="close a period that has not ended yet")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="wait for a running close of the period, then run")
    ] = False,
) -> None:
    """Run the month-end close for a period (the state machine) and wait for it."""
    try:
        result = run_close(deployed(), period, force=force, wait=wait)
    except CloseRefused as err:
        console.print(f"[red]{err}[/] (--wait to run after it)")
        raise typer.Exit(1) from None
    console.print(f"{period}: {result.get('issued', 0)} invoices issued")
    for account in result.get("failed", []):
        console.print(f"[red]failed[/] {account} (see: billing invoices list --period {period})")


@invoices_app.command("list")
def invoices_list(
    period: PeriodOpt,
    account: Annotated[str | None, typer.Option("--account", "-a")] = None,
) -> None:
    """Invoices of a period (and close failures)."""
    d = deployed()
    table = Table("account", "status", "invoice", "total", "detail", title=period)
    for r in sorted(_store(d).results(period), key=lambda r: r["account"]):
        if account and r["account"] != account:
            continue
        if r["status"] == "issued":
            table.add_row(r["account"], "issued", r["invoice"], f"{r['total']} {r['currency']}", "")
        else:
            table.add_row(r["account"], "[red]failed[/]", "", "", str(r.get("error", ""))[:80])
    out.print(table)


def _issued(d: Deployed, period: str, account: str) -> dict[str, Any]:
    for r in _store(d).results(period):
        if r["account"] == account and r["status"] == "issued":
            return r
    raise typer.BadParameter(f"no issued invoice for {account} in {period}")


@invoices_app.command("download")
def invoices_download(
    period: PeriodOpt,
    account: AccountOpt,
    fmt: Annotated[str, typer.Option("--format", help="json, csv or pdf")] = "pdf",
    out_dir: Annotated[Path, typer.Option("--out", help="folder to write to")] = Path("."),
    link: Annotated[bool, typer.Option(help="print a presigned link instead")] = False,
) -> None:
    """Download an invoice (or print a presigned link)."""
    d = deployed()
    key = invoice_key(period, account, _issued(d, period, account)["invoice"], fmt)
    docs = _documents(d)
    if link:
        out.print(docs.presign(key))
        return
    body = docs.read(key)
    if body is None:
        raise typer.BadParameter(f"{key} not found")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / key.rsplit("/", 1)[-1]
    target.write_bytes(body)
    console.print(f"wrote {target}")


@app.command()
def explain(period: PeriodOpt, account: AccountOpt) -> None:
    """Why an invoice says what it says: each line's rule, counts and price."""
    from billing.documents.render import explain as explain_text

    d = deployed()
    body = _documents(d).read(_issued(d, period, account)["keys"]["json"])
    assert body is not None
    out.print(explain_text(Invoice.model_validate_json(body)), markup=False, highlight=False)


def download_period(d: Deployed, period: str, target: Path) -> list[Path]:
    docs = _documents(d)
    written = []
    for key in docs.list_keys(f"{INVOICES}{period}/"):
        body = docs.read(key)
        if body is None:
            continue
        path = target / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        written.append(path)
    return written


def _money(value: Any) -> str:
    return f"{Decimal(str(value)):,.2f}"


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="events to generate")] = 3_000,
    accounts: Annotated[int, typer.Option(help="accounts to spread them over")] = 6,
    period: Annotated[str, typer.Option(help="the month to generate and close")] = "2026-10",
    seed: Annotated[int, typer.Option(help="generator seed")] = 7,
    out_dir: Annotated[Path, typer.Option("--out", help="where to copy the invoices")] = Path(
        "out"
    ),
) -> None:
    """The main job on the embedded runtime: a realistic month in, invoices out."""
    from billing.demo import run_demo

    run_demo(events=events, accounts=accounts, period=period, seed=seed, out_dir=out_dir)


@local_app.command("start")
def local_start(
    state_dir: Annotated[Path, typer.Option(help="where the service keeps its state")] = Path(
        ".billing-local"
    ),
) -> None:
    """Start the embedded runtime in the background and print the environment to export."""
    from billing.local import service

    with console.status("starting moto, synthesizing and deploying the stack"):
        env = service.start(state_dir, max_batching_window_seconds=0)
    for name, value in sorted(env.items()):
        out.print(f"export {name}={value}")


@local_app.command("stop")
def local_stop(state_dir: Annotated[Path, typer.Option()] = Path(".billing-local")) -> None:
    """Stop the embedded runtime."""
    from billing.local import service

    console.print("stopped" if service.stop(state_dir) else "not running")


@local_app.command("status")
def local_status(state_dir: Annotated[Path, typer.Option()] = Path(".billing-local")) -> None:
    """Is the embedded runtime running, and where."""
    from billing.local import service

    state = service.status(state_dir)
    if state is None or not state.running:
        console.print("not running")
        raise typer.Exit(1)
    for name, value in sorted(state.env.items()):
        out.print(f"export {name}={value}")


def main() -> None:  # pragma: no cover - console entry point
    app()
