"""The expiry guard: a fact item that expires before its close archived it is kept.

A fact item (and an id-conflict marker) carries a TTL (``billing.domain.retention``): a
couple of weeks after the period whose close bills it, a close that archives it first
(``billing.adapters.archive``). If that close has not run by then (a failed or paused
close), DynamoDB's TTL deletes the item anyway. The deletion reaches the table's stream
with the item as it was (the stream's ``OLD_IMAGE``) and a ``userIdentity`` naming the
DynamoDB service; the guard's event source mapping passes those records only, and the
guard decides for each item:

- **archived**: the part the billing close wrote for its shard (``base`` of its period,
  or ``adj-{A}`` for a late fact tagged ``A``) holds its sort key. Nothing to do: every
  item of a closed period ends this way.
- **not billed yet** (its billing period is not frozen in the account's calendar): put
  back as it was, hot for ``TTL_MARGIN_DAYS`` more. The close, when it runs, reads it.
- **missed** (frozen, yet not in the part: the close read the shard in the moment between
  the deletion and the put back): stored again as a late change, the way ingest stores a
  fact of a frozen period (``late_change``), so the next close bills it.

A record that fails is reported (``batchItemFailures``) and retried; the put back is
conditional (``attribute_not_exists``), so a retry never rewrites what another one stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from billing.adapters.archive import FactArchive, part_key, part_name
from billing.adapters.store import (
    CONFLICT_PREFIX,
    MARGIN_DAYS,
    UsageStore,
    fact_of_item,
    item_expiry,
    late_change,
    shard_of_item,
)
from billing.domain.facts import Fact
from billing.domain.lateness import frozen_in_zone
from billing.domain.periods import UTC_ZONE, Period, ZoneOf, zoned, zones_from
from billing.domain.settings import DEFAULT_SETTINGS

LOG = logging.getLogger(__name__)
_DESERIALIZE = TypeDeserializer().deserialize
TTL_PRINCIPAL = "dynamodb.amazonaws.com"  # the userIdentity of a deletion by TTL

ARCHIVED, RESTORED, LATE = "archived", "restored", "late"


def expired_item(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The item a stream record says DynamoDB's TTL deleted, ``None`` for any other
    record (a write, a deletion by the application, an item of no shard)."""
    identity = record.get("userIdentity") or {}
    if record.get("eventName") != "REMOVE" or identity.get("type") != "Service":
        return None
    if identity.get("principalId") != TTL_PRINCIPAL:
        return None
    image = record.get("dynamodb", {}).get("OldImage")
    if not image:
        return None
    item = {name: _DESERIALIZE(value) for name, value in image.items()}
    return item if shard_of_item(str(item.get("pk", ""))) is not None else None


@dataclass
class GuardOutcome:
    counts: dict[str, int] = field(default_factory=lambda: {ARCHIVED: 0, RESTORED: 0, LATE: 0})
    failed: list[str] = field(default_factory=list)  # sequence numbers of failed records


class ExpiryGuard:
    def __init__(
        self,
        store: UsageStore,
        archive: FactArchive,
        *,
        lookback_hours: int = DEFAULT_SETTINGS.lookback_hours,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.archive = archive
        self.lookback_hours = lookback_hours
        self.clock = clock

    def handle(self, records: Iterable[Mapping[str, Any]]) -> GuardOutcome:
        """One batch of the stream: each expired item decided on its own; the frozen
        periods read once, the parts and the accounts' zones once per batch."""
        outcome = GuardOutcome()
        frozen: frozenset[str] | None = None
        parts: dict[str, frozenset[str]] = {}
        zones: dict[str, ZoneOf | None] = {}
        for record in records:
            item = expired_item(record)
            if item is None:
                continue
            try:
                if frozen is None:
                    frozen = self.store.frozen_periods()
                verdict = self.keep(item, frozen, parts, zones)
            except Exception:
                LOG.exception("expired item not kept: %s %s", item.get("pk"), item.get("sk"))
                outcome.failed.append(str(record["dynamodb"]["SequenceNumber"]))
                break  # the stream retries from this record, in order
            outcome.counts[verdict] += 1
        return outcome

    def keep(
        self,
        item: dict[str, Any],
        frozen: frozenset[str],
        parts: dict[str, frozenset[str]],
        zones: dict[str, ZoneOf | None],
    ) -> str:
        """Decide for one expired item (see the module's docstring); its verdict."""
        pk, sk = str(item["pk"]), str(item["sk"])
        where = shard_of_item(pk)
        assert where is not None  # expired_item keeps shard items only
        billed_by = str(item.get("adj") or where.period)
        key = part_key(where.period, where.account, where.shard, part_name(billed_by, where.period))
        if key not in parts:
            parts[key] = self._archived_keys(key)
        if sk in parts[key]:
            return ARCHIVED
        if where.account not in zones:
            versions = self.store.plan_zones(where.account)
            utc = all(zone == UTC_ZONE for _, zone in versions)
            zones[where.account] = None if utc else zones_from(versions)
        zone_of = zones[where.account]
        billing = Period.parse(billed_by)
        zone = zoned(billing, zone_of).zone if zone_of is not None else UTC_ZONE
        frozen_here = frozen_in_zone(frozen, zone)
        if billed_by not in frozen_here:
            hot = {**item, "expires_at": int(self.clock()) + MARGIN_DAYS * 86_400}
            self.store.put_late(hot)
            return RESTORED
        own = Period.parse(where.period)
        local = zoned(own, zone_of) if zone_of is not None else own
        change = late_change(
            where.account, self._fact(item, local), frozen_here, self.lookback_hours
        )
        self.store.put_items(change.markers)  # the markers first, as ingest stores them
        late = {**item, "adj": change.adj, "expires_at": item_expiry(Period.parse(change.adj))}
        self.store.put_late(late)
        LOG.warning(
            "expired item missed by the close of %s: a late change of %s", billed_by, change.adj
        )
        return LATE

    def _archived_keys(self, key: str) -> frozenset[str]:
        """The sort keys a part holds; none when the part is not written."""
        try:
            rows = self.archive.part(key)
        except ClientError as err:
            if err.response["Error"]["Code"] in {"NoSuchKey", "404", "NotFound"}:
                return frozenset()
            raise
        return frozenset(str(row["sk"]) for _, row in rows)

    @staticmethod
    def _fact(item: Mapping[str, Any], local: Period) -> Fact:
        """The fact (or, for a conflict marker, its stand-in) whose late change the item is:
        its time, its entity (lifecycle) and its period in the account's calendar."""
        if str(item["sk"]).startswith(CONFLICT_PREFIX):
            entity = "marker" if str(item["pk"]).startswith("E#") else None
            marker = Fact(str(item["id"]), "id_conflict", int(item["at"]), "", {}, entity)
            return replace(marker, local=local)
        return replace(fact_of_item(item), local=local)


__all__ = ["ARCHIVED", "LATE", "RESTORED", "ExpiryGuard", "GuardOutcome", "expired_item"]
