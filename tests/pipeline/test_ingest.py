"""Ingest through the real handler logic on moto: exactly once, any order, nothing lost."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from billing.domain.engine import usage_of_events
from billing.domain.events import parse_event_obj
from billing.domain.facts import HmacPseudonymizer
from billing.domain.periods import Period
from billing.queries import current_usage
from tests.factories import at, raw
from tests.pipeline.conftest import KEY, Env, dumps, sqs_event
from tests.pipeline.streams import month

PERIOD = Period(2026, 10)
ACCOUNTS = ("acme", "globex")


def reference(events: list[dict[str, Any]], account: str) -> dict[str, Any]:
    mine = [parse_event_obj(e) for e in events if e["subject"] == account]
    usage = usage_of_events(mine, PERIOD, pseudonymize=HmacPseudonymizer(KEY))
    return usage.resolved().to_json()


def stored(env: Env, account: str) -> dict[str, Any]:
    return current_usage(env.store, account, str(PERIOD)).to_json()


def deliver(env: Env, bodies: list[str], batch: int = 10, rng: random.Random | None = None) -> None:
    """Deliver like SQS: in batches; failed records are redelivered until they succeed."""
    pending = list(bodies)
    for _ in range(20):
        if not pending:
            return
        ingestor = env.ingestor()
        retry: list[str] = []
        for start in range(0, len(pending), batch):
            chunk = pending[start : start + batch]
            ids = [f"m{start + i}" for i in range(len(chunk))]
            try:
                resp = ingestor.handle(sqs_event(chunk, ids))
            except Exception:  # the invocation crashed: SQS redelivers the whole batch
                retry.extend(chunk)
                continue
            failed = {f["itemIdentifier"] for f in resp["batchItemFailures"]}
            retry.extend(body for body, mid in zip(chunk, ids, strict=True) if mid in failed)
        pending = retry
        if rng:
            rng.shuffle(pending)
    raise AssertionError(f"{len(pending)} records never succeeded")


def test_clean_stream_gives_the_reference_usage(env: Env) -> None:
    events = month()
    deliver(env, dumps(events))
    for account in ACCOUNTS:
        expected = reference(events, account)
        assert expected["lines"], "the stream must produce charges"
        assert stored(env, account) == expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duplicates_and_shuffled_order_change_nothing(env: Env, seed: int) -> None:
    rng = random.Random(seed)
    events = month()
    bodies = [b for b in dumps(events) for _ in range(rng.randint(1, 3))]
    rng.shuffle(bodies)
    deliver(env, bodies, batch=rng.randint(1, 10), rng=rng)
    for account in ACCOUNTS:
        assert stored(env, account) == reference(events, account)


class Crash(Exception):
    """The Lambda container died right after a write."""


class CrashingClient:
    """Wraps the DynamoDB client: crashes right after the n-th write call."""

    def __init__(self, inner: Any, crash_after: int) -> None:
        self._inner = inner
        self.crash_after = crash_after
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in {"batch_write_item", "put_item"}:
            return attr

        def write(**kw: Any) -> Any:
            result = attr(**kw)
            self.writes += 1
            if self.writes == self.crash_after:
                raise Crash(f"crash after write {self.writes}")
            return result

        return write


def count_writes(env: Env, bodies: list[str]) -> int:
    ingestor = env.ingestor()
    probe = CrashingClient(ingestor.store.client, crash_after=-1)
    ingestor.store.client = probe
    for start in range(0, len(bodies), 10):
        ingestor.handle(sqs_event(bodies[start : start + 10]))
    return probe.writes


def test_a_crash_after_any_single_write_loses_and_doubles_nothing(env: Env) -> None:
    events = month()
    bodies = dumps(events)
    total_writes = count_writes(env, bodies)
    assert total_writes >= 10
    for crash_after in range(1, total_writes + 1):
        env.table.delete()
        from tests.pipeline.conftest import create_table

        env.table = create_table()
        env.store.table = env.table
        ingestor = env.ingestor()
        ingestor.store.client = CrashingClient(ingestor.store.client, crash_after)
        crashed: list[str] = []
        for start in range(0, len(bodies), 10):
            chunk = bodies[start : start + 10]
            try:
                ingestor.handle(sqs_event(chunk))
            except Crash:
                crashed.extend(chunk)  # redelivered after the visibility timeout
                ingestor = env.ingestor()  # a new container
        assert crashed, f"no crash injected at write {crash_after}"
        deliver(env, crashed)
        for account in ACCOUNTS:
            assert stored(env, account) == reference(events, account), f"crash at {crash_after}"


class ThrottlingClient:
    """Throttles: the first calls raise, later ones leave half the items unprocessed."""

    def __init__(self, inner: Any, rng: random.Random, persistent: bool = False) -> None:
        self._inner = inner
        self.rng = rng
        self.calls = 0
        self.persistent = persistent

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != "batch_write_item":
            return attr

        def write(RequestItems: dict[str, list[Any]]) -> Any:
            self.calls += 1
            if self.persistent or self.calls % 3 == 1:
                error = {
                    "Error": {
                        "Code": "ProvisionedThroughputExceededException",
                        "Message": "slow down",
                    }
                }
                raise ClientError(error, "BatchWriteItem")
            ((table, requests),) = RequestItems.items()
            keep = [r for r in requests if self.rng.random() < 0.5]
            left = [r for r in requests if r not in keep]
            if keep:
                attr(RequestItems={table: keep})
            return {"UnprocessedItems": {table: left} if left else {}}

        return write


def test_throttling_is_retried_and_changes_nothing(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("billing.adapters.store.time.sleep", lambda _: None)
    events = month()
    rng = random.Random(5)
    ingestor = env.ingestor()
    ingestor.store.client = ThrottlingClient(ingestor.store.client, rng)
    pending = dumps(events)
    for _ in range(10):  # SQS redelivers what the handler reported as failed
        retry = []
        for start in range(0, len(pending), 10):
            chunk = pending[start : start + 10]
            ids = [f"m{i}" for i in range(len(chunk))]
            failed = {
                f["itemIdentifier"]
                for f in ingestor.handle(sqs_event(chunk, ids))["batchItemFailures"]
            }
            retry.extend(b for b, m in zip(chunk, ids, strict=True) if m in failed)
        pending = retry
    assert not pending
    assert ingestor.store.client.calls > 30  # throttling really happened
    for account in ACCOUNTS:
        assert stored(env, account) == reference(events, account)


def test_persistent_throttling_fails_only_the_records_not_written(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("billing.adapters.store.time.sleep", lambda _: None)
    events = month()[:10]
    ingestor = env.ingestor()
    ingestor.store.client = ThrottlingClient(
        ingestor.store.client, random.Random(1), persistent=True
    )
    ids = [f"m{i}" for i in range(10)]
    resp = ingestor.handle(sqs_event(dumps(events), ids))
    assert sorted(f["itemIdentifier"] for f in resp["batchItemFailures"]) == sorted(ids)
    deliver(env, dumps(events))  # redelivered once the table keeps up
    assert stored(env, "acme") == reference(events, "acme")


BAD = {
    "not json": ("{not json", "(body)"),
    "missing field": (
        json.dumps(
            {
                **raw(
                    "message.outbound",
                    at(2),
                    message_id="x",
                    channel="sms",
                    status="submitted",
                    end_user="+1",
                )
            }
            | {"subject": None}
        ),
        "subject",
    ),
    "no time zone": (
        json.dumps(raw("sim.activated", at(2), sim_id="s") | {"time": "2026-10-02T00:00:00"}),
        "time",
    ),
    "unknown type": (
        json.dumps(raw("sim.activated", at(2), sim_id="s") | {"type": "cpaas.usage.fax.v1"}),
        "type",
    ),
    "negative duration": (
        json.dumps(
            raw(
                "call.leg",
                at(2),
                call_id="c",
                leg_id="l",
                service="ivr",
                direction="inbound",
                disposition="answered",
                answered_seconds="-5",
                end_user="+1",
            )
        ),
        "data.answered_seconds",
    ),
    "unknown field": (
        json.dumps(raw("sim.activated", at(2), sim_id="s", colour="red")),
        "data.colour",
    ),
    "oversized": (json.dumps(raw("sim.activated", at(2), sim_id="s" * 70_000)), "(body)"),
}


def test_bad_events_are_kept_with_their_reason_and_not_retried(env: Env) -> None:
    good = dumps(month()[:5])
    bodies = good + [body for body, _ in BAD.values()]
    resp = env.ingestor().handle(sqs_event(bodies))
    assert resp["batchItemFailures"] == []
    kept = {doc["body"]: doc for doc in (env.rejects.get(k) for k in env.rejects.list_keys())}
    assert len(kept) == len(BAD)
    for name, (body, field) in BAD.items():
        doc = kept[body]
        assert doc["reason"] in {"invalid", "oversized"}, name
        assert any(e["field"] == field for e in doc["errors"]), (name, doc["errors"])
    # a redelivered bad event is stored once
    env.ingestor().handle(sqs_event([body for body, _ in BAD.values()]))
    assert len(list(env.rejects.list_keys())) == len(BAD)


def test_a_record_that_fails_unexpectedly_is_redelivered_alone(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = month()[:4]
    poison = events[2]["id"]
    original: Callable[..., Any] = __import__("billing.ingest", fromlist=["to_fact"]).to_fact

    def flaky(event: Any, pseudonymize: Any) -> Any:
        if event.id == poison:
            raise RuntimeError("boom")
        return original(event, pseudonymize)

    monkeypatch.setattr("billing.ingest.to_fact", flaky)
    resp = env.ingestor().handle(sqs_event(dumps(events), ["a", "b", "c", "d"]))
    assert resp["batchItemFailures"] == [{"itemIdentifier": "c"}]


def test_eventbridge_envelopes_are_accepted(env: Env) -> None:
    events = month()[:3]
    wrapped = [
        json.dumps({"version": "0", "detail-type": "cpaas.usage", "source": "p", "detail": e})
        for e in events
    ]
    env.ingestor().handle(sqs_event(wrapped))
    assert stored(env, "acme") == reference(events, "acme")


def test_end_users_are_stored_only_as_keyed_hashes(env: Env) -> None:
    events = month()
    deliver(env, dumps(events))
    dump = json.dumps(env.table.scan()["Items"], default=str)
    for e in events:
        for field in ("end_user", "person_id"):
            if field in e["data"]:
                assert e["data"][field] not in dump


def test_late_event_is_stored_once_as_an_adjustment_of_the_next_period(env: Env) -> None:
    events = month()
    deliver(env, dumps(events))
    before = stored(env, "acme")
    env.store.freeze("2026-10", "2026-11-01T06:00:00+00:00")
    late = raw(
        "message.outbound",
        at(20),
        "acme",
        message_id="late",
        channel="sms",
        status="submitted",
        end_user="+3399",
        country="FR",
    )
    resend = events[0]  # a duplicate of an on-time event, redelivered after the freeze
    deliver(env, dumps([late, resend, late]))
    items = env.table.scan()["Items"]
    tagged = [i for i in items if i.get("adj")]
    assert len(tagged) == 1
    assert tagged[0]["adj"] == "2026-11"
    markers = [i for i in items if i["sk"].startswith("ADJ#")]
    assert [(m["pk"], m["sk"]) for m in markers] == [("P#2026-11", "ADJ#acme#2026-10")]
    after = stored(env, "acme")  # current usage includes the late event
    assert reference([*events, late], "acme") == after != before


def test_without_a_cache_the_frozen_set_is_read_once_per_batch(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``FROZEN_CACHE_SECONDS=0`` (the local runtime): a batch reads the frozen periods
    once, not once per record; a batch that starts after a freeze sees it (its fact is
    stored late, for the adjusting close)."""
    monkeypatch.setenv("FROZEN_CACHE_SECONDS", "0")
    ingestor = env.ingestor()
    reads: list[int] = []
    frozen_periods = ingestor.store.frozen_periods

    def counted() -> frozenset[str]:
        reads.append(1)
        return frozen_periods()

    monkeypatch.setattr(ingestor.store, "frozen_periods", counted)
    bodies = dumps(
        [
            raw(
                "message.outbound",
                at(3, h),
                message_id=f"m{h}",
                channel="sms",
                status="submitted",
                end_user="+33600000001",
            )
            for h in range(10)
        ]
    )
    ingestor.handle(sqs_event(bodies[:5]))
    assert len(reads) == 1
    env.store.freeze("2026-10", "2026-11-01T06:00:00")
    ingestor.handle(sqs_event(bodies[5:]))
    assert len(reads) == 2
    late = [i for i in env.table.scan()["Items"] if str(i["pk"]).startswith("F#") and "adj" in i]
    assert len(late) == 5


def test_a_late_facts_adjustment_markers_are_written_before_it(env: Env) -> None:
    """The live view refreshes when the late fact is written and starts from the prior
    periods its ``ADJ#`` markers name: they must exist by then."""
    deliver(env, dumps(month()[:2]))
    env.store.freeze("2026-10", "2026-11-01T06:00:00+00:00")
    ingestor = env.ingestor()
    writes: list[str] = []
    put_items, put_late = ingestor.store.put_items, ingestor.store.put_late

    def items(batch: Any, *args: Any, **kwargs: Any) -> None:
        writes.extend(str(i["sk"]).split("#")[0] for i in batch)
        put_items(batch, *args, **kwargs)

    def late(item: dict[str, Any]) -> bool:
        writes.append("late fact")
        return put_late(item)

    ingestor.store.put_items = items  # type: ignore[method-assign]
    ingestor.store.put_late = late  # type: ignore[method-assign]
    late_event = raw(
        "message.outbound",
        at(20),
        "acme",
        message_id="late-order",
        channel="sms",
        status="submitted",
        end_user="+3398",
        country="FR",
    )
    ingestor.handle(sqs_event(dumps([late_event])))
    assert "late fact" in writes
    assert writes.index("ADJ") < writes.index("late fact"), writes
