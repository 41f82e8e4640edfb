"""Event-source functions in worker processes (``billing.local.workers``): the SQS
mapping's batches run in another process, whose requests the runtime answers over its
pipe, with the same SQS semantics (partial failures, a raising handler, the dead-letter
queue), the handler's output in the runtime's log file, and a worker that dies replaced."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing.local import LocalAws
from billing.local.stack import DeployedStack

from . import template
from .test_runtime import _attempts, _dlq_bodies, _explode_is_retried_then_caught, _item

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("log") / "handlers.log"


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory, log: Path) -> Iterator[LocalAws]:
    assembly = template.write_assembly(tmp_path_factory.mktemp("assembly"))
    # batches handed over at once, as in `billing demo` (with the test queue's 1 s
    # visibility timeout, a 1 s batching window lets the other poller take a message
    # again while the first still gathers: at least once, as on AWS)
    with LocalAws(function_workers=True, log_file=log, max_batching_window_seconds=0) as runtime:
        runtime.deploy(assembly)  # its workers started warm, handlers imported
        yield runtime


@pytest.fixture(scope="module")
def stack(aws: LocalAws) -> DeployedStack:
    return aws.stack


def _send(aws: LocalAws, stack: DeployedStack, bodies: list[dict[str, object]]) -> None:
    for body in bodies:
        aws.client("sqs").send_message(
            QueueUrl=stack.queue_url("WorkQueue"), MessageBody=json.dumps(body)
        )


def test_batches_run_in_a_worker_process_with_the_apis_semantics(
    aws: LocalAws, stack: DeployedStack
) -> None:
    prefix = f"partial-{uuid.uuid4().hex[:8]}"
    failing = {f"{prefix}-3", f"{prefix}-7"}
    _send(
        aws, stack, [{"id": f"{prefix}-{i}", "fail": f"{prefix}-{i}" in failing} for i in range(12)]
    )
    aws.drain(timeout=30)
    for i in range(12):
        key = f"{prefix}-{i}"
        # maxReceiveCount is 2: a failing message is handled twice, then moved.
        assert _attempts(aws, stack, key) == (2 if key in failing else 1), key
    item = _item(aws, stack, f"{prefix}-0")
    assert item["function"]["S"].startswith("LocalTest-WorkerFunction")
    assert item["pid"]["S"] != str(os.getpid())  # not this process
    assert {body["id"] for body in _dlq_bodies(aws, stack, prefix)} == failing
    assert aws.workers is not None
    assert aws.workers.started >= 1


def test_a_raising_handler_leaves_its_batch_and_logs_to_the_runtimes_file(
    aws: LocalAws, stack: DeployedStack, log: Path
) -> None:
    prefix = f"crash-{uuid.uuid4().hex[:8]}"
    _send(aws, stack, [{"id": f"{prefix}-0", "crash": True}])
    aws.drain(timeout=30)
    assert _attempts(aws, stack, f"{prefix}-0") == 2
    assert [body["id"] for body in _dlq_bodies(aws, stack, prefix)] == [f"{prefix}-0"]
    assert f"crash requested by {prefix}-0" in log.read_text()


def test_a_worker_ended_while_idle_is_replaced_without_losing_an_invocation(
    aws: LocalAws, stack: DeployedStack
) -> None:
    assert aws.workers is not None
    started = aws.workers.started
    for worker in list(aws.workers._all):
        worker.process.kill()
        worker.process.wait()
    prefix = f"idle-{uuid.uuid4().hex[:8]}"
    _send(aws, stack, [{"id": f"{prefix}-{i}"} for i in range(3)])
    aws.drain(timeout=30)
    for i in range(3):
        assert _attempts(aws, stack, f"{prefix}-{i}") >= 1
    assert _dlq_bodies(aws, stack, prefix) == []
    assert aws.workers.started > started


def test_a_worker_that_dies_in_an_invocation_is_a_function_error(
    aws: LocalAws, stack: DeployedStack
) -> None:
    assert aws.workers is not None
    started = aws.workers.started
    prefix = f"dies-{uuid.uuid4().hex[:8]}"
    _send(aws, stack, [{"id": f"{prefix}-0", "die": True}])
    aws.drain(timeout=60)
    # each attempt killed its worker: the batch came back after the visibility timeout,
    # then went to the dead-letter queue after maxReceiveCount (2) receives
    assert _attempts(aws, stack, f"{prefix}-0") >= 2
    assert [body["id"] for body in _dlq_bodies(aws, stack, prefix)] == [f"{prefix}-0"]
    # and the runtime goes on, with a new worker
    _send(aws, stack, [{"id": f"{prefix}-after"}])
    aws.drain(timeout=30)
    assert _attempts(aws, stack, f"{prefix}-after") == 1
    assert aws.workers.started > started


def test_step_functions_tasks_run_in_worker_processes_with_retry_and_catch(
    aws: LocalAws, stack: DeployedStack
) -> None:
    # Lambda's Invoke API (a Map's tasks, as the close's) hands its invocations to workers
    result = aws.run_state_machine(
        "PipelineStateMachine", {"values": [1, 2, 3, 4], "explode": False}, timeout=60
    )
    assert result["status"] == "SUCCEEDED", result
    items = result["outputJson"]["items"]
    assert [item["value"] for item in items] == [2, 4, 6, 8]
    assert {item["function"] for item in items} == {stack.function("Double").name}
    assert os.getpid() not in {item["pid"] for item in items}  # not this process
    assert result["outputJson"]["sum"]["total"] == 20
    # a task that raises in its worker is retried, then caught, as in process
    _explode_is_retried_then_caught(aws, stack)
    assert aws.workers is not None
    assert stack.function("Double").name in aws.workers.names


def test_a_worker_parses_responses_with_the_runtimes_fast_path(aws: LocalAws) -> None:
    response = aws.client("lambda").invoke(
        FunctionName=aws.stack.function("EnvFunction").arn, Payload=b"{}"
    )
    assert "FunctionError" not in response
    result = json.loads(response["Payload"].read())
    assert result["pid"] != os.getpid()  # in a worker
    assert result["parser"] == "billing.local.fastpaths"  # attribute values parsed at once
    assert result["secret"]["purpose"] == "pseudonyms"  # its requests answered


def test_a_worker_keeps_what_its_cold_start_loaded_out_of_the_collectors_rescans(
    aws: LocalAws,
) -> None:
    response = aws.client("lambda").invoke(
        FunctionName=aws.stack.function("EnvFunction").arn, Payload=b"{}"
    )
    result = json.loads(response["Payload"].read())
    assert result["pid"] != os.getpid()
    # modules, service models and schemas: tens of thousands of objects (billing.local.heap)
    assert result["frozen"] > 10_000
