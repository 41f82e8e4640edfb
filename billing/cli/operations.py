"""What the CLI's commands and the demo share: sending events, running a close, downloads.

The commands (``billing.cli.main``) and ``billing demo`` (``billing.demo``) both use these;
they talk to whatever AWS endpoint boto3 resolves, and show progress on stderr.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import boto3
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from billing import envelope
from billing.adapters.archive import FactArchive
from billing.adapters.invoices import INVOICES, DocumentStore
from billing.adapters.store import UsageStore
from billing.cli.stack import Deployed

console = Console(stderr=True)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


class _EventRate(ProgressColumn):
    """Events per second over rich's recent samples."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} events/s")


def send_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _EventRate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def usage_store(d: Deployed) -> UsageStore:
    # closed periods' facts whose items expired are read from the archive
    bucket = getattr(d, "invoice_bucket", "")
    archive = FactArchive(boto3.client("s3"), bucket) if bucket else None
    return UsageStore(boto3.resource("dynamodb").Table(d.table), d.shards, archive=archive)


def document_store(d: Deployed) -> DocumentStore:
    return DocumentStore(boto3.client("s3"), d.invoice_bucket)


def event_lines(source: str) -> Iterator[str]:
    if source == "-":
        yield from (line.rstrip("\n") for line in sys.stdin if line.strip())
        return
    with Path(source).open(encoding="utf-8") as stream:
        yield from (line.rstrip("\n") for line in stream if line.strip())


def count_lines(source: str) -> int | None:
    """How many events ``event_lines(source)`` will yield (non-blank lines), read once before
    sending so that the progress bar knows its total; ``None`` for stdin."""
    if source == "-":
        return None
    with Path(source).open("rb") as stream:
        return sum(1 for line in stream if line.strip())


class SendRate:
    """The send rate per block of ``every`` events, as it goes: a steady rate from the
    first block to the last says the intake does not slow down as the queue fills."""

    def __init__(self, every: int = 100_000, report: Any = None) -> None:
        self.every = every
        self.report = report
        self.started = time.monotonic()
        self.blocks: list[float] = []
        self._block_start = self.started
        self._last = self.started
        self.sent = 0

    def add(self, count: int) -> None:
        """``count`` more events sent since the last call. A request may carry several
        blocks' boundaries (small blocks): each boundary's time is interpolated in it."""
        now = time.monotonic()
        before, since = self.sent, self._last
        self.sent += count
        self._last = now
        while (len(self.blocks) + 1) * self.every <= self.sent:
            end = (len(self.blocks) + 1) * self.every
            at = since + (now - since) * (end - before) / count
            seconds = max(at - self._block_start, 1e-9)
            self.blocks.append(seconds)
            self._block_start = at
            if self.report is not None:
                self.report(
                    f"events {end - self.every + 1:>11,}-{end:>11,}: {seconds:6.1f} s "
                    f"({self.every / seconds:,.0f}/s)"
                )

    def summary(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        text = f"sent {self.sent:,} events in {elapsed:.1f} s ({self.sent / elapsed:,.0f}/s)"
        if self.blocks:
            text += (
                f"; per {self.every:,}: {min(self.blocks):.1f}-{max(self.blocks):.1f} s "
                f"over {len(self.blocks)} blocks"
            )
        return text


def send_lines(
    queue_url: str,
    lines: Iterable[str],
    progress: Progress | None = None,
    *,
    total: int | None = None,
    rate: SendRate | None = None,
    per_message: int = envelope.EVENTS_PER_MESSAGE,
) -> int:
    """Send JSON Lines (one event per line) to the intake queue, ``per_message`` events
    per message (``billing.envelope``; 1: each line a message as it is), streaming: the
    input is read as it is sent, never held whole. Returns how many events. ``total``
    sizes the progress bar (unknown for stdin); ``rate`` is told of every request."""
    return send_messages(
        queue_url, envelope.pack(lines, per_message), progress, total=total, rate=rate
    )


def send_messages(
    queue_url: str,
    messages: Iterable[envelope.Message],
    progress: Progress | None = None,
    *,
    total: int | None = None,
    rate: SendRate | None = None,
) -> int:
    """Send messages as they are (body and attributes), 10 per request and at most
    SendMessageBatch's 256 KB per request. Returns how many events they carry."""
    sqs = boto3.client("sqs")
    batch: list[envelope.Message] = []
    size = 0
    sent = 0
    task = None
    if progress is not None:
        label = "sending" if total is not None else "sending (stdin: total unknown)"
        task = progress.add_task(label, total=total)

    def flush() -> None:
        nonlocal sent, size
        entries = [
            {"Id": str(i), "MessageBody": m.body}
            | ({"MessageAttributes": m.attributes} if m.attributes else {})
            for i, m in enumerate(batch)
        ]
        resp = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if resp.get("Failed"):
            raise RuntimeError(f"queue refused {len(resp['Failed'])} messages: {resp['Failed'][0]}")
        events = sum(m.events for m in batch)
        sent += events
        if rate is not None:
            rate.add(events)
        batch.clear()
        size = 0
        if progress and task is not None:
            progress.update(task, completed=sent)

    for message in messages:
        if batch and (len(batch) == 10 or size + message.size > envelope.REQUEST_BYTES):
            flush()
        batch.append(message)
        size += message.size
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


class CloseRefused(RuntimeError):
    pass


def _execution_label(period: str) -> str:
    """A close group label as execution names allow it (no ``:``): ``2026-10_+0900``."""
    return period.replace("@", "_").replace(":", "")


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
            if e["name"].startswith(f"close-{_execution_label(period)}-")
        ]
    holder = str((usage_store(d).close_lock(period) or {}).get("owner", ""))
    if holder and holder not in found:
        try:
            if sfn.describe_execution(executionArn=holder)["status"] == "RUNNING":
                found.append(holder)
        except sfn.exceptions.ClientError:
            pass
    return found


