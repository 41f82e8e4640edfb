"""The local AWS runtime end to end: a CDK-shaped template deployed into moto, real handler
functions invoked by the SQS poller, by Step Functions and through the Lambda API."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from billing.local import LocalAws
from billing.local.stack import DeployedStack

from . import template

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return template.write_assembly(tmp_path_factory.mktemp("assembly"))


@pytest.fixture(scope="module")
def aws(assembly: Path) -> Iterator[LocalAws]:
    with LocalAws() as runtime:
        runtime.deploy(assembly)
        yield runtime


@pytest.fixture(scope="module")
def stack(aws: LocalAws) -> DeployedStack:
    return aws.stack


def _item(aws: LocalAws, stack: DeployedStack, key: str) -> dict[str, Any]:
    response = aws.client("dynamodb").get_item(
        TableName=stack.table_name("WorkTable"), Key={"pk": {"S": key}}, ConsistentRead=True
    )
    return dict(response.get("Item", {}))


def _attempts(aws: LocalAws, stack: DeployedStack, key: str) -> int:
    item = _item(aws, stack, key)
    return int(item["attempts"]["N"]) if item else 0


def _dlq_bodies(aws: LocalAws, stack: DeployedStack, prefix: str) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    bodies = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=stack.queue_url("WorkDlq"), MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            body = json.loads(message["Body"])
            if body["id"].startswith(prefix):
                bodies.append(body)
                sqs.delete_message(
                    QueueUrl=stack.queue_url("WorkDlq"), ReceiptHandle=message["ReceiptHandle"]
                )


def test_deploy_describes_the_stack(aws: LocalAws, stack: DeployedStack) -> None:
    assert stack.status == "CREATE_COMPLETE"
    handlers = {f.logical_id: f.handler for f in stack.functions.values()}
    assert handlers == {
        logical_id: f"tests.local.handlers.{name}"
        for logical_id, (name, _) in template.FUNCTIONS.items()
    }
    assert stack.logical_id("WorkQueue", "AWS::SQS::Queue") == template.QUEUE
    assert stack.queue_url("WorkQueue") == stack.queues[template.QUEUE]
    (mapping,) = stack.event_source_mappings
    assert mapping.function_name == stack.function("WorkerFunction").name
    assert mapping.queue_url is not None
    assert (mapping.batch_size, mapping.maximum_batching_window_seconds) == (5, 1)
    assert mapping.report_batch_item_failures
    assert {sm.logical_id for sm in stack.state_machines.values()} == {
        template.PIPELINE,
        template.STRICT,
    }
    assert all(sm.reregistered for sm in stack.state_machines.values())


def test_resources_moto_lacks_are_compensated(aws: LocalAws, stack: DeployedStack) -> None:
    skipped = {s.logical_id: s.type for s in stack.skipped}
    assert skipped == {template.QUEUE_POLICY: "AWS::SQS::QueuePolicy"}
    secret_arn = stack.secrets[template.SECRET]
    assert secret_arn.startswith("arn:aws:secretsmanager:")
    assert stack.outputs["SecretArn"] == secret_arn
    config = aws.client("lambda").get_function_configuration(
        FunctionName=stack.function("WorkerFunction").name
    )
    assert config["Environment"]["Variables"]["SECRET_ARN"] == secret_arn
    ttl = aws.client("dynamodb").describe_time_to_live(TableName=stack.table_name("WorkTable"))
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    versioning = aws.client("s3").get_bucket_versioning(Bucket=stack.bucket_name("ResultsBucket"))
    assert versioning["Status"] == "Enabled"


def test_handlers_see_the_merged_environment_and_the_secret(aws: LocalAws) -> None:
    response = aws.client("lambda").invoke(
        FunctionName=aws.stack.function("EnvFunction").arn, Payload=b"{}"
    )
    assert "FunctionError" not in response
    result = json.loads(response["Payload"].read())
    assert result["stage"] == "test"
    assert result["secret"]["purpose"] == "pseudonyms"
    assert len(result["secret"]["key"]) == 40
    # Differs between functions, so it is not in the shared process environment.
    assert result["service"] is None
    assert os.environ["TABLE_NAME"] == aws.stack.table_name("WorkTable")


def test_lambda_invoke_api_reports_handler_errors(aws: LocalAws) -> None:
    client = aws.client("lambda")
    ok = client.invoke(
        FunctionName=aws.stack.function("DoubleFunction").name, Payload=b'{"value": 21}'
    )
    assert json.loads(ok["Payload"].read())["value"] == 42
    failed = client.invoke(
        FunctionName=aws.stack.function("ExplodeFunction").arn, Payload=b'{"run": "api"}'
    )
    assert failed["FunctionError"] == "Unhandled"
    error = json.loads(failed["Payload"].read())
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "exploded on purpose"


def test_partial_batch_failures_are_redelivered_then_dead_lettered(
    aws: LocalAws, stack: DeployedStack
) -> None:
    prefix = f"partial-{uuid.uuid4().hex[:8]}"
    failing = {f"{prefix}-3", f"{prefix}-7"}
    sqs = aws.client("sqs")
    for i in range(12):
        key = f"{prefix}-{i}"
        sqs.send_message(
            QueueUrl=stack.queue_url("WorkQueue"),
            MessageBody=json.dumps({"id": key, "fail": key in failing}),
        )
    aws.drain(timeout=30)

    for i in range(12):
        key = f"{prefix}-{i}"
        # maxReceiveCount is 2: a failing message is handled twice, then moved.
        assert _attempts(aws, stack, key) == (2 if key in failing else 1), key
    assert _item(aws, stack, f"{prefix}-3")["receive_count"]["S"] == "2"
    assert {body["id"] for body in _dlq_bodies(aws, stack, prefix)} == failing
    batches = aws.client("dynamodb").scan(TableName=stack.table_name("WorkTable"))["Items"]
    sizes = [int(item["size"]["S"]) for item in batches if item["pk"]["S"].startswith("batch#")]
    assert sizes
    assert max(sizes) <= 5


def test_handler_exception_leaves_the_whole_batch(aws: LocalAws, stack: DeployedStack) -> None:
    prefix = f"crash-{uuid.uuid4().hex[:8]}"
    aws.client("sqs").send_message(
        QueueUrl=stack.queue_url("WorkQueue"),
        MessageBody=json.dumps({"id": f"{prefix}-0", "crash": True}),
    )
    aws.drain(timeout=30)
    assert _attempts(aws, stack, f"{prefix}-0") == 2
    assert [body["id"] for body in _dlq_bodies(aws, stack, prefix)] == [f"{prefix}-0"]


def test_eventbridge_rule_delivers_the_detail(aws: LocalAws, stack: DeployedStack) -> None:
    key = f"event-{uuid.uuid4().hex[:8]}"
    response = aws.client("events").put_events(
        Entries=[
            {
                "EventBusName": stack.physical_id("UsageBus", "AWS::Events::EventBus"),
                "Source": "test.usage",
                "DetailType": "UsageRecorded",
                "Detail": json.dumps({"id": key}),
            }
        ]
    )
    assert response["FailedEntryCount"] == 0
    aws.drain(timeout=30)
    assert _attempts(aws, stack, key) == 1


def test_state_machine_maps_over_lambda_tasks(aws: LocalAws, stack: DeployedStack) -> None:
    result = aws.run_state_machine(
        "PipelineStateMachine", {"values": [1, 2, 3], "explode": False}, timeout=30
    )
    assert result["status"] == "SUCCEEDED", result
    output = result["outputJson"]
    assert [item["value"] for item in output["items"]] == [2, 4, 6]
    assert {item["function"] for item in output["items"]} == {stack.function("Double").name}
    assert all(item["has_time_left"] for item in output["items"])
    assert output["sum"]["total"] == 12


def _explode_is_retried_then_caught(aws: LocalAws, stack: DeployedStack) -> None:
    """The pipeline's Explode task raises: retried once, then caught (its error kept)."""
    run = uuid.uuid4().hex[:8]
    result = aws.run_state_machine(
        "PipelineStateMachine", {"values": [5], "explode": True, "run": run}, timeout=60
    )
    assert result["status"] == "SUCCEEDED", result
    error = result["outputJson"]["error"]
    assert error["Error"] == "ValueError"
    assert json.loads(error["Cause"])["errorMessage"] == "exploded on purpose"
    assert _attempts(aws, stack, f"explode#{run}") == 2  # first try + one retry


