"""A reused ``source``+``id`` with a different content is a conflict: no version of that id
is billed, every version is kept in the rejected store, whatever the arrival order, the
shard or the month. An identical redelivery stays harmless."""

from __future__ import annotations

import json
from contextlib import suppress
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.adapters.invoices import DocumentStore
from billing.adapters.store import UsageStore
from billing.close import MonthClose
from billing.domain.plan import load_plan
from billing.queries import current_usage
from tests.factories import at, raw
from tests.pipeline.conftest import SHARDS, Env, create_table, dumps, sqs_event
from tests.pipeline.test_ingest import deliver

PERIOD = "2026-10"


def sms(event_id: str, parts: int = 1, user: str = "+33600000001", **kw: Any) -> dict[str, Any]:
    when = kw.pop("when", at(5, 10))
    return raw(
        "message.outbound",
        when,
        "acme",
        event_id=event_id,
        message_id=kw.pop("message_id", f"msg-{event_id}"),
        channel="sms",
        status="submitted",
        end_user=user,
        parts=parts,
        country="FR",
        **kw,
    )


def parts_billed(env: Env, period: str = PERIOD) -> int:
    usage = current_usage(env.store, "acme", period).to_json()
    return sum(int(line["quantity"]) for line in usage["lines"] if "sms" in json.dumps(line))


def conflicts(env: Env) -> list[dict[str, Any]]:
    docs = [env.rejects.get(k) for k in env.rejects.list_keys()]
    return [d for d in docs if d["reason"] == "id_conflict"]


BASE = [sms("other-1", 2, "+33600000009"), sms("other-2", 1, "+33600000008")]


@pytest.mark.parametrize("order", [(1, 5), (5, 1)])
def test_reused_id_bills_no_version_in_either_order(env: Env, order: tuple[int, int]) -> None:
    deliver(env, dumps(BASE))
    base = parts_billed(env)
    assert base == 3
    first, second = (sms("dup", n) for n in order)
    deliver(env, dumps([first]))
    assert parts_billed(env) == base + order[0]
    deliver(env, dumps([second]))
    assert parts_billed(env) == base
    kept = conflicts(env)
    assert len(kept) == 1
    assert json.loads(kept[0]["body"])["data"]["parts"] == order[1]
    stored_first = kept[0]["errors"][0]["first_version"]
    assert int(stored_first["a"].get("parts", 1)) == order[0]
    assert "+3360" not in json.dumps(stored_first)  # pseudonymized
    # every later delivery of either version changes nothing
    deliver(env, dumps([first, second, first]))
    assert parts_billed(env) == base


def test_reused_id_across_shards_bills_nothing(env: Env) -> None:
    events = [sms("dup", 1, f"+336000001{n:02d}") for n in range(8)]
    shards = {json.dumps(e["data"]["end_user"]) for e in events}
    assert len(shards) == 8
    deliver(env, dumps(BASE + events), batch=3)
    assert parts_billed(env) == 3


def test_reused_id_across_months_bills_neither_month(env: Env) -> None:
    october = sms("dup", 1, when=at(20, 10))
    november = sms("dup", 1, when=at(3, 10, month=11))
    deliver(env, dumps([october]))
    assert parts_billed(env) == 1
    deliver(env, dumps([november]))
    assert parts_billed(env) == 0
    assert parts_billed(env, "2026-11") == 0
    assert len(conflicts(env)) == 1


def test_reused_id_within_one_batch(env: Env) -> None:
    resp = env.ingestor().handle(sqs_event(dumps([sms("dup", 1), sms("dup", 5), *BASE])))
    assert resp["batchItemFailures"] == []
    assert parts_billed(env) == 3
    assert len(conflicts(env)) == 1


def test_identical_redelivery_is_harmless(env: Env) -> None:
    event = sms("same", 4)
    deliver(env, dumps([event, event]))
    deliver(env, dumps([event]))
    assert parts_billed(env) == 4
    assert conflicts(env) == []


