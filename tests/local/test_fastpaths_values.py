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
