"""Durable local state: the background runtime keeps its data on disk, survives a
``kill -9`` in the middle of ingestion, and ``reset`` starts it empty on purpose. Quiet
output: handlers' log lines and metrics go to the runtime's log file, not the CLI's
stdout."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from billing.adapters.store import UsageStore
from billing.cli.main import app
from billing.cli.stack import deployed
from billing.config import client, resource
from billing.domain.engine import usage_of_events
from billing.domain.events import Envelope, parse_event_obj
from billing.domain.periods import Period
from billing.local import service, synth, wait_for_execution
from billing.local.dispatch import REPO_ROOT
from billing.local.snapshot import SNAPSHOT_FILE, read_info
from billing.queries import current_usage
from tests.factories import at, raw

pytestmark = pytest.mark.e2e

PERIOD = "2026-10"
_AWS_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


def messages(account: str, first: int, count: int, users: int = 7) -> list[dict[str, Any]]:
    """Inbound SMS and delivered Telegram messages with distinct ids, to and from a few end
    users: Telegram's active users are counted by pseudonym, so the count stays right
    across a restart only if the pseudonym secret does."""
    return [
        raw(
            "message.inbound" if n % 2 else "message.outbound",
            at(day=1 + n % 28, hour=n % 24, minute=n % 60),
            account,
            f"{account}-{n}",
            message_id=f"{account}-m{n}",
            channel="sms" if n % 2 else "telegram",
            **({} if n % 2 else {"status": "delivered"}),
            end_user=f"+3360000{n % users:04d}",
        )
        for n in range(first, first + count)
    ]


def expected(events: list[dict[str, Any]]) -> dict[Any, Decimal]:
    envelopes: list[Envelope] = [parse_event_obj(e) for e in events]
    return usage_of_events(envelopes, Period.parse(PERIOD)).figures()


def write_lines(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth(REPO_ROOT, outdir=tmp_path_factory.mktemp("cdk.out"))


class Runtime:
    """The background service in a state dir, with this process pointed at it."""

    def __init__(self, state_dir: Path, assembly: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.state_dir = state_dir
        self.assembly = assembly
        self.monkeypatch = monkeypatch

    def start(self, snapshot_interval: float | None = None) -> service.ServiceState:
        env = service.start(
            self.state_dir,
            template_dir=self.assembly,
            synth_if_missing=False,
            max_batching_window_seconds=0,
            snapshot_interval=snapshot_interval,
            timeout=180,
        )
        for name in _AWS_ENV:
            self.monkeypatch.setenv(name, env[name])
        # New deployment, new physical names: forget what was looked up before.
        deployed.cache_clear()
        client.cache_clear()
        resource.cache_clear()
        state = service.status(self.state_dir)
        assert state is not None
        assert state.running
        return state

    def store(self) -> UsageStore:
        d = deployed()
        return UsageStore(boto3.resource("dynamodb").Table(d.table), d.shards)

    def usage(self, account: str) -> dict[Any, Decimal]:
        return current_usage(self.store(), account, PERIOD).figures()

    def queue_depth(self) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attrs = boto3.client("sqs").get_queue_attributes(
            QueueUrl=deployed().queue_url, AttributeNames=names
        )["Attributes"]
        return sum(int(attrs[n]) for n in names)


@pytest.fixture
def runtime(tmp_path: Path, assembly: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    for name in ("POWERTOOLS_METRICS_DISABLED", "BILLING_QUEUE_URL", "TABLE_NAME"):
        monkeypatch.delenv(name, raising=False)
    runtime = Runtime(tmp_path / "state", assembly, monkeypatch)
    try:
        yield runtime
    finally:
        service.stop(runtime.state_dir)
        deployed.cache_clear()
        client.cache_clear()
        resource.cache_clear()


def kill_during_ingestion(
    runtime: Runtime, pid: int, lines: list[str]
) -> tuple[bool, dict[str, Any]]:
    """Sends ``lines`` 10 per request from a thread; as soon as the handler has taken some
    of them off the queue, has the runtime take a snapshot, then ``kill -9``s it. Returns
    whether ingestion was still under way at the snapshot (messages queued or still being
    sent) and the snapshot's description."""
    sqs, url = boto3.client("sqs"), deployed().queue_url
    sent = 0
    stop = threading.Event()

    def produce() -> None:
        nonlocal sent
        for i in range(0, len(lines), 10):
            entries = [
                {"Id": str(n), "MessageBody": body} for n, body in enumerate(lines[i : i + 10])
            ]
            if stop.is_set():
                return
            try:
                sqs.send_message_batch(QueueUrl=url, Entries=entries)
            except Exception:  # the runtime is gone
                return
            sent += len(entries)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    deadline = time.monotonic() + 120
    while True:
        depth = runtime.queue_depth()
        if sent >= 20 and depth < sent:
            break
        assert time.monotonic() < deadline, "ingestion did not start"
        time.sleep(0.02)
    in_middle = depth > 0 or producer.is_alive()
    saved = service.checkpoint(runtime.state_dir)
    assert saved is not None
    time.sleep(0.2)  # more of it ingested, and lost with the process
    os.kill(pid, signal.SIGKILL)
    stop.set()
    producer.join(30)
    deadline = time.monotonic() + 30
    while (state := service.status(runtime.state_dir)) is not None and state.running:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return in_middle, saved


