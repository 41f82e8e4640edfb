"""The fact archive: closed periods' facts in S3, immutable, after their items expire.

``archive/{period}/{account}/{shard}/{part}.jsonl.gz`` in the invoice bucket:

- ``base``: the facts of ``period`` stored on time (no late tag), its lifecycle facts and
  conflict markers, written by the period's own close (empty parts too: a part per shard
  says the shard is archived);
- ``adj-{closing}``: the late facts of ``period`` tagged for the close of ``closing``,
  written by that (adjusting) close, which reads them to adjust for them.

A part is gzip JSON lines, one stored item each (``{"k": "F"|"E", "i": item}``, the item
as the table holds it without ``pk`` and ``expires_at``, values typed as DynamoDB types
them: a fact's id and time are those of its sort key, ``store.fact_of_item``; parts
written before hold ``id`` and ``at`` too), ordered by kind and sort key: deterministic
bytes, so a re-run writes nothing (a re-run of a close that archived in that older item
form finds the same facts, ``FactArchive.same_facts``). Its
object metadata is its manifest entry (counts of facts, lifecycle facts and conflict
markers, SHA-256 of the uncompressed lines); S3 keeps a SHA-256 checksum of the object.
The part is written once with Object Lock retention (``ArchiveLock``) and never deleted
by the application. Each account's close writes ``archive/manifests/{closing}/{account}.
json``: every part that close wrote, with its counts and checksums (for auditors).

Readers (``UsageStore.read_period``, ``read_lifecycle``) add the archived items once a
period's items may have expired (``billing.domain.retention.archive_needed``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from billing.adapters.invoices import put_new
from billing.adapters.scopes import Listings
from billing.adapters.store import (
    StoredFact,
    UsageStore,
    _stored,
    _to_dynamo,
    conflict_sk,
    fact_attributes,
)
from billing.domain.periods import Period
from billing.domain.retention import (
    ARCHIVE_RETENTION_DAYS,
    archive_needed,
    archive_retain_until_s,
)

ARCHIVE = "archive/"
MANIFESTS = f"{ARCHIVE}manifests/"
BASE = "base"
FORMAT = "1"
_SERIALIZE = TypeSerializer().serialize
_DESERIALIZE = TypeDeserializer().deserialize


class ArchiveConflict(Exception):
    """An archive part or manifest would change: they are never overwritten."""


class ArchiveCorrupt(Exception):
    """An archive part's content does not match the checksum in its metadata."""


def part_name(closing: str, period: str) -> str:
    """The part the close of ``closing`` writes for the facts of ``period``."""
    return BASE if closing == period else f"adj-{closing}"


def shard_prefix(period: str, account: str, shard: str) -> str:
    return f"{ARCHIVE}{period}/{account}/{shard}/"


def part_key(period: str, account: str, shard: str, part: str) -> str:
    return f"{shard_prefix(period, account, shard)}{part}.jsonl.gz"


def manifest_key(closing: str, account: str) -> str:
    return f"{MANIFESTS}{closing}/{account}.json"


def stored_item(stored: StoredFact) -> dict[str, Any]:
    """The table item of a stored fact, without ``pk`` and ``expires_at`` (a fact's without
    ``id`` and ``at`` either: ``store.fact_attributes``)."""
    fact = stored.fact
    if stored.conflict:
        item: dict[str, Any] = {"sk": conflict_sk(fact.id), "id": fact.id, "at": fact.at}
    else:
        item = fact_attributes(fact)
    if stored.adj is not None:
        item["adj"] = stored.adj
    return dict(_to_dynamo(item))


@dataclass(frozen=True)
class Part:
    body: bytes  # gzip of the lines
    facts: int
    lifecycle: int
    conflicts: int
    sha256: str  # of the uncompressed lines

    def metadata(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "facts": str(self.facts),
            "lifecycle": str(self.lifecycle),
            "conflicts": str(self.conflicts),
            "sha256": self.sha256,
        }


