"""SQS semantics of the local runtime at queue depth (``billing.local.patches``).

moto's SQS scanned the whole queue on every receive, delete and attribute read. The runtime
indexes a standard queue's messages instead; these tests check that the SQS behaviour the
handlers rely on is kept with 20,000 queued messages, and that a request examines the
messages it returns rather than the queue. "Examined" is counted as reads of a message's
``visible_at`` (what deciding whether a message can be received needs): no clock is
involved, and the clock moto's SQS reads is replaced by one the tests move.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from billing.local.dispatch import LambdaDispatcher
from billing.local.patches import MessageStore, MotoPatches

DEPTH = 20_000
ACCOUNT = "123456789012"
REGION = "us-east-1"
#: A request may examine its own messages a few times each, never the queue.
EXAMINED_PER_REQUEST = 100


class Clock:
    def __init__(self) -> None:
        self.ms = 1_800_000_000_000.0

    def millis(self, dt: Any = None) -> float:
        return self.ms

    def seconds(self, dt: Any = None) -> float:
        return self.ms / 1000

    def advance(self, seconds: float) -> None:
        self.ms += seconds * 1000


class Examined:
    """Counts reads of ``Message.visible_at``."""

    def __init__(self) -> None:
        self.reads = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from moto.sqs.models import Message

        def get(message: Any) -> float:
            self.reads += 1
            return float(message.__dict__["_test_visible_at"])

        def put(message: Any, value: float) -> None:
            message.__dict__["_test_visible_at"] = value

        monkeypatch.setattr(Message, "visible_at", property(get, put), raising=False)

    def __enter__(self) -> Examined:
        self.reads = 0
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    import moto.core.utils
    import moto.sqs.models

    fake = Clock()
    for module in (moto.core.utils, moto.sqs.models):
        monkeypatch.setattr(module, "unix_time_millis", fake.millis)
        monkeypatch.setattr(module, "unix_time", fake.seconds)
    return fake


@pytest.fixture
def examined(monkeypatch: pytest.MonkeyPatch) -> Examined:
    counter = Examined()
    counter.install(monkeypatch)
    return counter


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch, clock: Clock, examined: Examined) -> Iterator[Any]:
    yield from patched_sqs(monkeypatch)


def patched_sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An SQS client of moto (``mock_aws``) with the runtime's patches installed."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        patches = MotoPatches(LambdaDispatcher())
        patches.install()
        try:
            yield boto3.client("sqs", region_name=REGION)
        finally:
            patches.uninstall()


def _queue(name: str) -> Any:
    from moto.sqs.models import sqs_backends

    return sqs_backends[ACCOUNT][REGION].get_queue(name)


def _fill(name: str, count: int) -> None:
    """``count`` messages m00000, m00001... as ``SendMessage`` leaves them, without
    ``count`` requests."""
    from moto.sqs.models import Message

    queue = _queue(name)
    for i in range(count):
        message = Message(f"id-{i:05d}", f"m{i:05d}")
        message.mark_sent()
        queue.add_message(message)


def _receive(sqs: Any, url: str, n: int = 10, **kwargs: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=n, MessageSystemAttributeNames=["All"], **kwargs
    ).get("Messages", [])
    return messages


def _bodies(messages: list[dict[str, Any]]) -> list[str]:
    return [m["Body"] for m in messages]


def _counts(sqs: Any, url: str) -> tuple[int, int, int]:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return (int(got[names[0]]), int(got[names[1]]), int(got[names[2]]))


def _delete(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    result = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ],
    )
    assert not result.get("Failed")


def test_receive_at_depth_returns_the_oldest_visible_batch_and_examines_only_it(
    sqs: Any, examined: Examined
) -> None:
    url = sqs.create_queue(QueueName="deep", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    _fill("deep", DEPTH)

    with examined:
        first = _receive(sqs, url)
    assert _bodies(first) == [f"m{i:05d}" for i in range(10)]
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in first} == {"1"}
    assert examined.reads <= EXAMINED_PER_REQUEST

    with examined:
        second = _receive(sqs, url)
    assert _bodies(second) == [f"m{i:05d}" for i in range(10, 20)]
    assert examined.reads <= EXAMINED_PER_REQUEST

    with examined:
        _delete(sqs, url, first)
        counts = _counts(sqs, url)
        sqs.send_message(QueueUrl=url, MessageBody="last")
    assert counts == (DEPTH - 20, 10, 0)
    assert examined.reads <= EXAMINED_PER_REQUEST
    assert _counts(sqs, url) == (DEPTH - 19, 10, 0)

    # A repeated delete with a handle of a deleted message succeeds, as on AWS; an unknown
    # handle is refused.
    _delete(sqs, url, first[:1])
    refused = sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": "0", "ReceiptHandle": "not-a-handle"}]
    )
    assert refused["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"


def test_in_flight_messages_stay_invisible_until_their_timeout_at_depth(
    sqs: Any, clock: Clock, examined: Examined
) -> None:
    url = sqs.create_queue(QueueName="flight", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    _fill("flight", DEPTH)
    first = _receive(sqs, url)
    clock.advance(10)
    second = _receive(sqs, url, VisibilityTimeout=60)
    assert _bodies(second) == [f"m{i:05d}" for i in range(10, 20)]

    clock.advance(15)  # 25 s after the first receive: all 20 still in flight
    assert _bodies(_receive(sqs, url, 2, VisibilityTimeout=0)) == ["m00020", "m00021"]
    assert _counts(sqs, url) == (DEPTH - 20, 20, 0)

    clock.advance(6)  # 31 s: the first batch is visible again, before anything newer
    with examined:
        again = _receive(sqs, url)
    assert _bodies(again) == _bodies(first)
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in again} == {"2"}
    assert examined.reads <= EXAMINED_PER_REQUEST
    # The handles of the first receive still identify the messages (moto's behaviour).
    assert {m["MessageId"] for m in again} == {m["MessageId"] for m in first}

    # A visibility change takes effect at once, both ways.
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=second[3]["ReceiptHandle"], VisibilityTimeout=0
    )
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"], VisibilityTimeout=600
    )
    clock.advance(0.001)  # visible once the clock has moved past the change
    assert _bodies(_receive(sqs, url, 1)) == ["m00013"]
    clock.advance(60)
    returned = _bodies(_receive(sqs, url))
    assert "m00000" not in returned
    assert returned[:9] == [f"m{i:05d}" for i in range(1, 10)]


def test_partial_failures_come_back_first_then_go_to_the_dlq_at_depth(
    sqs: Any, clock: Clock, examined: Examined
) -> None:
    dlq_url = sqs.create_queue(QueueName="deep-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName="redriven",
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
        },
    )["QueueUrl"]
    _fill("redriven", DEPTH)

    # A batch where one item failed (ReportBatchItemFailures): the rest is deleted.
    batch = _receive(sqs, url)
    failed = batch[4]
    _delete(sqs, url, [m for m in batch if m is not failed])
    clock.advance(31)
    retry = _receive(sqs, url)
    assert retry[0]["MessageId"] == failed["MessageId"]
    assert retry[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    assert _bodies(retry[1:]) == [f"m{i:05d}" for i in range(10, 19)]
    _delete(sqs, url, retry[1:])

    clock.advance(31)  # received maxReceiveCount times: the next receive redrives it
    with examined:
        after = _receive(sqs, url)
    assert examined.reads <= EXAMINED_PER_REQUEST
    assert failed["MessageId"] not in {m["MessageId"] for m in after}
    assert _bodies(after) == [f"m{i:05d}" for i in range(19, 29)]
    dead = _receive(sqs, dlq_url)
    assert [m["MessageId"] for m in dead] == [failed["MessageId"]]
    assert dead[0]["Body"] == failed["Body"]
    assert _counts(sqs, url) == (DEPTH - 29, 10, 0)


def test_a_queue_index_survives_pickling_in_order_with_its_in_flight_messages(
    sqs: Any, clock: Clock
) -> None:
    url = sqs.create_queue(QueueName="kept", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    _fill("kept", 50)
    in_flight = _receive(sqs, url)
    store = _queue("kept")._messages
    assert isinstance(store, MessageStore)

    copy = pickle.loads(pickle.dumps(store))
    assert [m.body for m in copy] == [f"m{i:05d}" for i in range(50)]
    assert copy.counts() == (40, 10, 0)
    handle = in_flight[0]["ReceiptHandle"]
    assert copy.by_handle(handle).body == "m00000"
    assert copy.delete(handle)
    assert copy.counts() == (40, 9, 0)


def test_send_knows_its_total_and_reports_the_rate_per_block(sqs: Any, tmp_path: Any) -> None:
    from billing.cli.operations import SendRate, count_lines, send_lines

    url = sqs.create_queue(QueueName="intake")["QueueUrl"]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(f'{{"n": {i}}}\n' + ("\n" if i % 7 == 0 else "") for i in range(25)))
    assert count_lines(str(events)) == 25
    assert count_lines("-") is None  # stdin: no total

    reports: list[str] = []
    rate = SendRate(every=10, report=reports.append)
    lines = (line.rstrip("\n") for line in events.open() if line.strip())
    assert send_lines(url, lines, total=25, rate=rate) == 25
    assert [r.split(":")[0].split() for r in reports] == [
        ["events", "1-", "10"],
        ["events", "11-", "20"],
    ]
    assert rate.summary().startswith("sent 25 events in ")
    assert "per 10: " in rate.summary()
    assert _counts(sqs, url) == (3, 0, 0)  # JSON Lines messages of 10, 10 and 5 events
    lines = (line.rstrip("\n") for line in events.open() if line.strip())
    assert send_lines(url, lines, per_message=1) == 25
    assert _counts(sqs, url) == (28, 0, 0)  # then one message per event
