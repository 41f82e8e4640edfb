"""A reused ``source``+``id`` with a different content is a conflict: no version of that id
is billed, whatever the arrival order, the shard, the account or the month.

Both versions are stored (a fact's sort key holds its content digest). Two versions one
read holds (one partition and its look-back tail) are never billed; versions in places no
read holds together are found by the close's id audit, which marks each one, and the next
close credits what was billed. An identical redelivery stays harmless."""

from __future__ import annotations

import hashlib
import json
from contextlib import suppress
from dataclasses import replace
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.adapters.ids import (
    ID_BUCKETS,
    ROW_GZIP_BYTES,
    ROWS_PER_PASS,
    IdRow,
    audit_tasks,
    conflicts,
)
from billing.adapters.invoices import DocumentStore
from billing.adapters.store import UsageStore, _to_dynamo, fact_item, fact_of_item
from billing.close import MonthClose
from billing.domain.facts import Fact
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
        kw.pop("account", "acme"),
        event_id=event_id,
        message_id=kw.pop("message_id", f"msg-{event_id}"),
        channel="sms",
        status="submitted",
        end_user=user,
        parts=parts,
        country="FR",
        **kw,
    )


def parts_billed(env: Env, period: str = PERIOD, account: str = "acme") -> int:
    usage = current_usage(env.store, account, period).to_json()
    return sum(int(line["quantity"]) for line in usage["lines"] if "sms" in json.dumps(line))


def stored(env: Env, prefix: str) -> list[dict[str, Any]]:
    return [i for i in env.table.scan()["Items"] if str(i["sk"]).startswith(prefix)]


def versions(env: Env, event_id: str) -> list[dict[str, Any]]:
    """The stored fact items sent under ``event_id``."""
    items = env.table.scan()["Items"]
    return [i for i in items if f"msg-{event_id}" in json.dumps(i.get("a"), default=str)]


BASE = [sms("other-1", 2, "+33600000009"), sms("other-2", 1, "+33600000008")]


@pytest.mark.parametrize("order", [(1, 5), (5, 1)])
def test_reused_id_in_one_partition_bills_no_version_in_either_order(
    env: Env, order: tuple[int, int]
) -> None:
    deliver(env, dumps(BASE))
    base = parts_billed(env)
    assert base == 3
    first, second = (sms("dup", n) for n in order)
    deliver(env, dumps([first]))
    assert parts_billed(env) == base + order[0]
    deliver(env, dumps([second]))
    assert parts_billed(env) == base
    assert len(versions(env, "dup")) == 2  # both kept, neither billed
    # every later delivery of either version changes nothing
    deliver(env, dumps([first, second, first]))
    assert parts_billed(env) == base
    assert len(versions(env, "dup")) == 2


def test_reused_id_within_one_batch(env: Env) -> None:
    resp = env.ingestor().handle(sqs_event(dumps([sms("dup", 1), sms("dup", 5), *BASE])))
    assert resp["batchItemFailures"] == []
    assert parts_billed(env) == 3


def test_identical_redelivery_is_harmless(env: Env) -> None:
    event = sms("same", 4)
    deliver(env, dumps([event, event]))
    deliver(env, dumps([event]))
    assert parts_billed(env) == 4
    assert len(versions(env, "same")) == 1


