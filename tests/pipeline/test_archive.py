"""Closed periods' facts in the S3 archive: written by the close, read once items expire.

A close archives what it reads (one part per account, period and shard, plus a manifest);
after the items expire (simulated by deleting them: moto has no TTL) a re-run of the
close and an adjustment of the archived period read the archive and give the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from boto3.dynamodb.types import TypeSerializer

from billing.adapters.archive import (
    ArchiveConflict,
    FactArchive,
    Part,
    decode_part,
    encode_part,
    part_key,
    stored_item,
    unarchived,
)
from billing.adapters.store import (
    HOT_MONTHS,
    MARGIN_DAYS,
    StoredFact,
    fact_item,
    item_expiry,
    shard_of_item,
    version_of_sk,
)
from billing.domain.events import Envelope
from billing.domain.facts import Fact
from billing.domain.periods import Period
from billing.domain.retention import (
    TTL_MARGIN_DAYS,
    archive_needed,
    checked_hot_months,
    expires_at,
    margin_days_from,
)
from tests.factories import mt, number
from tests.pipeline.conftest import SHARDS, Env, sqs_event
from tests.pipeline.test_close_reruns import (
    Clock,
    adjustment_quantities,
    month_close,
    objects,
    put_plan,
    run,
    send,
)

LATER = datetime(2027, 6, 1, tzinfo=UTC)  # October 2026's items may have expired by then


def with_archive(env: Env) -> FactArchive:
    archive = FactArchive(env.s3, "invoices", clock=lambda: LATER)
    env.store.archive = archive
    return archive


def deliver(env: Env, *events: Envelope) -> None:
    bodies = [e.model_copy(update={"subject": "acme"}).model_dump_json() for e in events]
    assert env.ingestor().handle(sqs_event(bodies))["batchItemFailures"] == []


def provision(env: Env) -> None:
    deliver(env, number(datetime(2026, 10, 2, 9, tzinfo=UTC), "+33100000001"))


def expire(env: Env, billed_by: str) -> int:
    """What DynamoDB's TTL does once the items first billed by the close of ``billed_by``
    expire (those of earlier closes too): facts, lifecycle facts and conflict markers of
    that period, late facts it adjusted for (the registry and close results stay). The
    carried entity state in S3 expires too, so the close rebuilds it from the history."""
    ttl = expires_at(Period.parse(billed_by), HOT_MONTHS)
    gone = 0
    for item in env.table.scan()["Items"]:
        pk = str(item["pk"])
        if pk.startswith(("F#", "E#")) and int(item["expires_at"]) <= ttl:
            env.table.delete_item(Key={"pk": pk, "sk": item["sk"]})
            gone += 1
    for key in list(objects(env, "state/")):
        env.s3.delete_object(Bucket="invoices", Key=key)
    return gone


def forget_result(env: Env, period: str, account: str) -> None:
    """Make a re-run compute the account again (an issued account is otherwise kept)."""
    env.table.delete_item(Key={"pk": f"P#{period}", "sk": f"R#{account}"})


def test_a_rerun_after_the_items_expired_reads_the_archive_byte_identically(env: Env) -> None:
    archive = with_archive(env)
    put_plan(env, "acme")
    provision(env)
    for day in (3, 12, 30):
        send(env, "acme", day, 5)
    first = run(month_close(env), "2026-10")
    assert first["issued"] == 1
    issued = objects(env, "invoices/2026-10/")
    parts = objects(env, "archive/2026-10/acme/")
    assert sorted(parts) == [part_key("2026-10", "acme", f"{s:02d}", "base") for s in range(SHARDS)]
    manifest = json.loads(objects(env, "archive/manifests/2026-10/acme.json").popitem()[1])
    assert (manifest["facts"], manifest["lifecycle"], manifest["conflicts"]) == (15, 1, 0)
    assert [p["key"] for p in manifest["parts"]] == sorted(parts)
    for p in manifest["parts"]:  # the manifest's checksums are those of the parts
        decode_part(parts[p["key"]], p["sha256"])

    assert expire(env, "2026-10") == 15 + 1  # the facts and the lifecycle fact
    forget_result(env, "2026-10", "acme")
    again = run(month_close(env), "2026-10")
    assert again["issued"] == 1
    assert again["failed"] == []
    assert objects(env, "invoices/2026-10/") == issued
    assert objects(env, "archive/2026-10/acme/") == parts
    assert archive.requests.get("GET", 0) > 0  # the re-run did read the archive


def test_an_adjustment_of_an_archived_period_reads_archive_and_late_items(env: Env) -> None:
    with_archive(env)
    put_plan(env, "acme")
    provision(env)
    send(env, "acme", 3, 4)
    billed = mt(datetime(2026, 10, 9, 8, tzinfo=UTC), "m-billed", event_id="billed-1")
    deliver(env, billed)
    run(month_close(env), "2026-10")
    expire(env, "2026-10")
    # November: two late October facts, and a redelivery of an October event already
    # billed (its item expired: it is stored again, late, and not billed again)
    send(env, "acme", 20, 2, month=10)
    deliver(env, billed)
    send(env, "acme", 4, 3, month=11)
    hot = [i for i in env.table.scan()["Items"] if str(i["pk"]).startswith("F#acme#2026-10#")]
    assert sorted(str(i["adj"]) for i in hot) == ["2026-11"] * 3  # the redelivery is stored
    # October's items expiring does not take its late facts: they stay hot for November
    assert expire(env, "2026-10") == 0
    november = month_close(env, Clock(datetime(2027, 1, 5, 6, tzinfo=UTC)))
    assert run(november, "2026-11")["failed"] == []
    assert adjustment_quantities(env, "2026-11", "acme") == {"2026-10": Decimal(2)}
    late_parts = [k for k in objects(env, "archive/2026-10/acme/") if "adj-2026-11" in k]
    late = [
        row for k in late_parts for row in decode_part(objects(env, k)[k], None) if row[0] == "F"
    ]
    assert len(late) == 2
    assert all(item["adj"] == "2026-11" for _, item in late)
    issued = objects(env, "invoices/2026-11/")

    # the late items expire with November's: the November re-run reads them from their part
    assert expire(env, "2026-11") > 3
    forget_result(env, "2026-11", "acme")
    assert run(november, "2026-11")["failed"] == []
    assert objects(env, "invoices/2026-11/") == issued


def test_a_reused_id_whose_first_version_expired_is_credited_from_the_archive(
    env: Env,
) -> None:
    """The id audit finds a version whose item has left the table: it reads the fact from
    the archive, so its removal is the late change that credits October."""
    with_archive(env)
    put_plan(env, "acme")
    deliver(env, mt(datetime(2026, 10, 9, 8, tzinfo=UTC), "m-first", event_id="reused-1"))
    run(month_close(env), "2026-10")
    expire(env, "2026-10")
    deliver(env, mt(datetime(2026, 12, 3, 8, tzinfo=UTC), "m-other", event_id="reused-1"))
    run(month_close(env, Clock(datetime(2026, 12, 5, 6, tzinfo=UTC))), "2026-11")
    run(month_close(env, Clock(datetime(2027, 1, 5, 6, tzinfo=UTC))), "2026-12")
    keys = {(str(i["pk"]), str(i["sk"])) for i in env.table.scan()["Items"]}
    assert ("P#2027-01", "ADJ#acme#2026-10") in keys  # October is credited in January
    assert ("P#2027-01", "ADJ#acme#2026-12") in keys


def test_an_archive_part_is_never_overwritten_with_other_content(env: Env) -> None:
    archive = with_archive(env)
    fact = Fact(id="f1", type="message", at=Period.parse("2026-10").start_ms, key="k", attrs={})
    stored = env.store._with_archive("a", Period.parse("2026-10"), "00", "F", [], "")
    assert stored == []
    item = fact_item("a", fact, SHARDS)
    env.table.put_item(Item=item)
    (one,) = env.store.read_period("a", Period.parse("2026-10"), item["pk"][-2:], 0)
    archive.requests.clear()
    assert archive.write_shard("2026-10", "a", Period.parse("2026-10"), "00", [], [one])
    assert archive.requests == {"PUT": 1}  # a first write is one conditional put
    assert archive.write_shard("2026-10", "a", Period.parse("2026-10"), "00", [], [one])
    assert archive.requests == {"PUT": 2, "HEAD": 1}  # refused: the same content is there
    with pytest.raises(ArchiveConflict):
        archive.write_shard("2026-10", "a", Period.parse("2026-10"), "00", [], [])
    body = objects(env, part_key("2026-10", "a", "00", "base"))
    assert gzip.decompress(body.popitem()[1]).count(b"\n") == 1


def test_items_expire_after_the_hot_months_and_archive_reads_start_before() -> None:
    october = Period.parse("2026-10")
    assert HOT_MONTHS == 0  # the default: until October's close, in the first days of November
    assert MARGIN_DAYS == TTL_MARGIN_DAYS == 14
    ttl = expires_at(october, HOT_MONTHS)
    assert ttl == datetime(2026, 11, 15, tzinfo=UTC).timestamp()  # October's end + 14 days
    assert item_expiry(october) == ttl
    assert not archive_needed(
        october, int(datetime(2026, 11, 14, 23, tzinfo=UTC).timestamp() * 1e3)
    )
    assert archive_needed(october, int(datetime(2026, 11, 15, tzinfo=UTC).timestamp() * 1000))
    with pytest.raises(ValueError, match="HOT_MONTHS=-1"):
        checked_hot_months(-1)
    # drafts kept 10 days: the final close runs on the 11th, the items wait for it
    assert margin_days_from({"TTL_MARGIN_DAYS": "24"}) == 24
    with pytest.raises(ValueError, match="TTL_MARGIN_DAYS=13"):
        margin_days_from({"TTL_MARGIN_DAYS": "13"})  # readers would add the archive too late


def test_a_late_fact_stays_hot_until_the_close_that_bills_it() -> None:
    """A late fact of October adjusted by January's close expires with January's facts,
    not with October's: the lateness bound never holds October's items in the table."""
    fact = Fact(id="f1", type="message", at=Period.parse("2026-10").start_ms, key="k", attrs={})
    on_time = fact_item("acme", fact, SHARDS)
    late = fact_item("acme", fact, SHARDS, adj="2027-01")
    assert on_time["expires_at"] == expires_at(Period.parse("2026-10"), HOT_MONTHS)
    assert late["expires_at"] == expires_at(Period.parse("2027-01"), HOT_MONTHS)
    zoned = fact_item("acme", fact, SHARDS, adj="2027-01@+09:00")
    assert zoned["expires_at"] == expires_at(Period.parse_label("2027-01@+09:00"), HOT_MONTHS)


def test_a_period_not_archived_when_its_items_near_expiry_is_reported(env: Env) -> None:
    with_archive(env)
    put_plan(env, "acme")
    send(env, "acme", 3, 2)
    # October's close checks what it bills (those items expire mid-November, HOT_MONTHS 0)
    assert unarchived(env.store, "2026-10", HOT_MONTHS) == ["2026-10/acme"]
    run(month_close(env), "2026-10")
    assert unarchived(env.store, "2026-10", HOT_MONTHS) == []
    # with HOT_MONTHS 2, November's close checks October's
    assert unarchived(env.store, "2026-11", 2) == []
    send(env, "acme", 20, 1, month=10)  # late: November's close bills it, and archives it
    assert unarchived(env.store, "2026-11", HOT_MONTHS) == ["2026-11/acme"]
    run(month_close(env, Clock(datetime(2027, 1, 5, 6, tzinfo=UTC))), "2026-11")
    assert unarchived(env.store, "2026-11", HOT_MONTHS) == []


def test_a_close_groups_check_of_its_own_period_is_limited_to_its_accounts(env: Env) -> None:
    """With HOT_MONTHS 0 or 1 a close checks its own period, which other close groups (time
    zones) may not have closed yet: only the accounts ``among`` keeps are its own."""
    with_archive(env)
    put_plan(env, "acme")
    send(env, "acme", 3, 1)
    send(env, "globex", 3, 1)
    assert unarchived(env.store, "2026-10", 1) == ["2026-10/acme", "2026-10/globex"]
    mine = unarchived(env.store, "2026-10", 1, lambda accounts: [a for a in accounts if a < "b"])
    assert mine == ["2026-10/acme"]
    # an earlier period's check is never limited: every group of it has closed
    assert unarchived(env.store, "2026-11", 2, lambda accounts: []) == unarchived(
        env.store, "2026-11", 2
    )


def test_parts_read_by_threads_sharing_the_cache_never_miss_an_evicted_entry() -> None:
    """The embedded runtime runs close units in threads sharing one archive reader: a part
    evicted by another thread between the cache's check and its use is not an error."""
    import io
    import threading
    from collections import OrderedDict

    from billing.adapters.archive import FactArchive

    body = gzip.compress(b"")

    class S3:
        def get_object(self, Bucket: str, Key: str) -> dict[str, object]:
            return {"Body": io.BytesIO(body), "Metadata": {}}

    archive = FactArchive(S3(), "bucket", cached_parts=1)
    archive.part("one")
    paused = threading.Event()

    class PausingCache(OrderedDict):  # type: ignore[type-arg]
        """Lets another thread read a part right after this thread looked "one" up."""

        def pause(self) -> None:
            if threading.current_thread() is threading.main_thread() and not paused.is_set():
                paused.set()
                other = threading.Thread(target=archive.part, args=("two",))
                other.start()
                other.join(timeout=0.5)  # it waits for the cache if the cache is guarded

        def __contains__(self, key: object) -> bool:
            found = super().__contains__(key)
            self.pause()
            return found

        def get(self, key: object, default: object = None) -> object:
            found = super().get(key, default)
            self.pause()
            return found

    archive._cache = PausingCache(archive._cache)
    assert archive.part("one") == []
    assert paused.is_set()


