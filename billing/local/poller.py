"""SQS event source mappings: poll the real queue, invoke the handler in batches.

This does what the Lambda service's poller does for an SQS event source mapping: it
long-polls the queue, gathers a batch (``BatchSize`` / ``MaximumBatchingWindowInSeconds``),
invokes the function with the Lambda SQS event shape, and deletes what succeeded. Failed
messages are simply not deleted, so redelivery after the visibility timeout and the move to
the dead-letter queue after ``maxReceiveCount`` come from moto's own SQS.

The Lambda service reads a queue from inside AWS; the runtime's pollers read moto's SQS
in this process the same way (``QueueBackend``: moto's receive and delete, with the
runtime's queue index, visibility and dead-letter moves), without a request serialized
and parsed both ways for each receive and each delete. ``BILLING_LOCAL_IN_PROCESS=0``
(every call over HTTP) has them use the SQS API instead (``QueueApi``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from billing.local.clients import aws_client
from billing.local.polling import PollingThread
from billing.local.stack import EventSourceMapping
from billing.local.streams import MotoStreamReader, StreamPoller
from billing.local.workers import Invoker

LOG = logging.getLogger(__name__)

# DynamoDB stream sources (see ``_stream_poller``): how records gather before the function
# sees them. Looked at every STREAM_POLL_SECONDS; delivered once none arrived for
# STREAM_QUIET_SECONDS, STREAM_GATHER_SECONDS after the first (longer if the last
# delivery took more than STREAM_MAX_SHARE of its window), or STREAM_INVOCATION_SIZE
# are waiting; while the SQS pollers have messages left (ingest is busy), up to
# STREAM_BUSY_SECONDS after the first.
STREAM_POLL_SECONDS = 0.2
STREAM_QUIET_SECONDS = 1.0
STREAM_GATHER_SECONDS = 30.0
STREAM_BUSY_SECONDS = 180.0
STREAM_MAX_SHARE = 0.25
STREAM_INVOCATION_SIZE = 100_000

_SYSTEM_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [
            base64.b64encode(item).decode() for item in value.get("BinaryListValues", [])
        ],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute


def sqs_record(message: dict[str, Any], *, event_source_arn: str, region: str) -> dict[str, Any]:
    """One ``Records`` entry of the event Lambda passes for an SQS event source."""
    attributes = message.get("Attributes", {})
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: attributes[k] for k in _SYSTEM_ATTRIBUTES if k in attributes},
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": event_source_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_message_ids(response: Any, batch_ids: set[str]) -> set[str]:
    """Message ids a ``ReportBatchItemFailures`` response leaves on the queue. As in AWS, a
    malformed report (unknown or empty identifier) fails the whole batch."""
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return set()
    failures = response["batchItemFailures"]
    if not isinstance(failures, list):
        return set(batch_ids)
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in batch_ids:
            LOG.warning("invalid batchItemFailures entry %r: whole batch fails", failure)
            return set(batch_ids)
        failed.add(identifier)
    return failed


class Queue(Protocol):
    """What a poller does with its queue."""

    def receive(self, limit: int, wait_seconds: int) -> list[dict[str, Any]]:
        """Up to ``limit`` (1-10) messages as ``ReceiveMessage`` gives them, with every
        system and message attribute; waits up to ``wait_seconds`` for the first."""
        ...

    def delete(self, receipt_handles: list[str]) -> tuple[int, list[dict[str, Any]]]:
        """Deletes up to 10 messages: how many were, and ``DeleteMessageBatch``'s
        failures."""
        ...


class QueueApi:
    """A queue through the SQS API."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url

    def receive(self, limit: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=limit,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def delete(self, receipt_handles: list[str]) -> tuple[int, list[dict[str, Any]]]:
        result = self.sqs.delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(receipt_handles)],
        )
        return len(result.get("Successful", [])), list(result.get("Failed", []))


