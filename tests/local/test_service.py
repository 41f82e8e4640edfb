"""The background service the CLI uses: another process owns moto and the handlers."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from billing.local import service, wait_for_execution

from . import template

pytestmark = pytest.mark.e2e


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    assembly = template.write_assembly(tmp_path / "assembly")
    state_dir = tmp_path / "state"
    env = service.start(state_dir, template_dir=assembly, synth_if_missing=False, timeout=120)
    try:
        yield state_dir, env
    finally:
        service.stop(state_dir)


def test_service_runs_the_stack_until_stopped(running: tuple[Path, dict[str, str]]) -> None:
    state_dir, env = running
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    state = service.status(state_dir)
    assert state is not None
    assert state.running
    assert state.stack.status == "CREATE_COMPLETE"
    assert json.loads((state_dir / "state.json").read_text())["pid"] == state.pid
    # Starting again returns the running service's environment.
    assert service.start(state_dir, template_dir=state.template_dir) == env

    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )

    def client(name: str) -> Any:
        return session.client(name, endpoint_url=env["AWS_ENDPOINT_URL"])

    sqs, dynamodb, sfn = client("sqs"), client("dynamodb"), client("stepfunctions")
    key = f"service-{uuid.uuid4().hex[:8]}"
    sqs.send_message(
        QueueUrl=state.stack.queue_url("WorkQueue"), MessageBody=json.dumps({"id": key})
    )
    service.drain(state_dir, timeout=30)
    item = dynamodb.get_item(TableName=state.stack.table_name("WorkTable"), Key={"pk": {"S": key}})[
        "Item"
    ]
    assert item["attempts"]["N"] == "1"

    execution = sfn.start_execution(
        stateMachineArn=state.stack.state_machine_arn("PipelineStateMachine"),
        name=key,
        input=json.dumps({"values": [4, 5], "explode": False}),
    )
    result = wait_for_execution(execution["executionArn"], timeout=30, client=sfn)
    assert result["status"] == "SUCCEEDED"
    assert result["outputJson"]["sum"]["total"] == 18

    assert service.stop(state_dir)
    assert service.status(state_dir) is None
    assert not service.stop(state_dir)


def test_a_paused_service_keeps_what_is_sent_queued(tmp_path: Path) -> None:
    """``paused``: the stack is deployed but no poller runs (the send side measured alone,
    benchmarks/local_send.py)."""
    assembly = template.write_assembly(tmp_path / "assembly")
    state_dir = tmp_path / "state"
    env = service.start(
        state_dir, template_dir=assembly, synth_if_missing=False, timeout=120, paused=True
    )
    try:
        state = service.load_state(state_dir)
        sqs = boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        ).client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"])
        url = state.stack.queue_url("WorkQueue")
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": "paused"}))
        time.sleep(2)  # a running poller would have taken it by now
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == "1"
    finally:
        service.stop(state_dir)
