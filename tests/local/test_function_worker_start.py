"""The start of the function workers (``billing.local.workers``): a log file named relative
to the runtime's directory stays the runtime's, a worker that cannot start stops the
runtime's start instead of failing every batch, and the invoked functions' workers are
warm before their first task."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from billing.local import LocalAws, workers

from . import template
from .test_runtime import _attempts

pytestmark = pytest.mark.e2e


def _send(aws: LocalAws, body: dict[str, object]) -> None:
    aws.client("sqs").send_message(
        QueueUrl=aws.stack.queue_url("WorkQueue"), MessageBody=json.dumps(body)
    )


def test_a_relative_log_file_is_the_runtimes_not_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers run in the code root: a log path relative to the runtime's directory
    # (as `billing demo` gives, `.billing-local/demo.log`) must still be the runtime's file.
    monkeypatch.chdir(tmp_path)
    assembly = template.write_assembly(tmp_path / "assembly")
    relative = Path("state") / "handlers.log"
    with LocalAws(function_workers=True, log_file=relative) as runtime:
        runtime.deploy(assembly)
        prefix = f"rel-{uuid.uuid4().hex[:8]}"
        _send(runtime, {"id": f"{prefix}-0", "crash": True})
        runtime.drain(timeout=30)
        assert _attempts(runtime, runtime.stack, f"{prefix}-0") == 2
    assert f"crash requested by {prefix}-0" in (tmp_path / relative).read_text()


def test_a_worker_that_cannot_start_stops_the_runtimes_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its batches would only fail until the dead-letter queue: the start says why instead.
    broken = tmp_path / "broken_worker.py"
    broken.write_text("raise SystemExit('no handler here')\n")
    monkeypatch.setattr(workers, "_SCRIPT", broken)
    assembly = template.write_assembly(tmp_path / "assembly")
    with LocalAws(function_workers=True, log_file=tmp_path / "log") as runtime:
        with pytest.raises(workers.WorkerStartError, match="could not start"):
            runtime.deploy(assembly)
        assert runtime.workers is None
        assert runtime.pollers == []


def test_without_pollers_step_functions_tasks_still_run_in_workers(tmp_path: Path) -> None:
    # the pool belongs to the deployment, not to the pollers (`billing local start --paused`)
    assembly = template.write_assembly(tmp_path / "assembly")
    with LocalAws(function_workers=True, log_file=tmp_path / "log") as runtime:
        runtime.deploy(assembly, start_pollers=False)
        assert runtime.pollers == []
        result = runtime.run_state_machine(
            "PipelineStateMachine", {"values": [1, 2], "explode": False}, timeout=60
        )
    assert result["status"] == "SUCCEEDED", result
    assert os.getpid() not in {item["pid"] for item in result["outputJson"]["items"]}


@contextlib.contextmanager
def _deployed_without_pollers(
    tmp_path: Path,
) -> Iterator[tuple[LocalAws, workers.FunctionWorkers, threading.Thread]]:
    """A runtime with function workers, the test template deployed without pollers: the
    runtime, its workers and the thread warming the invoked functions' pool."""
    assembly = template.write_assembly(tmp_path / "assembly")
    with LocalAws(function_workers=True, log_file=tmp_path / "log") as runtime:
        runtime.deploy(assembly, start_pollers=False)
        pool = runtime.workers
        assert pool is not None
        assert pool.warming is not None
        yield runtime, pool, pool.warming


def test_the_invoked_functions_share_one_pool_of_workers_started_before_their_first_task(
    tmp_path: Path,
) -> None:
    with _deployed_without_pollers(tmp_path) as (runtime, pool, warming):
        warming.join(timeout=60)
        warm = pool.pids(workers.INVOKED)
        assert len(warm) == workers.INVOKED_WORKERS  # before any task ran
        stack = runtime.stack
        assert {stack.function("Double").name, stack.function("Total").name} <= set(
            pool.pools[workers.INVOKED].functions
        )
        result = runtime.run_state_machine(
            "PipelineStateMachine", {"values": [1, 2, 3, 4, 5, 6], "explode": False}, timeout=60
        )
        assert result["status"] == "SUCCEEDED", result
        output = result["outputJson"]
        used = {item["pid"] for item in output["items"]} | {output["sum"]["pid"]}
        assert used <= warm  # both functions' tasks ran in the pool's warm workers
        assert pool.pids(workers.INVOKED) == warm  # and no other was started


def test_a_runtime_stopped_while_its_workers_warm_leaves_no_worker_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    processes = []
    start, invoke = workers._Worker.__init__, workers._Worker.invoke

    def recorded(self: workers._Worker, *args: Any, **kwargs: Any) -> None:
        start(self, *args, **kwargs)
        processes.append(self.process)

    def slow_register(self: workers._Worker, *args: Any, **kwargs: Any) -> tuple[bytes, bool]:
        if kwargs.get("kind") == "register" and self.pool == workers.INVOKED:
            time.sleep(0.5)  # the runtime stops while the close's pool is still warming
        return invoke(self, *args, **kwargs)

    monkeypatch.setattr(workers._Worker, "__init__", recorded)
    monkeypatch.setattr(workers._Worker, "invoke", slow_register)
    with _deployed_without_pollers(tmp_path) as (_, _, warming):
        assert warming.is_alive()
    assert not warming.is_alive()
    assert processes
    assert [p.pid for p in processes if p.poll() is None] == []  # every worker ended