class QueueBackend:
    """A queue of the moto running in this process, read as the Lambda service reads a
    queue inside AWS: moto's own receive and delete (so the runtime's queue index,
    visibility timeouts, receive counts and dead-letter moves are the API's), and the
    messages as ``ReceiveMessage`` gives them through boto3, without a request serialized
    and parsed both ways (a receive and its delete: ~2.3 ms of CPU through boto3, ~0.25 ms
    here). Its changes pass the snapshot ``gate`` as a request's do."""

    def __init__(self, queue_url: str, region: str, gate: Any = None) -> None:
        path = urlsplit(queue_url).path.strip("/").split("/")
        self.account, self.name = path[-2], path[-1]
        self.region = region
        self.gate = gate

    def _backend(self) -> Any:
        from moto.sqs.models import sqs_backends

        return sqs_backends[self.account][self.region]

    def receive(self, limit: int, wait_seconds: int) -> list[dict[str, Any]]:
        backend = self._backend()
        queue = backend.get_queue(self.name)
        received = backend.receive_message(
            self.name, limit, wait_seconds, queue.visibility_timeout, ["All"]
        )
        if received and self.gate is not None:
            self.gate.mark_changed()  # receive counts, dead-letter moves (as a request's)
        return [received_message(m) for m in received]

    def delete(self, receipt_handles: list[str]) -> tuple[int, list[dict[str, Any]]]:
        entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(receipt_handles)]
        with self.gate.changing() if self.gate is not None else contextlib.nullcontext():
            deleted, failed = self._backend().delete_message_batch(self.name, entries)
        return len(deleted), list(failed)


def _blob(value: Any) -> bytes:
    """A binary attribute value as boto3 gives it (moto may hold it base64-encoded)."""
    return value if isinstance(value, bytes) else base64.b64decode(value)


def _message_attribute_value(value: dict[str, Any]) -> dict[str, Any]:
    shown = dict(value)
    if "BinaryValue" in shown:
        shown["BinaryValue"] = _blob(shown["BinaryValue"])
    if "BinaryListValues" in shown:
        shown["BinaryListValues"] = [_blob(v) for v in shown["BinaryListValues"]]
    return shown


def received_message(message: Any) -> dict[str, Any]:
    """A message moto received, as ``ReceiveMessage`` with every attribute gives it through
    boto3 (moto 5.2's response: the same members, the same conditions)."""
    shown: dict[str, Any] = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.body_md5,
        "Body": message.body,
    }
    if message.message_attributes:
        shown["MessageAttributes"] = {
            name: _message_attribute_value(value)
            for name, value in message.message_attributes.items()
        }
        shown["MD5OfMessageAttributes"] = message.attribute_md5
    attributes = {
        "SenderId": message.sender_id,
        "SentTimestamp": str(message.sent_timestamp),
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
    }
    if message.deduplication_id is not None:
        attributes["MessageDeduplicationId"] = message.deduplication_id
    if message.group_id is not None:
        attributes["MessageGroupId"] = message.group_id
    trace = (message.system_attributes or {}).get("AWSTraceHeader")
    if trace:
        attributes["AWSTraceHeader"] = trace.get("StringValue")
    if message.sequence_number is not None:
        attributes["SequenceNumber"] = message.sequence_number
    shown["Attributes"] = attributes
    return shown


@dataclass
class PollerStats:
    batches: int = 0
    messages: int = 0
    deleted: int = 0
    item_failures: int = 0
    batch_errors: int = 0