def test_events_reported_ingested_survive_a_kill_9_in_the_middle_of_ingestion(
    runtime: Runtime, tmp_path: Path
) -> None:
    # Snapshots only when asked for: what survives is what a checkpoint saved.
    first = runtime.start(snapshot_interval=3600)
    assert first.restored is None

    # A: sent through the CLI, which reports it ingested only once a snapshot has it.
    a = messages("dur-a", 0, 40)
    result = CliRunner().invoke(app, ["send", str(write_lines(tmp_path / "a.jsonl", a))])
    assert result.exit_code == 0, result.output
    assert "ingested" in result.output
    assert "still ingesting" not in result.output
    # the summary is one line, however long the queue's URL
    (summary,) = [x for x in result.output.splitlines() if x.startswith("sent 40 events in")]
    assert re.search(r" to https?://\S+/\d{12}/\S+$", summary), result.output
    assert runtime.usage("dur-a") == expected(a)

    # B: sent while the handler is already working on it; the runtime is killed then.
    b = messages("dur-b", 0, 300)
    in_middle, saved = kill_during_ingestion(runtime, first.pid, [json.dumps(e) for e in b])
    assert in_middle, "B was ingested before the snapshot"

    second = runtime.start(snapshot_interval=3600)
    assert second.pid != first.pid
    assert second.restored == saved  # the snapshot taken in the middle of B
    # Everything of A, exactly once, right after the restart.
    assert runtime.usage("dur-a") == expected(a)

    # B was never reported ingested: the user sends it again. What the snapshot had kept
    # of it (facts, queued messages) is not counted twice.
    result = CliRunner().invoke(app, ["send", str(write_lines(tmp_path / "b.jsonl", b))])
    assert result.exit_code == 0, result.output
    assert "ingested" in result.output
    assert runtime.usage("dur-b") == expected(b)
    # More of A's users after the restart: same pseudonyms (the secret was restored).
    c = messages("dur-a", 40, 20)
    c_file = str(write_lines(tmp_path / "c.jsonl", c))
    result = CliRunner().invoke(app, ["send", c_file, "--per-message", "1"])  # one each
    assert result.exit_code == 0, result.output
    assert runtime.usage("dur-a") == expected(a + c)


def test_status_says_what_was_restored_and_reset_starts_empty(
    runtime: Runtime, tmp_path: Path
) -> None:
    runtime.start()
    events = messages("dur-r", 0, 30)
    result = CliRunner().invoke(app, ["send", str(write_lines(tmp_path / "r.jsonl", events))])
    assert result.exit_code == 0, result.output
    assert service.stop(runtime.state_dir)
    info = read_info(runtime.state_dir)
    assert info is not None
    assert info.items > 0

    runtime.start()
    shown = CliRunner().invoke(app, ["local", "status", "--state-dir", str(runtime.state_dir)])
    assert shown.exit_code == 0, shown.output
    assert f"restored {info.items} items" in shown.output
    assert "export AWS_ENDPOINT_URL=" in shown.output
    assert runtime.usage("dur-r") == expected(events)
    # The restarted runtime runs its state machines as before (a close of the month).
    sfn = boto3.client("stepfunctions")
    execution = sfn.start_execution(
        stateMachineArn=deployed().state_machine_arn,
        name="close-after-restore",
        input=json.dumps({"period": PERIOD, "settle_seconds": 0}),
    )
    finished = wait_for_execution(execution["executionArn"], timeout=300, client=sfn)
    assert finished["status"] == "SUCCEEDED", finished

    reset = CliRunner().invoke(app, ["local", "reset", "--state-dir", str(runtime.state_dir)])
    assert reset.exit_code == 0, reset.output
    assert "saved data deleted" in reset.output
    assert "started empty" in reset.output
    state = runtime.start()  # already running: points this process at it
    assert state.restored is None
    assert runtime.usage("dur-r") == {}
    assert (runtime.state_dir / SNAPSHOT_FILE).exists()  # the new, empty state is saved


def test_the_demo_prints_no_metrics_or_log_lines_on_stdout(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from billing.cli.main import app; app()",
            "demo",
            "--events",
            "200",
            "--accounts",
            "2",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "invoices for 2026-10" in done.stdout
    # the command ends without the interpreter's teardown (os._exit): what it wrote to
    # the pipes is all there, to the last line
    assert done.stdout.rstrip().endswith("┘"), done.stdout[-500:]  # the table's last line
    assert done.stderr.rstrip().splitlines()[-1].startswith("done in"), done.stderr[-500:]
    # two close groups (Seoul's plan and a UTC one): the drafts of both are counted
    assert "2 drafts written" in done.stderr, done.stderr[-3000:]
    for line in done.stdout.splitlines():
        assert '"_aws"' not in line, line
        assert '"level"' not in line, line
        assert not line.lstrip().startswith("{"), line
    log = (tmp_path / ".billing-local" / "demo.log").read_text()
    assert '"_aws"' in log or '"level"' in log
