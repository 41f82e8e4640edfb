"""Event-id claims: one stored content per ``source``+``id``, whatever the account or month.

A fact's id is derived from ``source`` and ``id`` only; its storage key also holds the
account, the period and the shard, so two different events sent under one id would be
stored side by side in places no single reader sees together. Before a fact is written,
ingest *claims* its id:

========================  ===============  ============================================
pk                        sk               item
========================  ===============  ============================================
I#{first 2 chars of id}   {fact id}        the claim: content digest ``h``, where the
                                           first version is stored (``fpk``/``fsk``),
                                           ``c`` once a different content was seen
{pk of the first fact}    X#{fact id}      conflict marker: no version of the id is
                                           billed (``adj`` when that period is frozen)
========================  ===============  ============================================

A claim is one conditional put (``attribute_not_exists(sk) OR h = :h``), so an identical
redelivery passes and a different content under a claimed id fails, whichever arrives
first. The id is then conflicted for good: the claim is marked (``c``) and a marker is
written next to the first stored fact, where the close's query of that partition (and of
its look-back tail: ``X`` sorts after the digits of fact sort keys) finds it. Any later
delivery of any version of a conflicted id is rejected and writes the marker again, which
covers a crash between the two writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from billing.adapters.store import (
    CONFLICT_PREFIX,
    UsageStore,
    claim_pk,
    conflict_sk,
    fact_location,
    item_write_units,
    late_change,
)
from billing.domain.facts import Fact
from billing.domain.lateness import frozen_in_zone
from billing.domain.periods import UTC_ZONE, ZoneOf, period_at

CLAIM_WORKERS = 8  # claims are single conditional puts: run a batch's concurrently


class Claim(Enum):
    OWN = "own"  # first claim, or the same content again: store the fact
    CONFLICT = "conflict"  # a different content under the id, now or before: bill none


def content_digest(item: dict[str, Any]) -> str:
    """Digest of a fact's stored content (its key and the late tag excluded)."""
    body = {k: v for k, v in item.items() if k not in {"pk", "sk", "expires_at", "adj"}}
    text = json.dumps(body, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class ClaimResult:
    status: Claim
    first: dict[str, Any] | None = None  # the claim item of the first version (on conflict)


class Claims:
    def __init__(self, store: UsageStore, lookback_hours: int) -> None:
        self.store = store
        self.table = store.table
        self.lookback_hours = lookback_hours

    def _count(self, item: dict[str, Any]) -> None:
        if self.store.count_units:
            self.store.write_units += item_write_units(item)

    def claim(self, item: dict[str, Any]) -> ClaimResult:
        """Claim the id of the fact ``item`` (as it will be stored)."""
        fact_id = str(item["id"])
        claim = {
            "pk": claim_pk(fact_id),
            "sk": fact_id,
            "h": content_digest(item),
            "fpk": item["pk"],
            "fsk": item["sk"],
            "expires_at": item["expires_at"],
        }
        self._count(claim)
        try:
            self.table.put_item(
                Item=claim,
                ConditionExpression=(
                    "attribute_not_exists(sk) OR (h = :h AND attribute_not_exists(c))"
                ),
                ExpressionAttributeValues={":h": claim["h"]},
            )
            return ClaimResult(Claim.OWN)
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        key = {"pk": claim["pk"], "sk": fact_id}
        first = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        if first is None:  # the claim expired in between: claim again
            return self.claim(item)
        if "c" not in first:
            self._count(first)
            self.table.update_item(
                Key=key, UpdateExpression="SET c = :t", ExpressionAttributeValues={":t": True}
            )
        return ClaimResult(Claim.CONFLICT, dict(first))

    def first_fact(self, first: dict[str, Any]) -> dict[str, Any] | None:
        """The stored fact of the first version (``None`` if it was never written)."""
        got = self.table.get_item(Key={"pk": first["fpk"], "sk": first["fsk"]}).get("Item")
        return dict(got) if got else None

    def mark(
        self,
        first: dict[str, Any],
        frozen: Iterable[str],
        zone_of: Callable[[str], ZoneOf | None] = lambda account: None,
    ) -> dict[str, Any] | None:
        """Write the conflict marker next to the first stored fact (once: never retagged)
        and return that fact (``None`` if it was never written).

        If that fact's period is frozen, its removal is a late change: the marker carries
        the adjusting period, which gets the ``ADJ#`` markers a late fact would. The first
        fact's period is the one of *its* account's calendar (``zone_of``: the account's
        zones, ``None`` for UTC) and ``frozen`` the labels of every frozen close group."""
        fpk, fsk = str(first["fpk"]), str(first["fsk"])
        account, at = fact_location(fpk, fsk)
        stored = self.first_fact(first)
        marker: dict[str, Any] = {
            "pk": fpk,
            "sk": conflict_sk(str(first["sk"])),
            "id": first["sk"],
            "at": at,
            "expires_at": first["expires_at"],
        }
        fact = Fact.from_item(stored) if stored else None
        zones = zone_of(account)
        if fact is not None and zones is not None:
            fact = replace(fact, local=period_at(fact.at, zones))
        zone = fact.period.zone if fact is not None else UTC_ZONE
        frozen_set = frozen_in_zone(frozenset(frozen), zone)
        if fact is not None and str(fact.period) in frozen_set:
            change = late_change(account, fact, frozen_set, self.lookback_hours)
            marker["adj"] = change.adj
            # the marker's own adjusting markers first: a crash after them is harmless
            self.store.put_items(change.markers)
        self.store.put_late(marker)
        return stored


__all__ = ["CONFLICT_PREFIX", "Claim", "ClaimResult", "Claims", "claim_pk", "content_digest"]
