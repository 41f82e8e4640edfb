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
from collections.abc import Sequence
from dataclasses import dataclass

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from billing.adapters.invoices import DocumentStore
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


class StateStore:
    def __init__(self, documents: DocumentStore) -> None:
        self.documents = documents

    def latest(self, account: str, shard: str, period: str, known_at: str) -> Snapshot | None:
        """The most recent state at the start of ``period`` or of an earlier period, as
        known by the close of ``known_at`` (the latest version written up to then)."""
        best: tuple[str, str] | None = None
        prefix = f"{STATE}{account}/{shard}/"
        for key in self.documents.list_keys(prefix):
            of, name = key[len(prefix) :].split("/", 1)
            as_of = name.removesuffix(".json.gz")
            if of <= period and as_of <= known_at and (best is None or (of, as_of) > best):
                best = (of, as_of)
        if best is None:
            return None
        body = self.documents.read(state_key(account, shard, *best))
        if body is None:  # listed but gone: expired between the two calls
            return None
        return Snapshot(best[0], best[1], decode(body))

    def put(self, account: str, shard: str, period: str, as_of: str, facts: Sequence[Fact]) -> None:
        key = state_key(account, shard, period, as_of)
        self.documents.write(key, encode(facts), "application/gzip")
