"""The close's id audit: one billed content per ``source``+``id``, whatever the partition.

A fact's sort key holds its id and the digest of its content (``store.fact_sk``), so two
contents sent under one id are both stored, whatever the order, and a read that holds both
bills neither (``billing.shard.View``). That covers a reused id within one partition and
its look-back tail, the usual case: a retry with another body keeps its end user, so its
storage shard. Versions that no single read holds (another shard, account or month) are
found by the close:

- each unit of work writes the ids of the facts it read, per *id bucket*, to the invoice
  bucket (``ids/{period}/{bucket}/{account}/{unit}.jsonl.gz``: id, content digest, where
  the fact is stored); a small unit writes them all in one shared file
  (``ids/{period}/all/...``) that every bucket's audit reads;
- after every account, ``AuditIds`` reads the ids of the period closed and of the
  ``AUDIT_PERIODS`` periods before it, and writes a conflict marker (``X#{fact id}``) next
  to every version of an id stored with two contents (or with one content for two
  accounts). Its tasks are decided once per close (``audit_tasks``, PlanAudit): the buckets
  in as few tasks as hold their rows in one pass each, each task reading each of its files
  once for all its buckets (a small month: one task). A bucket too large for one task's
  memory is read in passes, each holding one slice of its ids (``ROWS_PER_PASS``).

A marker next to a version of a frozen period is a late change, as a late fact is: it
carries the adjusting period (``adj``) and that period gets the ``ADJ#`` markers, so the
next close credits what was billed (``store.late_change``). A marker in an open period
keeps the version out of that period's invoice. Markers are written once and never
retagged (``put_late``), so the audit's re-runs and overlapping windows change nothing.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from billing.adapters.store import (
    ShardKey,
    UsageStore,
    conflict_sk,
    fact_of_item,
    item_expiry,
    late_change,
    shard_of_item,
    version_sk,
)
from billing.domain.facts import Fact
from billing.domain.lateness import DEFAULT_MAX_LATE_PERIODS, frozen_in_zone
from billing.domain.periods import UTC_ZONE, Period, ZoneOf, period_at

IDS = "ids/"  # the invoice bucket's prefix of the close's id files
# Periods before the one closed whose ids its audit compares with: the lateness bound + 1,
# the span over which an event id is unique (an event older than that is refused anyway).
AUDIT_PERIODS = int(os.environ.get("MAX_LATE_PERIODS", str(DEFAULT_MAX_LATE_PERIODS))) + 1
# Buckets of the id audit (one AuditIds task each): a bucket holds about 1/16 of each
# period's ids. Every period is audited with the same buckets.
ID_BUCKETS = 16
# What one pass of an AuditIds task holds: at most about this many id rows (~700 B each at
# the peak of reading, ~1 GB). A bucket with more (100M events a month: ~30M over the
# window) is audited in several passes over its files, each keeping one slice of the ids,
# so every version of an id is in the same pass (``audit_passes``).
ROWS_PER_PASS = 1_500_000
ROW_GZIP_BYTES = 25  # about the least an id row takes in its file, compressed
# A unit with at most this many ids writes one shared file instead of one per bucket: one
# PUT instead of up to 16, read by each bucket's audit (GETs cost a twelfth of PUTs).
SHARED_ROWS = 10_000
SHARED = "all"  # the shared files' place among the buckets


@dataclass(frozen=True, slots=True)
class IdRow:
    """One stored version of an event id: its content digest and where it is stored."""

    id: str
    digest: str
    pk: str
    at: int

    def to_json(self) -> list[Any]:
        return [self.id, self.digest, self.pk, self.at]

    @classmethod
    def of(cls, fact: Fact, pk: str) -> IdRow:
        return cls(fact.id, fact.digest(), pk, fact.at)

    @property
    def place(self) -> ShardKey:
        """The account, period and storage shard of the version's partition."""
        place = shard_of_item(self.pk)
        if place is None:
            raise ValueError(f"not a fact partition: {self.pk!r}")
        return place

    @property
    def account(self) -> str:
        return self.place.account

    def where(self) -> dict[str, Any]:
        """Where this version is stored, for the close's manifest."""
        return {"account": self.account, "period": self.place.period, "at": self.at}

    @property
    def sk(self) -> str:
        """The sort key of the fact (``store.fact_sk``)."""
        return version_sk(self.at, self.id, self.digest)