class SqsPoller(PollingThread):
    """One polling thread for one SQS event source mapping."""

    def __init__(
        self,
        mapping: EventSourceMapping,
        dispatcher: Invoker,
        *,
        region: str,
        endpoint_url: str | None = None,
        poll_wait_seconds: int = 1,
        max_batching_window_seconds: int | None = None,
        gate: Any = None,
    ) -> None:
        if mapping.queue_url is None:
            raise ValueError(f"mapping {mapping.uuid} is not an SQS event source")
        super().__init__(f"sqs-poller-{mapping.function_name}")
        self.mapping = mapping
        self.queue_url: str = mapping.queue_url
        self.dispatcher = dispatcher
        self.region = region
        self.endpoint_url = endpoint_url
        self.poll_wait_seconds = poll_wait_seconds
        self.batching_window = mapping.maximum_batching_window_seconds
        if max_batching_window_seconds is not None:
            self.batching_window = min(self.batching_window, max_batching_window_seconds)
        self.stats = PollerStats()
        self.gate = gate

    def queue(self) -> Queue:
        """The queue, read in this process (the API's when every call goes over HTTP)."""
        if os.environ.get("BILLING_LOCAL_IN_PROCESS", "1") == "0":
            sqs = aws_client("sqs", endpoint_url=self.endpoint_url, region=self.region)
            return QueueApi(sqs, self.queue_url)
        return QueueBackend(self.queue_url, self.region, self.gate)

    def _run(self) -> None:
        queue = self.queue()
        while not self._stop.is_set():
            try:
                self.poll_once(queue)
            except Exception:
                if self._stop.is_set():
                    break
                LOG.exception("poller for %s failed; retrying", self.queue_url)
                self._stop.wait(1.0)

    def poll_once(self, queue: Queue) -> int:
        """Receives one batch and handles it; returns the number of messages."""
        try:
            messages = self._receive_batch(queue)
            if messages:
                self._handle(queue, messages)
            return len(messages)
        finally:
            self._busy.clear()

    def _receive(self, queue: Queue, limit: int, wait_seconds: int) -> list[dict[str, Any]]:
        messages = queue.receive(max(1, min(10, limit)), wait_seconds)
        if messages:
            self._busy.set()
        return messages

    def _receive_batch(self, queue: Queue) -> list[dict[str, Any]]:
        batch_size = self.mapping.batch_size
        batch = self._receive(queue, batch_size, self.poll_wait_seconds)
        if not batch:
            return batch
        window = self.batching_window
        deadline = time.monotonic() + window
        while len(batch) < batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if window and remaining <= 0:
                break
            wait = min(20, math.ceil(remaining)) if window else 0
            more = self._receive(queue, batch_size - len(batch), wait)
            if not more and not window:
                break
            batch.extend(more)
        return batch

    def _handle(self, queue: Queue, messages: list[dict[str, Any]]) -> None:
        mapping = self.mapping
        event = {
            "Records": [
                sqs_record(m, event_source_arn=mapping.event_source_arn, region=self.region)
                for m in messages
            ]
        }
        ids = {m["MessageId"] for m in messages}
        self.stats.batches += 1
        self.stats.messages += len(messages)
        payload, errored = self.dispatcher.invoke_payload(mapping.function_arn, json.dumps(event))
        if errored:
            self.stats.batch_errors += 1
            LOG.warning(
                "%s failed on a batch of %d; messages return after the visibility timeout",
                mapping.function_name,
                len(messages),
            )
            return
        failed: set[str] = set()
        if mapping.report_batch_item_failures:
            failed = failed_message_ids(json.loads(payload or b"null"), ids)
        self.stats.item_failures += len(failed)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            deleted, failures = queue.delete([m["ReceiptHandle"] for m in chunk])
            self.stats.deleted += deleted
            for failure in failures:
                LOG.warning("could not delete message from %s: %s", self.queue_url, failure)


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Visible + in-flight + delayed messages of a queue."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in names)


def drain_queues(
    queue_urls: Iterable[str],
    *,
    timeout: float = 30.0,
    busy: Callable[[], bool] | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    credentials: tuple[str, str] | None = None,
    interval: float = 0.1,
) -> float:
    """Returns once every queue is empty (visible + in flight + delayed) and nothing is
    being handled, twice in a row: the monotonic time of the first of the two looks
    (when the queues were drained, within ``interval``); raises :class:`TimeoutError`
    otherwise. A deep queue is looked at less often (up to once a second at 5,000
    messages and more): each look costs the runtime's CPU that the ingest needs, and the
    end is still seen within ``interval`` once the queue is nearly empty."""
    urls = list(queue_urls)
    sqs = aws_client("sqs", endpoint_url=endpoint_url, region=region, credentials=credentials)
    deadline = time.monotonic() + timeout
    quiet, quiet_since = 0, 0.0
    while True:
        depths = {url: queue_depth(sqs, url) for url in urls}
        if not any(depths.values()) and not (busy and busy()):
            quiet += 1
            if quiet == 1:
                quiet_since = time.monotonic()
            if quiet >= 2:
                return quiet_since
        else:
            quiet = 0
        if time.monotonic() > deadline:
            raise TimeoutError(f"queues not drained after {timeout:.0f} s: {depths}")
        time.sleep(min(1.0, max(interval, sum(depths.values()) / 5000)))


def polled_stream(mapping: EventSourceMapping) -> bool:
    """Whether the runtime reads a stream mapping's records for its function: not for one
    of deletions only (the expiry guard's TTL deletions): moto never expires an item, and
    the runtime's reader hands writes on only."""
    return (
        mapping.queue_url is None
        and mapping.enabled
        and "/stream/" in mapping.event_source_arn
        and mapping.filter_event_names != ["REMOVE"]
    )