def _shard_of_october() -> tuple[list[StoredFact], list[StoredFact]]:
    """Traffic (a fact whose id holds ``#``, a conflict marker) and a lifecycle fact of
    October in shard ``00`` of account ``a``, as the close reads them."""
    start = Period.parse("2026-10").start_ms
    attrs = {"n": 3, "rate": Decimal("0.25"), "tags": ["x", 2]}
    fact = Fact(id="f#1", type="message.outbound", at=start + 5, key="k", attrs=attrs)
    marker = Fact(id="f3", type="id_conflict", at=start + 9, key="", attrs={})
    entity = "num#+33100000001"
    life = Fact(
        id="f2", type="number.provisioned", at=start, key=entity, attrs={"n": 1}, entity=entity
    )
    traffic = [StoredFact(fact, None), StoredFact(marker, None, conflict=True)]
    return traffic, [StoredFact(life, None)]


def test_an_archive_part_holds_facts_without_id_and_time_and_reads_them_back(env: Env) -> None:
    archive = with_archive(env)
    traffic, lifecycle = _shard_of_october()
    part = encode_part(traffic, lifecycle)
    rows = decode_part(part.body, part.sha256)
    facts = [item for _, item in rows if not str(item["sk"]).startswith("X#")]
    assert len(facts) == 2
    assert all("id" not in item and "at" not in item for item in facts)
    (marker,) = [item for _, item in rows if str(item["sk"]).startswith("X#")]
    assert (marker["id"], marker["sk"]) == ("f3", "X#f3")  # conflict markers are unchanged
    assert [stored_item(s) for s in traffic + lifecycle] == [
        dict(item) for _, item in sorted(rows, key=lambda r: r[0] != "F")
    ]
    october = Period.parse("2026-10")
    assert archive.write_shard("2026-10", "a", october, "00", lifecycle, traffic)
    # the items have left the table: the store reads the facts back from the part
    assert env.store.read_period("a", october, "00", 0) == traffic
    assert env.store.read_lifecycle("a", october, "00") == lifecycle