def encode_part(traffic: Sequence[StoredFact], lifecycle: Sequence[StoredFact]) -> Part:
    rows = [("F", stored_item(s)) for s in traffic] + [("E", stored_item(s)) for s in lifecycle]
    rows.sort(key=lambda r: (r[0], str(r[1]["sk"]).encode()))
    text = b"".join(
        json.dumps(
            {"k": kind, "i": {k: _SERIALIZE(v) for k, v in item.items()}},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        + b"\n"
        for kind, item in rows
    )
    conflicts = sum(1 for s in [*traffic, *lifecycle] if s.conflict)
    return Part(
        body=gzip.compress(text, compresslevel=9, mtime=0),
        facts=sum(1 for s in traffic if not s.conflict),
        lifecycle=sum(1 for s in lifecycle if not s.conflict),
        conflicts=conflicts,
        sha256=hashlib.sha256(text).hexdigest(),
    )


def decode_part(body: bytes, sha256: str | None) -> list[tuple[str, dict[str, Any]]]:
    text = gzip.decompress(body)
    if sha256 is not None and hashlib.sha256(text).hexdigest() != sha256:
        raise ArchiveCorrupt(f"archive part checksum mismatch (expected {sha256})")
    out = []
    for line in text.splitlines():
        row = json.loads(line)
        out.append((str(row["k"]), {k: _DESERIALIZE(v) for k, v in row["i"].items()}))
    return out


def _stored_rows(rows: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, StoredFact]]:
    return [(kind, _stored(item)) for kind, item in rows]


