"""The local runtime's pure parts: no server involved."""

from __future__ import annotations

import time

import pytest

from billing.local.dispatch import (
    EnvironmentConflictError,
    LambdaContext,
    function_name_of,
    merge_environments,
)
from billing.local.intrinsics import Resolver, UnresolvableError
from billing.local.patches import json_path
from billing.local.poller import failed_message_ids, sqs_record
from billing.local.stack import Function


def _function(name: str, **env: str) -> Function:
    return Function(
        logical_id=name,
        name=name,
        arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        handler="m.h",
        runtime="python3.12",
        timeout=3,
        memory_size=128,
        env=env,
    )


def test_environments_merge_and_conflicts_fail_loudly() -> None:
    a = _function("a", TABLE_NAME="t", POWERTOOLS_SERVICE_NAME="ingest")
    b = _function("b", TABLE_NAME="t", STAGE="dev", POWERTOOLS_SERVICE_NAME="close")
    assert merge_environments([a, b]) == {"TABLE_NAME": "t", "STAGE": "dev"}
    same = _function("c", POWERTOOLS_SERVICE_NAME="ingest")
    assert merge_environments([a, same])["POWERTOOLS_SERVICE_NAME"] == "ingest"
    with pytest.raises(EnvironmentConflictError, match="TABLE_NAME"):
        merge_environments([a, _function("d", TABLE_NAME="other")])


def test_function_names_from_names_and_arns() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:billing-dev-ingest"
    assert function_name_of(arn) == "billing-dev-ingest"
    assert function_name_of(f"{arn}:$LATEST") == "billing-dev-ingest"
    assert function_name_of("billing-dev-ingest:live") == "billing-dev-ingest"
    assert function_name_of("123456789012:function:f") == "f"


def test_context_counts_down() -> None:
    context = LambdaContext(
        function_name="f", invoked_function_arn="arn", memory_limit_in_mb=256, timeout_seconds=2
    )
    first = context.get_remaining_time_in_millis()
    assert 1900 < first <= 2000
    time.sleep(0.02)
    assert context.get_remaining_time_in_millis() < first
    assert context.aws_request_id


def test_batch_item_failures_follow_lambda_rules() -> None:
    ids = {"a", "b", "c"}
    assert failed_message_ids(None, ids) == set()
    assert failed_message_ids({"batchItemFailures": []}, ids) == set()
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, ids) == {"b"}
    # A malformed report fails the whole batch, as in AWS.
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "zz"}]}, ids) == ids
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) == ids


def test_sqs_record_has_the_lambda_shape() -> None:
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh",
        "MD5OfBody": "md5",
        "Body": '{"x": 1}',
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1", "Other": "x"},
        "MessageAttributes": {
            "kind": {"StringValue": "usage", "DataType": "String"},
            "raw": {"BinaryValue": b"\x00\x01", "DataType": "Binary"},
        },
    }
    record = sqs_record(message, event_source_arn="arn:aws:sqs:us-east-1:1:q", region="us-east-1")
    assert record["messageId"] == "m-1"
    assert record["receiptHandle"] == "rh"
    assert record["body"] == '{"x": 1}'
    assert record["attributes"] == {"ApproximateReceiveCount": "2", "SentTimestamp": "1"}
    assert record["messageAttributes"]["kind"]["stringValue"] == "usage"
    assert record["messageAttributes"]["raw"]["binaryValue"] == "AAE="
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        "aws:sqs",
        "arn:aws:sqs:us-east-1:1:q",
        "us-east-1",
    )
    assert record["md5OfBody"] == "md5"


def test_json_path_subset() -> None:
    event = {"detail": {"items": [{"id": "a"}, {"id": "b"}]}, "detail-type": "t"}
    assert json_path(event, "$") == event
    assert json_path(event, "$.detail.items[1].id") == "b"
    assert json_path(event, "$['detail-type']") == "t"


def test_resolver_evaluates_intrinsics() -> None:
    resolver = Resolver(
        region="us-east-1",
        account_id="123456789012",
        stack_name="S",
        stack_id="id",
        physical_ids={"Queue": "https://q", "Fn": "fn-name"},
        get_att=lambda logical_id, attribute: f"{logical_id}:{attribute}",
        parameters={"Stage": "dev"},
        conditions={"IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]}},
    )
    assert resolver.resolve({"Ref": "Queue"}) == "https://q"
    assert resolver.resolve({"Fn::GetAtt": ["Fn", "Arn"]}) == "Fn:Arn"
    assert resolver.resolve({"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]}) == "a-dev"
    assert (
        resolver.resolve({"Fn::Sub": "${AWS::Region}/${Fn.Arn}/${!Literal}/${Stage}"})
        == "us-east-1/Fn:Arn/${Literal}/dev"
    )
    assert resolver.resolve({"Fn::Sub": ["${X}!", {"X": {"Ref": "Fn"}}]}) == "fn-name!"
    assert resolver.resolve({"Fn::If": ["IsDev", "yes", "no"]}) == "yes"
    assert resolver.resolve({"a": {"Ref": "AWS::NoValue"}, "b": 1}) == {"b": 1}
    with pytest.raises(UnresolvableError):
        resolver.resolve({"Ref": "Missing"})
