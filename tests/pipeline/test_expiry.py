"""The expiry guard: an item DynamoDB's TTL deletes before its close archived it is kept.

moto has no TTL: a deletion is simulated by deleting the item and handing the guard the
stream record DynamoDB writes for it (``userIdentity`` the DynamoDB service, the item as
its ``OldImage``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from billing.adapters.store import MARGIN_DAYS
from billing.expiry import ARCHIVED, LATE, RESTORED, ExpiryGuard, expired_item
from tests.pipeline.conftest import Env
from tests.pipeline.test_archive import with_archive
from tests.pipeline.test_close_reruns import (
    Clock,
    adjustment_quantities,
    month_close,
    objects,
    put_plan,
    result,
    run,
    send,
)

_SERIALIZE = TypeSerializer().serialize
NOW = datetime(2026, 11, 20, tzinfo=UTC).timestamp()  # October's items expired on the 15th


def ttl_record(item: dict[str, Any], seq: int) -> dict[str, Any]:
    """The stream record of a deletion by TTL (the table's view type: OLD_IMAGE)."""
    return {
        "eventName": "REMOVE",
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        "dynamodb": {
            "Keys": {"pk": _SERIALIZE(item["pk"]), "sk": _SERIALIZE(item["sk"])},
            "OldImage": {k: _SERIALIZE(v) for k, v in item.items()},
            "SequenceNumber": str(seq),
        },
    }


def fact_items(env: Env, account: str) -> list[dict[str, Any]]:
    return [
        i
        for i in env.table.scan()["Items"]
        if str(i["pk"]).startswith((f"F#{account}#", f"E#{account}#"))
    ]


def ttl_delete(env: Env, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Delete ``items`` as the TTL does; the stream records it writes."""
    records = []
    for seq, item in enumerate(items, start=100):
        env.table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
        records.append(ttl_record(item, seq))
    return records


def guard(env: Env) -> ExpiryGuard:
    archive = with_archive(env)
    return ExpiryGuard(env.store, archive, clock=lambda: NOW)


def invoice(env: Env, period: str, account: str) -> dict[str, Any]:
    key = result(env, period, account)["keys"]["json"]
    doc: dict[str, Any] = json.loads(objects(env, key)[key])
    return doc


def billed(env: Env, period: str, account: str) -> tuple[list[Any], str]:
    """What the invoice bills, whoever it is for: its lines and total."""
    doc = invoice(env, period, account)
    return doc["lines"], str(doc["total"])


def test_only_ttl_deletions_of_fact_items_are_for_the_guard() -> None:
    item = {"pk": "F#acme#2026-10#01", "sk": "1790000000000#e1#abc", "t": "message"}
    assert expired_item(ttl_record(item, 1)) == item
    by_the_application = ttl_record(item, 1) | {"userIdentity": None}
    assert expired_item(by_the_application) is None
    assert expired_item(ttl_record(item, 1) | {"eventName": "MODIFY"}) is None
    registry = {"pk": "P#2026-10", "sk": "A#acme"}  # no fact partition
    assert expired_item(ttl_record(registry, 1)) is None


def test_items_expired_after_their_close_archived_them_stay_gone(env: Env) -> None:
    g = guard(env)
    put_plan(env, "acme")
    send(env, "acme", 3, 4)
    run(month_close(env), "2026-10")
    records = ttl_delete(env, fact_items(env, "acme"))
    outcome = g.handle(records)
    assert outcome.counts == {ARCHIVED: 4, RESTORED: 0, LATE: 0}
    assert fact_items(env, "acme") == []


def test_items_expired_before_their_close_are_put_back_and_billed_exactly(env: Env) -> None:
    """A close that did not run in time: its period's items reach their TTL unarchived.
    The guard puts them back, and the close, when it runs, bills what it would have
    (``globex`` has the same traffic and keeps its items)."""
    g = guard(env)
    for account in ("acme", "globex"):
        put_plan(env, account)
        send(env, account, 3, 4)
        send(env, account, 30, 2)
    kept = {(i["pk"], i["sk"]): i for i in fact_items(env, "acme")}
    outcome = g.handle(ttl_delete(env, kept.values()))
    assert outcome.counts == {ARCHIVED: 0, RESTORED: 6, LATE: 0}
    back = {(i["pk"], i["sk"]): i for i in fact_items(env, "acme")}
    assert back.keys() == kept.keys()
    for key, item in back.items():  # the same item, hot for the margin from now
        assert item["expires_at"] == int(NOW) + MARGIN_DAYS * 86_400
        assert {**item, "expires_at": kept[key]["expires_at"]} == kept[key]
    # a retry of the batch (the stream redelivers it) changes nothing
    assert g.handle(ttl_delete(env, [])).failed == []
    late_close = month_close(env, Clock(datetime(2026, 11, 21, tzinfo=UTC)))
    assert run(late_close, "2026-10")["failed"] == []
    lines, total = billed(env, "2026-10", "acme")
    assert (lines, total) == billed(env, "2026-10", "globex")
    assert lines
    assert Decimal(total) > 0
    # and once archived, their next expiry is final
    assert g.handle(ttl_delete(env, fact_items(env, "acme"))).counts[ARCHIVED] == 6


def test_an_item_the_close_missed_while_it_was_deleted_is_billed_by_the_next_close(
    env: Env,
) -> None:
    """The close read the shard in the moment between the deletion and the put back: the
    item is not in its part, the period is frozen, so it is stored as a late change."""
    g = guard(env)
    put_plan(env, "acme")
    send(env, "acme", 3, 4)
    send(env, "acme", 4, 1, month=11)
    missed = fact_items(env, "acme")[:1]
    assert str(missed[0]["pk"]).startswith("F#acme#2026-10#")
    records = ttl_delete(env, missed)
    run(month_close(env), "2026-10")  # reads 3 facts
    assert g.handle(records).counts == {ARCHIVED: 0, RESTORED: 0, LATE: 1}
    (stored,) = [i for i in fact_items(env, "acme") if i["sk"] == missed[0]["sk"]]
    assert stored["adj"] == "2026-11"
    november = month_close(env, Clock(datetime(2027, 1, 5, 6, tzinfo=UTC)))
    assert run(november, "2026-11")["failed"] == []
    assert adjustment_quantities(env, "2026-11", "acme") == {"2026-10": Decimal(1)}


def test_a_failing_record_is_retried_from_itself(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    g = guard(env)
    put_plan(env, "acme")
    send(env, "acme", 3, 3)
    records = ttl_delete(env, fact_items(env, "acme"))
    calls = {"n": 0}
    put_late = env.store.put_late

    def flaky(item: dict[str, Any]) -> bool:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("throttled")
        return put_late(item)

    monkeypatch.setattr(env.store, "put_late", flaky)
    outcome = g.handle(records)
    assert outcome.failed == [records[1]["dynamodb"]["SequenceNumber"]]
    assert outcome.counts[RESTORED] == 1
    again = g.handle(records[1:])  # the stream's retry from the failed record
    assert again.failed == []
    assert again.counts[RESTORED] == 2
    assert len(fact_items(env, "acme")) == 3