CLOSE_PHASES = ("freeze", "settle", "accounts", "finish")
# The state of the month-close state machine (infra/month_close.py) -> the phase it is in.
_STATE_PHASES = {
    "Freeze": "freeze",
    "Close": "freeze",
    "Settle": "settle",
    "StartListing": "accounts",
    "ListAccounts": "accounts",
    "CloseAccounts": "accounts",
    "Finish": "finish",
}


def _phase_from_history(sfn: Any, arn: str) -> str:
    """The phase of the latest state entered. Read only until the accounts phase: then the
    close results tell the progress, and the history (which grows with every unit) is not
    fetched again."""
    try:
        events = sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=20)
    except sfn.exceptions.ClientError:  # e.g. not allowed: the results still tell progress
        return "accounts"
    for event in sorted(events.get("events", []), key=lambda e: -int(e.get("id", 0))):
        name = event.get("stateEnteredEventDetails", {}).get("name")
        if name in _STATE_PHASES:
            return _STATE_PHASES[name]
    return "freeze"


def _all_accounts(store: UsageStore, period: str) -> list[str]:
    """The accounts the close goes through (what its ListAccounts pages give)."""
    names: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = store.accounts_page(period, cursor, 1000)
        names += page
        if cursor is None:
            return names


class CloseProgress:
    """What the CLI shows while a close runs: its phase and, in the accounts phase, how
    many of the close group's accounts are done (issued or failed by this run, or issued
    by an earlier one), and how long each phase took."""

    #: the share of the time the progress may spend reading results (``settled``): each
    #: read takes every result of the period, about 40 ms for 100 accounts on the local
    #: runtime, whose process also answers the close's own requests
    READ_SHARE = 0.05
    MIN_READ_INTERVAL = 1.0  # seconds

    def __init__(self, store: UsageStore, group: str) -> None:
        self.store = store
        self.group = group
        self.period = group.partition("@")[0]
        self.before = {r["account"]: _fingerprint(r) for r in store.results(self.period)}
        self.phase = "freeze"
        self.started: dict[str, float] = {"freeze": time.monotonic()}
        self.accounts: list[str] | None = None
        self._settled: int | None = None
        self._next_read = 0.0

    def enter(self, phase: str) -> None:
        if CLOSE_PHASES.index(phase) <= CLOSE_PHASES.index(self.phase):
            return
        now = time.monotonic()
        for skipped in CLOSE_PHASES[
            CLOSE_PHASES.index(self.phase) + 1 : CLOSE_PHASES.index(phase) + 1
        ]:
            self.started[skipped] = now
        self.phase = phase
        if phase in ("accounts", "finish") and self.accounts is None:
            from billing.close import group_members

            every = _all_accounts(self.store, self.period)
            self.accounts = group_members(self.store, self.group, every)

    def done(self) -> int:
        results = {r["account"]: r for r in self.store.results(self.period)}
        mine = set(self.accounts or ())
        return sum(
            1
            for account, r in results.items()
            if account in mine
            and (_fingerprint(r) != self.before.get(account) or r.get("status") == "issued")
        )

    def settled(self) -> int:
        """``done`` as last read; read again once the last read is old enough that reading
        takes at most ``READ_SHARE`` of the time, and at most once a second."""
        started = time.monotonic()
        if self._settled is None or started >= self._next_read:
            self._settled = self.done()
            took = time.monotonic() - started
            self._next_read = started + max(self.MIN_READ_INTERVAL, took / self.READ_SHARE)
        return self._settled

    def durations(self, end: float) -> dict[str, float]:
        marks = [(p, self.started[p]) for p in CLOSE_PHASES if p in self.started]
        return {
            phase: round((marks[i + 1][1] if i + 1 < len(marks) else end) - at, 3)
            for i, (phase, at) in enumerate(marks)
        }