class PollerGroup:
    """The pollers of all enabled SQS event source mappings of a stack."""

    def __init__(
        self,
        mappings: Iterable[EventSourceMapping],
        dispatcher: Invoker,
        *,
        region: str,
        endpoint_url: str | None = None,
        poll_wait_seconds: int = 1,
        pollers_per_mapping: int = 1,
        max_batching_window_seconds: int | None = None,
        gate: Any = None,
        stream_lanes: int = 1,
    ) -> None:
        self.pollers: list[SqsPoller] = []
        self.streams: list[StreamPoller] = []
        for mapping in mappings:
            if mapping.queue_url is None and "/stream/" in mapping.event_source_arn:
                if polled_stream(mapping) and dispatcher.lookup(mapping.function_arn) is not None:
                    if any(s.reader.stream_arn == mapping.event_source_arn for s in self.streams):
                        raise ValueError(
                            f"{mapping.function_name}: a second reader of one stream; the"
                            " runtime's reader takes each record once"
                        )
                    self.streams.append(_stream_poller(mapping, dispatcher, region, stream_lanes))
                continue
            if mapping.queue_url is None or not mapping.enabled:
                continue
            if dispatcher.lookup(mapping.function_arn) is None:
                LOG.warning("no local handler for %s; not polling", mapping.function_name)
                continue
            for _ in range(max(1, pollers_per_mapping)):
                self.pollers.append(
                    SqsPoller(
                        mapping,
                        dispatcher,
                        region=region,
                        endpoint_url=endpoint_url,
                        poll_wait_seconds=poll_wait_seconds,
                        max_batching_window_seconds=max_batching_window_seconds,
                        gate=gate,
                    )
                )
        self.endpoint_url = endpoint_url
        self.region = region
        for stream in self.streams:
            stream.backlog = self.backlog

    @property
    def queue_urls(self) -> list[str]:
        return sorted({poller.queue_url for poller in self.pollers})

    def backlog(self) -> int:
        """Messages the SQS pollers have yet to handle (visible, in flight, delayed): while
        there are, ingest keeps writing and the stream's records keep coming."""
        sqs = aws_client("sqs", endpoint_url=self.endpoint_url, region=self.region)
        return sum(queue_depth(sqs, url) for url in self.queue_urls)

    def busy(self, streams: bool = True) -> bool:
        """Whether a batch is being handled, or (``streams``) a stream's records are
        waiting or being handled."""
        return any(poller.busy for poller in self.pollers) or (
            streams and any(stream.busy or stream.reader.pending() for stream in self.streams)
        )

    def start(self) -> None:
        for poller in self.pollers:
            poller.start()
        for stream in self.streams:
            stream.start()

    def stop(self) -> None:
        for poller in self.pollers:
            poller.request_stop()
        for poller in self.pollers:
            poller.stop()
        for stream in self.streams:
            stream.stop()

    def drain(self, timeout: float = 30.0) -> None:
        drain_queues(
            self.queue_urls,
            timeout=timeout,
            busy=self.busy,
            endpoint_url=self.endpoint_url,
            region=self.region,
        )


def _stream_poller(
    mapping: EventSourceMapping, dispatcher: Invoker, region: str, lanes: int = 1
) -> StreamPoller:
    """A DynamoDB stream source: records read from the in-process moto table, delivered to
    the function in batches with the stream's retry-from-the-failed-record semantics."""
    prefixes = tuple(mapping.filter_prefixes) if mapping.filter_prefixes else None

    def invoke(event: dict[str, Any]) -> Any:
        payload, errored = dispatcher.invoke_payload(mapping.function_arn, json.dumps(event))
        if errored:
            raise RuntimeError(f"{mapping.function_name} failed: {payload[:500]!r}")
        return json.loads(payload or b"{}")

    reader = MotoStreamReader(mapping.event_source_arn, prefixes)
    # The handler shares this interpreter with ingest, and a refresh re-reads its shard:
    # records gather while they keep arriving, up to STREAM_GATHER_SECONDS (while ingest
    # has messages left, up to STREAM_BUSY_SECONDS), and go to the function in
    # invocations of up to STREAM_INVOCATION_SIZE records (ten times the largest BatchSize
    # AWS allows for a stream: the live view's result does not depend on the batching), so
    # one refresh of a shard covers a whole window.
    return StreamPoller(
        reader,
        invoke,
        batch_size=mapping.batch_size,
        interval=STREAM_POLL_SECONDS,
        region=region,
        gather_seconds=max(STREAM_GATHER_SECONDS, mapping.maximum_batching_window_seconds),
        quiet_seconds=STREAM_QUIET_SECONDS,
        invocation_size=max(STREAM_INVOCATION_SIZE, mapping.batch_size),
        max_share=STREAM_MAX_SHARE,
        busy_seconds=STREAM_BUSY_SECONDS,
        lanes=lanes,
    )
