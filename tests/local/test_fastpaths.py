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


def test_a_query_sizes_each_item_once_and_copies_none(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import copy

    from moto.dynamodb.models.dynamo_type import Item

    sized: list[int] = []
    copied: list[int] = []
    size, deepcopy = Item.size, copy.deepcopy

    def counting_size(self: Any) -> int:
        sized.append(id(self))
        return int(size(self))

    def counting_deepcopy(value: Any, memo: Any = None) -> Any:
        if isinstance(value, list) and value and isinstance(value[0], Item):
            copied.append(id(value))  # moto's copy of a Query's results
        return deepcopy(value, memo)

    monkeypatch.setattr(Item, "size", counting_size)
    monkeypatch.setattr(copy, "deepcopy", counting_deepcopy)
    expected = pages(table, **QUERIES[0])
    assert len(sized) == 2 * 43  # moto sizes every item twice
    assert copied  # and deep-copies the results
    sized.clear()
    copied.clear()
    fastpaths.install()
    try:
        assert pages(table, **QUERIES[0]) == expected
        assert len(sized) == len(set(sized)) == 43
        assert not copied
    finally:
        fastpaths.uninstall()
        monkeypatch.undo()


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


def test_a_worker_installs_the_client_side_alone_and_the_runtime_everything() -> None:
    from botocore.parsers import BaseJSONParser
    from moto.core.parse import BaseJSONParser as MotoParser
    from moto.dynamodb.models.table import Table

    before = (BaseJSONParser._handle_structure, MotoParser._parse_structure, Table.query)
    fastpaths.install_client()  # a function worker: it answers no request
    try:
        assert BaseJSONParser._handle_structure is not before[0]
        assert (MotoParser._parse_structure, Table.query) == before[1:]
        fastpaths.install_client()  # idempotent
        fastpaths.install()  # the runtime's process: every fast path, the client's once
        assert MotoParser._parse_structure is not before[1]
        assert Table.query is not before[2]
    finally:
        fastpaths.uninstall()
    assert (BaseJSONParser._handle_structure, MotoParser._parse_structure, Table.query) == before


CONDITIONS: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "attribute_not_exists(sk) OR (h = :h AND attribute_not_exists(c))",
        {},
        {":h": {"S": "abc"}},
    ),
    ("#a BETWEEN :lo AND :hi", {"#a": "n"}, {":lo": {"N": "1"}, ":hi": {"N": "5"}}),
    ("n IN (:x, :y)", {}, {":x": {"N": "3"}, ":y": {"N": "4"}}),
    ("begins_with(s, :p) AND size(s) > :n", {}, {":n": {"N": "1"}, ":p": {"S": "ab"}}),
    ("contains(ss, :v) AND attribute_type(s, :t)", {}, {":v": {"S": "x"}, ":t": {"S": "S"}}),
    ("NOT (m.k = :m)", {}, {":m": {"M": {"z": {"S": "1"}}}}),
]


def _evaluate_conditions() -> list[Any]:
    """Every condition, with its values and with others, against two items: the
    answers and what the parser reports it used."""
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    items = [
        Item(
            DynamoType({"S": "p"}),
            None,
            {
                "sk": {"S": "1"},
                "h": {"S": "abc"},
                "n": {"N": "3"},
                "s": {"S": "abcd"},
                "ss": {"SS": ["x", "y"]},
                "m": {"M": {"k": {"M": {"z": {"S": "1"}}}}},
            },
        ),
        Item(
            DynamoType({"S": "p"}),
            None,
            {
                "sk": {"S": "1"},
                "h": {"S": "zzz"},
                "n": {"N": "9"},
                "s": {"S": "b"},
                "c": {"BOOL": True},
                "m": {"M": {"k": {"S": "q"}}},
            },
        ),
    ]
    out: list[Any] = []
    for expression, names, values in CONDITIONS:
        other = {k: {"S": "zzz"} if "S" in v else v for k, v in values.items()}
        for vals in (values, other):
            parser = ConditionExpressionParser(expression, names, vals)
            op = parser.parse()
            found = (parser.expr_attr_names_found, parser.expr_attr_values_found)
            out.append(([op.expr(item) for item in items], found))
    return out


def test_a_condition_is_parsed_once_and_evaluated_with_each_requests_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    expected = _evaluate_conditions()
    lexed: list[str] = []
    lex = ConditionExpressionParser._lex_condition_expression

    def counting(self: Any) -> Any:
        lexed.append(self.condition_expression)
        return lex(self)

    monkeypatch.setattr(ConditionExpressionParser, "_lex_condition_expression", counting)
    fastpaths.install()
    try:
        first = _evaluate_conditions()
        lexed_first = len(lexed)
        again = _evaluate_conditions()
    finally:
        fastpaths.uninstall()
    assert first == again == expected
    assert lexed_first <= 2 * len(CONDITIONS)  # moto's parse, then the cached template
    assert len(lexed) == lexed_first  # the second round: no parse at all


