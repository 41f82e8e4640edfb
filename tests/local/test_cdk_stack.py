"""The real CDK-synthesized stack deploys into the local runtime and its functions resolve
to the real handlers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing.local import LocalAws, synth
from billing.local.dispatch import REPO_ROOT
from billing.local.stack import DeployedStack

pytestmark = pytest.mark.e2e


CLOSE_FUNCTIONS = {
    "CloseFreezeFunction": "freeze",
    "CloseListAccountsFunction": "list_accounts",
    "ClosePlanAccountFunction": "plan_account",
    "CloseComputeShardFunction": "compute_shard",
    "CloseRateAccountFunction": "rate_account",
    "CloseRecordFailureFunction": "record_failure",
    "CloseReleaseFunction": "release",
    "CloseFinishFunction": "finish",
}
SHARED_ENV = (
    "TABLE_NAME",
    "INVOICE_BUCKET",
    "REJECTS_BUCKET",
    "BUS_NAME",
    "PSEUDONYM_SECRET_ARN",
    "SHARDS",
    "STAGE",
    "SETTLE_SECONDS",
    "LOG_LEVEL",
)


@pytest.fixture(scope="module")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh synthesis of the real app, private to this test process."""
    return synth(REPO_ROOT, outdir=tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="module")
def aws(cdk_out: Path) -> Iterator[LocalAws]:
    with LocalAws(max_batching_window_seconds=0) as runtime:
        runtime.deploy(cdk_out, stack_name="Billing-dev")
        yield runtime


def test_cdk_stack_deploys_with_the_real_handlers(aws: LocalAws) -> None:
    stack: DeployedStack = aws.stack
    assert stack.status == "CREATE_COMPLETE"
    assert stack.function("IngestFunction").handler == "functions.ingest.handler.handler"
    close = {
        f.logical_id: f.handler
        for f in stack.functions.values()
        if f.logical_id.startswith("Close")
    }
    assert close, "no Close*Function in the stack"
    for logical_id, handler in close.items():
        assert handler.startswith("functions.close.handlers."), (logical_id, handler)
    for construct_id, name in CLOSE_FUNCTIONS.items():
        if any(logical_id.startswith(construct_id) for logical_id in close):
            assert stack.function(construct_id).handler == f"functions.close.handlers.{name}"
    # Every function resolved to an imported handler.
    assert all(aws.dispatcher.lookup(f.arn) for f in stack.functions.values())


def test_cdk_stack_wiring_is_discovered(aws: LocalAws) -> None:
    stack = aws.stack
    by_function = {m.function_arn: m for m in stack.event_source_mappings}
    assert len(by_function) == len(stack.event_source_mappings) == 3
    mapping = by_function[stack.function("IngestFunction").arn]
    assert mapping.event_source_arn.endswith(stack.queue_url("IntakeQueue").rsplit("/", 1)[-1])
    assert mapping.report_batch_item_failures
    stream = by_function[stack.function("LiveFunction").arn]
    assert "/stream/" in stream.event_source_arn
    assert stream.queue_url is None
    assert stream.report_batch_item_failures
    assert stream.filter_event_names == ["INSERT", "MODIFY"]
    # the expiry guard's TTL deletions: moto never expires an item, so nothing polls for them
    # (the one reader of the stream hands each record to the live view)
    expiry = by_function[stack.function("ExpiryFunction").arn]
    assert expiry.event_source_arn == stream.event_source_arn
    assert expiry.filter_event_names == ["REMOVE"]
    assert expiry.filter_prefixes == ["F#", "E#"]
    streams = [s.reader.stream_arn for group in aws.pollers for s in group.streams]
    assert streams == [stream.event_source_arn]
    assert stack.state_machine_arn("MonthCloseStateMachine").startswith("arn:aws:states:")
    for function in stack.functions.values():
        missing = [name for name in SHARED_ENV if name not in function.env]
        assert not missing, (function.logical_id, missing)
    secret_arn = stack.function("IngestFunction").env["PSEUDONYM_SECRET_ARN"]
    secret = aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    assert secret["SecretString"]


