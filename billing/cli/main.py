"""``billing``: the command line of the billing system.

It talks to whatever AWS endpoint boto3 resolves: real AWS, or the embedded local runtime
through ``AWS_ENDPOINT_URL`` (``billing local start`` prints what to export).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NoReturn

import boto3
import typer
from rich.console import Console
from rich.table import Table

from billing import envelope
from billing.adapters.rejects import RejectStore, mask
from billing.adapters.store import FinanceStore
from billing.cli.operations import (
    CloseRefused,
    SendRate,
    console,
    count_lines,
    counted,
    document_store,
    event_lines,
    run_close,
    send_lines,
    send_messages,
    send_progress,
    usage_store,
    wait_until_ingested,
)
from billing.cli.stack import Deployed, deployed
from billing.domain.events import validate_account_id
from billing.domain.invoice import Invoice
from billing.domain.plan import PricePlan, load_plan, zone_change_refusal
from billing.domain.plancheck import PlanCheck, check_plan, plan_warnings
from billing.domain.thresholds import Threshold, differences
from billing.envelope import Message
from billing.live import LiveUsage
from billing.queries import current_usage

app = typer.Typer(no_args_is_help=True, help=__doc__, pretty_exceptions_show_locals=False)
local_app = typer.Typer(no_args_is_help=True, help="The embedded local runtime (moto on loopback).")
plans_app = typer.Typer(no_args_is_help=True, help="Price plans (customer contracts).")
invoices_app = typer.Typer(no_args_is_help=True, help="Issued invoices in S3.")
app.add_typer(local_app, name="local")
app.add_typer(plans_app, name="plans")
app.add_typer(invoices_app, name="invoices")
alerts_app = typer.Typer(no_args_is_help=True, help="Usage thresholds and the alerts reached.")
app.add_typer(alerts_app, name="alerts")
accounts_app = typer.Typer(no_args_is_help=True, help="Billing profiles of accounts.")
sellers_app = typer.Typer(no_args_is_help=True, help="Sellers: the issuing legal entities.")
app.add_typer(accounts_app, name="accounts")
app.add_typer(sellers_app, name="sellers")
out = Console()

PeriodOpt = Annotated[str, typer.Option("--period", "-p", help="billing period YYYY-MM")]
AccountOpt = Annotated[str, typer.Option("--account", "-a", help="account id")]


def _finance_store(d: Deployed) -> FinanceStore:
    return FinanceStore(boto3.resource("dynamodb").Table(d.table))


# --- events in ----------------------------------------------------------------------------


@app.command()
def send(
    file: Annotated[str, typer.Argument(help="JSON Lines of CloudEvents, or - for stdin")],
    wait: Annotated[bool, typer.Option(help="wait until the queue has been ingested")] = True,
    every: Annotated[
        int, typer.Option(help="print the send rate of every block of this many events")
    ] = 100_000,
    per_message: Annotated[
        int,
        typer.Option(
            min=1,
            max=envelope.MAX_EVENTS,
            help="events per SQS message, as JSON Lines (1: each event a message of its own)",
        ),
    ] = envelope.EVENTS_PER_MESSAGE,
) -> None:
    """Send usage events to the intake queue (streamed: files of any size, or stdin)."""
    d = deployed()
    total = count_lines(file)
    with send_progress() as progress:
        rate = SendRate(every, progress.console.print)
        lines = event_lines(file)
        send_lines(d.queue_url, lines, progress, total=total, rate=rate, per_message=per_message)
    console.print(f"{rate.summary()} to {d.queue_url}", soft_wrap=True, highlight=False)
    if wait:
        with console.status("waiting for ingestion"):
            done = wait_until_ingested(d.queue_url) and _saved()
        console.print("ingested" if done else "[yellow]still ingesting[/]: check again later")


def _saved() -> bool:
    """On the local runtime, ingested means saved: a snapshot taken after it exists."""
    from billing.local.snapshot import checkpoint

    checkpoint()
    return True


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
            msgs = sqs.receive_message(
                QueueUrl=d.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not msgs:
                break
            moved += send_messages(  # as they came: a JSON Lines message stays one
                d.queue_url,
                [Message.received(m["Body"], m.get("MessageAttributes")) for m in msgs],
            )
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
            send_lines(d.queue_url, [store.get(key)["body"]], per_message=1)  # as it came
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
    recompute: Annotated[
        bool,
        typer.Option(
            "--recompute",
            help="recompute from every stored fact and show where the live view differs",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Usage of an account in a period so far, from the live view (milliseconds: at most one
    item per storage shard), with the estimated charges; ``--recompute`` reads every fact."""
    store = usage_store(deployed())
    live = LiveUsage(store)
    view = live.view(account, period)
    shown = current_usage(store, account, period) if recompute else view.usage
    estimate = live.estimate(account, period, shown)
    diffs = differences(shown, view.usage) if recompute else []
    if as_json:
        doc: dict[str, Any] = {"account": account, "source": "recomputed" if recompute else "live"}
        doc.update(shown.to_json())
        doc["live"] = {
            "shards": view.shards,
            "items": view.items,
            "refreshed_at": view.refreshed_at,
            "alerts": view.alerts,
        }
        if estimate is not None:
            doc["estimate"] = {"currency": estimate.currency, "total": str(estimate.total)}
        if recompute:
            doc["differences"] = [d.to_json() for d in diffs]
        out.print_json(json.dumps(doc, default=str))
        return
    source = "recomputed from the fact log" if recompute else "live view"
    table = Table(
        "metric", "dimensions", "quantity", "events", title=f"{account} {period} ({source})"
    )
    for (metric, dims), qty in shown.figures().items():
        text = ", ".join(f"{k}={v}" for k, v in dims)
        table.add_row(metric, text, f"{qty.normalize():f}", str(shown.evidence((metric, dims))))
    out.print(table)
    for kind, n in sorted(shown.note_counts.items()):
        out.print(f"[yellow]note[/] {kind}: {n}")
    if view.refreshed_at is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(view.refreshed_at / 1000))
        out.print(f"live view: {view.shards} shards, {view.items} stored items, as of {when} UTC")
    else:
        out.print(
            "live view: nothing refreshed yet for this account and period "
            "(--recompute reads the fact log)"
        )
    if view.oversized and not recompute:
        out.print(
            f"[yellow]live view incomplete[/]: the usage of {len(view.oversized)} shards is "
            "too large for one item; --recompute reads the fact log"
        )
    if estimate is not None:
        out.print(
            f"estimated charges so far: {estimate.total} {estimate.currency} "
            "(an estimate: the usage so far rated with the plan in force; not an invoice)"
        )
    for alert in view.alerts:
        out.print(f"[yellow]threshold reached[/] {alert['threshold']}: {alert['value']}")
    if recompute:
        if diffs:
            out.print(f"[red]the live view differs on {len(diffs)} lines[/]")
            for d in diffs:
                text = ", ".join(f"{k}={v}" for k, v in d.dims)
                out.print(f"  {d.metric} {text}: recomputed {d.expected}, live {d.live}")
        else:
            out.print("the live view equals the recomputation")


