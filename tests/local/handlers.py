"""Tiny Lambda handlers the local-runtime tests deploy (see ``template.py``).

They talk to AWS through plain boto3, like the real handlers: the runtime only sets the
environment. The module-level client checks that the environment is in place at import.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from typing import Any

import boto3

_dynamodb = boto3.client("dynamodb")


def _record(key: str, **values: str) -> None:
    """Counts a call in the test table (``attempts``) and stores ``values`` on the item."""
    request: dict[str, Any] = {
        "TableName": os.environ["TABLE_NAME"],
        "Key": {"pk": {"S": key}},
        "UpdateExpression": "ADD attempts :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    if values:
        request["UpdateExpression"] += " SET " + ", ".join(f"#{n} = :{n}" for n in values)
        request["ExpressionAttributeNames"] = {f"#{n}": n for n in values}
        for name, value in values.items():
            request["ExpressionAttributeValues"][f":{name}"] = {"S": value}
    _dynamodb.update_item(**request)


def sqs_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Records every message; reports those with ``fail`` as batch item failures and raises
    for ``crash``."""
    records = event["Records"]
    _record(f"batch#{context.aws_request_id}", size=str(len(records)))
    failures = []
    for record in records:
        body = json.loads(record["body"])
        if body.get("crash"):
            _record(body["id"])
            raise RuntimeError(f"crash requested by {body['id']}")
        if body.get("die") and sys.argv[0].endswith("function_worker.py"):
            _record(body["id"])
            os._exit(3)  # the worker process dies in the invocation (never the runtime)
        _record(
            body["id"],
            source=record["eventSource"],
            receive_count=record["attributes"]["ApproximateReceiveCount"],
            function=context.function_name,
            pid=str(os.getpid()),
        )
        if body.get("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def double(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "value": event["value"] * 2,
        "function": context.function_name,
        "has_time_left": context.get_remaining_time_in_millis() > 0,
        "pid": os.getpid(),
    }


def total(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"total": sum(item["value"] for item in event["items"]), "pid": os.getpid()}


def explode(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _record(f"explode#{event.get('run', 'default')}")
    raise ValueError("exploded on purpose")


def describe_environment(event: dict[str, Any], context: Any) -> dict[str, Any]:
    secret_arn = os.environ["SECRET_ARN"]
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    from botocore.parsers import BaseJSONParser

    return {
        "pid": os.getpid(),
        # the fast path of responses' attribute values (billing.local.fastpaths), if any
        "parser": BaseJSONParser._handle_structure.__module__,
        "frozen": gc.get_freeze_count(),  # what the cold start loaded (billing.local.heap)
        "service": os.environ.get("POWERTOOLS_SERVICE_NAME"),
        "stage": os.environ["STAGE"],
        "secret": json.loads(secret["SecretString"]),
    }
