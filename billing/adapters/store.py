"""DynamoDB storage: the fact log, entity lifecycles, period control, plans and close results.

One table, ``pk``/``sk`` strings (see docs/architecture.md for the access patterns):

========================  ===============================  ==================================
pk                        sk                               item
========================  ===============================  ==================================
F#{acct}#{period}#{nn}    {at:013d}#{fact id}#{digest}     a fact of period ``period``, shard nn
E#{acct}#{period}#{nn}    {at:013d}#{fact id}#{digest}     a lifecycle fact (recording, number..)
(the fact's pk)           X#{fact id}                      id conflict (the id audit): not billed
P#{period}                A#{acct}                         the account has usage in the period
P#{period}                ADJ#{acct}#{prior period}        late facts of a closed prior period
P#{period}                ADJ#{acct}#{prior}#carried       an adjustment carried from a close
P#{period}                IDS#{bucket}                     reused event ids the id audit found
P#{period}                STATUS                           frozen / closed
P#{period}                R#{acct}                         close result of one account
P#{period}                LOCK                             the execution closing the period
P#{period}                DOCS                             the close writing the period's manifest
CONTROL                   FROZEN                           the set of frozen close groups
CONTROL                   ZONES                            every time zone plans name
ACCOUNTS                  {acct}                           the account has a price plan
PLAN#{acct}               {effective period}               the price plan document
PLAN#{acct}               ZONES                            each plan version's time zone
PROFILE#{acct}            {effective period}               the billing profile document
SELLER#{seller}           {effective period}               the seller document
SERIES#{prefix}           COUNTER                          last number of a number series
DOC#{number}              DOC                              a numbered document: where it is
DOC#{number}              CLAIM#{what}                     a correction of it (void, credit..)
P#{period}                FIN#{acct}                       the number of the period's invoice
L#{acct}#{period}         S#{nn}                           live view: one shard's usage now
L#{acct}#{period}         ALERT#{threshold id}             a usage threshold reached (once)
LIVE_DIRTY                {acct}#{period}#{nn}             a large shard's refresh deferred
THRESHOLD#{acct}          {threshold id}                   a usage threshold set by the CLI
========================  ===============================  ==================================

A fact's item holds its type, key, attributes and entity (``t``, ``k``, ``a``, ``e``:
``Fact.to_item``); its id and time are read from its sort key, not stored again
(``fact_attributes``, ``fact_of_item``; an item written before holds ``id`` and ``at`` too).
It is derived only from the event, so a redelivered event writes an identical
item: one unconditional put per event, idempotent, in batches of 25. Late facts (their
period is frozen) are the exception: a conditional put that never overwrites, tagged with
the period whose invoice adjusts for them.

Lifecycle facts (recordings, numbers, seats, SIMs) are sharded by their entity and kept
apart from the period's other facts: the close reads them to roll the carried entity
state (``billing.adapters.state``) forward without reading the period's traffic.

Fact items expire ``HOT_MONTHS`` periods (default 0) and ``TTL_MARGIN_DAYS`` after the
period whose close first bills them (their own, or the adjusting one of a late fact); that
close archives them to S3 before (``billing.adapters.archive``; one that did not is stored
again by ``billing.expiry``), and ``read_period`` / ``read_lifecycle`` add the archived
items once a period's items may have expired (``billing.domain.retention``).
"""

from __future__ import annotations

import gzip
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import Binary
from botocore.exceptions import ClientError

from billing.adapters import expressions
from billing.domain.facts import Fact, shard_of
from billing.domain.lateness import adjustment_period, affected_periods
from billing.domain.periods import MS_PER_DAY, MS_PER_HOUR, Period
from billing.domain.retention import expires_at, hot_months_from, margin_days_from

expressions.install()  # before any resource registers its condition-expression handler

FACT_RETENTION_DAYS = 400  # the fact log outlives the period by 13 months (adjustments, audit)
# Months after the period whose close bills it that a fact stays in the table
# (``HOT_MONTHS``, default and least 0), then days (``TTL_MARGIN_DAYS``, least 14); the
# archive keeps it for the rest of the retention (billing.domain.retention,
# billing.adapters.archive).
HOT_MONTHS = hot_months_from(os.environ)
MARGIN_DAYS = margin_days_from(os.environ)


def item_expiry(billed_by: Period) -> int:
    """The TTL of a table item first billed by the close of ``billed_by`` (``expires_at``)."""
    return expires_at(billed_by, HOT_MONTHS, MARGIN_DAYS)


HISTORY_MONTHS = 13  # what is still stored of the fact log, in whole periods
# The close sizes an account's work from one counting Query per storage shard: exact below
# this many facts in every shard (about 32k facts for 16 shards: most accounts), an
# extrapolation above it. A count reads at most ~0.6 MB: <= 68 read units, 8 for a small account.
PROBE_PAGE = 2_000


def fact_pk(account: str, period: Period | str, shard: int | str) -> str:
    label = shard if isinstance(shard, str) else f"{shard:02d}"
    return f"F#{account}#{period}#{label}"


CONFLICT_PREFIX = "X#"  # an id-conflict marker's sk: sorts after the digits of fact sort keys


def conflict_sk(fact_id: str) -> str:
    """The sort key of the conflict marker of ``fact_id`` (next to each stored version)."""
    return f"{CONFLICT_PREFIX}{fact_id}"


def registry_item(account: str, period: Period | str) -> dict[str, str]:
    """Ingest's registry entry: ``account`` has facts stored in ``period`` (``P#``/``A#``)."""
    return {"pk": f"P#{period}", "sk": f"A#{account}"}


def registered(item: Mapping[str, Any]) -> tuple[str, str] | None:
    """(account, period) of a registry item (``registry_item``); ``None`` for any other."""
    pk, sk = str(item["pk"]), str(item["sk"])
    return (sk[2:], pk[2:]) if pk.startswith("P#") and sk.startswith("A#") else None


def adjustment_marker(period: str, account: str, prior: str) -> dict[str, str]:
    """The close of ``period`` adjusts ``prior`` for ``account``: a late fact was stored."""
    return {"pk": f"P#{period}", "sk": f"ADJ#{account}#{prior}"}


def fact_location(pk: str, sk: str) -> tuple[str, int]:
    """(account, epoch ms) of a fact or lifecycle item from its key."""
    shard = shard_of_item(pk)
    if shard is None:
        raise ValueError(f"not a fact key: {pk!r}")
    return shard.account, int(sk.split("#", 1)[0])


def _adjustment_prior(sk: str) -> str:
    """The prior period of an ``ADJ#{acct}#{prior}[#carried]`` marker."""
    return sk.split("#")[2]


def lifecycle_pk(account: str, period: Period | str, shard: int | str) -> str:
    label = shard if isinstance(shard, str) else f"{shard:02d}"
    return f"E#{account}#{period}#{label}"


@dataclass(frozen=True, slots=True)
class ShardKey:
    """Where a stored fact item belongs: account, period and storage shard."""

    account: str
    period: str
    shard: str


