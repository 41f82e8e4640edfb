"""The archive's manifest is written from the entries the close's units hand over in their
partials (``FactArchive.write_shard`` -> the partial's ``archive`` -> ``seal``): no LIST
and no HEAD per part, and the same bytes as the manifest written by listing the parts and
reading each one's metadata (what the seal does for partials without entries)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from billing.adapters.archive import FactArchive, manifest_key, part_key
from billing.adapters.invoices import partial_key
from billing.adapters.store import StoredFact, fact_item, shard_labels
from billing.close import MonthClose
from billing.domain.facts import Fact
from billing.domain.periods import Period
from tests.pipeline.conftest import SHARDS, Env
from tests.pipeline.test_close_reruns import Clock, month_close, objects, put_plan, run, send


def archiving(env: Env) -> FactArchive:
    archive = FactArchive(env.s3, "invoices")
    env.store.archive = archive
    return archive


def manifest(env: Env, closing: str, account: str) -> bytes:
    key = manifest_key(closing, account)
    return objects(env, key)[key]


def listed_manifest(env: Env, archive: FactArchive, closing: str, account: str) -> bytes:
    """The manifest the seal writes by listing the parts (no entries handed over), in place
    of the one the close wrote."""
    periods = [p["period"] for p in json.loads(manifest(env, closing, account))["parts"]]
    env.s3.delete_object(Bucket="invoices", Key=manifest_key(closing, account))
    archive.seal(closing, account, sorted({closing, *periods}))
    return manifest(env, closing, account)


def units_then_rate(mc: MonthClose, period: str, account: str, units_runs: int = 1) -> None:
    """One account's branch of the state machine with its units run ``units_runs`` times
    (a re-run after a crash between the units and the seal), then ``rate_account``."""
    mc.freeze(period, settle=0)
    plan = mc.plan_account(period, account)
    for _ in range(units_runs):
        for unit in plan.units:
            mc.compute_unit(unit)
    mc.rate_account(period, account)


def test_the_seal_writes_the_handed_over_entries_without_listing_or_heads(env: Env) -> None:
    archive = archiving(env)
    put_plan(env, "acme")
    for day in (3, 12, 30):
        send(env, "acme", day, 5)
    mc = month_close(env)
    mc.freeze("2026-10", settle=0)
    for unit in mc.plan_account("2026-10", "acme").units:
        mc.compute_unit(unit)
    partial = json.loads(objects(env, partial_key("2026-10", "acme", "2026-10", "00")).popitem()[1])
    assert [e["key"] for e in partial["archive"]] == [
        part_key("2026-10", "acme", s, "base") for s in partial["shards"]
    ]
    archive.requests.clear()
    mc.rate_account("2026-10", "acme")
    assert archive.requests == {"PUT": 1}  # the manifest: no LIST, no HEAD
    handed = manifest(env, "2026-10", "acme")
    doc = json.loads(handed)
    assert [p["key"] for p in doc["parts"]] == sorted(objects(env, "archive/2026-10/acme/"))
    assert (doc["facts"], doc["lifecycle"], doc["conflicts"]) == (15, 0, 0)
    assert listed_manifest(env, archive, "2026-10", "acme") == handed


def test_an_adjusting_close_hands_over_its_late_parts(env: Env) -> None:
    archive = archiving(env)
    put_plan(env, "acme")
    send(env, "acme", 3, 4)
    run(month_close(env), "2026-10")
    send(env, "acme", 20, 2, month=10)  # late for October: adjusted by November's close
    send(env, "acme", 4, 3, month=11)
    november = month_close(env, Clock(datetime(2027, 1, 5, 6, tzinfo=UTC)))
    assert run(november, "2026-11")["failed"] == []
    handed = manifest(env, "2026-11", "acme")
    doc = json.loads(handed)
    periods = [p["period"] for p in doc["parts"]]
    late = [p for p in doc["parts"] if p["period"] == "2026-10"]
    assert late
    assert all(p["key"].endswith("/adj-2026-11.jsonl.gz") for p in late)
    assert sum(p["facts"] for p in late) == 2
    assert periods.count("2026-11") == SHARDS  # the base parts, one per shard
    assert listed_manifest(env, archive, "2026-11", "acme") == handed


def test_units_run_again_after_a_crash_hand_over_the_parts_already_there(env: Env) -> None:
    archive = archiving(env)
    put_plan(env, "acme")
    for day in (3, 30):
        send(env, "acme", day, 4)
    mc = month_close(env)
    units_then_rate(mc, "2026-10", "acme", units_runs=2)  # the second run writes no part
    handed = manifest(env, "2026-10", "acme")
    assert len(json.loads(handed)["parts"]) == SHARDS
    assert listed_manifest(env, archive, "2026-10", "acme") == handed


def test_partials_without_entries_are_sealed_by_listing_the_parts(env: Env) -> None:
    """Partials written by a version that handed nothing over: the seal lists the parts."""
    archive = archiving(env)
    put_plan(env, "acme")
    send(env, "acme", 3, 4)
    mc = month_close(env)
    mc.freeze("2026-10", settle=0)
    for unit in mc.plan_account("2026-10", "acme").units:
        mc.compute_unit(unit)
    for key, body in objects(env, "work/2026-10/acme/").items():
        doc = json.loads(body)
        del doc["archive"]
        env.s3.put_object(Bucket="invoices", Key=key, Body=json.dumps(doc).encode())
    archive.requests.clear()
    mc.rate_account("2026-10", "acme")
    assert archive.requests.get("HEAD") == SHARDS  # one per part, listed
    handed = manifest(env, "2026-10", "acme")
    assert len(json.loads(handed)["parts"]) == SHARDS
    assert listed_manifest(env, archive, "2026-10", "acme") == handed


def test_seal_from_entries_equals_seal_from_listing(env: Env) -> None:
    """``write_shard``'s answers (parts written, a part found there on a re-run, a late
    part, an empty base part) sealed directly and sealed by listing: the same bytes."""
    archive = archiving(env)
    october, november = Period.parse("2026-10"), Period.parse("2026-11")
    facts = [
        Fact(id=f"f{i}", type="message", at=october.start_ms + i * 3_600_000, key="k", attrs={})
        for i in range(12)
    ]
    for fact in facts:
        env.table.put_item(Item=fact_item("a", fact, SHARDS))
    entries: dict[str, list[dict[str, Any]]] = {"2026-10": [], "2026-11": []}
    late_facts = 0
    for shard in shard_labels(SHARDS):
        traffic = env.store.read_period("a", october, shard, 0)
        for _ in range(2):  # the second: the part is there (a re-run)
            entry = archive.write_shard("2026-10", "a", october, shard, [], traffic)
            assert entry is not None
        entries["2026-10"].append(entry)
        late = [StoredFact(s.fact, "2026-11") for s in traffic[:1]]
        entry = archive.write_shard("2026-11", "a", october, shard, [], late)
        if not late:  # no late fact of this shard: no part
            assert entry is None
            continue
        assert entry is not None
        assert entry["key"].endswith("/adj-2026-11.jsonl.gz")
        entries["2026-11"].append(entry)
        late_facts += 1
    assert late_facts
    base = [archive.write_shard("2026-11", "a", november, s, [], []) for s in shard_labels(SHARDS)]
    assert all(e is not None and e["facts"] == 0 for e in base)
    adjusting = {"2026-10": entries["2026-11"], "2026-11": [e for e in base if e is not None]}
    for closing, handed in (("2026-10", {"2026-10": entries["2026-10"]}), ("2026-11", adjusting)):
        sources = sorted(handed)
        archive.requests.clear()
        doc = archive.seal(closing, "a", sources, {k: list(reversed(v)) for k, v in handed.items()})
        assert archive.requests == {"PUT": 1}
        written = manifest(env, closing, "a")
        assert json.loads(written) == doc
        assert sum(p["facts"] for p in doc["parts"]) == (12 if closing == "2026-10" else late_facts)
        assert listed_manifest(env, archive, closing, "a") == written
