"""moto's tables are not thread-safe: the runtime answers DynamoDB requests one at a time,
whether they come in process (the handlers, ``InProcessTransport``) or over the socket (the
CLI), behind one lock (``billing.local.clients.serialized_dynamodb``)."""

from __future__ import annotations

import threading
from typing import Any

from billing.local.clients import IN_PROCESS, serialized_dynamodb


def _free_elsewhere() -> bool:
    """Whether another thread could take the DynamoDB lock now."""
    taken: list[bool] = []

    def attempt() -> None:
        if IN_PROCESS.dynamodb_lock.acquire(blocking=False):
            IN_PROCESS.dynamodb_lock.release()
            taken.append(True)
        else:
            taken.append(False)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    return taken[0]


def test_dynamodb_requests_hold_the_lock_other_requests_do_not() -> None:
    seen: dict[str, bool] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen[environ["HTTP_X_AMZ_TARGET"]] = _free_elsewhere()
        return [b"answer"]

    wrapped = serialized_dynamodb(app)
    targets = [
        "DynamoDB_20120810.Query",
        "DynamoDBStreams_20120810.GetRecords",
        "AmazonSQS.ReceiveMessage",
    ]
    for target in targets:
        assert wrapped({"HTTP_X_AMZ_TARGET": target}, None) == [b"answer"]
    assert seen == {targets[0]: False, targets[1]: False, targets[2]: True}
    assert _free_elsewhere()  # released after each request
