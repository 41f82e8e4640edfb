"""Hostile records: nothing one record contains can fail another record of its batch.

Each test sends a batch of 100 records with one poison record in it, through the real
handler logic on moto: the 99 others are stored, the poison one is rejected with a reason
(or, for an injected transient failure, reported alone as a batch item failure).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from billing.domain.periods import Period
from billing.ingest import Ingestor
from tests.factories import at, raw
from tests.pipeline.conftest import Env, sqs_event

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
POISON = "m-poison"


def good(i: int, month: int = 10) -> str:
    return json.dumps(
        raw(
            "message.outbound",
            at(day=1 + i % 28, hour=i % 24, month=month),
            event_id=f"good-{month}-{i}",
            message_id=f"msg-{month}-{i}",
            channel="sms",
            status="submitted",
            end_user=f"+3361234{i:04d}",
        )
    )


def ingestor(env: Env) -> Ingestor:
    ing = env.ingestor()
    ing.wall_clock = lambda: NOW
    return ing


def send(env: Env, poison: str, ing: Ingestor | None = None) -> dict[str, Any]:
    bodies = [good(i) for i in range(99)]
    ids = [f"m-{i}" for i in range(99)]
    bodies.insert(50, poison)
    ids.insert(50, POISON)
    return (ing or ingestor(env)).handle(sqs_event(bodies, ids))


def stored_facts(env: Env) -> int:
    items = env.table.scan()["Items"]
    return sum(1 for i in items if i["pk"].startswith(("F#", "E#")))


def rejected(env: Env) -> dict[str, dict[str, Any]]:
    docs = (env.rejects.get(k) for k in env.rejects.list_keys())
    return {d["message_id"]: d for d in docs}


def assert_only_poison_rejected(env: Env, response: dict[str, Any], reason: str) -> None:
    assert response["batchItemFailures"] == []
    assert stored_facts(env) == 99
    rejects = rejected(env)
    assert set(rejects) == {POISON}
    assert rejects[POISON]["reason"] == reason
    assert rejects[POISON]["errors"]


def event_with(**override: Any) -> dict[str, Any]:
    doc = json.loads(good(999))
    doc.update(override)
    return doc


POISONS: dict[str, tuple[Callable[[], str], str]] = {
    "time-9999": (lambda: json.dumps(event_with(time="9999-12-31T23:59:59Z")), "out_of_window"),
    "time-year-1-plus-14h": (
        lambda: json.dumps(event_with(time="0001-01-01T00:00:00+14:00")),
        "out_of_window",
    ),
    "time-1970": (lambda: json.dumps(event_with(time="1970-01-01T00:00:00Z")), "out_of_window"),
    "time-future": (lambda: json.dumps(event_with(time="2026-11-28T12:05:01Z")), "out_of_window"),
    "sim-bytes-10e40": (
        lambda: json.dumps(
            raw("sim.data_usage", at(day=3), sim_id="sim-1", bytes=10**40, country="FR")
        ),
        "invalid",
    ),
    "eventbridge-nested-20000": (
        lambda: '{"detail-type": "usage", "detail": ' + "[" * 20_000 + "]" * 20_000 + "}",
        "invalid",
    ),
    "nested-20000": (lambda: '{"a": ' + "[" * 20_000 + "]" * 20_000 + "}", "invalid"),
    "duplicate-key": (
        lambda: good(999).replace('"subject": "acme"', '"subject": "acme", "subject": "x"'),
        "invalid",
    ),
    "eventbridge-duplicate-key": (
        lambda: (
            '{"detail-type": "usage", "source": "s", "detail": '
            + good(999).replace('"subject": "acme"', '"subject": "acme", "subject": "x"')
            + "}"
        ),
        "invalid",
    ),
    "parts-as-string": (
        lambda: json.dumps(event_with(data={**json.loads(good(999))["data"], "parts": "2"})),
        "invalid",
    ),
    "account-dotdot": (lambda: json.dumps(event_with(subject="..")), "invalid"),
    "account-hash": (lambda: json.dumps(event_with(subject="acme#1")), "invalid"),
}


@pytest.mark.parametrize("kind", list(POISONS))
def test_one_poison_record_is_rejected_alone(env: Env, kind: str) -> None:
    make, reason = POISONS[kind]
    assert_only_poison_rejected(env, send(env, make()), reason)


def test_an_unexpected_exception_from_the_content_is_a_rejection(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    import billing.ingest as ingest

    real = ingest.to_fact

    def to_fact(event: Any, pseudonymize: Any) -> Any:
        if event.id == "good-10-999":
            raise OverflowError("out of range")
        return real(event, pseudonymize)

    monkeypatch.setattr(ingest, "to_fact", to_fact)
    assert_only_poison_rejected(env, send(env, good(999)), "invalid")


def test_a_too_late_event_is_rejected_with_its_reason(env: Env) -> None:
    for p in ("2026-06", "2026-07", "2026-08", "2026-09", "2026-10"):
        env.store.freeze(p, "2026-11-01T00:00:00Z")
    bodies = [good(i, month=11) for i in range(99)]
    ids = [f"m-{i}" for i in range(99)]
    # 2026-07 is adjusted for by 2026-11, 4 periods later: over the default bound of 3
    bodies.insert(50, good(5, month=7))
    ids.insert(50, POISON)
    # 2026-08 is exactly at the bound: accepted, stored as a late fact
    bodies.append(good(6, month=8))
    ids.append("m-at-bound")
    response = ingestor(env).handle(sqs_event(bodies, ids))
    assert response["batchItemFailures"] == []
    rejects = rejected(env)
    assert set(rejects) == {POISON}
    assert rejects[POISON]["reason"] == "too_late"
    assert "2026-11" in rejects[POISON]["errors"][0]["error"]
    assert stored_facts(env) == 100


def test_an_event_fourteen_months_back_is_not_stored(env: Env) -> None:
    period = Period(2026, 10)
    for _ in range(13):
        env.store.freeze(str(period), "2026-11-01T00:00:00Z")
        period = period.prev()
    old = json.dumps(event_with(time="2025-09-14T10:00:00Z"))
    response = send(env, old)
    assert response["batchItemFailures"] == []
    assert rejected(env)[POISON]["reason"] == "too_late"


def test_a_transient_failure_on_one_record_fails_that_record_only(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    ing = ingestor(env)
    real_put = ing.rejects.put

    def put(body: str, reason: str, errors: Any, message_id: str) -> str:
        if message_id == POISON:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow"}}, "PutObject")
        return real_put(body, reason, errors, message_id)

    monkeypatch.setattr(ing.rejects, "put", put)
    response = send(env, json.dumps(event_with(subject="..")), ing)
    assert response["batchItemFailures"] == [{"itemIdentifier": POISON}]
    assert stored_facts(env) == 99


def test_a_batch_write_refused_for_one_item_fails_that_item_only(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ValidationException refuses a whole BatchWriteItem: the chunk is written item by
    item, so that only the refused item's record fails."""
    ing = ingestor(env)
    refuse_writes(ing, monkeypatch, lambda item: str(item["pk"]).startswith("F#refused#"))
    response = send(env, json.dumps(event_with(subject="refused")), ing)
    assert response["batchItemFailures"] == [{"itemIdentifier": POISON}]
    assert stored_facts(env) == 99


def refuse_writes(
    ing: Ingestor, monkeypatch: pytest.MonkeyPatch, refused: Callable[[dict[str, Any]], bool]
) -> None:
    """DynamoDB refuses (``ValidationException``) a batch write holding an item ``refused``
    says, and that item's own put."""
    client, table = ing.store.client, ing.store.table
    real_batch, real_put = client.batch_write_item, table.put_item

    def invalid() -> ClientError:
        return ClientError(
            {"Error": {"Code": "ValidationException", "Message": "item too large"}},
            "BatchWriteItem",
        )

    def batch_write_item(**kw: Any) -> Any:
        for requests in kw["RequestItems"].values():
            if any(refused(r["PutRequest"]["Item"]) for r in requests):
                raise invalid()
        return real_batch(**kw)

    def put_item(**kw: Any) -> Any:
        if refused(kw["Item"]):
            raise invalid()
        return real_put(**kw)

    monkeypatch.setattr(client, "batch_write_item", batch_write_item)
    monkeypatch.setattr(table, "put_item", put_item)
