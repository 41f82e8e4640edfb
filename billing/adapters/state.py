"""Entity state carried from one close to the next, in S3 next to the close's work files.

``state/{account}/{shard}/{period}/{as of}.json.gz``: the lifecycle facts of one storage
shard that the periods from ``period`` on still need (``billing.domain.entities``), as the
close of period ``as of`` knew them. Versions are never overwritten by different content:
a close that learns of late lifecycle facts writes new versions under its own ``as of``,
so a re-run of an earlier close still reads what that close read.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from billing.adapters.invoices import DocumentStore
from billing.adapters.scopes import Listings
from billing.domain.facts import Fact

STATE = "state/"
_SERIALIZE = TypeSerializer().serialize
_DESERIALIZE = TypeDeserializer().deserialize


def state_key(account: str, shard: str, period: str, as_of: str) -> str:
    return f"{STATE}{account}/{shard}/{period}/{as_of}.json.gz"


def encode(facts: Sequence[Fact]) -> bytes:
    """Deterministic bytes (sorted keys, gzip without a timestamp): a re-run writes the
    same object. Values are typed the way DynamoDB stores them, so a fact read back is the
    fact read from the table."""
    items = [{k: _SERIALIZE(v) for k, v in f.to_item().items()} for f in facts]
    body = json.dumps(items, sort_keys=True, separators=(",", ":")).encode()
    return gzip.compress(body, mtime=0)


def decode(body: bytes) -> list[Fact]:
    items = json.loads(gzip.decompress(body))
    return [Fact.from_item({k: _DESERIALIZE(v) for k, v in item.items()}) for item in items]


@dataclass(frozen=True)
class Snapshot:
    period: str  # the state at the start of this period
    as_of: str
    facts: list[Fact]


def pick(versions: Sequence[tuple[str, str]], period: str, known_at: str) -> tuple[str, str] | None:
    """Of saved (period, as of) versions, the most recent state at the start of ``period``
    or of an earlier period, as known by the close of ``known_at``."""
    fit = [v for v in versions if v[0] <= period and v[1] <= known_at]
    return max(fit) if fit else None


class StateStore:
    def __init__(self, documents: DocumentStore, cache: int = 0) -> None:
        self.documents = documents
        # the live view reads the same versions again and again: a closed period's saved
        # state never changes, so up to ``cache`` of them are kept (0: none, the close)
        self.cache_size = cache
        self._cache: dict[tuple[str, str, str, str], Snapshot] = {}
        self._listings = Listings()  # this thread's, in a ``listing_scope``

    @contextmanager
    def listing_scope(self) -> Iterator[None]:
        """Within it, this thread lists an account's saved states once (one listing of the
        account's prefix instead of one per shard: a live stream batch refreshes many
        shards of an account). A state a close saves meanwhile is missed: the refresh then
        starts from an earlier state or the stored history, whose live item never
        replaces one computed from a later close's state (``UsageStore.put_live_shard``:
        its epoch)."""
        with self._listings.scope():
            yield

    def versions(self, account: str, shard: str) -> list[tuple[str, str]]:
        """Every saved (period, as of) of one shard (one listing of its prefix; of the
        account's, once per ``listing_scope``)."""
        listings = self._listings.current()
        if listings is None:
            return self.account_versions(account, [shard]).get(shard, [])
        if account not in listings:
            listings[account] = self.account_versions(account, None)
        by_shard: dict[str, list[tuple[str, str]]] = listings[account]
        return by_shard.get(shard, [])

    def account_versions(
        self, account: str, shards: Sequence[str] | None
    ) -> dict[str, list[tuple[str, str]]]:
        """shard -> every saved (period, as of), for ``shards`` of the account (``None``:
        every shard): one listing of the account's prefix (of the shard's, for one)."""
        prefix = f"{STATE}{account}/"
        listed = f"{prefix}{shards[0]}/" if shards is not None and len(shards) == 1 else prefix
        wanted = set(shards) if shards is not None else None
        out: dict[str, list[tuple[str, str]]] = {}
        for key in self.documents.list_keys(listed):
            shard, of, name = key[len(prefix) :].split("/", 2)
            if wanted is None or shard in wanted:
                out.setdefault(shard, []).append((of, name.removesuffix(".json.gz")))
        return out

    def read(self, account: str, shard: str, period: str, as_of: str) -> Snapshot | None:
        """One saved version; ``None`` if it is gone (expired since it was listed)."""
        name = (account, shard, period, as_of)
        if name in self._cache:
            return self._cache[name]
        body = self.documents.read(state_key(*name))
        if body is None:
            return None
        snapshot = Snapshot(period, as_of, decode(body))
        if self.cache_size:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[name] = snapshot
        return snapshot

    def probe(self, account: str, shard: str, period: str, as_of: str) -> Snapshot | None:
        """One version that may not exist, without listing: ``None`` if it does not (a
        caller allowed to list only ``state/`` may be told 403 for a missing key)."""
        try:
            return self.read(account, shard, period, as_of)
        except ClientError as err:
            if err.response["Error"]["Code"] in {"AccessDenied", "403"}:
                return None
            raise

    def latest(self, account: str, shard: str, period: str, known_at: str) -> Snapshot | None:
        """The most recent state at the start of ``period`` or of an earlier period, as
        known by the close of ``known_at`` (the latest version written up to then)."""
        best = pick(self.versions(account, shard), period, known_at)
        return None if best is None else self.read(account, shard, *best)

    def put(self, account: str, shard: str, period: str, as_of: str, facts: Sequence[Fact]) -> None:
        key = state_key(account, shard, period, as_of)
        self.documents.write(key, encode(facts), "application/gzip")