def test_a_rerun_finds_a_part_archived_with_ids_and_times_holds_the_same_facts(
    env: Env,
) -> None:
    """A part written while fact items still held ``id`` and ``at``: a re-run of its close
    writes the same facts without them, which is not another content."""
    archive = with_archive(env)
    traffic, lifecycle = _shard_of_october()
    october = Period.parse("2026-10")
    new = encode_part(traffic, lifecycle)
    old_rows = []
    for kind, item in decode_part(new.body, new.sha256):
        if not str(item["sk"]).startswith("X#"):
            at, fact_id, _ = version_of_sk(str(item["sk"]))
            item = {**item, "id": fact_id, "at": Decimal(at)}
        old_rows.append(
            {"k": kind, "i": {k: TypeSerializer().serialize(v) for k, v in item.items()}}
        )
    text = b"".join(
        json.dumps(row, sort_keys=True, separators=(",", ":")).encode() + b"\n" for row in old_rows
    )
    old = Part(gzip.compress(text, mtime=0), 1, 1, 1, hashlib.sha256(text).hexdigest())
    key = part_key("2026-10", "a", "00", "base")
    assert archive.put_once(key, old.body, "application/gzip", old.metadata(), "2026-10")
    assert env.store.read_period("a", october, "00", 0) == traffic
    assert env.store.read_lifecycle("a", october, "00") == lifecycle

    entry = archive.write_shard("2026-10", "a", october, "00", lifecycle, traffic)
    assert entry is not None
    assert entry["key"] == key
    assert objects(env, key) == {key: old.body}  # kept as it is
    changed = replace(traffic[0].fact, attrs={"n": 4})
    with pytest.raises(ArchiveConflict):
        archive.write_shard("2026-10", "a", october, "00", lifecycle, [StoredFact(changed, None)])


