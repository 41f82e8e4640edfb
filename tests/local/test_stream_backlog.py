"""While ingest has messages left, the local stream poller's window goes on past its quiet
and time limits (up to ``busy_seconds``): a bulk load is refreshed once per long window."""

from __future__ import annotations

import time
from typing import Any

from billing.local.streams import StreamPoller
from tests.local.test_stream_poller import ArrivingReader


def _poller(reader: ArrivingReader, backlog: Any, **kw: Any) -> StreamPoller:
    return StreamPoller(
        reader,
        lambda event: {"batchItemFailures": []},
        batch_size=10,
        interval=0.01,
        gather_seconds=0.1,
        quiet_seconds=0.1,
        invocation_size=1000,
        backlog=backlog,
        **kw,
    )


def test_a_window_goes_on_while_ingest_has_messages_left() -> None:
    """Records stopped arriving (quiet) and the window's time is up, but the intake queue
    still holds messages: the window ends when it is empty, not before."""
    looks: list[float] = []
    empty_at = time.monotonic() + 1.5

    def backlog() -> int:
        looks.append(time.monotonic())
        return 0 if time.monotonic() >= empty_at else 7

    poller = _poller(ArrivingReader(burst=3, bursts=1), backlog, busy_seconds=60)
    assert poller.gather() == 3
    assert time.monotonic() >= empty_at
    assert len(looks) <= 4  # looked at once a second at most: each look is a request


def test_a_busy_window_ends_after_busy_seconds() -> None:
    poller = _poller(ArrivingReader(burst=3, bursts=1), lambda: 7, busy_seconds=0.6)
    started = time.monotonic()
    assert poller.gather() == 3
    assert 0.55 <= time.monotonic() - started < 5


def test_without_a_backlog_or_when_it_fails_a_window_ends_at_its_limits() -> None:
    def failing() -> int:
        raise ConnectionError("no answer")

    for backlog in (None, lambda: 0, failing):
        poller = _poller(ArrivingReader(burst=3, bursts=1), backlog, busy_seconds=60)
        started = time.monotonic()
        assert poller.gather() == 3
        assert time.monotonic() - started < 1.0


def test_a_busy_window_still_ends_at_an_invocations_worth() -> None:
    reader = ArrivingReader(burst=400, bursts=None)
    poller = _poller(reader, lambda: 7, busy_seconds=60)
    started = time.monotonic()
    assert poller.gather() >= 1000
    assert time.monotonic() - started < 5


def test_the_runtime_gives_its_stream_pollers_the_intake_backlog() -> None:
    import boto3
    from moto import mock_aws

    from billing.local.poller import STREAM_BUSY_SECONDS, PollerGroup
    from billing.local.stack import EventSourceMapping

    region = "eu-west-3"  # a client of its own (aws_client caches them by region)

    class Dispatcher:
        def lookup(self, name: str) -> object:
            return object()

    with mock_aws():
        sqs = boto3.client("sqs", region_name=region)
        url = sqs.create_queue(QueueName="intake")["QueueUrl"]
        queue_arn = f"arn:aws:sqs:{region}:123456789012:intake"
        stream_arn = f"arn:aws:dynamodb:{region}:123456789012:table/usage/stream/2026-10-01"
        mappings = [
            EventSourceMapping("1", "ingest", "arn:ingest", queue_arn, url, 10, 0, True, True),
            EventSourceMapping("2", "live", "arn:live", stream_arn, None, 2000, 0, True, True),
        ]
        group = PollerGroup(mappings, Dispatcher(), region=region)  # type: ignore[arg-type]
        [stream] = group.streams
        assert stream.busy_seconds == STREAM_BUSY_SECONDS
        assert stream.backlog is not None
        assert stream.backlog() == 0
        for n in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
        assert stream.backlog() == 3
        assert stream.ingest_busy()
