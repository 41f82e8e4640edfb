"""Packing events in messages and reading them back (billing.envelope), pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing import envelope

line_text = st.text(
    alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=["Cs"]), min_size=1
).filter(str.strip)


@given(
    lines=st.lists(st.one_of(line_text, st.just("x" * 40_000)), max_size=60),
    per_message=st.integers(min_value=1, max_value=envelope.MAX_EVENTS),
)
def test_packing_keeps_every_line_in_order_within_the_bounds(
    lines: list[str], per_message: int
) -> None:
    messages = list(envelope.pack(lines, per_message))
    read = [
        line
        for m in messages
        for line in (
            envelope.lines_of(m.body) if envelope.is_json_lines(m.attributes) else [m.body]
        )
    ]
    assert read == lines
    for m in messages:
        assert m.events == (len(envelope.lines_of(m.body)) if m.attributes else 1)
        assert m.events <= per_message
        assert m.events == 1 or m.size <= envelope.PACK_BYTES
        assert envelope.oversized(m.body, m.events) is None or m.events == 1


def test_one_per_message_sends_each_line_as_it_is() -> None:
    messages = list(envelope.pack(["a", "b"], 1))
    assert [(m.body, m.events, m.attributes) for m in messages] == [("a", 1, {}), ("b", 1, {})]


def test_a_multi_line_document_is_sent_alone_as_one_event() -> None:
    pretty = '{\n  "id": "e-1"\n}'
    messages = list(envelope.pack(["a", pretty, "b"], 10))
    assert [(m.body, m.attributes) for m in messages] == [
        (pretty, {}),
        ("a\nb", envelope.ATTRIBUTES),
    ]


@pytest.mark.parametrize("per_message", [0, envelope.MAX_EVENTS + 1])
def test_events_per_message_out_of_bounds(per_message: int) -> None:
    with pytest.raises(ValueError, match="events per message"):
        list(envelope.pack(["a"], per_message))


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"content-type": {"stringValue": "application/x-ndjson", "dataType": "String"}}, True),
        ({"content-type": {"StringValue": "Application/X-NDJSON; charset=utf-8"}}, True),
        ({"content-type": {"stringValue": "application/json"}}, False),
        ({"other": {"stringValue": "application/x-ndjson"}}, False),
        ({}, False),
        (None, False),
    ],
)
def test_which_messages_carry_json_lines(attributes: dict | None, expected: bool) -> None:  # type: ignore[type-arg]
    assert envelope.is_json_lines(attributes) is expected


def test_a_received_message_is_sent_again_as_it_came() -> None:
    attributes = {"content-type": {"StringValue": envelope.JSON_LINES, "DataType": "String"}}
    message = envelope.Message.received("a\n\nb\n", attributes)
    assert (message.body, message.events, message.attributes) == ("a\n\nb\n", 2, attributes)
    assert envelope.Message.received("{\n}", None).events == 1