def test_a_close_unit_lists_an_archived_periods_parts_once_and_sees_what_it_writes(
    env: Env,
) -> None:
    """Reading every shard of an account whose period is archived: one LIST per period
    and thread inside ``listing_scope`` (one per shard outside it); a part the thread
    writes meanwhile is in it."""
    archive = with_archive(env)
    put_plan(env, "acme")
    send(env, "acme", 3, 6)
    run(month_close(env), "2026-10")
    october = Period.parse("2026-10")
    shards = [f"{s:02d}" for s in range(SHARDS)]
    archive.requests.clear()
    outside = [archive.shard_parts("acme", "2026-10", s) for s in shards]
    assert archive.requests == {"LIST": SHARDS}
    archive.requests.clear()
    with archive.listing_scope():
        inside = [archive.shard_parts("acme", "2026-10", s) for s in shards]
        assert inside == outside
        assert archive.requests == {"LIST": 1}
        late = Fact(id="late-1", type="message", at=october.start_ms + 5, key="k", attrs={})
        assert archive.write_shard(
            "2026-11", "acme", october, "00", [], [StoredFact(late, "2026-11")]
        )
        assert archive.shard_parts("acme", "2026-10", "00") == sorted(
            [*outside[0], part_key("2026-10", "acme", "00", "adj-2026-11")]
        )
        assert archive.requests["LIST"] == 1  # what it wrote is added to the listing
    archive.requests.clear()  # the scope is over: a listing per shard again
    archive.shard_parts("acme", "2026-10", "01")
    assert archive.requests == {"LIST": 1}