def bucket_of(fact_id: str, buckets: int = ID_BUCKETS) -> int:
    return zlib.crc32(fact_id.encode()) % buckets


def slice_of(fact_id: str, slices: int) -> int:
    """The slice of the id space (within its bucket) an audit pass keeps."""
    return (zlib.crc32(fact_id.encode()) // ID_BUCKETS) % slices


@dataclass(frozen=True, slots=True)
class IdFile:
    key: str
    size: int  # bytes, compressed
    shared: bool = False  # ids of every bucket (a small unit's)


def audit_tasks(buckets: Sequence[int], size: int) -> list[list[int]]:
    """The id buckets to audit, in as few tasks as hold their rows in one pass each (``size``:
    the bytes of their window's id files, compressed): every bucket in exactly one task, at
    most one task per bucket. A task reads each shared file once for all its buckets, so a
    period whose ids fit one pass is audited by one task reading every file once."""
    rows = size // ROW_GZIP_BYTES
    count = min(len(buckets), max(1, -(-rows // ROWS_PER_PASS)))
    ordered = sorted(buckets)
    return [ordered[i::count] for i in range(count)] if ordered else []


def audit_passes(files: Sequence[IdFile]) -> int:
    """How many passes the audit of ``files`` needs so that none holds more than
    ``ROWS_PER_PASS`` rows (their count estimated from the files' sizes, high)."""
    rows = sum(f.size for f in files) // ROW_GZIP_BYTES
    return max(1, -(-rows // ROWS_PER_PASS))


def ids_prefix(period: str, bucket: int | None) -> str:
    """The prefix of one bucket's files of ``period`` (``None``: the shared files)."""
    return f"{IDS}{period}/{SHARED if bucket is None else f'{bucket:02d}'}/"


def ids_key(period: str, bucket: int | None, account: str, unit: str) -> str:
    return f"{ids_prefix(period, bucket)}{account}/{unit}.jsonl.gz"


def conflicts(rows: Iterable[IdRow]) -> dict[str, list[IdRow]]:
    """The ids stored more than once, each with its versions in a stable order. A content
    has one place (its period and shard follow from it), so an id stored twice was sent
    with two contents, or with one content for two accounts."""
    versions: dict[str, dict[tuple[str, str], IdRow]] = {}
    for row in rows:
        versions.setdefault(row.id, {})[(row.digest, row.pk)] = row
    return {
        fact_id: [found[k] for k in sorted(found)]
        for fact_id, found in sorted(versions.items())
        if len(found) > 1
    }


class IdFiles:
    """The id files of the invoice bucket (``IDS``): written by the close's units, read
    by its audit."""

    def __init__(self, s3: Any, bucket: str, buckets: int = ID_BUCKETS) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.buckets = buckets

    def write_unit(self, period: str, account: str, unit: str, rows: Sequence[IdRow]) -> int:
        """Write the ids one unit read of ``period``: one file per id bucket that has some,
        or one shared file for at most ``SHARED_ROWS`` (a re-run rewrites the same files; a
        file left by an earlier plan of the account holds versions its new files hold
        too). The number of files written."""
        per_bucket: dict[int | None, list[IdRow]] = {}
        for row in rows:
            at = None if len(rows) <= SHARED_ROWS else bucket_of(row.id, self.buckets)
            per_bucket.setdefault(at, []).append(row)
        for bucket, found in per_bucket.items():
            lines = "".join(json.dumps(r.to_json(), separators=(",", ":")) + "\n" for r in found)
            self.s3.put_object(
                Bucket=self.bucket,
                Key=ids_key(period, bucket, account, unit),
                Body=gzip.compress(lines.encode(), mtime=0),
                ContentType="application/gzip",
            )
        return len(per_bucket)

    def files(self, period: str, buckets: Iterable[int]) -> list[IdFile]:
        """The id files the audit of ``buckets`` reads of ``period``: theirs, the shared."""
        paginator = self.s3.get_paginator("list_objects_v2")
        return [
            IdFile(str(entry["Key"]), int(entry["Size"]), shared=prefix_bucket is None)
            for prefix_bucket in (*sorted(set(buckets)), None)
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=ids_prefix(period, prefix_bucket)
            )
            for entry in page.get("Contents", [])
        ]

    def period_size(self, period: str) -> int:
        """The bytes of every id file of ``period`` (one listing), to size its audit."""
        paginator = self.s3.get_paginator("list_objects_v2")
        return sum(
            int(entry["Size"])
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{IDS}{period}/")
            for entry in page.get("Contents", [])
        )

    def rows(
        self, files: Sequence[IdFile], buckets: Iterable[int], part: int = 0, parts: int = 1
    ) -> Iterator[IdRow]:
        """The id rows of ``buckets`` in ``files`` whose id is in slice ``part`` of
        ``parts``."""
        wanted = frozenset(buckets)
        every = wanted >= frozenset(range(self.buckets))  # a shared file's rows all count
        for file in files:
            body = self.s3.get_object(Bucket=self.bucket, Key=file.key)["Body"].read()
            for line in gzip.decompress(body).decode().splitlines():
                # the id is the first field (``to_json``): a row of another bucket or
                # slice is skipped without parsing it
                if (file.shared and not every) or parts > 1:
                    fact_id = line[2 : line.index('"', 2)]
                    if file.shared and not every and bucket_of(fact_id, self.buckets) not in wanted:
                        continue
                    if parts > 1 and slice_of(fact_id, parts) != part:
                        continue
                fact_id, digest, pk, at = json.loads(line)
                yield IdRow(str(fact_id), str(digest), str(pk), int(at))


def mark_version(
    store: UsageStore,
    version: IdRow,
    frozen: Iterable[str],
    zone_of: Callable[[str], ZoneOf | None],
    lookback_hours: int,
) -> bool:
    """Write the conflict marker next to one stored version of a conflicted id (never
    retagged: False if it was there). If the version's period is frozen in its account's
    calendar (``zone_of``: its zones, ``None`` for UTC), its removal is a late change."""
    where = version.place
    marker: dict[str, Any] = {
        "pk": version.pk,
        "sk": conflict_sk(version.id),
        "id": version.id,
        "at": version.at,
        "expires_at": item_expiry(Period.parse(where.period)),
    }
    item = store.stored_item(version.pk, version.sk)
    fact = fact_of_item(item) if item else None
    zones = zone_of(where.account)
    if fact is not None and zones is not None:
        fact = replace(fact, local=period_at(fact.at, zones))
    zone = fact.period.zone if fact is not None else UTC_ZONE
    frozen_set = frozen_in_zone(frozenset(frozen), zone)
    if fact is not None and str(fact.period) in frozen_set:
        change = late_change(where.account, fact, frozen_set, lookback_hours)
        marker["adj"] = change.adj
        marker["expires_at"] = item_expiry(Period.parse_label(change.adj))
        # the marker's own adjusting markers first: a crash after them is harmless
        store.put_items(change.markers)
    return store.put_late(marker)


__all__ = [
    "AUDIT_PERIODS",
    "IDS",
    "ID_BUCKETS",
    "IdFile",
    "IdFiles",
    "IdRow",
    "audit_passes",
    "bucket_of",
    "conflicts",
    "ids_key",
    "mark_version",
]