def test_failing_task_is_retried_then_caught(aws: LocalAws, stack: DeployedStack) -> None:
    _explode_is_retried_then_caught(aws, stack)


def test_uncaught_task_failure_fails_the_execution(aws: LocalAws) -> None:
    result = aws.run_state_machine("StrictStateMachine", {"run": "strict"}, timeout=30)
    assert result["status"] == "FAILED"
    assert result["error"] == "ValueError"


def test_the_runtimes_own_calls_are_answered_in_process_unsigned(
    aws: LocalAws, stack: DeployedStack
) -> None:
    """S3 and SQS calls skip the HTTP round trip; no call is signed (SigV4), and moto
    still sees the caller's account and region."""
    import boto3

    from billing.local.clients import IN_PROCESS

    seen: list[str] = []

    def spy(request: Any, **_: Any) -> None:
        seen.append(str(request.headers.get("Authorization", b""), "latin-1"))

    clients = {name: boto3.client(name) for name in ("s3", "lambda", "stepfunctions", "sqs")}
    for client in clients.values():
        client.meta.events.register_first("before-send", spy)
    before = IN_PROCESS.thread_calls  # this thread's: the runtime's pollers call SQS too
    clients["s3"].put_object(Bucket=stack.bucket_name("ResultsBucket"), Key="k", Body=b"x")
    body = clients["s3"].get_object(Bucket=stack.bucket_name("ResultsBucket"), Key="k")["Body"]
    assert body.read() == b"x"
    assert clients["lambda"].list_functions()["Functions"]
    arn = stack.state_machine_arn("PipelineStateMachine")
    assert clients["stepfunctions"].describe_state_machine(stateMachineArn=arn)["name"]
    assert clients["sqs"].get_queue_url(QueueName=stack.queue_url("WorkQueue").rsplit("/", 1)[1])
    assert len(seen) == 5
    assert IN_PROCESS.thread_calls - before == 3  # S3 twice, SQS; Lambda, Step Functions: HTTP
    for header in seen:
        assert header.startswith("AWS4-HMAC-SHA256 Credential=testing/")
        assert "/us-east-1/" in header
        assert header.endswith("Signature=0")
