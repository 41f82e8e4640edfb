"""Several usage events in one SQS message: the intake's JSON Lines envelope.

A message whose attribute ``content-type`` is ``application/x-ndjson`` carries events one
per line (JSON Lines, each line a CloudEvent as a message of its own would carry it);
any other message carries one event. Each line is validated, rejected or stored on its own,
exactly as if it had been a message: a bad line is kept in the rejected-events store with
its reason and never fails the others. What is per message stays per message: a transient
failure of any of its events redelivers the whole message (its other events rewrite the
same facts, so nothing is counted twice), and a message that keeps failing goes to the
dead-letter queue whole.

Why: SQS bills a request per 64 KB, and a Lambda invocation per batch of messages. One
event per message, at about 0.5 KB, pays a send, a receive and a delete per event; packed,
a 64 KB message carries about a hundred. ``billing send`` packs
``EVENTS_PER_MESSAGE`` lines per message (docs/benchmarks.md, section 1, for the cost).

Pure: no I/O. The handler's side is :func:`lines_of`, the producer's :func:`pack`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

CONTENT_TYPE_ATTRIBUTE = "content-type"
JSON_LINES = "application/x-ndjson"
MAX_EVENTS = 100  # per message
MAX_MESSAGE_BYTES = 256 * 1024  # SQS's own limit on a message
PACK_BYTES = 64 * 1024  # a producer packs up to one billed SQS chunk
EVENTS_PER_MESSAGE = 10  # what ``billing send`` packs by default
REQUEST_BYTES = 256 * 1024  # SendMessageBatch's limit on the sum of its messages

ATTRIBUTES: dict[str, Any] = {
    CONTENT_TYPE_ATTRIBUTE: {"DataType": "String", "StringValue": JSON_LINES}
}


def is_json_lines(message_attributes: dict[str, Any] | None) -> bool:
    """Whether a message (its attributes as the Lambda SQS event or ReceiveMessage gives
    them: ``stringValue`` or ``StringValue``) carries JSON Lines."""
    attribute = (message_attributes or {}).get(CONTENT_TYPE_ATTRIBUTE) or {}
    value = attribute.get("stringValue", attribute.get("StringValue"))
    return isinstance(value, str) and value.split(";")[0].strip().lower() == JSON_LINES


def lines_of(body: str) -> list[str]:
    """The events of a JSON Lines body: one per line, blank lines skipped, a line's
    ``\\r`` ending dropped. Only ``\\n`` ends a line: JSON escapes it inside strings, while
    other line separators (U+2028...) may stand raw in a string."""
    out = []
    for line in body.split("\n"):
        line = line.removesuffix("\r")
        if line.strip():
            out.append(line)
    return out


def oversized(body: str, lines: int) -> str | None:
    """Why a JSON Lines message is refused as a whole, or ``None``."""
    if lines > MAX_EVENTS:
        return f"over {MAX_EVENTS} events in one message"
    if len(body.encode("utf-8", "surrogateescape")) > MAX_MESSAGE_BYTES:
        return f"over {MAX_MESSAGE_BYTES} bytes in one message"
    return None


@dataclass(frozen=True)
class Message:
    body: str
    events: int
    attributes: dict[str, Any]

    @cached_property
    def size(self) -> int:
        """The body's bytes, as SQS counts them (encoded once)."""
        return len(self.body.encode("utf-8", "surrogateescape"))

    @classmethod
    def received(cls, body: str, attributes: dict[str, Any] | None) -> Message:
        """A message as ReceiveMessage returned it (e.g. from the dead-letter queue), to be
        sent again as it is."""
        events = len(lines_of(body)) if is_json_lines(attributes) else 1
        return cls(body, events, dict(attributes or {}))


def pack(lines: Iterable[str], per_message: int = EVENTS_PER_MESSAGE) -> Iterator[Message]:
    """JSON Lines (one event per line) in messages of up to ``per_message`` events and
    ``PACK_BYTES`` (streamed). ``per_message`` 1: each line a message of its own, as is.
    A line too large to share a message goes alone; its fate (refused by SQS, rejected as
    oversized) is then its own."""
    if not 1 <= per_message <= MAX_EVENTS:
        raise ValueError(f"events per message must be 1 to {MAX_EVENTS}")
    batch: list[str] = []
    size = 0
    for line in lines:
        if per_message == 1 or "\n" in line:  # a multi-line document is one event
            yield Message(line, 1, {})
            continue
        n = len(line.encode("utf-8", "surrogateescape")) + 1
        if batch and (len(batch) == per_message or size + n > PACK_BYTES):
            yield Message("\n".join(batch), len(batch), ATTRIBUTES)
            batch, size = [], 0
        batch.append(line)
        size += n
    if batch:
        yield Message("\n".join(batch), len(batch), ATTRIBUTES)
