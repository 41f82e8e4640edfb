"""Several events per SQS message (``billing.envelope``): each line is an event of its own.

Through the real handler logic on moto, as in ``test_ingest_hostile.py``: a hostile line is
rejected alone and kept with its reason; a message too large is refused whole and kept; a
transient failure of one line redelivers its message, whose other lines then rewrite the
same facts; and whatever the packing, the stored facts are those of one event per message.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import envelope
from billing.domain.periods import Period
from tests.pipeline.conftest import Env, sqs_event
from tests.pipeline.test_ingest_hostile import (
    POISONS,
    event_with,
    good,
    ingestor,
    refuse_writes,
    rejected,
)


def facts(env: Env) -> list[dict[str, Any]]:
    items = env.table.scan()["Items"]
    return sorted(
        (i for i in items if i["pk"].startswith(("F#", "E#"))), key=lambda i: (i["pk"], i["sk"])
    )


def packed(lines: list[str], per_message: int) -> list[str]:
    return [m.body for m in envelope.pack(lines, per_message)]


def handle_packed(env: Env, lines: list[str], per_message: int) -> dict[str, Any]:
    bodies = packed(lines, per_message)
    ids = [f"m-{i}" for i in range(len(bodies))]
    return ingestor(env).handle(sqs_event(bodies, ids, json_lines=True))


@pytest.mark.parametrize("kind", list(POISONS))
def test_one_hostile_line_is_rejected_alone_and_kept_with_its_reason(env: Env, kind: str) -> None:
    make, reason = POISONS[kind]
    lines = [good(i) for i in range(99)]
    lines.insert(54, make())  # the 5th line of the 6th message
    response = handle_packed(env, lines, 10)
    assert response["batchItemFailures"] == []
    assert len(facts(env)) == 99
    rejects = rejected(env)
    assert set(rejects) == {"m-5#5"}  # the message, then the line's number in it
    assert rejects["m-5#5"]["reason"] == reason
    assert rejects["m-5#5"]["body"] == lines[54]  # the line, replayable as a message
    assert rejects["m-5#5"]["errors"]


@pytest.mark.parametrize(
    "body",
    [
        "\n".join(good(i) for i in range(envelope.MAX_EVENTS + 1)),
        "\n".join('{"pad": "' + "x" * 60_000 + '"}' for _ in range(5)),  # over 256 KB
    ],
    ids=["101 events", "300 KB"],
)
def test_a_message_too_large_is_refused_whole_and_kept(env: Env, body: str) -> None:
    others = packed([good(i, month=9) for i in range(20)], 10)
    event = sqs_event([others[0], body, others[1]], ["m-0", "m-big", "m-1"], json_lines=True)
    response = ingestor(env).handle(event)
    assert response["batchItemFailures"] == []
    assert len(facts(env)) == 20  # the other messages of the batch
    rejects = rejected(env)
    assert set(rejects) == {"m-big"}
    assert rejects["m-big"]["reason"] == "oversized"
    assert rejects["m-big"]["body"] == body


def test_a_failure_of_one_line_redelivers_its_message_and_nothing_doubles(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [good(i) for i in range(30)]
    lines[14] = json.dumps(event_with(subject="refused", id="refused-1"))
    ing = ingestor(env)
    failing = True
    refuse_writes(ing, monkeypatch, lambda i: failing and str(i["pk"]).startswith("F#refused#"))
    bodies = packed(lines, 10)
    response = ing.handle(sqs_event(bodies, ["m-0", "m-1", "m-2"], json_lines=True))
    assert response["batchItemFailures"] == [{"itemIdentifier": "m-1"}]  # the whole message
    assert len(facts(env)) == 29  # its other lines are stored already
    stored = facts(env)

    failing = False  # the redelivery, once the write goes through
    assert ing.handle(sqs_event([bodies[1]], ["m-1"], json_lines=True))["batchItemFailures"] == []
    after = facts(env)
    assert len(after) == 30  # the failed line stored, nothing twice
    assert [f for f in after if not f["pk"].startswith("F#refused#")] == stored


def test_a_message_without_the_attribute_is_one_event_even_on_several_lines(env: Env) -> None:
    pretty = json.dumps(json.loads(good(1)), indent=2)  # a single event, pretty-printed
    response = ingestor(env).handle(sqs_event([pretty], ["m-0"]))
    assert response["batchItemFailures"] == []
    assert len(facts(env)) == 1
    assert rejected(env) == {}


def test_blank_lines_and_crlf_endings(env: Env) -> None:
    body = "\r\n".join([good(1), "", "  ", good(2)]) + "\r\n"
    response = ingestor(env).handle(sqs_event([body], ["m-0"], json_lines=True))
    assert response["batchItemFailures"] == []
    assert len(facts(env)) == 2
    assert rejected(env) == {}


EVENTS = [good(i) for i in range(12)] + [
    good(3),  # a duplicate (same id)
    json.dumps(event_with(subject="..")),  # rejected
    json.dumps(event_with(time="2026-09-30T23:59:59Z", id="late-1")),  # a late event
]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.permutations(range(len(EVENTS))),
    per_message=st.integers(min_value=1, max_value=envelope.MAX_EVENTS),
)
def test_the_stored_facts_do_not_depend_on_the_packing(
    env: Env, order: list[int], per_message: int
) -> None:
    for item in env.table.scan()["Items"]:
        env.table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
    env.store.freeze(str(Period(2026, 9)), "2026-10-01T00:00:00Z")
    lines = [EVENTS[i] for i in order]
    one_each = ingestor(env).handle(sqs_event(lines, [f"s-{i}" for i in range(len(lines))]))
    assert one_each["batchItemFailures"] == []
    expected = env.table.scan()["Items"]
    for item in expected:
        env.table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
    env.store.freeze(str(Period(2026, 9)), "2026-10-01T00:00:00Z")
    response = handle_packed(env, lines, per_message)
    assert response["batchItemFailures"] == []
    key = lambda i: (i["pk"], i["sk"])  # noqa: E731
    assert sorted(env.table.scan()["Items"], key=key) == sorted(expected, key=key)