def shard_of_item(pk: str) -> ShardKey | None:
    """The shard a fact, lifecycle fact or conflict marker item belongs to (by its ``pk``);
    ``None`` for every other item of the table."""
    kind, _, rest = pk.partition("#")
    if kind not in ("F", "E"):
        return None
    account, period, shard = rest.rsplit("#", 2) if rest.count("#") >= 2 else ("", "", "")
    return ShardKey(account, period, shard) if account else None


# A live item's compressed usage document stays under DynamoDB's 400 KB item limit; a
# larger one (distinct members of a shard of millions of facts) is stored in parts of this
# size, next to the item, which names how many.
LIVE_ITEM_BYTES = 380_000


LIVE_EPOCH = 10**13  # a live item's version: (epoch, items) as epoch * LIVE_EPOCH + items
LIVE_READ_ATTEMPTS = 3  # reads of a live view whose parts are being replaced
LIVE_PART = "P#"  # a part of a large shard's live document: P#{shard}#{version}#{i}


def _live_part_sk(shard: str, version: int, index: int) -> str:
    return f"{LIVE_PART}{shard}#{version:012d}#{index:04d}"


def _live_part_version(sk: str) -> int:
    return int(sk.split("#")[2])


def live_pk(account: str, period: str) -> str:
    return f"L#{account}#{period}"


def shard_labels(shards: int) -> list[str]:
    """The storage shards of one account and period (the close groups them into units)."""
    return [f"{n:02d}" for n in range(shards)]