def test_cdk_stack_bus_to_intake_reaches_the_ingest_handler(aws: LocalAws) -> None:
    stack = aws.stack
    aws.client("events").put_events(
        Entries=[
            {
                "EventBusName": stack.physical_id("UsageBus", "AWS::Events::EventBus"),
                "Source": "local.test",
                "DetailType": "cpaas.usage",
                "Detail": json.dumps({"not": "a usage event"}),
            }
        ]
    )
    aws.drain(timeout=30)
    stats = [poller.stats for group in aws.pollers for poller in group.pollers]
    assert sum(s.messages for s in stats) >= 1
    assert sum(s.batch_errors for s in stats) == 0
    dlq = aws.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_url("IntakeDlq"), AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_issued_invoices_are_locked_against_deletion(aws: LocalAws) -> None:
    """Object Lock reaches the deployed invoice bucket; an issued invoice version cannot be
    deleted, a re-run writes no new version, and scratch work stays deletable."""
    from botocore.exceptions import ClientError

    from billing.adapters.invoices import DocumentStore, InvoiceConflict, InvoiceLock

    stack = aws.stack
    s3 = aws.client("s3")
    bucket = stack.bucket_name("InvoiceBucket")
    env = stack.function("CloseRateAccountFunction").env
    assert env["INVOICE_LOCK_MODE"] == "GOVERNANCE"
    lock = InvoiceLock(env["INVOICE_LOCK_MODE"], int(env["INVOICE_RETENTION_YEARS"]))
    documents = DocumentStore(s3, bucket, lock)
    key = "invoices/2026-10/acme/INV-LOCK-1.json"
    assert documents.write_once(key, b'{"total": "1.00"}', "application/json")
    assert not documents.write_once(key, b'{"total": "1.00"}', "application/json")
    with pytest.raises(InvoiceConflict):  # one conditional put, refused: nothing replaced
        documents.write_once(key, b'{"total": "2.00"}', "application/json")
    (version,) = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"].year == 2036
    with pytest.raises(ClientError) as denied:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert documents.read(key) == b'{"total": "1.00"}'

    documents.write("work/2026-10/acme/2026-10/00.json", b"{}", "application/json")
    (scratch,) = s3.list_object_versions(Bucket=bucket, Prefix="work/2026-10/acme/")["Versions"]
    s3.delete_object(
        Bucket=bucket, Key="work/2026-10/acme/2026-10/00.json", VersionId=scratch["VersionId"]
    )


def test_rejected_events_are_encrypted_with_their_own_key(aws: LocalAws) -> None:
    stack = aws.stack
    encryption = aws.client("s3").get_bucket_encryption(Bucket=stack.bucket_name("RejectsBucket"))
    (rule,) = encryption["ServerSideEncryptionConfiguration"]["Rules"]
    default = rule["ApplyServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "aws:kms"
    key_id = default["KMSMasterKeyID"]
    assert key_id.endswith(stack.physical_id("RejectsKey", "AWS::KMS::Key").rsplit("/", 1)[-1])


def test_the_deployed_expiry_guard_puts_back_an_item_its_close_never_archived(
    aws: LocalAws,
) -> None:
    """moto never expires an item: the TTL deletion's stream record is handed to the
    deployed function as the event source mapping would (its handler, environment and
    clients as deployed)."""
    from boto3.dynamodb.types import TypeSerializer

    stack = aws.stack
    dynamodb = aws.client("dynamodb")
    table_name = stack.physical_id("UsageTable", "AWS::DynamoDB::Table")
    item = {
        "pk": "F#acme#2026-10#03",
        "sk": "1790816963564#expired-1#p9LV7jCZ",
        "t": "message.outbound",
        "k": "9bPPswcBcGCItir9wTsenw",
        "a": {"channel": "sms", "status": "submitted"},
        "expires_at": 1794700800,
    }
    serialize = TypeSerializer().serialize
    record = {
        "eventName": "REMOVE",
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        "dynamodb": {
            "Keys": {"pk": serialize(item["pk"]), "sk": serialize(item["sk"])},
            "OldImage": {k: serialize(v) for k, v in item.items()},
            "SequenceNumber": "7",
        },
    }
    arn = stack.function("ExpiryFunction").arn
    payload, errored = aws.dispatcher.invoke_payload(arn, json.dumps({"Records": [record]}))
    assert not errored, payload[:500]
    assert json.loads(payload) == {"batchItemFailures": []}
    key = {"pk": serialize(item["pk"]), "sk": serialize(item["sk"])}
    back = dynamodb.get_item(TableName=table_name, Key=key)["Item"]
    assert back["t"] == {"S": "message.outbound"}
    assert int(back["expires_at"]["N"]) > 1794700800  # hot again for the margin from now
