"""One boto3 DynamoDB resource shared by threads builds every condition it is given.

The embedded runtime runs the close units of several accounts in threads of one process,
all reading through the handler module's one table resource (billing.adapters.expressions).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import ConditionBase, Equals, GreaterThanEquals, Key
from moto import mock_aws

from billing.adapters import store  # noqa: F401 - installs the thread-safe expressions
from tests.pipeline.conftest import create_table


def paused(condition: ConditionBase, pause: Callable[[], None]) -> ConditionBase:
    """``condition``, calling ``pause`` when boto3 turns it into an expression string."""

    class Paused(type(condition)):  # type: ignore[misc]
        def get_expression(self) -> dict[str, Any]:
            pause()
            return dict(super().get_expression())

    return Paused(*condition.get_expression()["values"])


def test_two_threads_building_key_conditions_at_once_each_get_their_own_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        table = create_table()
        for pk in ("a", "b"):
            table.put_item(Item={"pk": pk, "sk": "1", "who": pk})
        shared = boto3.resource("dynamodb", region_name="us-east-1").Table(table.name)
        a_built_its_key, b_reset, a_done = threading.Event(), threading.Event(), threading.Event()

        def a_pauses() -> None:  # A has numbered its partition key; B starts now
            a_built_its_key.set()
            b_reset.wait(timeout=1)

        def b_pauses() -> None:  # B has reset the placeholder counter: A goes on
            b_reset.set()
            a_done.wait(timeout=1)

        results: dict[str, Any] = {}

        def query(name: str, condition: ConditionBase) -> None:
            try:
                results[name] = shared.query(KeyConditionExpression=condition)["Items"]
            except Exception as err:  # the assertion below shows it
                results[name] = err
            finally:
                if name == "a":
                    a_done.set()

        a = threading.Thread(
            target=query,
            args=("a", Key("pk").eq("a") & paused(GreaterThanEquals(Key("sk"), "0"), a_pauses)),
        )
        a.start()
        assert a_built_its_key.wait(timeout=5)
        b = threading.Thread(
            target=query,
            args=("b", paused(Equals(Key("pk"), "b"), b_pauses) & Key("sk").gte("0")),
        )
        b.start()
        a.join(timeout=10)
        b.join(timeout=10)

    assert results == {
        "a": [{"pk": "a", "sk": "1", "who": "a"}],
        "b": [{"pk": "b", "sk": "1", "who": "b"}],
    }