def test_crash_between_claim_and_fact_write_stores_on_redelivery(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = sms("c1", 3)
    ingestor = env.ingestor()

    def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("container killed")

    monkeypatch.setattr(ingestor.store, "put_items", crash)
    with pytest.raises(RuntimeError):
        ingestor.handle(sqs_event(dumps([event])))
    monkeypatch.undo()
    deliver(env, dumps([event]))
    assert parts_billed(env) == 3


def test_crash_between_conflict_and_marker_writes_marker_on_redelivery(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliver(env, dumps([sms("c2", 1)]))
    ingestor = env.ingestor()

    def crash(*_: Any, **__: Any) -> bool:
        raise RuntimeError("container killed")

    monkeypatch.setattr(ingestor.store, "put_late", crash)
    resp = ingestor.handle(sqs_event(dumps([sms("c2", 5)]), ["m1"]))
    assert resp["batchItemFailures"] == [{"itemIdentifier": "m1"}]
    monkeypatch.undo()
    deliver(env, dumps([sms("c2", 5)]))
    assert parts_billed(env) == 0
    markers = [i for i in env.table.scan()["Items"] if i["sk"].startswith("X#")]
    assert len(markers) == 1


def test_conflict_on_an_invoiced_fact_is_a_late_removal(env: Env) -> None:
    deliver(env, dumps([*BASE, sms("inv", 2)]))
    env.store.freeze(PERIOD, "2026-11-01T06:00:00+00:00")
    deliver(env, dumps([sms("inv", 7)]))
    items = env.table.scan()["Items"]
    (marker,) = [i for i in items if i["sk"].startswith("X#")]
    assert marker["adj"] == "2026-11"
    adjs = [(i["pk"], i["sk"]) for i in items if i["sk"].startswith("ADJ#")]
    assert adjs == [("P#2026-11", "ADJ#acme#2026-10")]
    assert parts_billed(env) == 3  # everything stored: the removed fact is gone


EVENTS = [
    *BASE,
    sms("r1", 1),
    sms("r1", 5),
    sms("r2", 2, "+33600000077"),
    sms("r2", 2, "+33600000078"),
    sms("r3", 3),
]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.permutations(list(range(len(EVENTS)))),
    again=st.lists(st.integers(0, len(EVENTS) - 1), max_size=4),
    batch=st.integers(1, 4),
)
def test_billed_state_is_the_same_for_every_arrival_order(
    env: Env, order: list[int], again: list[int], batch: int
) -> None:
    env.table.delete()
    env.table = create_table()
    env.store = UsageStore(env.table, SHARDS)
    deliver(env, dumps([EVENTS[i] for i in [*order, *again]]), batch=batch)
    assert parts_billed(env) == 3 + 3  # BASE and r3; neither version of r1 nor r2


def run_close(env: Env, period: str) -> dict[str, Any]:
    with suppress(ClientError):  # a re-run of the close
        boto3.client("events").create_event_bus(Name=f"bus-{period}")
    plan = load_plan("examples/plans/retail-eu.yaml").model_copy(update={"account": "acme"})
    store = UsageStore(env.table, SHARDS)
    store.put_plan("acme", plan.effective_from, plan.model_dump(mode="json"))
    mc = MonthClose(
        store, DocumentStore(env.s3, "invoices"), boto3.client("events"), f"bus-{period}", 0
    )
    mc.freeze(period, settle=0, force=True)
    for unit in mc.plan_account(period, "acme").units:
        mc.compute_unit(unit)
    mc.rate_account(period, "acme")
    mc.finish(period)
    (result,) = [r for r in store.results(period) if r["account"] == "acme"]
    body = mc.documents.read(result["keys"]["json"])
    assert body is not None
    return dict(json.loads(body))


def test_the_next_close_adjusts_away_an_invoiced_version(env: Env) -> None:
    deliver(env, dumps([*BASE, sms("inv", 2)]))
    october = run_close(env, PERIOD)
    deliver(env, dumps([sms("inv", 7), sms("nov", 1, when=at(4, 10, month=11))]))
    november = run_close(env, "2026-11")
    adjustments = november["adjustment_lines"]
    assert adjustments, november
    assert {a["period"] for a in adjustments} == {PERIOD}
    assert all(Decimal(str(a["amount"])) < 0 for a in adjustments), adjustments
    assert october["lines"]
    # a re-run of October's close still sees what it invoiced
    assert run_close(env, PERIOD) == october
