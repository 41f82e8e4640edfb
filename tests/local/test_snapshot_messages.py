"""Queued messages in the durable snapshot: encoded once, again only when they change."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from moto.sqs.models import Message

from billing.local import snapshot
from billing.local.snapshot import MessageCache


def messages(n: int) -> list[Message]:
    return [Message(f"m{i}", f'{{"n": {i}}}') for i in range(n)]


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the messages encoded."""
    seen: list[str] = []
    original = snapshot._encode_message

    def counting(message: Any) -> bytes:
        seen.append(message.id)
        return original(message)

    monkeypatch.setattr(snapshot, "_encode_message", counting)
    return seen


def test_a_capture_encodes_only_the_messages_that_changed(encodes: list[str]) -> None:
    queue = messages(5)
    cache = MessageCache()
    first = cache.encode(queue)
    assert encodes == ["m0", "m1", "m2", "m3", "m4"]
    encodes.clear()
    queue[1].mark_received(visibility_timeout=30)  # a consumer received it
    queue[3].delay(10)
    newer = Message("m5", "{}")
    second = cache.encode([*queue[1:], newer])  # m0 deleted, m5 sent
    assert encodes == ["m1", "m3", "m5"]
    assert second[1] == first[2]
    assert second[3] == first[4]
    state = pickle.loads(second[0])
    assert state["approximate_receive_count"] == 1
    assert "receipt_handle" not in state
    assert "visible_at" not in state


def test_an_encoded_message_restores_what_the_snapshot_kept() -> None:
    (message,) = messages(1)
    message.mark_received(visibility_timeout=30)
    message.mark_received(visibility_timeout=30)
    (kept,) = MessageCache().encode([message])
    state = pickle.loads(kept)
    restored: Any = Message.__new__(Message)
    restored.__dict__.update(state)
    assert (restored.id, restored.body, restored.approximate_receive_count) == ("m0", '{"n": 0}', 2)
    assert (
        restored.approximate_first_receive_timestamp == message.approximate_first_receive_timestamp
    )