def test_a_condition_check_through_moto_holds_with_the_cache(
    table: Any, installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError
    from moto.dynamodb.comparisons import ConditionExpressionParser

    lexed: list[str] = []
    lex = ConditionExpressionParser._lex_condition_expression

    def counting(self: Any) -> Any:
        lexed.append(self.condition_expression)
        return lex(self)

    monkeypatch.setattr(ConditionExpressionParser, "_lex_condition_expression", counting)
    condition = "attribute_not_exists(sk) OR (h = :h AND attribute_not_exists(c))"
    outcomes = []
    for h in ("a", "a", "b", "a"):
        try:
            table.put_item(
                Item={"pk": "X", "sk": "1", "h": "a"},
                ConditionExpression=condition,
                ExpressionAttributeValues={":h": h},
            )
            outcomes.append("put")
        except ClientError as err:
            outcomes.append(err.response["Error"]["Code"])
    assert outcomes == ["put", "put", "ConditionalCheckFailedException", "put"]
    # moto parses it twice per PutItem (to validate, to evaluate): here only the first
    # request parses it (moto's parse and the cached template)
    assert len(lexed) == 2


def test_request_ids_are_drawn_at_once() -> None:
    from moto.moto_api._internal import mock_random

    fastpaths.install()
    try:
        ids = {mock_random.get_random_string(length=52) for _ in range(100)}
        assert all(len(i) == 52 and i.isalnum() for i in ids)
        assert len(ids) == 100
        assert "get_random_string" in vars(mock_random)
    finally:
        fastpaths.uninstall()
    assert "get_random_string" not in vars(mock_random)


ITEM: dict[str, Any] = {  # every attribute type, as moto's dynamo_to_dict leaves them
    "pk": {"S": "F#acme#2026-10#03"},
    "sk": {"S": ""},
    "n": {"N": "12.50"},
    "b": {"B": b"\x00\xffbinary"},
    "flags": {"M": {"on": {"BOOL": True}, "off": {"BOOL": False}, "none": {"NULL": True}}},
    "list": {"L": [{"S": "x"}, {"N": "1"}, {"L": []}, {"M": {}}, {"B": b"z"}]},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"\x01", b"\x02"]},
}


def _serialize_query(result: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The body moto's JSON serializer makes of a Query result, and how many attribute
    lookups it made."""
    import json

    from moto.core.serialize import JSONSerializer, XFormedAttributePicker
    from moto.core.utils import get_service_model

    class Counting(XFormedAttributePicker):
        calls = 0

        def __call__(self, context: Any) -> Any:
            Counting.calls += 1
            return super().__call__(context)

    model = get_service_model("dynamodb")
    serializer = JSONSerializer(
        operation_model=model.operation_model("Query"),
        pretty_print=False,
        value_picker=Counting(response_transformers=None),
    )
    body = serializer.serialize(result)["body"]
    return json.loads(body), Counting.calls


def test_attribute_values_are_written_in_their_wire_form_as_moto_would() -> None:
    result = {"Count": 3, "ScannedCount": 3, "Items": [ITEM, ITEM, {"pk": {"S": "x"}}]}
    expected, lookups = _serialize_query(result)
    fastpaths.install()
    try:
        got, fast_lookups = _serialize_query(result)
    finally:
        fastpaths.uninstall()
    assert got == expected
    assert expected["Items"][0]["b"] == {"B": "AP9iaW5hcnk="}
    # moto looks every member of every attribute value up; the fast path only the
    # result's own members
    assert lookups > 200
    assert fast_lookups <= 10


def test_items_read_through_moto_are_the_items_written(installed: None, table: Any) -> None:
    from moto.core.serialize import JSONSerializer

    item = {
        "pk": "X",
        "sk": "1",
        "n": 3,
        "b": b"\x00\xff",
        "m": {"a": [1, "two", None, True, {b"x"}], "s": {"p", "q"}},
    }
    table.put_item(Item=item)
    assert JSONSerializer._serialize_type_structure.__name__ == "serialize_structure"
    assert table.get_item(Key={"pk": "X", "sk": "1"})["Item"] == item
    assert table.query(KeyConditionExpression=Key("pk").eq("X"))["Items"] == [item]


@pytest.mark.parametrize(
    "value",
    [{"S": 1}, {"X": "unknown"}, {"L": [None]}, {"BS": ["a", 1]}, "not a map"],
)
def test_what_is_not_an_attribute_value_in_wire_form_is_left_to_moto(value: Any) -> None:
    assert fastpaths.attribute_value(value) is None