def part_entry(key: str, period: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """A part's entry in its close's manifest, from its object metadata (``head``: strings)
    or from an entry handed over (``write_shard``)."""
    return {
        "key": key,
        "period": period,
        "facts": int(meta.get("facts", 0)),
        "lifecycle": int(meta.get("lifecycle", 0)),
        "conflicts": int(meta.get("conflicts", 0)),
        "sha256": str(meta.get("sha256", "")),
        "bytes": int(meta.get("bytes", 0)),
    }


@dataclass(frozen=True)
class ArchiveLock:
    """Object Lock retention of every archive part and manifest: until the end of the
    part's period plus ``days`` (the fact log's retention), in ``mode``."""

    mode: str = "GOVERNANCE"  # COMPLIANCE in production: not even the root user shortens it
    days: int = ARCHIVE_RETENTION_DAYS

    @classmethod
    def from_env(cls) -> ArchiveLock | None:
        """``ARCHIVE_LOCK_MODE`` (default: ``INVOICE_LOCK_MODE``) / ``ARCHIVE_RETENTION_DAYS``;
        no lock when neither mode is set."""
        mode = os.environ.get("ARCHIVE_LOCK_MODE") or os.environ.get("INVOICE_LOCK_MODE", "")
        if not mode:
            return None
        days = int(os.environ.get("ARCHIVE_RETENTION_DAYS", str(ARCHIVE_RETENTION_DAYS)))
        return cls(mode=mode.upper(), days=days)

    def retain_until(self, period: str) -> datetime:
        return datetime.fromtimestamp(
            archive_retain_until_s(Period.parse(period), self.days), tz=UTC
        )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FactArchive:
    """Writes the close's parts and manifests; reads a shard's parts back (``ArchiveReader``
    of ``UsageStore``). Parts are immutable: a decoded part is cached by key."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        lock: ArchiveLock | None = None,
        clock: Callable[[], datetime] = _utc_now,
        storage_class: str = "INTELLIGENT_TIERING",
        cached_parts: int = 4,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.lock = lock
        self.clock = clock
        self.storage_class = storage_class
        self.cached_parts = cached_parts
        self._cache: OrderedDict[str, list[tuple[str, dict[str, Any]]]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._listings = Listings()  # this thread's, in a ``listing_scope``
        self.requests: dict[str, int] = {}  # S3 requests by kind (benchmarks)

    @classmethod
    def from_env(cls, s3: Any, bucket: str) -> FactArchive:
        return cls(
            s3,
            bucket,
            ArchiveLock.from_env(),
            storage_class=os.environ.get("ARCHIVE_STORAGE_CLASS", "INTELLIGENT_TIERING"),
        )

    def _count(self, kind: str) -> None:
        self.requests[kind] = self.requests.get(kind, 0) + 1

    # --- write (the close) --------------------------------------------------------------

    def write_shard(
        self,
        closing: str,
        account: str,
        period: Period,
        shard: str,
        lifecycle: Sequence[StoredFact],
        traffic: Sequence[StoredFact],
    ) -> dict[str, Any] | None:
        """Archive what the close of ``closing`` read of one shard of ``period``: the
        on-time facts if ``period`` is the one closed (always a part, even empty), else
        the late facts tagged for ``closing`` (a part only if there are some). ``traffic``
        is ``read_period``'s answer (its look-back tail is left out). The part's manifest
        entry (``part_entry``; that of the part already there when a re-run finds it, as
        ``seal`` would read it with a HEAD), or ``None``: what the close's unit hands over
        to the seal."""
        own = str(period)
        tag = None if closing == own else closing
        start = period.start_ms
        facts = [s for s in traffic if s.fact.at >= start and s.adj == tag]
        held = [s for s in lifecycle if s.adj == tag]
        if tag is not None and not facts and not held:
            return None
        key = part_key(own, account, shard, part_name(closing, own))
        part = encode_part(facts, held)
        try:
            there = self._put_or_find(key, part.body, "application/gzip", part.metadata(), own)
        except ArchiveConflict:
            if not self.same_facts(key, part):
                raise
            there = self.head(key) or {}  # in the older item form: its own checksum and size
        if there is None:  # written now
            there = {**part.metadata(), "bytes": str(len(part.body))}
        return part_entry(key, own, there)

    def same_facts(self, key: str, part: Part) -> bool:
        """Whether the part archived under ``key`` holds what ``part`` holds in another item
        form: the same kinds, facts, late tags and conflict markers, in the same order (a
        part written while fact items held their ``id`` and ``at``)."""
        self._count("GET")
        resp = self.s3.get_object(Bucket=self.bucket, Key=key)
        archived = decode_part(resp["Body"].read(), resp.get("Metadata", {}).get("sha256"))
        return _stored_rows(archived) == _stored_rows(decode_part(part.body, part.sha256))

    def put_once(
        self, key: str, body: bytes, content_type: str, metadata: dict[str, str], period: str
    ) -> bool:
        """Write ``body`` under ``key`` unless an object is there (a conditional put: one
        request when it is not): False if the same content is (by the ``sha256`` of
        ``metadata``), ``ArchiveConflict`` if another content is."""
        return self._put_or_find(key, body, content_type, metadata, period) is None

    def _put_or_find(
        self, key: str, body: bytes, content_type: str, metadata: dict[str, str], period: str
    ) -> dict[str, str] | None:
        """``put_once``: ``None`` if written, else the metadata (with ``bytes``: ``head``)
        of the same content found there."""
        put = partial(self._put, key, body, content_type, metadata, period)
        if put_new(put, key, ArchiveConflict):
            return None
        existing = self.head(key)
        if existing is not None and existing.get("sha256") == metadata["sha256"]:
            return existing
        raise ArchiveConflict(f"{key} was archived with other content; not overwritten")

    def _put(
        self, key: str, body: bytes, content_type: str, metadata: dict[str, str], period: str
    ) -> None:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
            "Metadata": metadata,
            "ChecksumAlgorithm": "SHA256",
            "StorageClass": self.storage_class,
            "IfNoneMatch": "*",  # never replaces an object: a part or manifest is written once
        }
        if self.lock is not None:
            args["ObjectLockMode"] = self.lock.mode
            args["ObjectLockRetainUntilDate"] = self.lock.retain_until(period)
        self._count("PUT")
        self.s3.put_object(**args)
        self._note_written(key)

    def head(self, key: str) -> dict[str, str] | None:
        """The metadata of an object (with ``bytes``), ``None`` if there is none."""
        self._count("HEAD")
        try:
            resp = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as err:
            if err.response["Error"]["Code"] in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise
        return {**resp.get("Metadata", {}), "bytes": str(resp["ContentLength"])}

    def seal(
        self,
        closing: str,
        account: str,
        sources: Sequence[str],
        entries: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    ) -> dict[str, Any]:
        """Write the manifest of the parts the close of ``closing`` wrote for ``account``
        (its period's base parts, the ``adj-{closing}`` parts of the prior periods it
        adjusted): key, counts, checksum and size of each. Written once.

        ``entries``: source period -> the entries (``write_shard``) of every part
        the close's units wrote of it, handed over in their partials: the manifest is
        written from them (no request). A source without entries (partials of an older
        version) is listed and each of its parts read with a HEAD: the same manifest."""
        parts: list[dict[str, Any]] = []
        mine = f"/{part_name(closing, '')}.jsonl.gz"
        for source in sorted(sources):
            wanted = f"/{BASE}.jsonl.gz" if source == closing else mine
            handed = None if entries is None else entries.get(source)
            if handed is not None:
                prefix = f"{ARCHIVE}{source}/{account}/"
                by_key = {str(e["key"]): e for e in handed}
                parts.extend(
                    part_entry(key, source, by_key[key])
                    for key in sorted(by_key)
                    if key.startswith(prefix) and key.endswith(wanted)
                )
                continue
            for key in self.list_keys(f"{ARCHIVE}{source}/{account}/"):
                if not key.endswith(wanted):
                    continue
                parts.append(part_entry(key, source, self.head(key) or {}))
        doc: dict[str, Any] = {
            "closing": closing,
            "account": account,
            "format": FORMAT,
            "parts": parts,
            "facts": sum(p["facts"] for p in parts),
            "lifecycle": sum(p["lifecycle"] for p in parts),
            "conflicts": sum(p["conflicts"] for p in parts),
        }
        if self.lock is not None:
            doc["retain_until"] = self.lock.retain_until(closing).isoformat()
        body = json.dumps(doc, sort_keys=True, indent=1).encode()
        digest = hashlib.sha256(body).hexdigest()
        self.put_once(
            manifest_key(closing, account), body, "application/json", {"sha256": digest}, closing
        )
        return doc

    # --- read ---------------------------------------------------------------------------

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            self._count("LIST")
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    def part(self, key: str) -> list[tuple[str, dict[str, Any]]]:
        """The decoded lines of one part, checked against its metadata's checksum."""
        with self._cache_lock:  # close units in threads of one process share the cache
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        self._count("GET")
        resp = self.s3.get_object(Bucket=self.bucket, Key=key)
        rows = decode_part(resp["Body"].read(), resp.get("Metadata", {}).get("sha256"))
        with self._cache_lock:
            self._cache[key] = rows
            while len(self._cache) > self.cached_parts:
                self._cache.popitem(last=False)
        return rows

    @contextmanager
    def listing_scope(self) -> Iterator[None]:
        """Within it, this thread lists the parts of an account's period once (one LIST
        instead of one per storage shard; a close unit reads every shard of its account).
        Safe because no one else writes parts of the shards the scope reads meanwhile: a
        shard's parts are written by the closes that read it, one close of a period at a
        time, and a part this thread writes is added to its period's listing."""
        with self._listings.scope():
            yield

    def shard_parts(self, account: str, period: str, shard: str) -> list[str]:
        prefix = shard_prefix(period, account, shard)
        listings = self._listings.current()
        if listings is None:
            return [k for k in self.list_keys(prefix) if k.endswith(".jsonl.gz")]
        key = (period, account)
        if key not in listings:
            listed = self.list_keys(f"{ARCHIVE}{period}/{account}/")
            listings[key] = [k for k in listed if k.endswith(".jsonl.gz")]
        return [k for k in listings[key] if k.startswith(prefix)]

    def _note_written(self, key: str) -> None:
        """A part written under ``key`` by this thread: in its scope's listing from now."""
        listings = self._listings.current()
        if listings and key.startswith(ARCHIVE) and not key.startswith(MANIFESTS):
            _, period, account, _rest = key.split("/", 3)
            listed = listings.get((period, account))
            if listed is not None and key not in listed:
                listings[(period, account)] = sorted([*listed, key])

    def archived(
        self, account: str, period: Period, shard: str, kind: str
    ) -> list[dict[str, Any]] | None:
        """Every archived item of ``kind`` of one shard, once the period's items may have
        expired (``None`` before: the table still holds them all)."""
        now_ms = int(self.clock().timestamp() * 1000)
        if not archive_needed(period, now_ms):
            return None
        out: list[dict[str, Any]] = []
        for key in self.shard_parts(account, str(period), shard):
            out.extend(item for k, item in self.part(key) if k == kind)
        return out

    def missing(self, period: str, accounts: Sequence[str], shards: Sequence[str]) -> list[str]:
        """``account/shard`` of each base part of ``period`` not written (yet)."""
        have = set(self.list_keys(f"{ARCHIVE}{period}/"))
        return [
            f"{a}/{s}" for a in accounts for s in shards if part_key(period, a, s, BASE) not in have
        ]


def unarchived(
    store: UsageStore,
    closing: str,
    hot_months: int,
    among: Callable[[list[str]], list[str]] | None = None,
) -> list[str]:
    """What is not archived of the items that expire next, checked by the close of
    ``closing`` (its ``finish``): the items first billed by the close of the period
    ``hot_months - 1`` before it, or ``closing`` itself with ``hot_months`` 0 or 1 (its own
    facts, and the late facts it adjusted for), which expire within weeks. That close
    sealed each account it read with a manifest once all its shards were archived, so a
    missing manifest is a close that did not finish the account: ``{period}/{account}`` of
    each (of the accounts ``among`` keeps, when the period checked is ``closing`` itself:
    those of its close group). Empty without an archive."""
    archive = store.archive
    if not isinstance(archive, FactArchive):
        return []
    expiring = Period.parse(closing)
    for _ in range(hot_months - 1):
        expiring = expiring.prev()
    period = str(expiring)
    due = set(store.period_accounts(period)) | set(store.adjusting_accounts(period))
    if among is not None and period == closing:
        due = set(among(sorted(due)))
    sealed = {
        key[len(MANIFESTS) :].removesuffix(".json").split("/", 1)[1]
        for key in archive.list_keys(f"{MANIFESTS}{period}/")
    }
    return sorted(f"{period}/{a}" for a in due - sealed)


@contextmanager
def listing_scope(store: UsageStore) -> Iterator[None]:
    """``FactArchive.listing_scope`` of the store's archive (nothing without one)."""
    if isinstance(store.archive, FactArchive):
        with store.archive.listing_scope():
            yield
    else:
        yield


def archive_shard(
    store: UsageStore,
    closing: str,
    account: str,
    period: Period,
    shard: str,
    lifecycle: Sequence[StoredFact],
    traffic: Sequence[StoredFact],
) -> dict[str, Any] | None:
    """The close's call (``MonthClose.shard_usage``): archive what it read of a source
    period's shard, if the store has an archive (``FactArchive.write_shard``); the part's
    manifest entry, which the unit hands over to ``seal_account`` in its partial."""
    if isinstance(store.archive, FactArchive):
        return store.archive.write_shard(closing, account, period, shard, lifecycle, traffic)
    return None


def archiving(store: UsageStore) -> bool:
    """Whether the close archives what it reads (the store has a ``FactArchive``)."""
    return isinstance(store.archive, FactArchive)


def seal_account(
    store: UsageStore,
    closing: str,
    account: str,
    sources: Sequence[str],
    entries: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> None:
    """The close's call once an account's units are done (``MonthClose.rate_account``),
    with the part entries its units handed over (``FactArchive.seal``)."""
    if isinstance(store.archive, FactArchive):
        store.archive.seal(closing, account, sources, entries)


__all__ = [
    "ARCHIVE",
    "ArchiveConflict",
    "ArchiveCorrupt",
    "ArchiveLock",
    "FactArchive",
    "archive_shard",
    "archiving",
    "decode_part",
    "encode_part",
    "listing_scope",
    "manifest_key",
    "part_entry",
    "part_key",
    "part_name",
    "seal_account",
    "stored_item",
    "unarchived",
]