def _fingerprint(result: dict[str, Any]) -> str:
    return json.dumps(result, sort_keys=True, default=str)


def run_close(
    d: Deployed,
    period: str,
    timeout: float = 1800,
    settle: int | None = None,
    *,
    force: bool = False,
    wait: bool = False,
    poll_seconds: float = 0.2,
    draft: bool = False,
) -> dict[str, Any]:
    """Start the close of ``period`` and wait for it, showing its phases (freeze, settle,
    accounts with their count, finish) on stderr. Another close of the period still
    running is refused (``CloseRefused``), or waited for first with ``wait``. The result
    is the state machine's output plus ``phases``: seconds spent in each."""
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
    name = f"close-{_execution_label(period)}-{time.time_ns()}"
    start: dict[str, Any] = {"period": period}
    if settle is not None:
        start["settle_seconds"] = settle
    if force:
        start["force"] = True
    if draft:  # drafts: the period is not frozen, invoices are not numbered (billing.finance)
        start["draft"] = True
    tracker = CloseProgress(usage_store(d), period)
    arn = sfn.start_execution(
        stateMachineArn=d.state_machine_arn, name=name, input=json.dumps(start)
    )["executionArn"]
    with progress_bar() as progress:
        task = progress.add_task(f"closing {period}: freeze", total=None)
        while True:
            desc = sfn.describe_execution(executionArn=arn)
            if desc["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"close of {period} still running after {timeout} s: {arn}")
            if tracker.phase in ("freeze", "settle"):
                tracker.enter(_phase_from_history(sfn, arn))
            if tracker.accounts is not None:
                done = tracker.settled()
                if done >= len(tracker.accounts):
                    tracker.enter("finish")
                progress.update(task, completed=done, total=len(tracker.accounts))
            progress.update(task, description=f"closing {period}: {tracker.phase}")
            time.sleep(poll_seconds)
        tracker.enter("finish")
        total = len(tracker.accounts or [])  # the execution has ended: every account is done
        progress.update(task, description=f"closing {period}: done", completed=total, total=total)
    if desc["status"] != "SUCCEEDED":
        raise RuntimeError(f"close {desc['status']}: {desc.get('error')} {desc.get('cause')}")
    result: dict[str, Any] = json.loads(desc.get("output") or "{}")
    result["phases"] = tracker.durations(time.monotonic())
    return result


def download_period(d: Deployed, period: str, target: Path) -> list[Path]:
    docs = document_store(d)
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


def counted(n: int, noun: str) -> str:
    """``1 invoice``, ``2 invoices``: the English plural of the close summaries."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