def shard_groups(labels: Sequence[str], count: int) -> list[list[str]]:
    """``labels`` cut into ``count`` (1 to ``len(labels)``) contiguous groups of sizes
    differing by at most one: the storage shards of each unit of an account's close."""
    n = max(1, min(count, len(labels)))
    return [list(labels[i * len(labels) // n : (i + 1) * len(labels) // n]) for i in range(n)]


@dataclass(frozen=True, slots=True)
class StoredFact:
    fact: Fact
    adj: str | None  # the period whose close adjusts for this late fact; None if on time
    conflict: bool = False  # a conflict marker: no fact with ``fact.id`` is billed


def fact_sk(fact: Fact) -> str:
    """A fact's sort key: time first (the close's look-back reads a tail), then its id and
    the digest of its content. A redelivery rewrites the same item; another content sent
    under the same id is stored next to it, whatever the order, and readers see both
    (``billing.shard.View``)."""
    return version_sk(fact.at, fact.id, fact.digest())


def version_sk(at: int, fact_id: str, digest: str) -> str:
    """The sort key of one stored version of an event id (``fact_sk``)."""
    return f"{at:013d}#{fact_id}#{digest}"


def version_of_sk(sk: str) -> tuple[int, str, str]:
    """(at, fact id, digest) of a version's sort key (``version_sk``): the time before the
    first ``#``, the digest (base64url: no ``#``) after the last, the id (which may hold
    ``#``) between them."""
    at, sep, rest = sk.partition("#")
    fact_id, sep_digest, digest = rest.rpartition("#")
    if not sep or not sep_digest:
        raise ValueError(f"not a fact sort key: {sk!r}")
    return int(at), fact_id, digest


def fact_attributes(fact: Fact) -> dict[str, Any]:
    """What a fact's item holds of it: its sort key (``fact_sk``) and ``Fact.to_item``
    without ``id`` and ``at``, which the sort key holds (``fact_of_item`` reads them back)."""
    item = fact.to_item()
    del item["id"], item["at"]
    item["sk"] = fact_sk(fact)
    return item


def fact_item(account: str, fact: Fact, shards: int, adj: str | None = None) -> dict[str, Any]:
    """The table item of ``fact`` (``fact_attributes``, ``pk``, ``expires_at``, ``adj``)."""
    item = fact_attributes(fact)
    make_pk = fact_pk if fact.entity is None else lifecycle_pk
    item["pk"] = make_pk(account, fact.period, shard_of(fact.key, shards))
    # hot until the close that bills it (its own period's, or the adjusting one) is done
    billed_by = fact.period if adj is None else Period.parse_label(adj)
    item["expires_at"] = item_expiry(billed_by)
    if adj is not None:
        item["adj"] = adj
    return dict(_to_dynamo(item))


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_dynamo(v) for v in value]
    return value


class CloseInProgress(Exception):
    """Another execution holds the close lock of the period."""

    def __init__(self, period: str, owner: str) -> None:
        super().__init__(f"period {period} is being closed by execution {owner}")
        self.period = period
        self.owner = owner


class WriteFailed(Exception):
    """Some items could not be written after retries (throttling); the caller retries."""

    def __init__(self, failed: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(failed)} items not written")
        self.failed = failed


class ArchiveReader(Protocol):
    """The archived items of one account, period and storage shard (``billing.adapters.
    archive``): ``kind`` ``F`` (period facts and their conflict markers) or ``E`` (lifecycle
    facts); ``None`` when no item of the period can have expired yet (nothing to add)."""

    def archived(
        self, account: str, period: Period, shard: str, kind: str
    ) -> list[dict[str, Any]] | None: ...


class PeriodDocumentsBusy(Exception):
    """Another writer holds the period's documents lock (a close's Finish retries)."""


# The period documents lock: its lease outlives the Finish function's timeout (60 s), so a
# lease that runs out means its holder is gone.
DOCUMENTS_LEASE_SECONDS = 120
DOCUMENTS_WAIT_SECONDS = 30


class DocumentsLock:
    """``P#{period}/DOCS``: one writer at a time of the documents every close group of a
    period shares (manifest, summaries): a close's Finish, a void or a credit note."""

    table: Any

    def acquire_documents_lock(self, period: str, owner: str, now: int, lease_seconds: int) -> bool:
        """Take ``P#{period}/DOCS`` for ``owner`` if it is free or its lease has expired:
        the right to read the period's results and rewrite its shared documents (manifest,
        summaries). False while another holder's lease runs."""
        return _take_lease(self.table, f"P#{period}", "DOCS", owner, now, lease_seconds)

    def release_documents_lock(self, period: str, owner: str) -> None:
        """Free ``P#{period}/DOCS`` if ``owner`` holds it (a no-op otherwise)."""
        _free_lease(self.table, f"P#{period}", "DOCS", owner)


def _take_lease(
    table: Any,
    pk: str,
    sk: str,
    owner: str,
    now: int,
    lease_seconds: int,
    *,
    reentrant: bool = False,
) -> bool:
    """Put the lease item ``pk/sk`` for ``owner`` until ``now + lease_seconds`` if it is
    free or its lease has run out (or, ``reentrant``, ``owner`` already holds it)."""
    held_by_owner = " OR #o = :o" if reentrant else ""
    try:
        table.put_item(
            Item={"pk": pk, "sk": sk, "owner": owner, "lease_until": now + lease_seconds},
            ConditionExpression=f"attribute_not_exists(pk) OR lease_until < :now{held_by_owner}",
            ExpressionAttributeValues={":now": now, **({":o": owner} if reentrant else {})},
            **({"ExpressionAttributeNames": {"#o": "owner"}} if reentrant else {}),
        )
    except ClientError as err:
        if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return False
    return True


def _free_lease(table: Any, pk: str, sk: str, owner: str) -> None:
    """Delete the lease item ``pk/sk`` if ``owner`` holds it (a no-op otherwise)."""
    try:
        table.delete_item(
            Key={"pk": pk, "sk": sk},
            ConditionExpression="#o = :o",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":o": owner},
        )
    except ClientError as err:
        if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise


@contextmanager
def period_documents(
    lock: DocumentsLock, period: str, wait_seconds: float = DOCUMENTS_WAIT_SECONDS
) -> Iterator[None]:
    """Hold the period's documents lock while reading what the shared documents list and
    rewriting them: two writers at once would each write what they read, and the later one
    could leave out the other's accounts or corrections. A held lock is waited for with
    backoff (``PeriodDocumentsBusy`` after ``wait_seconds``); its lease (wall-clock
    seconds) frees it after a crash."""
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while not lock.acquire_documents_lock(period, owner, int(time.time()), DOCUMENTS_LEASE_SECONDS):
        if time.monotonic() >= deadline:
            raise PeriodDocumentsBusy(f"the documents of {period} are being written")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
    try:
        yield
    finally:
        lock.release_documents_lock(period, owner)


class UsageStore(DocumentsLock):
    def __init__(
        self,
        table: Any,
        shards: int,
        count_units: bool = False,
        archive: ArchiveReader | None = None,
        consistent_reads: bool = False,
    ) -> None:
        self.table = table
        self.client = table.meta.client
        self.shards = shards
        # the live view's refresh must see the item whose stream record triggered it
        self.consistent_reads = consistent_reads
        self.count_units = count_units  # benchmarks: count write request units by DynamoDB's rule
        self.write_units = 0
        self.archive = archive  # facts of periods whose items expire (read_period, read_lifecycle)

    # --- ingest -------------------------------------------------------------------

    def put_items(self, items: Sequence[dict[str, Any]], attempts: int = 6) -> None:
        """BatchWriteItem in chunks of 25, retrying unprocessed items with backoff. A chunk
        refused as a whole for a reason other than throttling (one invalid item) is written
        item by item, so that only the refused items fail (``WriteFailed``)."""
        pending = list(items)
        refused: list[dict[str, Any]] = []
        for attempt in range(attempts):
            unprocessed: list[dict[str, Any]] = []
            for start in range(0, len(pending), 25):
                chunk = pending[start : start + 25]
                try:
                    resp = self.client.batch_write_item(
                        RequestItems={self.table.name: [{"PutRequest": {"Item": i}} for i in chunk]}
                    )
                except ClientError as err:
                    if not _throttled(err):
                        if err.response["Error"]["Code"] != "ValidationException":
                            raise
                        self._put_one_by_one(chunk, unprocessed, refused)
                        continue
                    unprocessed.extend(chunk)
                    continue
                left = resp.get("UnprocessedItems", {}).get(self.table.name, [])
                unprocessed.extend(r["PutRequest"]["Item"] for r in left)
                if self.count_units:
                    self.write_units += sum(item_write_units(i) for i in chunk) - sum(
                        item_write_units(r["PutRequest"]["Item"]) for r in left
                    )
            if not unprocessed:
                if refused:
                    raise WriteFailed(refused)
                return
            pending = unprocessed
            time.sleep(min(0.05 * 2**attempt, 1.0))
        raise WriteFailed(pending + refused)

    def _put_one_by_one(
        self,
        chunk: Sequence[dict[str, Any]],
        unprocessed: list[dict[str, Any]],
        refused: list[dict[str, Any]],
    ) -> None:
        for item in chunk:
            try:
                self.table.put_item(Item=item)
            except ClientError as err:
                (unprocessed if _throttled(err) else refused).append(item)
                continue
            self._count(item)

    def put_late(self, item: dict[str, Any]) -> bool:
        """Write a late fact unless a version of it is already stored. True if written."""
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                self._count(item)  # a failed condition still costs its write units
                return False
            raise
        self._count(item)
        return True

    def _count(self, item: Mapping[str, Any]) -> None:
        if self.count_units:
            self.write_units += item_write_units(item)

    def frozen_periods(self) -> frozenset[str]:
        item = self.table.get_item(Key={"pk": "CONTROL", "sk": "FROZEN"}).get("Item")
        return frozenset(item.get("periods", ())) if item else frozenset()

    # --- close --------------------------------------------------------------------

    def freeze(self, period: str, at: str) -> None:
        self.table.update_item(
            Key={"pk": "CONTROL", "sk": "FROZEN"},
            UpdateExpression="ADD periods :p",
            ExpressionAttributeValues={":p": {period}},
        )
        self.table.update_item(
            Key={"pk": f"P#{period}", "sk": "STATUS"},
            UpdateExpression=(
                "SET #s = if_not_exists(#s, :f), frozen_at = if_not_exists(frozen_at, :t)"
            ),
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":f": "frozen", ":t": at},
        )

    def mark_closed(self, period: str, at: str) -> None:
        self.table.update_item(
            Key={"pk": f"P#{period}", "sk": "STATUS"},
            UpdateExpression="SET #s = :c, closed_at = if_not_exists(closed_at, :t)",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":c": "closed", ":t": at},
        )

    def period_status(self, period: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"pk": f"P#{period}", "sk": "STATUS"}).get("Item")
        return dict(item) if item else None

    def _query(self, **kw: Any) -> Iterator[dict[str, Any]]:
        if self.consistent_reads:
            kw.setdefault("ConsistentRead", True)
        while True:
            resp = self.table.query(**kw)
            yield from resp.get("Items", [])
            if "LastEvaluatedKey" not in resp:
                return
            kw["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def accounts_page(
        self, period: str, cursor: str | None, limit: int = 100
    ) -> tuple[list[str], str | None]:
        """Accounts to close: every account with a plan, usage or adjustments in the period.

        Paged by account name: ``cursor`` is the last account of the previous page. Each
        source (plans, the period's registry, its adjustment markers) is read in key order
        only until it has given ``limit`` names after the cursor: a page costs O(limit)
        items whatever the number of accounts (the first ``limit`` of the union are among
        the first ``limit`` of each source).
        """
        after = cursor or ""
        plans = Key("pk").eq("ACCOUNTS")
        if after:  # DynamoDB refuses an empty string in a key condition
            plans = plans & Key("sk").gt(after)
        period_key = Key("pk").eq(f"P#{period}")
        sources = [(plans, "")] + [
            (period_key & Key("sk").between(f"{prefix}{after}\x00", f"{prefix}\uffff"), prefix)
            for prefix in ("A#", "ADJ#")
        ]
        names: set[str] = set()
        more = False
        for cond, prefix in sources:
            found: set[str] = set()
            page_size = limit + 1 if not prefix.startswith("ADJ") else 4 * limit
            items = self._query(
                KeyConditionExpression=cond, ProjectionExpression="sk", Limit=page_size
            )
            for item in items:
                name = str(item["sk"])[len(prefix) :].split("#", 1)[0]
                if name <= after:
                    continue
                found.add(name)
                if len(found) > limit:  # this source has more than a page after the cursor
                    more = True
                    break
            names |= found
        ordered = sorted(names)
        page = ordered[:limit]
        return page, (page[-1] if (more or len(ordered) > limit) and page else None)

    def periods_with_facts(self, account: str, periods: Sequence[str]) -> list[str]:
        """Which of ``periods`` the account has facts stored in (ingest's registry)."""
        keys = [{"pk": f"P#{p}", "sk": f"A#{account}"} for p in dict.fromkeys(periods)]
        found: list[str] = []
        for start in range(0, len(keys), 100):
            request = {
                self.table.name: {
                    "Keys": keys[start : start + 100],
                    "ProjectionExpression": "pk",
                    "ConsistentRead": self.consistent_reads,
                }
            }
            while request:
                resp = self.client.batch_get_item(RequestItems=request)
                found.extend(i["pk"][2:] for i in resp["Responses"].get(self.table.name, []))
                request = resp.get("UnprocessedKeys") or {}
        return sorted(found)

    def period_accounts(self, period: str) -> list[str]:
        """The accounts with facts stored in ``period`` (ingest's registry, ``A#``)."""
        cond = Key("pk").eq(f"P#{period}") & Key("sk").begins_with("A#")
        items = self._query(KeyConditionExpression=cond, ProjectionExpression="sk")
        return sorted(str(i["sk"])[2:] for i in items)

    def adjusting_accounts(self, period: str, prior: str | None = None) -> list[str]:
        """The accounts whose close of ``period`` adjusts ``prior`` (any prior period:
        ``None``), by its ``ADJ#`` markers."""
        cond = Key("pk").eq(f"P#{period}") & Key("sk").begins_with("ADJ#")
        items = self._query(KeyConditionExpression=cond, ProjectionExpression="sk")
        found = {
            str(i["sk"]).split("#")[1]
            for i in items
            if prior is None or _adjustment_prior(i["sk"]) == prior
        }
        return sorted(found)

    def stored_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        """One fact item by its key: from the table, or from the archive once it expired."""
        item = self.table.get_item(Key={"pk": pk, "sk": sk}).get("Item")
        if item is not None or self.archive is None:
            return dict(item) if item else None
        where = shard_of_item(pk)
        if where is None:
            return None
        kind = pk.partition("#")[0]
        archived = self.archive.archived(
            where.account, Period.parse(where.period), where.shard, kind
        )
        return next((dict(i) for i in archived or [] if str(i["sk"]) == sk), None)

    def _adjustment_markers(self, period: str, account: str) -> Iterator[dict[str, Any]]:
        cond = Key("pk").eq(f"P#{period}") & Key("sk").begins_with(f"ADJ#{account}#")
        return self._query(KeyConditionExpression=cond)

    def adjustment_periods(self, period: str, account: str) -> list[str]:
        """The prior periods the close of ``period`` adjusts for the account: those with
        late facts tagged for it, and those carried from an earlier close."""
        return sorted(
            {_adjustment_prior(i["sk"]) for i in self._adjustment_markers(period, account)}
        )

    def carry_adjustment(
        self, period: str, account: str, prior: str, billed: Mapping[str, Any]
    ) -> None:
        """Hand ``prior``'s adjustment, which an earlier close could not rate, to the close
        of ``period``, with the usage already billed for ``prior`` (its JSON document,
        stored compressed): the late facts stay unbilled until a close rates them.
        Idempotent: the same carry writes the same item."""
        body = json.dumps(billed, sort_keys=True, separators=(",", ":")).encode()
        item = {
            "pk": f"P#{period}",
            "sk": f"ADJ#{account}#{prior}#carried",
            "billed": gzip.compress(body, mtime=0),
        }
        self.table.put_item(Item=item)

    def carried_adjustments(self, period: str, account: str) -> dict[str, dict[str, Any]]:
        """prior period -> the usage JSON already billed for it (``carry_adjustment``)."""
        return {
            _adjustment_prior(i["sk"]): json.loads(gzip.decompress(bytes(i["billed"].value)))
            for i in self._adjustment_markers(period, account)
            if "billed" in i
        }

    def put_id_conflicts(
        self, period: str, bucket: int, conflicts: Sequence[Mapping[str, Any]]
    ) -> None:
        """What the id audit of one bucket found for the close of ``period`` (each reused
        id and where its versions are), replaced by every run that finds any."""
        if not conflicts:  # a re-run finds at least what an earlier run found
            return
        key = {"pk": f"P#{period}", "sk": f"IDS#{bucket:02d}"}
        body = json.dumps(list(conflicts), sort_keys=True, separators=(",", ":")).encode()
        self.table.put_item(Item={**key, "conflicts": gzip.compress(body, mtime=0)})

    def id_conflicts(self, period: str) -> list[dict[str, Any]]:
        """Every reused id the id audits of ``period``'s closes found (``put_id_conflicts``)."""
        cond = Key("pk").eq(f"P#{period}") & Key("sk").begins_with("IDS#")
        out: list[dict[str, Any]] = []
        for item in self._query(KeyConditionExpression=cond):
            out.extend(json.loads(gzip.decompress(bytes(item["conflicts"].value))))
        return sorted(out, key=lambda c: str(c["id"]))

    def estimate_period_facts(self, account: str, period: Period, shards: Sequence[str]) -> int:
        """About how many facts the account has in ``period`` (its ``F#`` partitions), to size
        the close's units: per storage shard, one counting Query (``Select=COUNT``, newest
        first) of at most ``PROBE_PAGE`` items. A shard with fewer is counted exactly; for a
        fuller one, the rate over the counted items' time span (its newest fact: one more
        Query of one item) is extrapolated back to the period's start (the newest facts of
        a growing account are its densest: the estimate errs high).

        A shard the live view refreshed after the period ended, having read fewer than
        ``PROBE_PAGE`` items, is not probed: its live item's count (``live_meta``: one Query
        for every shard) is the estimate. Sizing only groups shards into units: the invoice
        is the same whatever the estimate."""
        total = 0
        live = {
            shard: items
            for shard, (items, refreshed_at) in self.live_meta(account, str(period)).items()
            if refreshed_at >= period.end_ms and items < PROBE_PAGE
        }
        for shard in shards:
            if shard in live:
                total += live[shard]
                continue
            facts = Key("pk").eq(fact_pk(account, period, shard)) & Key("sk").lt(":")
            page = self.table.query(
                KeyConditionExpression=facts,
                Select="COUNT",
                ScanIndexForward=False,
                Limit=PROBE_PAGE,
            )
            count = int(page.get("Count", 0))
            total += count
            if "LastEvaluatedKey" not in page or not count:
                continue
            oldest = int(str(page["LastEvaluatedKey"]["sk"])[:13])
            newest_item = self.table.query(
                KeyConditionExpression=facts,
                ProjectionExpression="sk",
                ScanIndexForward=False,
                Limit=1,
            )["Items"]
            newest = int(str(newest_item[0]["sk"])[:13]) if newest_item else oldest
            before = max(oldest - period.start_ms, 0)
            total += -(-count * before // max(newest - oldest, 1))
        return total

    def read_period(
        self, account: str, period: Period, shard: str, lookback_hours: int
    ) -> list[StoredFact]:
        """The period facts of one shard, plus the look-back tail of the previous period
        (window and session state is rebuilt from it)."""
        own = self._query(KeyConditionExpression=Key("pk").eq(fact_pk(account, period, shard)))
        out = self._with_archive(account, period, shard, "F", own, "")
        since = period.start_ms - lookback_hours * MS_PER_HOUR
        prev = period.prev()
        cond = Key("pk").eq(fact_pk(account, prev, shard)) & Key("sk").gte(f"{since:013d}")
        tail = self._query(KeyConditionExpression=cond)
        out.extend(self._with_archive(account, prev, shard, "F", tail, f"{since:013d}"))
        return out

    def read_lifecycle(self, account: str, period: Period, shard: str) -> list[StoredFact]:
        """The lifecycle facts of one shard whose time falls in the period."""
        cond = Key("pk").eq(lifecycle_pk(account, period, shard))
        items = self._query(KeyConditionExpression=cond)
        return self._with_archive(account, period, shard, "E", items, "")

    def _with_archive(
        self,
        account: str,
        period: Period,
        shard: str,
        kind: str,
        items: Iterable[Mapping[str, Any]],
        min_sk: str,
    ) -> list[StoredFact]:
        """The items of one partition (those with ``sk >= min_sk``), plus its archived items
        once the period's items may have expired: one version per sort key (``{at}#{fact
        id}`` or ``X#{fact id}``), in the table's order. Of two versions of one key the one
        stored first wins, as ``put_late`` never overwrites: on time (no ``adj``) before
        late, an earlier adjusting period before a later one."""
        archived = self.archive.archived(account, period, shard, kind) if self.archive else None
        if archived is None:
            return [_stored(i) for i in items]
        by_key: dict[str, Mapping[str, Any]] = {}
        for item in [*items, *(i for i in archived if str(i["sk"]) >= min_sk)]:
            sk = str(item["sk"])
            seen = by_key.get(sk)
            if seen is None or _stored_first(item, seen):
                by_key[sk] = item
        return [_stored(by_key[sk]) for sk in sorted(by_key, key=str.encode)]

    def put_result(self, period: str, account: str, result: Mapping[str, Any]) -> None:
        self.table.put_item(
            Item={"pk": f"P#{period}", "sk": f"R#{account}", **_to_dynamo(dict(result))}
        )

    def put_failure(self, period: str, account: str, result: Mapping[str, Any]) -> bool:
        """Record a failed result unless the account's result is already ``issued``
        (an issued invoice is never reported failed by a later or concurrent run)."""
        try:
            self.table.put_item(
                Item={"pk": f"P#{period}", "sk": f"R#{account}", **_to_dynamo(dict(result))},
                ConditionExpression="attribute_not_exists(pk) OR #s <> :issued",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":issued": "issued"},
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def result(self, period: str, account: str) -> dict[str, Any] | None:
        item = self.table.get_item(
            Key={"pk": f"P#{period}", "sk": f"R#{account}"}, ConsistentRead=True
        ).get("Item")
        return dict(item) if item else None

    def mark_announced(self, period: str, account: str, invoice: str, at: str) -> bool:
        """Claim the announcement of an issued invoice: True once per invoice."""
        try:
            self.table.update_item(
                Key={"pk": f"P#{period}", "sk": f"R#{account}"},
                UpdateExpression="SET announced_at = :t",
                ConditionExpression=(
                    "#s = :issued AND #i = :n AND attribute_not_exists(announced_at)"
                ),
                ExpressionAttributeNames={"#s": "status", "#i": "invoice"},
                ExpressionAttributeValues={":issued": "issued", ":n": invoice, ":t": at},
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def unmark_announced(self, period: str, account: str) -> None:
        """Give an announcement back (its publication failed): the next run sends it."""
        self.table.update_item(
            Key={"pk": f"P#{period}", "sk": f"R#{account}"},
            UpdateExpression="REMOVE announced_at",
        )

    # --- the close lock: one execution per period -------------------------------------

    def acquire_close_lock(self, period: str, owner: str, now: int, lease_seconds: int) -> None:
        """Take ``P#{period}/LOCK`` for ``owner`` if it is free, already held by ``owner``
        (a retried task) or its lease has expired; ``CloseInProgress`` otherwise."""
        if not _take_lease(
            self.table, f"P#{period}", "LOCK", owner, now, lease_seconds, reentrant=True
        ):
            holder = self.close_lock(period) or {}
            raise CloseInProgress(period, str(holder.get("owner", "?")))

    def release_close_lock(self, period: str, owner: str) -> None:
        """Free the lock if ``owner`` holds it (a no-op otherwise)."""
        _free_lease(self.table, f"P#{period}", "LOCK", owner)

    def close_lock(self, period: str) -> dict[str, Any] | None:
        item = self.table.get_item(
            Key={"pk": f"P#{period}", "sk": "LOCK"}, ConsistentRead=True
        ).get("Item")
        return dict(item) if item else None

    def results(self, period: str) -> list[dict[str, Any]]:
        cond = Key("pk").eq(f"P#{period}") & Key("sk").begins_with("R#")
        return [dict(i) for i in self._query(KeyConditionExpression=cond)]

    # --- live view ------------------------------------------------------------------

    def put_live_shard(
        self,
        key: ShardKey,
        body: Mapping[str, Any],
        facts: int,
        refreshed_at: int,
        carries: bool = False,
        epoch: int = 0,
    ) -> bool:
        """Store one shard's usage as of now, unless a refresh that read more stored items
        got there first (items are only ever added, so their count orders the refreshes;
        an equal count read the same items and wrote the same figures). A refresh from a
        later close's saved state (``epoch``: its order, 0 for none) counts anew and wins
        over any from an earlier one: the version ``v`` orders by (epoch, items)."""
        version = epoch * LIVE_EPOCH + facts
        doc = gzip.compress(
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode(), mtime=0
        )
        pk = live_pk(key.account, key.period)
        item: dict[str, Any] = {
            "pk": pk,
            "sk": f"S#{key.shard}",
            "n": facts,
            "v": version,
            "at": refreshed_at,
            "carries": carries,
        }
        size = LIVE_ITEM_BYTES  # read at call time (tests lower it)
        if len(doc) <= size:
            item["doc"] = doc
        else:  # too large for one item: parts of this version first, then the item naming them
            chunks = [doc[i : i + size] for i in range(0, len(doc), size)]
            self.put_items(
                [
                    {"pk": pk, "sk": _live_part_sk(key.shard, version, i), "part": chunk}
                    for i, chunk in enumerate(chunks)
                ]
            )
            item["parts"] = len(chunks)
        try:
            replaced = self.table.put_item(
                Item=item,
                ConditionExpression=(
                    "attribute_not_exists(n) OR (attribute_not_exists(v) AND n <= :v) OR v <= :v"
                ),
                ExpressionAttributeValues={":v": version},
                ReturnValues="ALL_OLD",  # whether the version replaced had parts (no read cost)
            ).get("Attributes", {})
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                if "parts" in item:  # a newer version got there first: these are named by none
                    self._delete_live_parts(pk, key.shard, version, int(item["parts"]))
                return False
            raise
        if "parts" in replaced:  # almost no shard is split: no query for parts otherwise
            self._drop_live_parts(key, below=version)
        return True

    def _delete_live_parts(self, pk: str, shard: str, version: int, parts: int) -> None:
        with self.table.batch_writer() as batch:
            for i in range(parts):
                batch.delete_item(Key={"pk": pk, "sk": _live_part_sk(shard, version, i)})

    def _drop_live_parts(self, key: ShardKey, below: int) -> None:
        """Delete the parts of the shard's versions older than ``below`` (none is named any
        more; the parts of newer versions belong to a refresh still writing). Asked only when
        the version replaced had parts: parts left by a crash between a refresh's parts and
        its item are removed by the first later refresh that replaces a split version."""
        pk = live_pk(key.account, key.period)
        cond = Key("pk").eq(pk) & Key("sk").begins_with(f"{LIVE_PART}{key.shard}#")
        old = [
            str(i["sk"])
            for i in self._query(KeyConditionExpression=cond, ProjectionExpression="sk")
            if _live_part_version(str(i["sk"])) < below
        ]
        with self.table.batch_writer() as batch:
            for sk in old:
                batch.delete_item(Key={"pk": pk, "sk": sk})

    def live_meta(self, account: str, period: str) -> dict[str, tuple[int, int]]:
        """Per shard of the live view: (items read, refreshed at ms), without the usage."""
        cond = Key("pk").eq(live_pk(account, period)) & Key("sk").begins_with("S#")
        items = self._query(
            KeyConditionExpression=cond,
            ProjectionExpression="sk, n, #a",
            ExpressionAttributeNames={"#a": "at"},
        )
        return {str(i["sk"])[2:]: (int(i["n"]), int(i["at"])) for i in items}

    def live_shards(self, account: str, period: str) -> set[str]:
        """The shards with a live item in the period (keys only)."""
        cond = Key("pk").eq(live_pk(account, period)) & Key("sk").begins_with("S#")
        items = self._query(KeyConditionExpression=cond, ProjectionExpression="sk")
        return {str(i["sk"])[2:] for i in items}

    def defer_live(self, key: ShardKey, now: int) -> None:
        """Note that a shard's live item is behind its facts (``last``: the latest record
        seen); the scheduled sweep refreshes it once its refresh interval has passed."""
        self.table.update_item(
            Key={"pk": "LIVE_DIRTY", "sk": f"{key.account}#{key.period}#{key.shard}"},
            UpdateExpression="SET #l = :now",
            ExpressionAttributeNames={"#l": "last"},
            ExpressionAttributeValues={":now": now},
        )

    def deferred_live(self) -> list[tuple[ShardKey, int]]:
        cond = Key("pk").eq("LIVE_DIRTY")
        out = []
        for item in self._query(KeyConditionExpression=cond):
            account, period, shard = str(item["sk"]).rsplit("#", 2)
            out.append((ShardKey(account, period, shard), int(item["last"])))
        return out

    def clear_deferred_live(self, key: ShardKey, read_from: int) -> None:
        """Forget a deferral once a refresh that started at ``read_from`` covered it (a
        record seen since then keeps it)."""
        try:
            self.table.delete_item(
                Key={"pk": "LIVE_DIRTY", "sk": f"{key.account}#{key.period}#{key.shard}"},
                ConditionExpression="#l <= :t",
                ExpressionAttributeNames={"#l": "last"},
                ExpressionAttributeValues={":t": read_from},
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def live_items(self, account: str, period: str) -> list[dict[str, Any]]:
        """The live view of one account and period: one item per refreshed shard, and the
        thresholds reached (one Query of one partition, at most shards + thresholds items)."""
        for _ in range(LIVE_READ_ATTEMPTS):
            out, complete = self._live_items(account, period)
            if complete:
                break
        return out  # a shard whose parts were replaced each time: reported as incomplete

    def _live_items(self, account: str, period: str) -> tuple[list[dict[str, Any]], bool]:
        cond = Key("pk").eq(live_pk(account, period))
        out = []
        complete = True
        parts: dict[str, bytes] = {}  # a large shard's document, in parts (put_live_shard)
        for item in self._query(KeyConditionExpression=cond, ConsistentRead=True):
            if str(item["sk"]).startswith(LIVE_PART):
                parts[str(item["sk"])] = bytes(item["part"])
                continue
            out.append(dict(item))
        for doc in out:
            if "parts" in doc:  # all parts of the named version, or (being replaced) none
                shard, version = str(doc["sk"])[2:], int(doc.get("v", doc["n"]))
                keys = [_live_part_sk(shard, version, i) for i in range(int(doc["parts"]))]
                if all(k in parts for k in keys):
                    doc["doc"] = b"".join(parts[k] for k in keys)
                else:  # a newer version replaced them while this read was paging
                    complete = False
            if "doc" in doc:
                doc["doc"] = json.loads(gzip.decompress(bytes(doc["doc"])))
        return out, complete

    def claim_alert(
        self, account: str, period: str, threshold: str, doc: Mapping[str, Any]
    ) -> bool:
        """Record that a threshold was reached in the period; False if it already was."""
        try:
            self.table.put_item(
                Item={
                    "pk": live_pk(account, period),
                    "sk": f"ALERT#{threshold}",
                    "alert": json.dumps(doc, sort_keys=True),
                },
                ConditionExpression="attribute_not_exists(sk)",
            )
            return True
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise

    def release_alert(self, account: str, period: str, threshold: str) -> None:
        """Give a claim back (its event could not be sent): a retry claims it again."""
        self.table.delete_item(Key={"pk": live_pk(account, period), "sk": f"ALERT#{threshold}"})

    def put_threshold(self, account: str, threshold: str, doc: Mapping[str, Any]) -> None:
        self.table.put_item(
            Item={"pk": f"THRESHOLD#{account}", "sk": threshold, "doc": json.dumps(doc)}
        )

    def delete_threshold(self, account: str, threshold: str) -> None:
        self.table.delete_item(Key={"pk": f"THRESHOLD#{account}", "sk": threshold})

    def thresholds(self, account: str) -> list[dict[str, Any]]:
        cond = Key("pk").eq(f"THRESHOLD#{account}")
        return [json.loads(i["doc"]) for i in self._query(KeyConditionExpression=cond)]

    # --- plans ----------------------------------------------------------------------

    def put_plan(self, account: str, effective_from: str, document: Mapping[str, Any]) -> None:
        body = json.dumps(document, sort_keys=True, default=str)
        self.table.put_item(Item={"pk": f"PLAN#{account}", "sk": effective_from, "doc": body})
        self.table.put_item(Item={"pk": "ACCOUNTS", "sk": account})
        self._put_plan_zones(account)

    def _put_plan_zones(self, account: str) -> None:
        """``PLAN#{acct}/ZONES``: the time zone of every plan version, in one item that
        ingest reads with a GetItem (it may not Query). ``ZONES`` sorts after every
        ``YYYY-MM``, so ``plan_document`` never meets it."""
        cond = Key("pk").eq(f"PLAN#{account}") & Key("sk").lt("A")
        zones = {}
        for item in self._query(KeyConditionExpression=cond):
            settings = json.loads(item["doc"]).get("settings") or {}
            zones[str(item["sk"])] = str(settings.get("time_zone") or "UTC")
        self.table.put_item(Item={"pk": f"PLAN#{account}", "sk": "ZONES", "zones": zones})
        self.table.update_item(  # every zone any plan names: the close groups to schedule
            Key={"pk": "CONTROL", "sk": "ZONES"},
            UpdateExpression="ADD zones :z",
            ExpressionAttributeValues={":z": set(zones.values()) or {"UTC"}},
        )

    def zones_in_use(self) -> set[str]:
        """Every time zone a price plan has named (``CONTROL/ZONES``)."""
        item = self.table.get_item(Key={"pk": "CONTROL", "sk": "ZONES"}).get("Item")
        return set(item.get("zones", ())) if item else set()

    def plan_document(self, account: str, period: str) -> dict[str, Any] | None:
        """The plan in force for ``period``: the latest one effective on or before it."""
        cond = Key("pk").eq(f"PLAN#{account}") & Key("sk").lte(period)
        resp = self.table.query(
            KeyConditionExpression=cond,
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=self.consistent_reads,
        )
        items = resp.get("Items", [])
        return json.loads(items[0]["doc"]) if items else None

    def plan_zones(self, account: str) -> list[tuple[str, str]]:
        """(effective period, time zone) of every plan version of the account, oldest
        first (one GetItem): what ingest needs to put a fact in the account's local
        period. None stored (no plan): UTC."""
        key = {"pk": f"PLAN#{account}", "sk": "ZONES"}
        item = self.table.get_item(Key=key, ConsistentRead=self.consistent_reads).get("Item")
        zones = item.get("zones", {}) if item else {}
        return sorted((str(k), str(v)) for k, v in zones.items())

    def plan_zones_of(self, accounts: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """``plan_zones`` of many accounts, 100 per BatchGetItem (an account without a
        plan is left out: UTC)."""
        keys = [{"pk": f"PLAN#{a}", "sk": "ZONES"} for a in dict.fromkeys(accounts)]
        out: dict[str, list[tuple[str, str]]] = {}
        for start in range(0, len(keys), 100):
            request = {
                self.table.name: {
                    "Keys": keys[start : start + 100],
                    "ConsistentRead": self.consistent_reads,
                }
            }
            while request:
                resp = self.client.batch_get_item(RequestItems=request)
                for item in resp["Responses"].get(self.table.name, []):
                    zones = item.get("zones", {})
                    versions = sorted((str(k), str(v)) for k, v in zones.items())
                    out[str(item["pk"])[len("PLAN#") :]] = versions
                request = resp.get("UnprocessedKeys") or {}
        return out


class FinanceStore(DocumentsLock):
    """Billing profiles, sellers and the number series, in the usage table.

    A number is assigned together with its *claim* (the period's invoice of an account, a
    credit note for an invoice...): the series counter moves from ``n - 1`` to ``n`` with a
    ``pending`` record of the claim (one conditional update), then the claim and the
    number's index item are created and the record is cleared; anyone who finds a record
    completes it first (``assign_number``). So a number is never assigned without its claim
    (no gap), never twice (the counter's condition), and a second request for the same
    claim returns the number it already has (re-runs are stable)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.client = table.meta.client

    # --- versioned documents ------------------------------------------------------------

    def _put_versioned(self, pk: str, effective_from: str, document: Mapping[str, Any]) -> None:
        body = json.dumps(document, sort_keys=True, default=str)
        self.table.put_item(Item={"pk": pk, "sk": effective_from, "doc": body})

    def _in_force(self, pk: str, period: str) -> dict[str, Any] | None:
        cond = Key("pk").eq(pk) & Key("sk").lte(period)
        resp = self.table.query(KeyConditionExpression=cond, ScanIndexForward=False, Limit=1)
        items = resp.get("Items", [])
        return json.loads(items[0]["doc"]) if items else None

    def _versions(self, pk: str) -> list[dict[str, Any]]:
        resp = self.table.query(KeyConditionExpression=Key("pk").eq(pk))
        return [json.loads(i["doc"]) for i in resp.get("Items", [])]

    def put_profile(self, account: str, effective_from: str, doc: Mapping[str, Any]) -> None:
        self._put_versioned(f"PROFILE#{account}", effective_from, doc)

    def profile_document(self, account: str, period: str) -> dict[str, Any] | None:
        """The billing profile in force for ``period`` (latest effective on or before it)."""
        return self._in_force(f"PROFILE#{account}", period)

    def profile_versions(self, account: str) -> list[dict[str, Any]]:
        return self._versions(f"PROFILE#{account}")

    def put_seller(self, seller: str, effective_from: str, doc: Mapping[str, Any]) -> None:
        self._put_versioned(f"SELLER#{seller}", effective_from, doc)

    def seller_document(self, seller: str, period: str) -> dict[str, Any] | None:
        return self._in_force(f"SELLER#{seller}", period)

    def seller_versions(self, seller: str) -> list[dict[str, Any]]:
        return self._versions(f"SELLER#{seller}")

    def mark_drafted(self, period: str, at: str) -> None:
        """A draft close of the period (close group) ran: ``drafted_at`` on its status
        item, so that the scheduled draft runs go on to the next group due."""
        self.table.update_item(
            Key={"pk": f"P#{period}", "sk": "STATUS"},
            UpdateExpression="SET drafted_at = :t",
            ExpressionAttributeValues={":t": at},
        )

    # --- numbers ----------------------------------------------------------------------------

    @staticmethod
    def invoice_claim(period: str, account: str) -> tuple[str, str]:
        return (f"P#{period}", f"FIN#{account}")

    @staticmethod
    def correction_claim(number: str, what: str) -> tuple[str, str]:
        return (f"DOC#{number}", f"CLAIM#{what}")

    def claimed(self, claim: tuple[str, str]) -> dict[str, Any] | None:
        key = {"pk": claim[0], "sk": claim[1]}
        item = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def last_number(self, prefix: str) -> int:
        item = self.table.get_item(
            Key={"pk": f"SERIES#{prefix}", "sk": "COUNTER"}, ConsistentRead=True
        ).get("Item")
        return int(item["last"]) if item else 0

    def assign_number(
        self,
        prefix: str,
        digits: int,
        claim: tuple[str, str],
        index: Mapping[str, Any],
        attempts: int = 200,
    ) -> str:
        """The number of ``claim`` in the series ``prefix``: the one it has, or the next
        one, written with the claim and the number's index item ``index``.

        Single-item conditional writes only: the counter moves from n - 1 to n together
        with a ``pending`` record of the claim (conditional on n - 1 and no pending
        record); then the claim and the index are put and the record is cleared. Whoever
        finds a pending record completes it first, so a crash between the steps leaves
        neither a gap nor a claim without its number. The counter is read before the
        claim: a claim written by an assignment that completed before the counter read
        is seen, and any assignment after it moves the counter (the condition fails)."""
        counter_key = {"pk": f"SERIES#{prefix}", "sk": "COUNTER"}
        for attempt in range(attempts):
            counter = self.table.get_item(Key=counter_key, ConsistentRead=True).get("Item") or {}
            if "pending" in counter:
                self._complete(str(counter["pending"]))
                continue
            found = self.claimed(claim)
            if found is not None:
                return str(found["number"])
            last = int(counter.get("last", 0))
            number = f"{prefix}{last + 1:0{digits}d}"
            pending = json.dumps(
                {
                    "series": prefix,
                    "pk": claim[0],
                    "sk": claim[1],
                    "number": number,
                    "index": dict(index),
                },
                sort_keys=True,
                default=str,
            )
            values: dict[str, Any] = {":next": last + 1, ":p": pending}
            condition = "attribute_not_exists(pending) AND "
            if counter:
                condition += "#l = :last"
                values[":last"] = last
            else:
                condition += "attribute_not_exists(#l)"
            try:
                self.table.update_item(
                    Key=counter_key,
                    UpdateExpression="SET #l = :next, pending = :p",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#l": "last"},
                    ExpressionAttributeValues=values,
                )
            except ClientError as err:
                if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                time.sleep(min(0.002 * 2 ** min(attempt, 6), 0.1))
                continue  # the counter moved: look again
            self._complete(pending)
            return number
        raise RuntimeError(f"could not assign a number in series {prefix}")

    def _complete(self, pending: str) -> None:
        """Write the claim and the index of a pending assignment, then clear the record."""
        p = json.loads(pending)
        number = str(p["number"])
        for item in (
            {"pk": p["pk"], "sk": p["sk"], "number": number},
            {
                "pk": f"DOC#{number}",
                "sk": "DOC",
                "number": number,
                "doc": json.dumps(p["index"], sort_keys=True, default=str),
            },
        ):
            try:
                self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
            except ClientError as err:
                if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                key = {"pk": item["pk"], "sk": item["sk"]}
                held = self.table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
                if held.get("number") != number:  # cannot happen: a claim has one number
                    holds = f"{item['pk']}/{item['sk']} holds {held.get('number')}"
                    raise RuntimeError(holds) from err
        try:
            self.table.update_item(
                Key={"pk": f"SERIES#{p['series']}", "sk": "COUNTER"},
                UpdateExpression="REMOVE pending",
                ConditionExpression="pending = :p",
                ExpressionAttributeValues={":p": pending},
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise  # already cleared by another caller

    def document(self, number: str) -> dict[str, Any] | None:
        """The index of a numbered document (``assign_number``'s ``index``) and its state."""
        item = self.table.get_item(
            Key={"pk": f"DOC#{number}", "sk": "DOC"}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        out: dict[str, Any] = json.loads(item["doc"])
        out["number"] = number
        for name in ("status", "voided_by", "reason"):
            if name in item:
                out[name] = item[name]
        return out

    def mark_void(self, number: str, credit_note: str, reason: str) -> None:
        """Record that ``number`` is void, corrected by ``credit_note`` (idempotent)."""
        self.table.update_item(
            Key={"pk": f"DOC#{number}", "sk": "DOC"},
            UpdateExpression="SET #s = :v, voided_by = :c, reason = :r",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":v": "void", ":c": credit_note, ":r": reason},
        )

    def corrections(self, number: str) -> list[dict[str, Any]]:
        """The claims of corrections of ``number`` (credit notes, a reissue)."""
        cond = Key("pk").eq(f"DOC#{number}") & Key("sk").begins_with("CLAIM#")
        return [dict(i) for i in self.table.query(KeyConditionExpression=cond).get("Items", [])]


def _stored(item: Mapping[str, Any]) -> StoredFact:
    if str(item["sk"]).startswith(CONFLICT_PREFIX):  # an id-conflict marker (claims.py)
        marker = Fact(id=str(item["id"]), type="id_conflict", at=int(item["at"]), key="", attrs={})
        return StoredFact(marker, item.get("adj"), conflict=True)
    return StoredFact(fact_of_item(item), item.get("adj"))


def fact_of_item(item: Mapping[str, Any]) -> Fact:
    """The fact of a stored fact or lifecycle fact item (``fact_item``): its ``id`` and
    ``at`` are read from its sort key; an item written with them as attributes (before
    they were left out) is read as it is. Its content digest is the one its sort key holds
    (``Fact.digest`` does not hash it again)."""
    at, fact_id, digest = version_of_sk(str(item["sk"]))
    if "id" in item and "at" in item:
        return Fact.from_item(item, digest)
    return Fact.from_item({**item, "id": fact_id, "at": at}, digest)


def _stored_first(item: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether ``item`` is an earlier-stored version of ``other``'s key (by its late tag)."""
    mine, theirs = item.get("adj"), other.get("adj")
    return theirs is not None and (mine is None or str(mine) < str(theirs))


def _throttled(err: ClientError) -> bool:
    return err.response["Error"]["Code"] in {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
    }


def create_usage_table(dynamodb: Any, name: str = "usage") -> Any:
    """Create the usage table with the keys the CDK app gives it (``infra/storage.py``:
    ``pk``/``sk`` strings, on demand), where tests and benchmarks run on moto without the
    synthesized template. ``dynamodb``: a boto3 DynamoDB resource."""
    return dynamodb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def item_write_units(item: Mapping[str, Any]) -> int:
    """Write request units of a put by DynamoDB's rule: 1 per started KB of item size."""
    size = sum(len(k.encode()) + _size(v) for k, v in item.items())
    return max(1, -(-size // 1024))


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | Decimal | float):
        return len(str(value)) // 2 + 1
    if isinstance(value, Mapping):
        return 3 + sum(len(k.encode()) + _size(v) + 1 for k, v in value.items())
    if isinstance(value, list | set | frozenset | tuple):
        return 3 + sum(_size(v) + 1 for v in value)
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, Binary):
        return len(value.value)
    return len(str(value))


@dataclass(frozen=True)
class LateChange:
    """How a change to a fact of a frozen period is billed: the adjusting period (the
    ``adj`` tag of the stored item: the first period after the fact's that is not frozen)
    and the ``ADJ#`` markers that have its close recompute every frozen period the change
    affects (``billing.domain.lateness``)."""

    adj: str
    markers: list[dict[str, str]]


def late_change(account: str, fact: Fact, frozen: Iterable[str], lookback_hours: int) -> LateChange:
    """The late change of ``fact`` of ``account``, ``frozen`` the periods frozen in its
    calendar (``frozen_in_zone``): a late fact stored, or a billed fact voided by an id
    conflict."""
    frozen_set = frozenset(frozen)
    adj = adjustment_period(fact.period, frozen_set)
    priors = affected_periods(fact, frozen_set, lookback_hours)
    return LateChange(adj, [adjustment_marker(adj, account, prior) for prior in priors])


__all__ = [
    "HISTORY_MONTHS",
    "HOT_MONTHS",
    "MARGIN_DAYS",
    "MS_PER_DAY",
    "PROBE_PAGE",
    "ArchiveReader",
    "FinanceStore",
    "LateChange",
    "StoredFact",
    "UsageStore",
    "WriteFailed",
    "fact_attributes",
    "fact_item",
    "fact_of_item",
    "fact_pk",
    "item_expiry",
    "item_write_units",
    "late_change",
    "lifecycle_pk",
    "shard_groups",
    "shard_labels",
    "version_of_sk",
    "version_sk",
]
