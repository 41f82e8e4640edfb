"""The runtime's pollers read moto's SQS in process (``billing.local.poller.QueueBackend``):
the messages, the Lambda event built from them, the deletes and the dead-letter moves are
what the SQS API gives (``QueueApi``, through boto3), and every change passes the
snapshot gate."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from billing.local.poller import QueueApi, QueueBackend, sqs_record
from billing.local.snapshot import MutationGate
from tests.local.test_sqs_depth import REGION, Clock, patched_sqs

ATTRIBUTES: list[dict[str, Any]] = [
    {},
    {"kind": {"DataType": "String", "StringValue": "usage"}},
    {
        "n": {"DataType": "Number", "StringValue": "12.5"},
        "raw": {"DataType": "Binary", "BinaryValue": b"\x00\xffbytes"},
        "custom": {"DataType": "String.trace", "StringValue": "é"},
    },
]


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's SQS with the runtime's patches, on a clock that stands still: the two queues'
    messages get the same times."""
    import moto.core.utils
    import moto.sqs.models

    clock = Clock()
    for module in (moto.core.utils, moto.sqs.models):
        monkeypatch.setattr(module, "unix_time_millis", clock.millis)
        monkeypatch.setattr(module, "unix_time", clock.seconds)
    yield from patched_sqs(monkeypatch)


def _queues(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    """Two queues with the same settings and the same messages: one for each reader."""
    urls = []
    for suffix in ("api", "backend"):
        url = sqs.create_queue(QueueName=f"{name}-{suffix}", Attributes=attributes)["QueueUrl"]
        for i, message_attributes in enumerate(ATTRIBUTES):
            sqs.send_message(
                QueueUrl=url,
                MessageBody=json.dumps({"n": i, "text": "ünïcode"}),
                MessageAttributes=message_attributes,
            )
        urls.append(url)
    return urls[0], urls[1]


def _without_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in m.items() if k not in ("MessageId", "ReceiptHandle")} for m in messages
    ]


def test_a_backend_receive_gives_what_the_api_gives(sqs: Any) -> None:
    api_url, backend_url = _queues(sqs, "same")
    api, backend = QueueApi(sqs, api_url), QueueBackend(backend_url, REGION)
    by_api, by_backend = api.receive(10, 0), backend.receive(10, 0)
    assert len(by_api) == len(ATTRIBUTES)
    assert _without_ids(by_backend) == _without_ids(by_api)
    assert by_backend[2]["MessageAttributes"]["raw"]["BinaryValue"] == b"\x00\xffbytes"
    arn = "arn:aws:sqs:us-east-1:123456789012:q"
    records = [
        [sqs_record(m, event_source_arn=arn, region=REGION) for m in messages]
        for messages in (by_api, by_backend)
    ]
    assert [
        {k: v for k, v in r.items() if k not in ("messageId", "receiptHandle")} for r in records[1]
    ] == [
        {k: v for k, v in r.items() if k not in ("messageId", "receiptHandle")} for r in records[0]
    ]
    # received once: invisible for the queue's visibility timeout, to both readers
    assert api.receive(10, 0) == []
    assert backend.receive(10, 0) == []


def test_a_backend_delete_and_its_failures_are_the_api_s(sqs: Any) -> None:
    api_url, backend_url = _queues(sqs, "delete")
    api, backend = QueueApi(sqs, api_url), QueueBackend(backend_url, REGION)
    handles = [[m["ReceiptHandle"] for m in q.receive(10, 0)] for q in (api, backend)]
    got_api = api.delete([handles[0][0], "not-a-handle"])
    got_backend = backend.delete([handles[1][0], "not-a-handle"])
    assert got_backend == got_api
    assert got_api[0] == 1
    assert got_api[1][0]["Code"] == "ReceiptHandleIsInvalid"
    counts = [
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for url in (api_url, backend_url)
    ]
    depth = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    assert [c[d] for d in depth for c in counts[:1]] == [c[d] for d in depth for c in counts[1:]]


def test_a_backend_receive_moves_a_message_to_its_dead_letter_queue(sqs: Any) -> None:
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": 2}
    _, url = _queues(sqs, "poison", VisibilityTimeout="0", RedrivePolicy=json.dumps(policy))
    backend = QueueBackend(url, REGION)
    counts = [m["Attributes"]["ApproximateReceiveCount"] for m in backend.receive(10, 0)]
    assert counts == ["1"] * len(ATTRIBUTES)
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in backend.receive(10, 0)} == {"2"}
    assert backend.receive(10, 0) == []  # a third receive: moved instead
    moved = QueueBackend(dlq, REGION).receive(10, 0)
    assert sorted(json.loads(m["Body"])["n"] for m in moved) == [0, 1, 2]


def test_every_change_passes_the_snapshot_gate(sqs: Any) -> None:
    gate = MutationGate(app=None)
    backend = QueueBackend(_queues(sqs, "gated")[1], REGION, gate)
    handles = [m["ReceiptHandle"] for m in backend.receive(10, 0)]
    assert len(handles) == len(ATTRIBUTES)
    assert gate.changes == 1  # receive counts changed
    assert backend.receive(10, 0) == []
    assert gate.changes == 1  # an empty receive changes nothing
    with gate.quiesced():  # a snapshot being taken holds a delete back
        deleting = threading.Thread(target=backend.delete, args=(handles,))
        deleting.start()
        deleting.join(0.3)
        assert deleting.is_alive()
    deleting.join(5)
    assert not deleting.is_alive()
    assert gate.changes == 2
