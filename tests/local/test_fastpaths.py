"""The local runtime's fast paths through moto: a Query reads only its partition (same
items, order and pages), and the Step Functions interpreter reuses its clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from boto3.dynamodb.conditions import Key
from moto import mock_aws

from billing.local import fastpaths
from tests.pipeline.conftest import create_table


@pytest.fixture
def installed() -> Iterator[None]:
    fastpaths.install()
    try:
        yield
    finally:
        fastpaths.uninstall()


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        t = create_table()
        with t.batch_writer() as writer:
            for i in range(300):
                writer.put_item(Item={"pk": f"P{i % 7}", "sk": f"{i:05d}", "n": i})
        yield t


def pages(table: Any, **kw: Any) -> list[tuple[int, list[str]]]:
    out = []
    while True:
        resp = table.query(**kw)
        out.append((resp["Count"], [i["sk"] for i in resp.get("Items", [])]))
        if "LastEvaluatedKey" not in resp:
            return out
        kw["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": Key("pk").eq("P3")},
    {"KeyConditionExpression": Key("pk").eq("P3"), "Limit": 7, "ScanIndexForward": False},
    {"KeyConditionExpression": Key("pk").eq("P5") & Key("sk").gte("00100"), "Limit": 9},
    {"KeyConditionExpression": Key("pk").eq("P1"), "Select": "COUNT", "Limit": 10},
    {"KeyConditionExpression": Key("pk").eq("nothing")},
]


def test_a_query_reads_only_its_partition_and_answers_the_same(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.dynamodb.models.table import Table

    expected = [pages(table, **q) for q in QUERIES]
    counts = [table.query(**QUERIES[3])["Count"]]
    fastpaths.install()
    try:
        seen: list[int] = []
        narrowed = Table.all_items

        def counting(self: Any) -> Any:
            items = list(narrowed(self))
            seen.append(len(items))
            return items

        monkeypatch.setattr(Table, "all_items", counting)
        assert [pages(table, **q) for q in QUERIES] == expected
        counts.append(table.query(**QUERIES[3])["Count"])
        assert seen
        assert max(seen) <= 300 // 7 + 1  # one partition, never the table
    finally:
        monkeypatch.undo()
        fastpaths.uninstall()
    assert counts[0] == counts[1] == 10
    assert pages(table, **QUERIES[0]) == expected[0]


def test_the_interpreter_builds_a_client_once_per_service(installed: None) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
        lambda_eval_utils,
    )

    first = lambda_eval_utils.boto_client_for("us-east-1", "lambda")
    assert lambda_eval_utils.boto_client_for("us-east-1", "lambda") is first
    assert lambda_eval_utils.boto_client_for("eu-west-1", "lambda") is not first
    assert first.meta.endpoint_url.startswith("http://127.0.0.1:")
    assert first.meta.service_model.service_name == "lambda"


def test_uninstall_restores_moto() -> None:
    from moto.dynamodb.models.table import Table
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
        lambda_eval_utils,
    )

    before = (Table.query, Table.all_items, lambda_eval_utils.boto_client_for)
    fastpaths.install()
    fastpaths.install()  # idempotent
    assert Table.query is not before[0]
    fastpaths.uninstall()
    assert (Table.query, Table.all_items, lambda_eval_utils.boto_client_for) == before