def test_a_live_batch_lists_an_archived_periods_parts_once_per_account(env: Env) -> None:
    """A stream batch naming every shard of an archived period: its parts are listed once
    for the account (and once for the previous period's look-back tail), not per shard;
    the view is what it is without the scope."""
    from billing.live import LiveUsage

    archive = with_archive(env)
    put_plan(env, "acme")
    for day in (3, 17, 29):
        send(env, "acme", day, 4)
    run(month_close(env), "2026-10")
    shards = {f"F#acme#2026-10#{s:02d}" for s in range(SHARDS)}  # every shard named
    records = [
        {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"S": pk}}, "SequenceNumber": str(n)}}
        for n, pk in enumerate(sorted(shards), start=1)
    ]
    live = LiveUsage(env.store, clock=LATER.timestamp)
    archive.requests.clear()
    assert live.handle_stream(records)["batchItemFailures"] == []
    listed = archive.requests["LIST"]
    assert listed <= 3  # October, September's tail, (the lifecycle partitions: the same)
    assert live.view("acme", "2026-10").usage.figures()
    in_scope = live.view("acme", "2026-10").usage.to_json()
    archive.requests.clear()
    live.refresh([key for pk in sorted(shards) if (key := shard_of_item(pk)) is not None])
    assert archive.requests["LIST"] > listed  # outside a batch: per shard
    assert live.view("acme", "2026-10").usage.to_json() == in_scope