def test_a_crash_before_the_fact_write_stores_it_on_redelivery(
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


def test_a_version_sent_after_the_freeze_is_a_late_removal(env: Env) -> None:
    deliver(env, dumps([*BASE, sms("inv", 2)]))
    env.store.freeze(PERIOD, "2026-11-01T06:00:00+00:00")
    deliver(env, dumps([sms("inv", 7)]))
    late = [v for v in versions(env, "inv") if "adj" in v]
    assert [v["adj"] for v in late] == ["2026-11"]
    adjs = [(i["pk"], i["sk"]) for i in stored(env, "ADJ#")]
    assert adjs == [("P#2026-11", "ADJ#acme#2026-10")]
    assert parts_billed(env) == 3  # everything stored: neither version


# --- the close: its id audit -----------------------------------------------------------


def month_close(env: Env, period: str, accounts: tuple[str, ...] = ("acme",)) -> MonthClose:
    """The close of ``period`` in process, its accounts with the retail plan."""
    with suppress(ClientError):  # a re-run of the close
        boto3.client("events").create_event_bus(Name=f"bus-{period}")
    plan = load_plan("examples/plans/retail-eu.yaml")
    store = UsageStore(env.table, SHARDS)
    for account in accounts:
        mine = plan.model_copy(update={"account": account})
        store.put_plan(account, mine.effective_from, mine.model_dump(mode="json"))
    return MonthClose(
        store, DocumentStore(env.s3, "invoices"), boto3.client("events"), f"bus-{period}", 0
    )


def run_close(env: Env, period: str, accounts: tuple[str, ...] = ("acme",)) -> dict[str, Any]:
    """The state machine's tasks in process, the id audit included; acme's document."""
    mc = month_close(env, period, accounts)
    store = mc.store
    frozen = mc.freeze(period, settle=0, force=True)
    for account in accounts:
        mc.close_account(period, account)
    assert [mc.audit_ids(period, b).bucket for b in frozen.buckets] == list(frozen.buckets)
    mc.finish(period)
    (result,) = [r for r in store.results(period) if r["account"] == "acme"]
    body = mc.documents.read(result["keys"]["json"])
    assert body is not None
    return dict(json.loads(body))


def manifest(env: Env, period: str) -> dict[str, Any]:
    body = DocumentStore(env.s3, "invoices").read(f"invoices/{period}/manifest.json")
    assert body is not None
    return dict(json.loads(body))


def credited(document: dict[str, Any], period: str) -> Decimal:
    lines = [a for a in document["adjustment_lines"] if a["period"] == period]
    return sum((Decimal(str(a["amount"])) for a in lines), Decimal(0))


def test_the_next_close_adjusts_away_an_invoiced_version(env: Env) -> None:
    deliver(env, dumps([*BASE, sms("inv", 2)]))
    october = run_close(env, PERIOD)
    deliver(env, dumps([sms("inv", 7), sms("nov", 1, when=at(4, 10, month=11))]))
    november = run_close(env, "2026-11")
    # both versions in one partition: every read voids them, the audit marks nothing
    assert stored(env, "X#") == []
    assert len(manifest(env, "2026-11")["id_conflicts"]) == 1
    adjustments = november["adjustment_lines"]
    assert adjustments, november
    assert {a["period"] for a in adjustments} == {PERIOD}
    assert all(Decimal(str(a["amount"])) < 0 for a in adjustments), adjustments
    assert october["lines"]
    # a re-run of October's close still sees what it invoiced
    assert run_close(env, PERIOD) == october


def test_reused_id_across_shards_is_billed_once_then_credited_by_the_next_close(
    env: Env,
) -> None:
    events = [sms("dup", 1, f"+336000001{n:02d}") for n in range(8)]
    deliver(env, dumps(BASE + events), batch=3)
    stored_in = [str(v["pk"]) for v in versions(env, "dup")]
    shards = set(stored_in)
    alone = sum(1 for pk in shards if stored_in.count(pk) == 1)
    assert alone > 1  # versions no single read holds together
    # before the close's audit: a version alone in its shard is billed there
    assert parts_billed(env) == 3 + alone
    october = run_close(env, PERIOD)
    assert october["lines"]
    markers = stored(env, "X#")
    assert {str(m["pk"]) for m in markers} == shards  # next to every version
    assert {m["adj"] for m in markers} == {"2026-11"}  # October is invoiced: a late change
    assert ("P#2026-11", "ADJ#acme#2026-10") in {(i["pk"], i["sk"]) for i in stored(env, "ADJ#")}
    assert parts_billed(env) == 3  # everything stored: no version
    (reused,) = manifest(env, PERIOD)["id_conflicts"]
    assert len(reused["versions"]) == 8
    assert {(v["account"], v["period"]) for v in reused["versions"]} == {("acme", PERIOD)}
    deliver(env, dumps([sms("nov", 1, when=at(4, 10, month=11))]))
    november = run_close(env, "2026-11")
    assert credited(november, PERIOD) < 0
    assert run_close(env, PERIOD) == october  # October's re-run: what it invoiced


def test_one_account_finalized_alone_has_its_reused_ids_marked(env: Env) -> None:
    # `billing invoices finalize --account`: the id audit runs as after the state
    # machine's accounts, not only at a later close
    events = [sms("dup", 1, f"+336000001{n:02d}") for n in range(8)]
    deliver(env, dumps(BASE + events), batch=3)
    shards = {str(v["pk"]) for v in versions(env, "dup")}
    assert len(shards) > 1
    mc = month_close(env, PERIOD)
    mc.freeze(PERIOD, settle=0, force=True)
    mc.finalize_account(PERIOD, "acme")
    assert {str(m["pk"]) for m in stored(env, "X#")} == shards
    (reused,) = manifest(env, PERIOD)["id_conflicts"]
    assert len(reused["versions"]) == 8
    assert mc.store.result(PERIOD, "acme")["status"] == "issued"


def test_reused_id_across_months_is_credited_for_both_months(env: Env) -> None:
    october = sms("dup", 1, when=at(20, 10))
    november = sms("dup", 1, "+33600000077", when=at(3, 10, month=11))
    deliver(env, dumps([*BASE, october]))
    run_close(env, PERIOD)
    deliver(env, dumps([november]))
    run_close(env, "2026-11")
    # both invoiced before November's audit found the reuse: December credits both
    adjs = {(i["pk"], i["sk"]) for i in stored(env, "ADJ#")}
    assert {("P#2026-12", "ADJ#acme#2026-10"), ("P#2026-12", "ADJ#acme#2026-11")} <= adjs
    assert parts_billed(env) == 3
    assert parts_billed(env, "2026-11") == 0
    assert "id_conflicts" not in manifest(env, PERIOD)
    (reused,) = manifest(env, "2026-11")["id_conflicts"]
    assert sorted(v["period"] for v in reused["versions"]) == [PERIOD, "2026-11"]
    december = run_close(env, "2026-12")
    assert credited(december, PERIOD) < 0
    assert credited(december, "2026-11") < 0


@pytest.mark.parametrize("shared_rows", [10_000, 2, 0], ids=["shared", "mixed", "per-bucket"])
def test_the_audit_reads_shared_and_per_bucket_id_files_alike(
    env: Env, monkeypatch: pytest.MonkeyPatch, shared_rows: int
) -> None:
    """A small unit writes its ids in one shared file, a larger one a file per id bucket;
    every bucket's audit reads the shared files for its own ids: the same findings."""
    monkeypatch.setattr("billing.adapters.ids.SHARED_ROWS", shared_rows)
    deliver(env, dumps([*BASE, sms("dup", 1), sms("dup", 1, account="globex"), sms("x", 4)]))
    run_close(env, PERIOD, ("acme", "globex"))
    keys = DocumentStore(env.s3, "invoices").list_keys(f"ids/{PERIOD}/")
    shared = {k.split("/")[3] for k in keys if f"ids/{PERIOD}/all/" in k}
    assert shared == {"10000": {"acme", "globex"}, "2": {"globex"}, "0": set()}[str(shared_rows)]
    (reused,) = manifest(env, PERIOD)["id_conflicts"]
    assert {v["account"] for v in reused["versions"]} == {"acme", "globex"}
    assert parts_billed(env) == 3 + 4


def test_one_content_sent_for_two_accounts_is_marked_in_both(env: Env) -> None:
    deliver(env, dumps([*BASE, sms("dup", 1), sms("dup", 1, account="globex")]))
    assert parts_billed(env, account="globex") == 1
    run_close(env, PERIOD, ("acme", "globex"))
    accounts = {str(m["pk"]).split("#")[1] for m in stored(env, "X#")}
    assert accounts == {"acme", "globex"}
    assert parts_billed(env) == 3
    assert parts_billed(env, account="globex") == 0


def test_an_audit_rerun_or_a_crash_in_it_changes_nothing(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [sms("dup", 1, f"+336000001{n:02d}") for n in range(4)]
    deliver(env, dumps(BASE + events))
    run_close(env, PERIOD)
    first = sorted((m["pk"], m["sk"], m.get("adj")) for m in stored(env, "X#"))
    assert len(first) > 1
    for marker in stored(env, "X#")[1:]:  # a crash after the first marker
        env.table.delete_item(Key={"pk": marker["pk"], "sk": marker["sk"]})
    mc = MonthClose(
        UsageStore(env.table, SHARDS),
        DocumentStore(env.s3, "invoices"),
        boto3.client("events"),
        "bus",
        0,
    )
    audits = mc.audit_all(PERIOD)
    assert sum(a.conflicts for a in audits) == 1
    assert sum(a.marked for a in audits) == len(first) - 1
    assert sorted((m["pk"], m["sk"], m.get("adj")) for m in stored(env, "X#")) == first
    assert sum(a.marked for a in mc.audit_all(PERIOD)) == 0


def test_an_audit_too_large_for_one_pass_finds_the_same_in_several(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [sms(f"dup{n}", 1, f"+336000001{n:02d}") for n in range(6)]
    events += [sms(f"dup{n}", 2, f"+336000002{n:02d}") for n in range(6)]
    deliver(env, dumps(BASE + events))
    run_close(env, PERIOD)
    reused = manifest(env, PERIOD)["id_conflicts"]
    assert len(reused) == 6
    mc = MonthClose(
        UsageStore(env.table, SHARDS),
        DocumentStore(env.s3, "invoices"),
        boto3.client("events"),
        "bus",
        0,
    )
    monkeypatch.setattr("billing.adapters.ids.ROWS_PER_PASS", 2)
    audits = mc.audit_all(PERIOD)
    assert max(a.passes for a in audits) > 1
    assert sum(a.conflicts for a in audits) == 6
    assert env.store.id_conflicts(PERIOD) == reused


def test_an_id_read_twice_with_one_content_is_no_conflict() -> None:
    row = IdRow("f1", "AAAAAAAA", "F#acme#2026-10#03", 1)
    other = IdRow("f1", "BBBBBBBB", "F#acme#2026-10#05", 2)
    elsewhere = IdRow("f1", "AAAAAAAA", "F#globex#2026-10#03", 1)
    assert conflicts([row, row, IdRow("f2", "CCCCCCCC", "F#acme#2026-10#03", 3)]) == {}
    assert conflicts([row, other, row]) == {"f1": [row, other]}
    assert conflicts([row, elsewhere]) == {"f1": [row, elsewhere]}


numbers = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
)
values = st.recursive(
    st.one_of(numbers, st.text(max_size=8), st.booleans()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@given(attrs=st.dictionaries(st.text(min_size=1, max_size=6), values, max_size=5))
def test_a_facts_digest_is_the_same_after_a_round_trip_through_the_table(
    attrs: dict[str, Any],
) -> None:
    fact = Fact(id="f1", type="message.outbound", at=1, key="k", attrs=attrs)
    back = fact_of_item(_to_dynamo(fact_item("acme", fact, SHARDS)))
    assert back.digest() == fact.digest()
    # the content read back hashes to the digest its sort key holds
    assert replace(back, stored_digest=None).digest() == fact.digest()
    assert fact_item("acme", back, SHARDS)["sk"] == fact_item("acme", fact, SHARDS)["sk"]


def test_a_fact_read_from_the_table_takes_its_digest_from_its_sort_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fact = Fact(id="a#b", type="message.outbound", at=5, key="k", attrs={"n": 2})
    item = _to_dynamo(fact_item("acme", fact, SHARDS))
    digest = fact.digest()
    hashed: list[bytes] = []
    blake2b = hashlib.blake2b

    def counted(data: bytes, **kwargs: Any) -> Any:
        hashed.append(data)
        return blake2b(data, **kwargs)

    monkeypatch.setattr("billing.domain.facts.hashlib.blake2b", counted)
    back = fact_of_item(item)
    assert (back.id, back.at, back.digest()) == ("a#b", 5, digest)
    assert hashed == []  # read, not hashed again
    assert back == fact  # the digest is no part of the fact's value
    old_form = fact_of_item({**item, "id": "a#b", "at": 5})  # attributes before the sk held them
    assert old_form.digest() == digest
    assert hashed == []
    assert replace(back, stored_digest=None).digest() == digest
    assert len(hashed) == 1


def through_dynamodb(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` as DynamoDB gives it back: typed and untyped again (numbers as Decimal)."""
    serialize, deserialize = TypeSerializer().serialize, TypeDeserializer().deserialize
    return {k: deserialize(serialize(v)) for k, v in item.items()}


# numbers a fact holds (ints, Decimals): equal to themselves after the table's round trip
# (floats are not always: their digest is, above)
exact_values = st.recursive(
    st.one_of(
        st.integers(-(10**12), 10**12),
        st.decimals(-(10**9), 10**9, allow_nan=False, allow_infinity=False, places=4),
        st.text(max_size=8),
        st.booleans(),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
ids = st.text(st.sampled_from("#aZ09-_=") | st.characters(), min_size=1, max_size=24)
facts = st.builds(
    Fact,
    id=ids,
    type=st.sampled_from(["message.outbound", "call.leg", "recording.stored"]),
    at=st.integers(0, 10**13 - 1),
    key=st.text(max_size=12),
    attrs=st.dictionaries(st.text(min_size=1, max_size=6), exact_values, max_size=5),
    entity=st.none() | st.text(max_size=12).map(lambda e: f"rec#{e}"),
)


def test_a_fact_item_does_not_hold_the_id_and_time_its_sort_key_holds() -> None:
    fact = Fact(id="f#1", type="message.outbound", at=1_792_000_000_000, key="k", attrs={"n": 1})
    item = fact_item("acme", fact, SHARDS)
    assert not {"id", "at"} & item.keys()
    assert item["sk"] == f"1792000000000#f#1#{fact.digest()}"
    assert set(item) == {"pk", "sk", "t", "k", "a", "expires_at"}
    assert fact_of_item(item) == fact


@settings(max_examples=300)
@given(fact=facts, adj=st.none() | st.just("2099-12"))
def test_a_fact_is_read_back_from_its_item_after_a_round_trip_through_the_table(
    fact: Fact, adj: str | None
) -> None:
    item = fact_item("acme", fact, SHARDS, adj=adj)
    assert not {"id", "at"} & item.keys()
    stored = through_dynamodb(item)
    back = fact_of_item(stored)
    assert back == fact
    assert back.digest() == fact.digest()
    assert fact_item("acme", back, SHARDS, adj=adj) == stored
    # an item written before the id and time were left out reads the same
    assert fact_of_item({**stored, "id": fact.id, "at": Decimal(fact.at)}) == fact


def test_an_item_written_with_its_id_and_time_still_reads() -> None:
    fact = Fact(id="f1", type="message.outbound", at=1_792_000_000_000, key="k", attrs={"n": 2})
    old = {
        **fact.to_item(),
        "pk": "F#acme#2026-10#03",
        "sk": f"1792000000000#f1#{fact.digest()}",
        "expires_at": Decimal(1),
    }
    assert fact_of_item(through_dynamodb(_to_dynamo(old))) == fact
    with pytest.raises(ValueError, match="not a fact sort key"):
        fact_of_item({"sk": "1792000000000", "t": "x", "k": "k", "a": {}})


EVENTS = [
    *BASE,
    sms("r1", 1),
    sms("r1", 5),
    sms("r2", 2, "+33600000077"),
    sms("r2", 2, "+33600000079"),  # another storage shard than +33600000077
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
    # BASE and r3; neither version of r1 (one partition); r2's two end users are two
    # shards, billed until the close's audit
    assert parts_billed(env) == 3 + 3 + 2 + 2
    assert len(env.table.scan()["Items"]) == len(EVENTS) + 1  # every version, the registry


@settings(max_examples=200, deadline=None)
@given(
    buckets=st.sets(st.integers(min_value=0, max_value=ID_BUCKETS - 1)),
    rows=st.integers(min_value=0, max_value=40 * ROWS_PER_PASS),
)
def test_the_audits_tasks_hold_every_bucket_once_in_as_few_as_one_pass_each_needs(
    buckets: set[int], rows: int
) -> None:
    tasks = audit_tasks(sorted(buckets), rows * ROW_GZIP_BYTES)
    assert sorted(b for task in tasks for b in task) == sorted(buckets)  # each once
    if not buckets:
        assert tasks == []
        return
    needed = max(1, -(-rows // ROWS_PER_PASS))
    assert len(tasks) == min(len(buckets), needed)


def test_one_audit_of_every_bucket_finds_and_marks_what_one_audit_per_bucket_does(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [sms("dup", 1, f"+336000001{n:02d}") for n in range(8)]
    events += [sms("twin", 1, "+33600000077", account=a) for a in ("acme", "globex")]
    deliver(env, dumps(BASE + events), batch=3)
    mc = month_close(env, PERIOD, ("acme", "globex"))
    frozen = mc.freeze(PERIOD, settle=0, force=True)
    for account in ("acme", "globex"):
        mc.close_account(PERIOD, account)
    # a period this small: one task for every bucket
    assert mc.plan_audit(PERIOD, list(frozen.buckets)) == [list(range(ID_BUCKETS))]

    def written() -> list[tuple[Any, ...]]:
        items = env.table.scan()["Items"]
        marks = [(i["pk"], i["sk"], i.get("adj")) for i in items if str(i["sk"]).startswith("X#")]
        found = [(i["pk"], i["sk"]) for i in items if str(i["sk"]).startswith("IDS#")]
        return sorted(marks) + sorted(found)

    def forget() -> None:
        for pk, sk, *_ in written():
            env.table.delete_item(Key={"pk": pk, "sk": sk})

    gets: list[str] = []
    s3 = mc.documents.s3
    get_object = s3.get_object

    def counted(**kwargs: Any) -> Any:
        gets.append(str(kwargs["Key"]))
        return get_object(**kwargs)

    monkeypatch.setattr(s3, "get_object", counted)
    together = mc.audit_buckets(PERIOD, range(ID_BUCKETS))
    once = written()
    assert sum(a.conflicts for a in together) == 2  # "dup" across shards, "twin" across accounts
    assert len(gets) == len(set(gets))  # each id file read once
    forget()
    gets.clear()
    apart = [mc.audit_ids(PERIOD, bucket) for bucket in range(ID_BUCKETS)]
    assert written() == once
    assert apart == together
    assert len(gets) > len(set(gets))  # one task per bucket reads the shared files again


def test_a_draft_close_plans_no_audit(env: Env) -> None:
    deliver(env, dumps(BASE))
    mc = month_close(env, PERIOD)
    drafting = mc.freeze(PERIOD, settle=0, force=True, draft=True)
    assert drafting.buckets == ()
    assert mc.plan_audit(PERIOD, list(range(ID_BUCKETS))) == []