# --- alerts -------------------------------------------------------------------------------


@alerts_app.command("list")
def alerts_list(account: AccountOpt, period: PeriodOpt) -> None:
    """Thresholds of the account, and those reached in the period."""
    store = usage_store(deployed())
    live = LiveUsage(store)
    reached = {a["threshold"]: a for a in live.view(account, period).alerts}
    table = Table("threshold", "watches", "level", "reached", title=f"{account} {period}")
    for t in live.thresholds(account, period):
        watches = t.metric or "estimated amount"
        alert = reached.pop(t.id, None)
        when = alert["value"] if alert else ""
        table.add_row(t.id, watches, str(t.level), when)
    for tid, alert in sorted(reached.items()):  # reached, since removed
        watches = str(alert.get("metric") or "estimated amount")
        table.add_row(tid, watches, alert["level"], alert["value"])
    out.print(table)


@alerts_app.command("set")
def alerts_set(
    account: AccountOpt,
    threshold: Annotated[str, typer.Option("--id", help="threshold id")],
    metric: Annotated[str | None, typer.Option(help="a metric id (with --quantity)")] = None,
    quantity: Annotated[str | None, typer.Option(help="level of the metric's quantity")] = None,
    amount: Annotated[str | None, typer.Option(help="level of the estimated amount")] = None,
) -> None:
    """Set (or replace) a threshold: ``--metric M --quantity Q`` or ``--amount A``."""
    try:
        t = Threshold.model_validate(
            {"id": threshold, "metric": metric, "quantity": quantity, "amount": amount}
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    usage_store(deployed()).put_threshold(account, t.id, t.model_dump(mode="json"))
    console.print(f"threshold {t.id} set for {account}")


@alerts_app.command("remove")
def alerts_remove(
    account: AccountOpt, threshold: Annotated[str, typer.Option("--id", help="threshold id")]
) -> None:
    """Remove a threshold set with ``billing alerts set``."""
    usage_store(deployed()).delete_threshold(account, threshold)
    console.print(f"threshold {threshold} removed for {account}")


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
    store = usage_store(deployed())
    versions = store.plan_zones(plan.account)
    refusal = zone_change_refusal(versions, plan, time.time_ns() // 1_000_000)
    if refusal and versions:  # a first plan: facts stored before it were put in UTC periods
        console.print(f"[red]{refusal}[/]")
        raise typer.Exit(1)
    if refusal:
        console.print(f"[yellow]warning[/] {plan.account}: events already stored keep UTC periods")
    store.put_plan(plan.account, plan.effective_from, plan.model_dump(mode="json"))
    console.print(f"plan for {plan.account} effective {plan.effective_from} stored")
    for finding in plan_warnings(plan):
        console.print(f"[yellow]warning[/] {finding.metric}: priced, but {finding.detail}")


@plans_app.command("check")
def plans_check(
    account: AccountOpt,
    period: PeriodOpt,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Check the plan in force against the account's usage so far: usage it does not price,
    prices that can never apply, and an estimate of the invoice. Exits 1 when some usage
    is not priced (the close would fail the account's invoice on it)."""
    store = usage_store(deployed())
    doc = store.plan_document(account, period)
    if doc is None:
        console.print(f"[red]no plan in force for {account} in {period}[/]")
        raise typer.Exit(1)
    plan = PricePlan.model_validate(doc)
    result = check_plan(plan, period, current_usage(store, account, period, plan.settings))
    if as_json:
        out.print_json(json.dumps(result.to_json()))
    else:
        _print_check(result)
    if result.of_kind("unpriced_usage"):
        raise typer.Exit(1)


def _print_check(result: PlanCheck) -> None:
    out.print(f"{result.account} {result.period}: plan effective {result.plan_effective_from}")
    for f in result.findings:
        dims = ", ".join(f"{k}={v}" for k, v in f.dims)
        qty = "" if f.quantity is None else f" quantity {f.quantity.normalize():f}"
        text = f"{f.kind}: {f.metric}{f' [{dims}]' if dims else ''}{qty}: {f.detail}"
        out.print(text, markup=False, highlight=False)
    if not result.findings:
        out.print("no findings")
    if result.estimate is None:
        return
    est = result.estimate
    table = Table("metric", "description", "quantity", "amount", title="ESTIMATE (not an invoice)")
    for line in [*est.lines, *est.commitment_lines]:
        table.add_row(line.metric, line.description, f"{line.quantity}", f"{line.amount}")
    out.print(table)
    excluded = f", without {len(result.estimate_excludes)} unpriced line(s)"
    out.print(
        f"estimated total {est.total} {est.currency} from the usage so far"
        f"{excluded if result.estimate_excludes else ''}"
    )
    for note in est.notes:
        out.print(f"note {note.kind}: {note.count}", markup=False, highlight=False)


# --- close and invoices ---------------------------------------------------------------------


def local_intake_drained(state_dir: Path, timeout: float = 600) -> bool:
    """Whether boto3 points at the embedded runtime recorded in ``state_dir`` and its
    intake queues are now drained (waited for up to ``timeout``): then nothing can be in
    flight when the close freezes the period, and no settle time is needed."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "").rstrip("/")
    if not endpoint:
        return False
    from billing.local import service

    state = service.status(state_dir)
    if state is None or not state.running or state.endpoint_url.rstrip("/") != endpoint:
        return False
    with console.status("draining the local intake queues"):
        try:
            service.drain(state_dir, timeout=timeout)
        except TimeoutError as err:
            console.print(f"[yellow]{err}[/]: keeping the settle time")
            return False
    return True


@app.command()
def close(
    period: PeriodOpt,
    force: Annotated[
        bool, typer.Option("--force", help="close a period that has not ended yet")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="wait for a running close of the period, then run")
    ] = False,
    settle: Annotated[
        int | None,
        typer.Option(
            "--settle",
            min=0,
            metavar="SECONDS",
            help="wait after the freeze for ingest batches in flight; default: none on the "
            "local runtime once its intake is drained, else the deployment's SETTLE_SECONDS "
            "(120)",
        ),
    ] = None,
    state_dir: Annotated[
        Path, typer.Option(help="the local runtime's state (to drain its intake)")
    ] = Path(".billing-local"),
    draft: Annotated[
        bool,
        typer.Option(
            "--draft",
            help="write drafts (not numbered, rewritten by the next run) and leave the period "
            "open; billing invoices finalize makes them final",
        ),
    ] = False,
) -> None:
    """Run the month-end close for a period (the state machine) and wait for it: each
    close group of the period (its accounts' time zones) that has ended, earliest first,
    and the UTC group (``YYYY-MM``) always; ``--period 2026-10@+09:00`` names one group."""
    if settle is None and local_intake_drained(state_dir):
        settle = 0
    d = deployed()
    for group in _groups_to_close(d, period, force):
        _close_group(d, group, settle, force, wait, draft)


def _groups_to_close(d: Deployed, period: str, force: bool) -> list[str]:
    from datetime import UTC, datetime

    from billing.close import close_groups
    from billing.domain.periods import Period

    if "@" in period:
        return [period]
    now = datetime.now(UTC)
    return [
        g
        for g in close_groups(usage_store(d), period)
        if g == period or force or Period.parse_label(g).end <= now
    ]


def _close_group(
    d: Deployed, period: str, settle: int | None, force: bool, wait: bool, draft: bool
) -> None:
    try:
        result = run_close(d, period, settle=settle, force=force, wait=wait, draft=draft)
    except CloseRefused as err:
        console.print(f"[red]{err}[/] (--wait to run after it)")
        raise typer.Exit(1) from None
    phases = ", ".join(f"{p} {s:.1f} s" for p, s in result["phases"].items())
    failed = result.get("failed", [])
    if "drafts" in result:
        done = counted(int(result["drafts"]), "draft")
    else:
        done = f"{counted(int(result.get('issued', 0)), 'invoice')} issued"
    out.print(
        f"{period}: {done}, {len(failed)} failed ({phases})",
        highlight=False,
        soft_wrap=True,
    )
    for account in failed:
        out.print(failure_hint(account, period))


def failure_hint(account: str, period: str) -> str:
    """Where to read why ``account`` failed: results are stored per period (every close
    group's), so the listing is the plain period's even for a group (``2026-10@+09:00``)."""
    return f"failed {account} (see: billing invoices list --period {period.partition('@')[0]})"


@invoices_app.command("list")
def invoices_list(
    period: PeriodOpt,
    account: Annotated[str | None, typer.Option("--account", "-a")] = None,
) -> None:
    """Invoices of a period: drafts, final (numbered) and void invoices, usage statements
    of accounts without a billing profile, and close failures."""
    d = deployed()
    numbers = _finance_store(d)
    table = Table("account", "status", "invoice", "net", "tax", "gross", "detail", title=period)
    for r in sorted(usage_store(d).results(period), key=lambda r: r["account"]):
        if account and r["account"] != account:
            continue
        money = _net_tax_gross(r)
        note = str(r.get("note", ""))  # a usage statement: the account has no billing profile
        if r["status"] == "draft":
            table.add_row(r["account"], "draft", "", *money, note)
        elif r["status"] == "issued":
            index = numbers.document(str(r["invoice"])) if "gross" in r else None
            state = (index or {}).get("status", "final") if "gross" in r else "issued"
            detail = f"credit note {index['voided_by']}" if index and "voided_by" in index else ""
            table.add_row(r["account"], state, r["invoice"], *money, detail or note)
        else:
            error = str(r.get("error", ""))[:80]
            table.add_row(r["account"], "[red]failed[/]", "", "", "", "", error)
    out.print(table)


def _net_tax_gross(result: dict[str, Any]) -> list[str]:
    """A close result's amounts; a usage statement (no billing profile) has no tax."""
    if result["status"] == "failed":
        return ["", "", ""]
    total = result["total"]
    figures = [result.get("net", total), result.get("tax", ""), result.get("gross", total)]
    return [f"{f} {result['currency']}" if f != "" else "" for f in figures]


def _issued(d: Deployed, period: str, account: str) -> dict[str, Any]:
    """The account's invoice of the period: issued, or its draft."""
    for r in usage_store(d).results(period):
        if r["account"] == account and r["status"] in ("issued", "draft"):
            return r
    raise typer.BadParameter(f"no invoice or draft for {account} in {period}")


@invoices_app.command("download")
def invoices_download(
    period: Annotated[str | None, typer.Option("--period", "-p", help="billing period")] = None,
    account: Annotated[str | None, typer.Option("--account", "-a", help="account id")] = None,
    number: Annotated[
        str | None, typer.Option("--number", "-n", help="an invoice's or a credit note's number")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="json, csv or pdf")] = "pdf",
    out_dir: Annotated[Path, typer.Option("--out", help="folder to write to")] = Path("."),
    link: Annotated[bool, typer.Option(help="print a presigned link instead")] = False,
) -> None:
    """Download a document (or print a presigned link): the account's invoice or draft of
    a period (--period, --account), or any invoice or credit note by its number
    (--number: a credit note, a reissued invoice, a usage statement)."""
    if fmt not in ("json", "csv", "pdf"):
        raise typer.BadParameter(f"--format {fmt}: json, csv or pdf")
    d = deployed()
    if number:
        key = _key_of_number(d, number, fmt)
    elif period and account:
        key = str(_issued(d, period, account)["keys"][fmt])
    else:
        raise typer.BadParameter("give --number, or --period and --account")
    docs = document_store(d)
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


def _key_of_number(d: Deployed, number: str, fmt: str) -> str:
    """Where the document numbered ``number`` is: an invoice or a credit note of a
    seller's series (its number's index), or a usage statement ``INV-{period}-{account}``."""
    from billing.finance import NotFound

    try:
        return str(_finance(d).key_of(number, fmt))
    except NotFound:
        pass
    for r in usage_store(d).results(number[4:11]) if number.startswith("INV-") else []:
        if r.get("invoice") == number and r["status"] == "issued":
            return str(r["keys"][fmt])
    raise typer.BadParameter(f"no invoice or credit note numbered {number}")


@app.command()
def explain(period: PeriodOpt, account: AccountOpt) -> None:
    """Why an invoice says what it says: each line's rule, counts and price."""
    from billing.documents.render import explain as explain_text

    d = deployed()
    body = document_store(d).read(_issued(d, period, account)["keys"]["json"])
    assert body is not None
    out.print(explain_text(Invoice.model_validate_json(body)), markup=False, highlight=False)


# --- finance: billing profiles, sellers, finalization, corrections (billing.finance) ------------


def _finance(d: Deployed) -> Any:
    from billing.finance import Finance

    return Finance(_finance_store(d), document_store(d), boto3.client("events"), d.bus)


def _show_versions(versions: list[dict[str, Any]], as_json: bool, what: str) -> None:
    if not versions:
        console.print(f"[red]no {what}[/]")
        raise typer.Exit(1)
    if as_json:
        out.print_json(json.dumps(versions))
        return
    for doc in versions:
        table = Table("field", "value", title=f"{what}, effective {doc.get('effective_from')}")
        for key, value in doc.items():
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            table.add_row(key, shown)
        out.print(table)


@accounts_app.command("put")
def accounts_put(
    file: Annotated[Path, typer.Argument(help="a billing profile, YAML or JSON")],
    account: Annotated[str | None, typer.Option(help="store it for this account instead")] = None,
) -> None:
    """Validate a billing profile (schemas/billing-profile.schema.json) and store it for
    its account, effective from its period."""
    from billing.domain.profile import load_profile

    profile = load_profile(file)
    if account:
        profile = profile.model_validate({**profile.model_dump(), "account": account})
    d = deployed()
    fin = _finance_store(d)
    if fin.seller_document(profile.seller, profile.effective_from) is None:
        console.print(f"[yellow]warning[/] seller {profile.seller} is not in force yet")
    fin.put_profile(profile.account, profile.effective_from, profile.model_dump(mode="json"))
    console.print(
        f"billing profile for {profile.account} effective {profile.effective_from} stored"
    )


@accounts_app.command("show")
def accounts_show(
    account: AccountOpt,
    period: Annotated[str | None, typer.Option("--period", "-p", help="the one in force")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """An account's billing profile: every version, or the one in force for a period."""
    fin = _finance_store(deployed())
    if period:
        doc = fin.profile_document(account, period)
        versions = [doc] if doc else []
    else:
        versions = fin.profile_versions(account)
    _show_versions(versions, as_json, f"billing profile of {account}")


@sellers_app.command("put")
def sellers_put(
    file: Annotated[Path, typer.Argument(help="a seller, YAML or JSON")],
) -> None:
    """Validate a seller (schemas/seller.schema.json) and store it, effective from its period."""
    from billing.domain.profile import load_seller

    seller = load_seller(file)
    _finance_store(deployed()).put_seller(
        seller.id, seller.effective_from, seller.model_dump(mode="json")
    )
    console.print(f"seller {seller.id} effective {seller.effective_from} stored")


@sellers_app.command("show")
def sellers_show(
    seller: Annotated[str, typer.Option("--seller", "-s", help="seller id")],
    period: Annotated[str | None, typer.Option("--period", "-p", help="the one in force")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """A seller: every version, or the one in force for a period."""
    fin = _finance_store(deployed())
    if period:
        doc = fin.seller_document(seller, period)
        versions = [doc] if doc else []
    else:
        versions = fin.seller_versions(seller)
    _show_versions(versions, as_json, f"seller {seller}")


@invoices_app.command("finalize")
def invoices_finalize(
    period: PeriodOpt,
    account: Annotated[
        str | None, typer.Option("--account", "-a", help="this account only (freezes the period)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="a period not ended yet")] = False,
    settle: Annotated[
        int | None,
        typer.Option("--settle", min=0, metavar="SECONDS", help="as for billing close"),
    ] = None,
    state_dir: Annotated[Path, typer.Option()] = Path(".billing-local"),
) -> None:
    """Finalize the drafts of a period: the period is frozen (later events are adjusted on
    the next period's invoice), each invoice gets its number from its seller's series and
    is written once, locked, and InvoiceFinalized is put on the bus. Finalizing again
    changes nothing."""
    if settle is None and local_intake_drained(state_dir):
        settle = 0
    d = deployed()
    if account is None:
        failed: list[str] = []
        for group in _groups_to_close(d, period, force):  # each time zone's group
            try:
                result = run_close(d, group, settle=settle, force=force)
            except CloseRefused as err:
                console.print(f"[red]{err}[/]")
                raise typer.Exit(1) from None
            failed += result.get("failed", [])
            out.print(f"{group}: {result.get('issued', 0)} invoices final")
        for name in failed:
            out.print(failure_hint(name, period))
        raise typer.Exit(1 if failed else 0)
    result = finalize_account(d, period, account, settle=settle, force=force)
    if result.get("status") != "issued":
        console.print(f"[red]{account} not finalized[/]: {result.get('error', result)}")
        raise typer.Exit(1)
    out.print(f"{account} {period}: {result['invoice']} final, gross {result.get('gross')}")


def finalize_account(
    d: Deployed, period: str, account: str, *, settle: int | None = None, force: bool = False
) -> dict[str, Any]:
    """The close of one account, run here (not by the state machine): the period is frozen
    under its close lock, the account's units are computed, its invoice numbered and
    written, announced; the lock is released."""
    from billing.close import MonthClose

    store = usage_store(d)
    wait = 120 if settle is None else settle  # the deployment default (SETTLE_SECONDS)
    close = MonthClose(store, document_store(d), boto3.client("events"), d.bus, wait)
    group = close.group_of(account, period)  # the account's time-zone group of the period
    execution = f"cli-finalize-{period}-{account}-{time.time_ns()}"
    frozen = close.freeze(group, settle, force=force, execution=execution)
    try:
        time.sleep(frozen.settle_seconds)
        close.finalize_account(group, account, execution)
    finally:
        store.release_close_lock(group, execution)
    return store.result(period, account) or {}


@invoices_app.command("void")
def invoices_void(
    number: Annotated[str, typer.Option("--number", "-n", help="the final invoice's number")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="why, printed on the credit note")],
    reissue: Annotated[
        bool, typer.Option("--reissue", help="issue a corrected invoice with a new number")
    ] = False,
) -> None:
    """Void a final invoice: a credit note for its full amount (the seller's credit-note
    series; JSON, CSV, PDF in S3), InvoiceVoided and CreditNoteIssued on the bus; with
    --reissue, a new invoice with the same lines and the billing profile in force now."""
    result = _finance(deployed()).void(number, reason, reissue=reissue)
    out.print(f"{number} void, credit note {result['credit_note']}")
    if "reissued" in result:
        out.print(f"reissued as {result['reissued']['number']}")


@invoices_app.command("credit")
def invoices_credit(
    number: Annotated[str, typer.Option("--number", "-n", help="the final invoice's number")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="why")],
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="credit the lines of this metric")
    ] = None,
    amount: Annotated[
        str | None, typer.Option("--amount", help="credit this amount (before tax)")
    ] = None,
) -> None:
    """A partial credit note: some lines (--metric) or an amount (--amount)."""
    value = Decimal(amount) if amount is not None else None
    result = _finance(deployed()).credit(number, reason, metrics=metric or [], amount=value)
    out.print(f"credit note {result['credit_note']} on {number}")


def _money(value: Any) -> str:
    return f"{Decimal(str(value)):,.2f}"


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="events to generate")] = 20_000,
    accounts: Annotated[int, typer.Option(help="accounts to spread them over")] = 20,
    period: Annotated[str, typer.Option(help="the month to generate and close")] = "2026-10",
    seed: Annotated[int, typer.Option(help="generator seed")] = 7,
    out_dir: Annotated[Path, typer.Option("--out", help="where to copy the invoices")] = Path(
        "out"
    ),
) -> None:
    """The main job on the embedded runtime: a realistic month in, invoices out."""
    from billing.demo import run_demo

    run_demo(events=events, accounts=accounts, period=period, seed=seed, out_dir=out_dir)
    _end_without_teardown()


def _end_without_teardown() -> NoReturn:
    """Ends the process once its work is written and its output flushed, without the
    interpreter's teardown: after the demo it would free the stopped runtime's state one
    object at a time (moto's tables, queues and buckets: millions of objects after 100,000
    events, seconds of CPU for nothing). Nothing else is left to do at exit: the runtime
    has stopped its threads and worker processes, and no temporary file is left open."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


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
    _print_restored(service.status(state_dir))
    for name, value in sorted(env.items()):
        out.print(f"export {name}={value}")


def _print_restored(state: Any) -> None:
    """What the runtime restored at its start (stderr)."""
    from billing.local.snapshot import SnapshotInfo

    if state is None:
        return
    if state.restore_error:
        console.print(f"[yellow]saved data unreadable, started empty[/]: {state.restore_error}")
    elif state.restored:
        info = SnapshotInfo(**state.restored)
        console.print(f"restored {info.describe(time.time())}")
    else:
        console.print("started empty (no saved data)")


@local_app.command("reset")
def local_reset(
    state_dir: Annotated[Path, typer.Option(help="where the service keeps its state")] = Path(
        ".billing-local"
    ),
) -> None:
    """Delete the runtime's saved data and start it again, empty."""
    from billing.local import service

    with console.status("stopping the runtime and deleting its saved data"):
        existed = service.reset(state_dir)
    console.print("saved data deleted" if existed else "no saved data")
    local_start(state_dir)


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
    console.print(f"running, pid {state.pid}, since {state.started_at}, log {state.log_file}")
    _print_restored(state)
    live = state.snapshot_status() or {}
    if live.get("snapshot"):
        from billing.local.snapshot import SnapshotInfo

        info = SnapshotInfo(**live["snapshot"])
        console.print(f"saved now: {info.describe(time.time())}, {info.bytes:,} bytes")
    for name, value in sorted(state.env.items()):
        out.print(f"export {name}={value}")


def main() -> None:  # pragma: no cover - console entry point
    app()
