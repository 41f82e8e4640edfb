"""The local runtime's fast paths for attribute values: moto's item sizes and botocore's
parse of a response give exactly what moto's and botocore's own code give."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.parsers import create_parser
from moto.core.serialize import XFormedAttributePicker
from moto.dynamodb.models.dynamo_type import DynamoType, Item

from billing.local import fastpaths

VALUES: list[dict[str, Any]] = [
    {"S": "plain"},
    {"S": "명세서 · ünïcode"},
    {"N": "12.500"},
    {"N": "-0.001"},
    {"B": b"\x00\x01binary"},
    {"B": "c3RyaW5nIGJpbmFyeQ=="},
    {"BOOL": True},
    {"BOOL": False},
    {"NULL": True},
    {"SS": ["a", "bé", "ccc"]},
    {"NS": ["1", "2.25", "-3"]},
    {"BS": [b"x", b"yz"]},
    {"L": [{"S": "a"}, {"N": "1"}, {"L": [{"BOOL": True}, {"M": {"k": {"S": "v"}}}]}]},
    {
        "M": {
            "dims": {"M": {"country": {"S": "FR"}, "n": {"N": "3"}}},
            "tags": {"SS": ["x"]},
            "blob": {"B": b"\xff"},
            "list": {"L": [{"NULL": True}, {"S": ""}]},
            "empty": {"M": {}},
        }
    },
]


@pytest.fixture
def originals() -> Iterator[None]:
    fastpaths.uninstall()
    yield
    fastpaths.uninstall()


def test_item_sizes_are_moto_s(originals: None) -> None:
    expected = [DynamoType(v).size() for v in VALUES]
    attrs = {f"a{i}": v for i, v in enumerate(VALUES)}
    item_expected = Item(DynamoType({"S": "pk"}), None, attrs).size()
    assert [fastpaths.value_size(*next(iter(v.items()))) for v in VALUES] == expected
    fastpaths.install()
    assert [DynamoType(v).size() for v in VALUES] == expected
    assert Item(DynamoType({"S": "pk"}), None, attrs).size() == item_expected
    # a map member set in place as a raw value is sized as moto sizes it
    raw = DynamoType({"M": {"a": {"S": "x"}}})
    raw.value["b"] = {"L": [{"N": "10"}]}
    assert raw.size() == 1 + 1 + 1 + 2


def _wire(value: Any) -> Any:
    """The JSON a DynamoDB response carries for ``value`` (binary values base64)."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def _parse(body: dict[str, Any]) -> dict[str, Any]:
    model = boto3.session.Session().client("dynamodb", region_name="us-east-1").meta
    shape = model.service_model.operation_model("Query").output_shape
    response = {
        "status_code": 200,
        "headers": {},
        "body": json.dumps(body).encode(),
    }
    parsed: dict[str, Any] = create_parser("json").parse(response, shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


@pytest.mark.parametrize(
    ("items", "wire"),
    [
        ([{"pk": v, "sk": {"S": str(i)}} for i, v in enumerate(VALUES)], True),
        ([{"gaps": {"L": [None, {"S": "a"}], "S": None}}], True),
        ([{"bad": {"S": "a", "N": "1"}}], False),  # two members
        ([{"odd": {"XX": "unknown member"}}], False),  # a member botocore does not know
    ],
)
def test_a_parsed_response_is_botocore_s(originals: None, items: list[Any], wire: bool) -> None:
    body = {"Items": _wire(items), "Count": len(items), "ScannedCount": len(items)}
    try:
        expected: Any = _parse(body)
    except Exception as err:
        expected = type(err)
    fastpaths.install()
    blob = create_parser("json")._blob_parser
    if wire:  # the fast path itself gives botocore's values
        direct = [
            {k: fastpaths.parsed_attribute_value(v, blob) for k, v in i.items()}
            for i in body["Items"]
        ]
        assert direct == expected["Items"]
    else:  # any other form is left to botocore
        (value,) = body["Items"][-1].values()
        with pytest.raises(fastpaths._NotWireForm):
            fastpaths.parsed_attribute_value(value, blob)
    try:
        got: Any = _parse(body)
    except Exception as err:
        got = type(err)
    assert got == expected


def _parse_request(operation: str, body: dict[str, Any]) -> Any:
    """What moto's request parser makes of a DynamoDB request body (or the error it
    raises)."""
    from moto.core.parse import JSONParser
    from moto.core.utils import get_service_model

    parser = JSONParser(get_service_model("dynamodb").operation_model(operation))
    try:
        return parser.parse({"method": "POST", "headers": {}, "body": json.dumps(body)})
    except Exception as err:
        return type(err)


@pytest.mark.parametrize(
    "item",
    [
        {f"a{i}": v for i, v in enumerate(VALUES)},
        {"gaps": {"L": [None, {"S": "a"}], "S": None}, "m": {"M": {"x": None}}},
        {"bad": {"S": "a", "N": "1"}},  # two members: moto keeps both
        {"odd": {"XX": "unknown member"}},  # a member moto does not know: dropped
        {"wrong": "not a map"},  # moto's own error
    ],
)
def test_a_parsed_request_is_moto_s(originals: None, item: dict[str, Any]) -> None:
    body = {
        "RequestItems": {"t": [{"PutRequest": {"Item": _wire(item)}}]},
        "ReturnConsumedCapacity": "TOTAL",
    }
    expected = _parse_request("BatchWriteItem", body)
    query = {"TableName": "t", "ExpressionAttributeValues": _wire(item)}
    expected_query = _parse_request("Query", query)
    fastpaths.install()
    assert _parse_request("BatchWriteItem", body) == expected
    assert _parse_request("Query", query) == expected_query


def test_an_item_is_sized_once_and_refused_as_moto_refuses(originals: None) -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge

    def build(attrs: dict[str, Any]) -> Any:
        try:
            item = Item(DynamoType({"S": "pk"}), None, attrs)
        except ItemSizeTooLarge:
            return ItemSizeTooLarge
        return dict(item.attrs), item.size()

    # 405,000 bytes in all is the most moto accepts: names and values count
    fits = {"k": {"S": "x" * (fastpaths.ITEM_LIMIT - 1)}}
    too_large = {"k": {"S": "x" * fastpaths.ITEM_LIMIT}}
    split = {"a": {"S": "x" * 200_000}, "b": {"S": "y" * 200_000}, "cc": {"N": "12345"}}
    everything = {f"a{i}": v for i, v in enumerate(VALUES)}
    cases = [fits, too_large, split, {**split, "d": {"S": "z" * 5_000}}, everything]
    expected = [build(attrs) for attrs in cases]
    assert expected[0] != ItemSizeTooLarge
    assert expected[1] == ItemSizeTooLarge
    assert expected[2] != ItemSizeTooLarge
    assert expected[3] == ItemSizeTooLarge
    fastpaths.install()
    assert [build(attrs) for attrs in cases] == expected
    sized: list[int] = []
    original = DynamoType.size

    def counted(self: Any) -> int:
        sized.append(1)
        return int(original(self))

    DynamoType.size = counted  # type: ignore[method-assign]
    try:
        Item(DynamoType({"S": "pk"}), None, everything)
    finally:
        DynamoType.size = original  # type: ignore[method-assign]
    assert len(sized) == len(everything)  # each value once (moto: n(n+1)/2 times)


class _Counting(XFormedAttributePicker):
    """moto's picker, counting the times it works out the names to try."""

    lookups = 0

    def get_possible_keys(self, context: Any) -> Any:
        _Counting.lookups += 1
        return super().get_possible_keys(context)


def _serialize(service: str, operation: str, result: Any) -> tuple[Any, int]:
    """The body moto's serializer makes of ``result`` and how many names it looked up."""
    from moto.core.serialize import JSONSerializer
    from moto.core.utils import get_service_model

    _Counting.lookups = 0
    serializer = JSONSerializer(
        operation_model=get_service_model(service).operation_model(operation),
        value_picker=_Counting(response_transformers=None),
    )
    return json.loads(serializer.serialize(result)["body"]), _Counting.lookups


def test_a_serialized_response_is_moto_s_with_each_name_worked_out_once(
    originals: None,
) -> None:
    from moto.sqs.models import Message

    messages = []
    for i, body in enumerate(["first", "sécond", '{"json": true}']):
        message = Message(f"id-{i}", body)
        message.mark_received()
        message.message_attributes = {"k": {"data_type": "String", "string_value": "v"}}
        messages.append(message)
    received = {
        "Messages": [
            {
                "MessageId": m.id,
                "ReceiptHandle": m.receipt_handle,
                "MD5OfBody": m.body_md5,
                "Body": m.body,
                "Attributes": {"ApproximateReceiveCount": "1"},
            }
            for m in messages
        ]
    }
    plain = {"Successful": [{"Id": "0"}], "Failed": [{"Id": "1", "Code": "x", "SenderFault": True}]}
    cases = [
        ("sqs", "ReceiveMessage", received),
        ("sqs", "ReceiveMessage", {"Messages": messages}),  # moto's objects, by alias
        ("sqs", "DeleteMessageBatch", plain),
    ]
    expected = [_serialize(*case) for case in cases]
    fastpaths.install()
    got = [_serialize(*case) for case in cases]
    assert [body for body, _ in got] == [body for body, _ in expected]
    assert expected[0][0]["Messages"][1]["Body"] == "sécond"
    # moto works the names out for every member of every message; the fast path once
    # per member of each shape (and object class): the serializer remembers them
    assert all(lookups > 0 for _, lookups in expected)
    again = [_serialize(*case) for case in cases]
    assert [body for body, _ in again] == [body for body, _ in expected]
    assert sum(lookups for _, lookups in again) == 0
