"""``drain_queues`` says when the queues were drained (what benchmarks/local_ingest.py
reports as the end of the ingest), not only that they were."""

from __future__ import annotations

import threading
import time

import boto3
from moto import mock_aws

from billing.local.poller import drain_queues

REGION = "us-east-1"


def test_drain_returns_when_the_queues_were_first_seen_empty() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="drain-probe")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="pending")
        (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
        deleted: list[float] = []

        def consume() -> None:  # the message in flight is handled, then deleted
            time.sleep(0.3)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            deleted.append(time.monotonic())

        consumer = threading.Thread(target=consume)
        consumer.start()
        drained = drain_queues([url], timeout=30, region=REGION, interval=0.05)
        returned = time.monotonic()
        consumer.join()
        # first seen empty after the delete, then once more at least an interval later
        assert deleted[0] <= drained <= returned - 0.05
