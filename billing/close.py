"""The month-end close: the work behind each task of the Step Functions state machine.

``infra/month_close.py`` defines the state machine; each task Lambda in
``functions/close/handlers.py`` calls one method here:

1. ``freeze``: the period stops taking on-time facts; later ones become adjustments.
2. ``list_accounts``: a page of accounts (with a plan, usage or adjustments).
3. ``plan_account``: the units of work of one account, sized to its volume: each unit a
   contiguous group of its storage shards (one unit for a small account).
4. ``compute_unit``: one unit, shard by shard, for the period and each prior period with
   late facts:
   the entity state carried in (``billing.adapters.state``) + the period's facts -> the
   usage engine -> a partial in S3; the entity state carried out is saved for next month.
5. ``rate_account``: merge the partials, rate with the price plan, add prior-period
   adjustments, write the invoice JSON/CSV/PDF once (byte-identical on re-runs).
6. ``record_failure``: a failing account is reported; the others carry on.
7. ``plan_audit`` then ``audit_buckets``: after every account, the id buckets in as few
   tasks as hold their ids in one pass each: an event id stored with two contents in places
   no single read holds is marked, and the next close credits it (``billing.adapters.ids``).
8. ``finish``: manifest and finance summary (one close group of the period at a time:
   ``period_documents``), period closed, ``InvoiceIssued`` events (``InvoiceFinalized``
   for an invoice numbered from a billing profile's seller).

A close started with ``draft`` does not freeze the period: ``rate_account`` writes drafts
(``billing.finance``) and ``finish`` closes nothing and announces nothing.

The tasks pass typed results (``Frozen``, ``AccountsPage``, ``AccountPlan`` and its
``Unit``s, ``AccountClosed``, ``IdAudit``, ``CloseSummary``); the handlers turn them into
the JSON the state machine carries (``payload``) and back (``Unit.from_payload``).
``close_account`` runs one account's branch of the state machine in process (the tests);
``finalize_account`` closes one account as the state machine would, the id audit included
(the CLI's single-account finalization).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from billing.adapters.archive import (
    archive_shard,
    archiving,
    listing_scope,
    seal_account,
    unarchived,
)
from billing.adapters.ids import (
    AUDIT_PERIODS,
    ID_BUCKETS,
    IdFiles,
    IdRow,
    audit_passes,
    audit_tasks,
    bucket_of,
    conflicts,
    mark_version,
)
from billing.adapters.invoices import CONTENT_TYPES, DRAFTS, DocumentStore, partial_key
from billing.adapters.state import Snapshot, StateStore, pick
from billing.adapters.store import (
    DOCUMENTS_WAIT_SECONDS,
    HOT_MONTHS,
    CloseInProgress,
    FinanceStore,
    PeriodDocumentsBusy,
    StoredFact,
    UsageStore,
    fact_pk,
    lifecycle_pk,
    period_documents,
    shard_groups,
    shard_labels,
)
from billing.documents.render import NO_PROFILE_NOTE, manifest, summary_csv
from billing.domain.engine import monthly_usage
from billing.domain.invoice import Invoice
from billing.domain.periods import UTC_ZONE, Period, ZoneOf, zones_from
from billing.domain.plan import PricePlan
from billing.domain.rating import adjustment_lines, build_invoice, rate
from billing.domain.settings import DEFAULT_SETTINGS, ContractSettings
from billing.domain.usage import Usage
from billing.finance import Finance, MissingProfile
from billing.live import LiveUsage
from billing.shard import View, Walk, history_start


class MissingPlan(Exception):
    pass


class EarlyClose(Exception):
    """The period has not ended; closing it needs ``force``."""


@dataclass(frozen=True)
class SkippedAdjustment:
    """A prior period's adjustment that could not be rated: carried to the next close."""

    period: str
    reason: str
    billed: Usage  # what has been billed for ``period`` so far


@dataclass(frozen=True)
class Issued:
    """What ``MonthClose.issue`` wrote for one account: a draft or an issued document."""

    status: str  # "draft" or "issued"
    doc: Invoice
    keys: dict[str, str]

    def result(self) -> dict[str, Any]:
        """The account's close result (``R#acct``)."""
        out: dict[str, Any] = {
            "status": self.status,
            "account": self.doc.account,
            "invoice": self.doc.number,
            "currency": self.doc.currency,
            "total": str(self.doc.total),
            "keys": self.keys,
        }
        if self.doc.totals is not None:
            out |= {
                "net": str(self.doc.totals.net),
                "tax": str(self.doc.totals.tax),
                "gross": str(self.doc.totals.gross),
            }
        else:  # no billing profile: reported for the account (manifest, finance summary)
            out["note"] = NO_PROFILE_NOTE
        if self.doc.due_date is not None:
            out["due_date"] = self.doc.due_date.isoformat()
        if self.status == "draft":
            out.pop("invoice")
        return out


# --- what the tasks pass each other ----------------------------------------------------


@dataclass(frozen=True)
class Frozen:
    """Freeze's outcome: the close group frozen (``None``: the schedule found none due),
    the seconds to settle before reading, and the lock's owner."""

    period: str | None
    settle_seconds: int
    execution: str | None = None
    draft: bool = False
    buckets: tuple[int, ...] = ()  # the id buckets to audit (none for drafts)

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "period": self.period,
            "settle_seconds": self.settle_seconds,
            "buckets": list(self.buckets),
        }
        if self.draft:
            out["draft"] = True
        if self.execution:
            out["execution"] = self.execution
        return out


@dataclass(frozen=True)
class AccountsPage:
    """A page of a close group's accounts and the cursor of the next (``None``: last)."""

    accounts: list[str]
    cursor: str | None

    def payload(self) -> dict[str, Any]:
        return {"accounts": list(self.accounts), "cursor": self.cursor}


@dataclass(frozen=True)
class Unit:
    """One unit of an account's close: a contiguous group of its storage shards, computed
    one after the other; the first (``shard``) names the unit's partials."""

    period: str
    account: str
    shards: tuple[str, ...]

    @property
    def shard(self) -> str:
        return self.shards[0]

    def payload(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "account": self.account,
            "shard": self.shard,
            "shards": list(self.shards),
        }

    @classmethod
    def from_payload(cls, event: Mapping[str, Any]) -> Unit:
        """The unit the state machine passes (``shard`` alone: planned before units were
        sized to the account, one storage shard each)."""
        shards = event.get("shards") or [event["shard"]]
        return cls(str(event["period"]), str(event["account"]), tuple(str(s) for s in shards))


@dataclass(frozen=True)
class AccountPlan:
    """PlanAccount's outcome: the account's units (none: issued by an earlier run)."""

    period: str
    account: str
    units: tuple[Unit, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "account": self.account,
            "units": [u.payload() for u in self.units],
        }


@dataclass(frozen=True)
class AccountClosed:
    """RateAccount's outcome: the account's document (``issued`` or ``draft``), its total
    and how many metrics the live view had differently (``None``: issued by an earlier
    run, kept as it was)."""

    account: str
    status: str
    total: str
    live_differences: int | None = None

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"account": self.account, "status": self.status, "total": self.total}
        if self.live_differences is not None:
            out["live_differences"] = self.live_differences
        return out


@dataclass(frozen=True)
class IdAudit:
    """AuditIds' outcome for one id bucket: the ids found stored with two contents and
    the conflict markers this run wrote for them."""

    bucket: int
    conflicts: int
    marked: int
    passes: int  # over the bucket's files, each holding one slice of its ids

    def payload(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "conflicts": self.conflicts,
            "marked": self.marked,
            "passes": self.passes,
        }


@dataclass(frozen=True)
class CloseSummary:
    """Finish's outcome for the close group: invoices issued (or drafts written) for its
    accounts, invoices this run announced, the accounts that failed."""

    period: str
    issued: int
    announced: int
    failed: list[str]
    drafts: int | None = None  # a draft close

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "period": self.period,
            "issued": self.issued,
            "announced": self.announced,
            "failed": list(self.failed),
        }
        if self.drafts is not None:
            out["drafts"] = self.drafts
        return out


__all__ = [
    "AccountClosed",
    "AccountPlan",
    "AccountsPage",
    "CloseInProgress",
    "CloseSummary",
    "EarlyClose",
    "Frozen",
    "IdAudit",
    "MissingPlan",
    "MissingProfile",
    "MonthClose",
    "PeriodDocumentsBusy",
    "Unit",
]

DEFAULT_LEASE_SECONDS = 24 * 3600  # the state machine's timeout (close_timeout_hours)
# Facts one unit of close work is given (docs/benchmarks.md, "THE ARITHMETIC"): a unit
# spends ~100 us per fact it reads (66 us of client-side read CPU, 16 us of engine, 8-19 us
# of page latency), so 2.5M period facts, plus their look-back, lifecycle facts and carried
# state (~+20%), take ~300 s: a third of Lambda's 900 s timeout. Memory does not grow with
# the unit: it computes its storage shards one after the other.
UNIT_FACTS = 2_500_000


def utc_now() -> datetime:
    return datetime.now(UTC)


def close_groups(store: UsageStore, period: str) -> list[str]:
    """The close groups of ``period`` for the time zones in use, earliest end first
    (UTC+14 first, UTC-12 last); the UTC group (``YYYY-MM``) is always one."""
    p = Period.parse(plain(period))
    zones = {UTC_ZONE, *store.zones_in_use()}
    labels = {p.in_zone(z).label for z in zones}
    return sorted(labels, key=lambda g: (Period.parse_label(g).end_ms, g))


def plain(label: str) -> str:
    """The period ``YYYY-MM`` of a close group label (``2026-10@+09:00``)."""
    return label.partition("@")[0]


def audit_window(period: str) -> list[Period]:
    """The periods whose ids the audit of a close of ``period`` (a group label too)
    compares: it, then the ``AUDIT_PERIODS`` before it."""
    window = [Period.parse(plain(period))]
    for _ in range(AUDIT_PERIODS):
        window.append(window[-1].prev())
    return window


def group_members(store: UsageStore, group: str, accounts: Sequence[str]) -> list[str]:
    """Those of ``accounts`` in the close group ``group`` (``MonthClose.group_of``; their
    zones read 100 per request), in order."""
    if "@" not in group and not store.zones_in_use() - {UTC_ZONE}:
        return list(accounts)  # every account is in the UTC group
    p = Period.parse(plain(group))
    zones = store.plan_zones_of(accounts)
    return [a for a in accounts if p.in_zone(zones_from(zones.get(a, []))(p)).label == group]


@dataclass
class MonthClose:
    store: UsageStore
    documents: DocumentStore
    events: Any  # boto3 EventBridge client
    bus_name: str
    settle_seconds: int
    clock: Callable[[], datetime] = field(default=utc_now)
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    unit_facts: int = UNIT_FACTS
    # an account without a billing profile fails its close (else: a usage statement)
    require_profile: bool = False
    documents_wait_seconds: float = DOCUMENTS_WAIT_SECONDS

    @property
    def finance(self) -> Finance:
        return Finance(FinanceStore(self.store.table), self.documents, self.events, self.bus_name)

    def drafting(self, period: str) -> bool:
        """Whether a close of ``period`` now writes drafts: it has not been frozen (a close
        started with ``draft``, before the stage's grace ends, does not freeze it)."""
        return "frozen_at" not in (self.store.period_status(period) or {})

    @property
    def states(self) -> StateStore:
        return StateStore(self.documents)

    @property
    def ids(self) -> IdFiles:
        return IdFiles(self.documents.s3, self.documents.bucket)

    # --- 1. freeze ------------------------------------------------------------------

    def freeze(
        self,
        period: str | None,
        settle: int | None = None,
        now: datetime | None = None,
        *,
        force: bool = False,
        execution: str | None = None,
        lease_seconds: int | None = None,
        draft: bool = False,
        grace_hours: int | None = None,
    ) -> Frozen:
        """Freeze ``period`` (default: the month before now). The state machine then waits
        for in-flight ingest batches: ``settle_seconds`` counted from the first freeze
        (``frozen_at``), so a re-run that finds the period frozen waits only what is left;
        a caller that knows nothing is in flight (the local runtime) can say 0.

        A period that has not ended is refused (``EarlyClose``) unless ``force``. With
        ``execution`` (the Step Functions execution id) the period's close lock is taken
        first: another execution holding it fails this one with ``CloseInProgress``.
        """
        now = now or self.clock()
        if period is None and grace_hours is not None:  # the schedule: the next group due
            period = self.next_due(now, grace_hours, draft=draft)
            if period is None:
                return Frozen(None, 0)
        target = Period.parse_label(period) if period else Period.of(now).prev()
        group = target.label  # the close group: freeze, lock and status are per group
        if target.end > now and not force:
            raise EarlyClose(
                f"period {group} has not ended (it ends {target.end.isoformat()}); "
                "closing it early needs force"
            )
        if execution:
            self.store.acquire_close_lock(
                group, execution, int(now.timestamp()), lease_seconds or self.lease_seconds
            )
        if draft and self.drafting(group):  # drafts: the period stays open, no settle
            return Frozen(group, 0, execution, draft=True)
        try:
            self.store.freeze(group, now.isoformat(timespec="seconds"))
        except Exception:
            if execution:
                self.store.release_close_lock(group, execution)
            raise
        if settle is None:
            status = self.store.period_status(group) or {}
            frozen_at = datetime.fromisoformat(str(status.get("frozen_at", now.isoformat())))
            waited = int((now - frozen_at).total_seconds())
            settle = max(0, min(self.settle_seconds, self.settle_seconds - waited))
        return Frozen(group, settle, execution, buckets=tuple(range(ID_BUCKETS)))

    # --- close groups: the accounts whose period ends at the same instant ----------------

    def zone_of(self, account: str) -> ZoneOf:
        """The account's time zone per period, as ingest sees it (``periods.zones_from``)."""
        return zones_from(self.store.plan_zones(account))

    def group_of(self, account: str, period: str) -> str:
        """The close group (``Period.label``) of the account's period: ``2026-10`` when
        it ends at midnight UTC, ``2026-10@+09:00`` for an account in Seoul."""
        p = Period.parse(period)
        return p.in_zone(self.zone_of(account)(p)).label

    def groups(self, period: str) -> list[str]:
        return close_groups(self.store, period)

    def due_groups(self, now: datetime, grace_hours: int) -> list[str]:
        """The close groups whose period ended ``grace_hours`` before ``now`` and that are
        not closed, earliest end first: what the hourly schedule around month end closes
        (the previous and the current UTC month: a UTC+14 month ends 14 h before UTC's).
        A group another execution is closing (its lock's lease runs) is left to it."""
        this = Period.of(now)
        due = []
        for label in [*self.groups(str(this.prev())), *self.groups(str(this))]:
            end = Period.parse_label(label).end_ms
            if end + grace_hours * 3_600_000 > int(now.timestamp() * 1000):
                continue
            status = self.store.period_status(label) or {}
            lock = self.store.close_lock(label) or {}
            running = int(lock.get("lease_until", 0)) >= int(now.timestamp())
            if status.get("state") != "closed" and not running:
                due.append(label)
        return due

    def next_due(self, now: datetime, grace_hours: int, *, draft: bool = False) -> str | None:
        """The group a scheduled run closes: the first of ``due_groups``. The draft
        schedule drafts each group once (``billing close --draft`` drafts again). A group
        without any account (its zone is named by some plan, but no account is in it this
        period) is settled here with nothing to do and no document written: drafted by a
        draft run, frozen and closed otherwise; the run goes on to the next group."""
        for group in self.due_groups(now, grace_hours):
            status = self.store.period_status(group) or {}
            if draft and ("drafted_at" in status or "frozen_at" in status):
                continue
            if self.has_accounts(group):
                return group
            at = now.isoformat(timespec="seconds")
            if draft:
                FinanceStore(self.store.table).mark_drafted(group, at)
            else:
                self.store.freeze(group, at)
                self.store.mark_closed(group, at)
        return None

    def has_accounts(self, group: str, page: int = 1000) -> bool:
        """Whether any account of the period (``accounts_page``) is in the close group,
        reading the accounts' zones 100 per request; stops at the first one found."""
        cursor: str | None = None
        while True:
            accounts, cursor = self.store.accounts_page(plain(group), cursor, page)
            if group_members(self.store, group, accounts):
                return True
            if cursor is None:
                return False

    def release(self, period: str | None, execution: str) -> None:
        """Free the period's close lock held by ``execution`` (failure path of the close)."""
        if period:
            self.store.release_close_lock(period, execution)

    # --- 2. accounts ----------------------------------------------------------------

    def list_accounts(self, period: str, cursor: str | None, limit: int = 100) -> AccountsPage:
        """A page of the accounts of the close group ``period`` (a page may hold fewer
        than ``limit``: the accounts of other groups are left out)."""
        accounts, next_cursor = self.store.accounts_page(plain(period), cursor, limit)
        return AccountsPage(group_members(self.store, period, accounts), next_cursor)

    # --- 3. units of work -----------------------------------------------------------

    def sources(self, period: str, account: str) -> list[str]:
        """The periods this close computes for the account: its own, and every frozen prior
        period with late facts (their invoices are adjusted on this one)."""
        return sorted({period, *self.store.adjustment_periods(period, account)})

    def plan_account(self, period: str, account: str) -> AccountPlan:
        """The account's units, each a contiguous group of its storage shards (``shard``:
        the first one, which names the unit's partials; ``shards``: all of them), as many
        as its volume needs (``unit_count``). None for an account an earlier run already
        issued (its invoice is kept as it is, ``rate_account``); one per storage shard for
        an account an earlier run failed to close (a unit that ran out of time is not
        planned again as large)."""
        period = plain(period)
        existing = self.store.result(period, account)
        if existing and existing.get("status") == "issued":
            return AccountPlan(period, account, ())
        labels = shard_labels(self.store.shards)
        retried = existing and existing.get("status") == "failed"
        count = len(labels) if retried else self.unit_count(period, account)
        units = tuple(Unit(period, account, tuple(group)) for group in shard_groups(labels, count))
        return AccountPlan(period, account, units)

    def unit_count(self, period: str, account: str) -> int:
        """How many units the account's close needs: the period's facts (estimated from the
        fact log, ``UsageStore.estimate_period_facts``) times the periods the close computes
        (its own and each prior one with late facts), ``unit_facts`` per unit, at most one
        unit per storage shard."""
        labels = shard_labels(self.store.shards)
        facts = self.store.estimate_period_facts(account, Period.parse(period), labels)
        work = facts * len(self.sources(period, account))
        return max(1, min(len(labels), -(-work // self.unit_facts)))

    # --- 4. one unit ----------------------------------------------------------------

    def settings_for(self, account: str, period: str) -> ContractSettings:
        doc = self.store.plan_document(account, period)
        return PricePlan.model_validate(doc).settings if doc else DEFAULT_SETTINGS

    def compute_unit(self, work: Unit) -> None:
        """One unit: its storage shards, one after the other; their usages are merged (in
        shard order) into one partial per source period, named after the unit's first
        shard and listing the shards it covers, so that ``merged_partials`` reads exactly
        the partials of this plan. A final close's partial also holds the manifest entries
        of the archive parts the unit wrote of its source period (``archive``): the seal
        writes them without listing the parts (``rate_account``).
        """
        period, account = plain(work.period), work.account
        group = list(work.shards)
        unit = UnitContext(self, account, self.sources(period, account), tuple(group))
        merged: dict[str, dict[str, Usage]] = {}
        with listing_scope(self.store):  # an archived period's parts listed once per unit
            for s in group:
                for source, known in self.shard_usage(period, account, s, unit):
                    into = merged.setdefault(source, {})
                    for name, usage in known.items():
                        into[name] = into[name].merge(usage) if name in into else usage
        archived = archiving(self.store) and not unit.drafting()
        for source, known in merged.items():
            doc: dict[str, Any] = {
                "shards": group,
                "usage": {name: u.to_json() for name, u in known.items()},
            }
            if archived:  # the manifest entries of the parts written, for the seal
                doc["archive"] = unit.archived.get(source, [])
            key = partial_key(period, account, source, group[0])
            self.documents.write(key, json.dumps(doc, sort_keys=True).encode(), "application/json")
        for source, rows in unit.ids.items():  # for the id audit (none for a draft)
            self.ids.write_unit(source, account, group[0], rows)

    def shard_usage(
        self, period: str, account: str, shard: str, unit: UnitContext
    ) -> Iterator[tuple[str, dict[str, Usage]]]:
        """Usage of one storage shard for each source period as known at this close; for a
        prior period also as known at the previous close, so that rating the difference
        bills exactly the late facts.

        The entity state is rolled forward from the earliest source period: from the
        state saved at the start of that period (or before it, if a close was skipped) as
        the previous close knew it. Each close saves the state it carries into every
        following period under its own name, so late lifecycle facts are in the state of
        every later close, and a re-run reads exactly what the first run read.
        """
        sources = unit.sources
        first, current = Period.parse(sources[0]), Period.parse(period)
        previous_close = str(current.prev())
        saved = unit.saved_state(shard, str(first), previous_close)
        start = Period.parse(saved.period) if saved else unit.history_start()
        now, before = View(period), View(previous_close)
        now.state = before.state = saved.facts if saved else []
        # without prior periods to adjust, what the previous close knew is never asked for
        views = (now, before) if first < current else (now,)
        walk = Walk(self.store, account, shard, unit.zone_of)
        for q, lifecycle in walk.periods(start, current, views):
            if q > first:  # the state this close carries into q (rebuilt if late facts came)
                self.states.put(account, shard, str(q), period, now.state)
            if str(q) in sources:
                settings = unit.settings(str(q))
                traffic = self.store.read_period(account, q, shard, settings.lookback_hours)
                if not unit.drafting():  # a draft close reads a period still open
                    entry = archive_shard(self.store, period, account, q, shard, lifecycle, traffic)
                    if entry is not None:
                        unit.archived.setdefault(str(q), []).append(entry)
                    unit.read_ids(q, shard, lifecycle, traffic)
                known = {"with": now} if q == current else {"with": now, "without": before}
                yield (
                    str(q),
                    {
                        name: monthly_usage(
                            v.state + v.admit(lifecycle) + v.admit(traffic), q, settings
                        )
                        for name, v in known.items()
                    },
                )
        self.states.put(account, shard, str(current.next()), period, now.state)

    # --- 5. rate --------------------------------------------------------------------

    def merged_partials(self, period: str, account: str) -> dict[str, dict[str, Usage]]:
        """source period -> {"with": Usage, "without": Usage} merged over all shards.

        The partials are followed as a chain from shard 00: each names the shards its unit
        covered, and the next one is named after the first shard not yet covered. Every
        link was written by this run's plan (its units are contiguous and cover all
        shards), so a partial of another plan left by an earlier run is never read."""
        return self.read_partials(period, account)[0]

    def read_partials(
        self, period: str, account: str
    ) -> tuple[dict[str, dict[str, Usage]], dict[str, list[dict[str, Any]]]]:
        """``merged_partials``, and source period -> the manifest entries of the archive
        parts the units wrote of it (``archive_shard``), for ``seal_account``: a source is
        left out when a partial has none (written by an older version, or without an
        archive): the seal lists its parts."""
        labels = shard_labels(self.store.shards)
        merged: dict[str, dict[str, Usage]] = {}
        archived: dict[str, list[dict[str, Any]]] = {}
        for source in self.sources(period, account):
            into = merged.setdefault(source, {})
            entries: list[dict[str, Any]] | None = []
            at = 0
            while at < len(labels):
                key = partial_key(period, account, source, labels[at])
                body = self.documents.read(key)
                if body is None:
                    raise RuntimeError(f"missing partial usage {key}")
                doc = json.loads(body)
                covered = list(doc.get("shards", [labels[at]]))
                if not covered or covered != labels[at : at + len(covered)]:
                    raise RuntimeError(f"partial usage {key} covers shards {covered}")
                at += len(covered)
                for which, usage_doc in doc.get("usage", doc).items():
                    usage = Usage.from_json(usage_doc)
                    into[which] = into[which].merge(usage) if which in into else usage
                parts = doc.get("archive") if "usage" in doc else None
                entries = None if entries is None or parts is None else [*entries, *parts]
            if entries is not None:
                archived[source] = entries
        return merged, archived

    def plan_for(self, account: str, period: str) -> PricePlan:
        doc = self.store.plan_document(account, period)
        if doc is None:
            raise MissingPlan(f"no price plan in force for account {account} in {period}")
        return PricePlan.model_validate(doc)

    def invoice_for(self, period: str, account: str) -> Invoice:
        return self.invoice_and_skipped(period, account)[0]

    def invoice_and_skipped(
        self, period: str, account: str, merged: dict[str, dict[str, Usage]] | None = None
    ) -> tuple[Invoice, list[SkippedAdjustment]]:
        """The invoice, and the prior-period adjustments left out of it because they could
        not be rated: one prior period's failure never blocks the current invoice.

        What was billed for a prior period is what the previous close knew (the
        ``without`` usage), unless an earlier close carried the adjustment here: then it
        is the usage that close recorded as billed. ``merged``: the partials already read
        (``merged_partials``)."""
        if merged is None:
            merged = self.merged_partials(period, account)
        carried = self.store.carried_adjustments(period, account)
        plan = self.plan_for(account, period)
        adjustments = []
        skipped: list[SkippedAdjustment] = []
        for prior, usages in sorted(merged.items()):
            if prior == period:
                continue
            billed = Usage.from_json(carried[prior]) if prior in carried else usages["without"]
            try:
                prior_plan = self.plan_for(account, prior)
                lines = adjustment_lines(
                    prior, rate(usages["with"], prior_plan), rate(billed, prior_plan)
                )
            except Exception as err:  # reported in the result and the manifest
                skipped.append(SkippedAdjustment(prior, f"{type(err).__name__}: {err}", billed))
                continue
            adjustments.extend(lines)
        invoice = build_invoice(
            account, period, plan, merged[period]["with"], adjustments=adjustments
        )
        return invoice, skipped

    def rate_account(self, period: str, account: str) -> AccountClosed:
        """Rate and issue the account's invoice, once: an account already ``issued`` by an
        earlier run keeps its result and documents (nothing is recomputed or rewritten);
        a ``failed`` one is retried. An adjustment that cannot be rated is carried to the
        next period's close (before the result is recorded, so a crash repeats the carry)."""
        period = plain(period)
        existing = self.store.result(period, account)
        if existing and existing.get("status") == "issued":
            return AccountClosed(account, "issued", str(existing["total"]))
        merged, archived = self.read_partials(period, account)  # read once
        invoice, skipped = self.invoice_and_skipped(period, account, merged)
        live = self.reconcile_live(period, account, merged)
        drafting = self.drafting(self.group_of(account, period))
        if not drafting:  # drafts: nothing archived
            # the sources are those of the partials; their parts' entries handed over
            seal_account(self.store, period, account, sorted(merged), archived)
        issued = self.issue(invoice, drafting)
        if issued.status == "draft":
            self.store.put_result(period, account, {**issued.result(), "live_differences": live})
            return AccountClosed(account, "draft", str(invoice.total), len(live))
        invoice = issued.doc
        carried_to = str(Period.parse(period).next())
        for s in skipped:
            self.store.carry_adjustment(carried_to, account, s.period, s.billed.to_json())
        result: dict[str, Any] = issued.result()
        if skipped:
            result["adjustment_failures"] = [
                {"period": s.period, "reason": s.reason, "carried_to": carried_to} for s in skipped
            ]
        result["live_differences"] = live
        self.store.put_result(period, account, result)
        return AccountClosed(account, "issued", str(invoice.total), len(live))

    def reconcile_live(
        self, period: str, account: str, merged: dict[str, dict[str, Usage]] | None = None
    ) -> list[dict[str, Any]]:
        """Where the live view of usage differs from what this close bills (the period's
        facts known at the close, late ones left out): reported in the result and the
        manifest, and as the ``LiveViewDifferences`` metric (alarm). None is expected:
        a difference is a lagging or broken live view, never a change of the invoice.
        ``merged``: the partials already read (``merged_partials``)."""
        if merged is None:
            merged = self.merged_partials(period, account)
        billed = merged[period]["with"]
        return [d.to_json() for d in LiveUsage(self.store).reconcile(account, period, billed)]

    def issue(self, statement: Invoice, drafting: bool) -> Issued:
        """The statement as the account's document: with a billing profile, a draft while
        the period is open (``drafting``; ``drafts/``, rewritten) or, once it is frozen, the
        final invoice numbered from the seller's series; without one, the usage statement (or
        ``MissingProfile`` where the stage requires a profile). Final documents are
        written once (byte-identical on re-runs)."""
        finance = self.finance
        drafted = finance.draft(statement)
        if drafted is None and self.require_profile:
            account, period = statement.account, statement.period
            raise MissingProfile(f"no billing profile in force for account {account} in {period}")
        doc = drafted[0] if drafted else statement
        if drafting:
            doc = doc if drafted else doc.model_copy(update={"status": "draft"})
            return Issued("draft", doc, finance.write_draft(doc))
        if drafted:
            doc = finance.finalize(doc, drafted[1])
        return Issued("issued", doc, finance.write_final(doc))

    # --- 6. failures ----------------------------------------------------------------

    def record_failure(self, period: str, account: str, error: Mapping[str, Any]) -> None:
        period = plain(period)
        cause = str(error.get("Cause", error))
        try:  # a Lambda error's Cause is JSON with errorMessage / errorType
            detail = json.loads(cause)
            cause = f"{detail.get('errorType', 'Error')}: {detail.get('errorMessage', cause)}"
        except (ValueError, AttributeError):
            pass
        self.store.put_failure(
            period, account, {"status": "failed", "account": account, "error": cause[:2000]}
        )

    def close_account(self, group: str, account: str) -> AccountClosed | None:
        """One account's branch of the state machine, in process: its units, then its
        invoice; a failure is recorded as the state machine's ``Catch`` records it, and
        the close goes on (``None``)."""
        try:
            for unit in self.plan_account(group, account).units:
                self.compute_unit(unit)
            return self.rate_account(group, account)
        except Exception as err:
            cause = json.dumps({"errorType": type(err).__name__, "errorMessage": str(err)})
            self.record_failure(group, account, {"Error": type(err).__name__, "Cause": cause})
            return None

    def finalize_account(self, group: str, account: str, execution: str | None = None) -> None:
        """One account closed in process, as the state machine closes it (``billing invoices
        finalize --account``, the period frozen first): its branch, then the id audit the
        state machine runs after every account (the period's ids, this account's among
        them: a reused id is marked now, not at a later close), then ``finish``."""
        self.close_account(group, account)
        self.audit_all(group)
        self.finish(group, execution=execution)

    # --- 7. the id audit ------------------------------------------------------------

    def audit_ids(self, period: str, bucket: int) -> IdAudit:
        """The audit of one id bucket (``audit_buckets``)."""
        return self.audit_buckets(period, [bucket])[0]

    def audit_buckets(self, period: str, buckets: Sequence[int]) -> list[IdAudit]:
        """Compare the ids of ``buckets`` that the closes of ``period`` and of the
        ``AUDIT_PERIODS`` periods before it read (``billing.adapters.ids``), each file read
        once for all of them (in as many passes as the rows need); mark every version of an
        id stored with two contents. One outcome per bucket (its conflicts recorded under
        its own key, whichever task audited it). Nothing for a draft close."""
        chosen = sorted(set(buckets))
        if self.drafting(period):
            return [IdAudit(bucket, 0, 0, 0) for bucket in chosen]
        window = audit_window(period)
        files = [f for q in window for f in self.ids.files(str(q), chosen)]
        passes = audit_passes(files)
        found: dict[str, list[IdRow]] = {}
        for part in range(passes):  # each pass holds one slice of the ids: all its versions
            found.update(conflicts(self.ids.rows(files, chosen, part, passes)))
        per_bucket: dict[int, dict[str, list[IdRow]]] = {bucket: {} for bucket in chosen}
        for fact_id, versions in found.items():
            per_bucket[bucket_of(fact_id, self.ids.buckets)][fact_id] = versions
        frozen = self.store.frozen_periods() if found else set()
        out = []
        for bucket, mine in per_bucket.items():
            marked = 0
            for versions in mine.values():
                if len({v.pk for v in versions}) == 1:
                    continue  # every read of that partition holds all versions: none billed
                for version in versions:
                    account = version.account
                    lookback = self.settings_for(account, str(window[0])).lookback_hours
                    marked += mark_version(self.store, version, frozen, self.zone_of, lookback)
            self.store.put_id_conflicts(
                str(window[0]),
                bucket,
                [{"id": i, "versions": [v.where() for v in vs]} for i, vs in mine.items()],
            )
            out.append(IdAudit(bucket, len(mine), marked, passes))
        return out

    def plan_audit(self, period: str, buckets: Sequence[int]) -> list[list[int]]:
        """The AuditIds tasks of a close: its id buckets (none for a draft close) in as few
        tasks as hold the rows of its window in one pass each (``audit_tasks``), sized from
        one listing of each period of the window. Decided once, before the tasks start:
        every bucket is in exactly one task, whatever is written meanwhile."""
        if not buckets or self.drafting(period):
            return []
        size = sum(self.ids.period_size(str(q)) for q in audit_window(period))
        return audit_tasks(buckets, size)

    def audit_all(self, period: str) -> list[IdAudit]:
        """Every id bucket of ``period``'s audit, in process, each file read once (the
        state machine runs the tasks ``plan_audit`` gives)."""
        return self.audit_buckets(period, range(ID_BUCKETS))

    # --- 8. finish ------------------------------------------------------------------

    def finish(
        self, period: str, now: datetime | None = None, execution: str | None = None
    ) -> CloseSummary:
        """Manifest and summary from the results, checked against S3: an ``issued`` result
        whose documents are missing is reported failed. Then the period is closed, each
        invoice not yet announced is announced once, and the close lock is released.

        ``period`` is a close group: the manifest and summary of the period list every
        account closed so far (each group's close rewrites them); the figures returned
        (``issued``, ``failed``) are the group's accounts', ``announced`` what this run
        announced."""
        now = now or self.clock()
        group, period = period, plain(period)
        with self.period_documents(period):  # the results read and the documents written
            if self.drafting(group):  # a draft close: nothing final, nothing announced
                drafts = self.finish_drafts(group, self.results(period), None)
                if execution:
                    self.store.release_close_lock(group, execution)
                return drafts
            issued, failed = self.write_documents(period)
            mine = self.of_group(group, [*issued, *failed])  # the figures returned
            if self.documents.read(f"{DRAFTS}{period}/manifest.json") is not None:
                # the finalized group's accounts leave the drafts manifest
                self.write_drafts_manifest(period, self.results(period))
        at = now.isoformat(timespec="seconds")
        self.store.mark_closed(group, at)
        announced = self.announce(period, issued, at)
        if execution:
            self.store.release_close_lock(group, execution)
        return CloseSummary(
            period,
            issued=sum(1 for r in mine if r["status"] == "issued"),
            announced=announced,
            failed=[r["account"] for r in mine if r["status"] != "issued"],
        )

    def unarchived(self, group: str) -> list[str]:
        """What the close whose items expire next has not archived (``archive.unarchived``),
        checked by the final close of ``group``: with ``HOT_MONTHS`` 0 or 1 that is this
        close itself, for the accounts of its group."""
        return unarchived(
            self.store,
            plain(group),
            HOT_MONTHS,
            lambda accounts: group_members(self.store, group, accounts),
        )

    def results(self, period: str) -> list[dict[str, Any]]:
        return sorted(self.store.results(period), key=lambda r: r["account"])

    def of_group(self, group: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The results of the close group's accounts, in order."""
        members = set(group_members(self.store, group, [r["account"] for r in results]))
        return [r for r in results if r["account"] in members]

    def period_documents(self, period: str) -> AbstractContextManager[None]:
        """The period's documents lock (``billing.adapters.store.period_documents``): held
        while the results are read and the shared documents rewritten; the state machine
        retries Finish on ``PeriodDocumentsBusy``."""
        return period_documents(self.store, period, self.documents_wait_seconds)

    def write_documents(self, period: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The period's manifest, summary and finance summary from every result so far
        (run under ``period_documents``); the issued and the failed results."""
        results = self.results(period)
        for r in results:
            if r["status"] != "issued":
                continue
            missing = [k for k in r["keys"].values() if self.documents.read(k) is None]
            if missing:
                account = r["account"]
                r.clear()
                r.update(
                    status="failed",
                    account=account,
                    error=f"issued documents missing in S3: {', '.join(sorted(missing))}",
                )
        issued = [r for r in results if r["status"] == "issued"]
        failed = [r for r in results if r["status"] not in ("issued", "draft")]
        for r in failed:
            if r.get("error", "").startswith("issued documents missing"):
                self.store.put_result(period, r["account"], r)
        invoices = []
        for r in issued:
            body = self.documents.read(r["keys"]["json"])
            if body is not None:
                invoices.append(Invoice.model_validate_json(body))
        self.documents.write(
            f"invoices/{period}/summary.csv", summary_csv(invoices), CONTENT_TYPES["csv"]
        )
        failures = [{"account": r["account"], "error": r.get("error", "")} for r in failed]
        skipped = [
            {"account": r["account"], **a} for r in issued for a in r.get("adjustment_failures", [])
        ]
        self.documents.write(
            f"invoices/{period}/manifest.json",
            manifest(
                period,
                invoices,
                failures,
                skipped,
                {r["account"]: r.get("live_differences", []) for r in issued},
                self.store.id_conflicts(period),
            ),
            CONTENT_TYPES["json"],
        )
        self.finance.write_summary(period)
        return issued, failed

    def finish_drafts(
        self, group: str, results: list[dict[str, Any]], execution: str | None
    ) -> CloseSummary:
        """The end of a draft close of a close group: ``drafts/{period}/manifest.json``
        lists the drafts of every group of the period (account, total, documents) and the
        failures; the group is marked drafted (the draft schedule drafts it once); the
        lock is released. The figures returned are the group's accounts'."""
        period = plain(group)
        drafts, failed = self.write_drafts_manifest(period, results)
        mine = self.of_group(group, [*drafts, *failed])  # the figures returned
        at = self.clock().isoformat(timespec="seconds")
        FinanceStore(self.store.table).mark_drafted(group, at)
        if execution:
            self.store.release_close_lock(group, execution)
        return CloseSummary(
            period,
            issued=0,
            announced=0,
            failed=[r["account"] for r in mine if r["status"] != "draft"],
            drafts=sum(1 for r in mine if r["status"] == "draft"),
        )

    def write_drafts_manifest(
        self, period: str, results: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``drafts/{period}/manifest.json`` from the results (run under
        ``period_documents``): the accounts still in draft, every group's, and the
        failures; the drafts and the failed results."""
        drafts = [r for r in results if r["status"] == "draft"]
        failed = [r for r in results if r["status"] not in ("issued", "draft")]
        doc = {
            "period": period,
            "drafts": [
                {k: r.get(k) for k in ("account", "currency", "total", "gross", "keys")}
                for r in drafts
            ],
            "failed": [{"account": r["account"], "error": r.get("error", "")} for r in failed],
            # drafts of usage statements: these accounts have no billing profile yet
            "without_billing_profile": [
                {"account": r["account"], "note": r["note"]} for r in drafts if r.get("note")
            ],
        }
        body = json.dumps(doc, sort_keys=True, indent=2, default=str).encode()
        self.documents.write(f"{DRAFTS}{period}/manifest.json", body, CONTENT_TYPES["json"])
        return drafts, failed

    def announce(self, period: str, issued: list[dict[str, Any]], at: str) -> int:
        """Publish ``InvoiceIssued`` once per invoice. Each announcement is claimed first
        (a conditional update of the result); a failed publication gives the claim back.
        Crash window: a crash between the claim and ``PutEvents`` loses that announcement
        (at most once); the result shows ``announced_at`` and the invoice is in S3 and in
        the manifest."""
        claimed = [
            r for r in issued if self.store.mark_announced(period, r["account"], r["invoice"], at)
        ]
        try:
            failed_accounts = self.publish_issued(period, claimed)
        except Exception:
            for r in claimed:
                self.store.unmark_announced(period, r["account"])
            raise
        for account in failed_accounts:
            self.store.unmark_announced(period, account)
        return len(claimed) - len(failed_accounts)

    def publish_issued(self, period: str, issued: list[dict[str, Any]]) -> list[str]:
        """Put the events; the accounts whose entries EventBridge did not accept."""
        entries = [
            {
                "Source": "cpaas.billing",
                # a numbered invoice of a billing profile; a usage statement otherwise
                "DetailType": "InvoiceFinalized" if r.get("gross") else "InvoiceIssued",
                "EventBusName": self.bus_name,
                "Detail": json.dumps(
                    {
                        "period": period,
                        "account": r["account"],
                        "invoice": r["invoice"],
                        "currency": r["currency"],
                        "total": r["total"],
                        "keys": r["keys"],
                        **{k: r[k] for k in ("net", "tax", "gross", "due_date") if k in r},
                        **({"number": r["invoice"]} if r.get("gross") else {}),
                    },
                    sort_keys=True,
                ),
            }
            for r in issued
        ]
        rejected: list[str] = []
        for start in range(0, len(entries), 10):
            resp = self.events.put_events(Entries=entries[start : start + 10])
            for r, entry in zip(issued[start : start + 10], resp.get("Entries", []), strict=False):
                if entry.get("ErrorCode"):
                    rejected.append(r["account"])
        return rejected


@dataclass
class UnitContext:
    """What every storage shard of one unit shares, read once per unit: the source
    periods, each one's contract settings, where the account's stored history starts."""

    close: MonthClose
    account: str
    sources: list[str]
    shards: tuple[str, ...] = ()  # the unit's storage shards
    _settings: dict[str, ContractSettings] = field(default_factory=dict)
    _saved: dict[str, list[tuple[str, str]]] | None = None
    _history_start: Period | None = None
    _zone_of: ZoneOf | None = None
    _drafting: bool | None = None
    # source period -> the ids of the facts the unit read of it (``billing.adapters.ids``)
    ids: dict[str, list[IdRow]] = field(default_factory=dict)
    # source period -> the manifest entries of the archive parts the unit wrote of it
    archived: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def period(self) -> str:
        """The period being closed: the last source period."""
        return self.sources[-1]

    def settings(self, period: str) -> ContractSettings:
        if period not in self._settings:
            self._settings[period] = self.close.settings_for(self.account, period)
        return self._settings[period]

    def zone_of(self, period: Period) -> str:
        """The account's time zone in ``period`` (its bounds: ``periods.zoned``)."""
        if self._zone_of is None:
            self._zone_of = self.close.zone_of(self.account)
        return self._zone_of(period)

    def drafting(self) -> bool:
        """Whether this close writes drafts (``MonthClose.drafting``), asked once per unit."""
        if self._drafting is None:
            self._drafting = self.close.drafting(self.close.group_of(self.account, self.period))
        return self._drafting

    def read_ids(
        self,
        period: Period,
        shard: str,
        lifecycle: Sequence[StoredFact],
        traffic: Sequence[StoredFact],
    ) -> None:
        """Keep the ids of one shard's facts of ``period`` (``read_period``'s look-back
        tail left out: the previous period's close keeps those)."""
        rows = self.ids.setdefault(str(period), [])
        account, start = self.account, period.start_ms
        pk = fact_pk(account, period, shard)
        rows.extend(IdRow.of(s.fact, pk) for s in traffic if not s.conflict and s.fact.at >= start)
        pk = lifecycle_pk(account, period, shard)
        rows.extend(IdRow.of(s.fact, pk) for s in lifecycle if not s.conflict)

    def history_start(self) -> Period:
        if self._history_start is None:
            first = Period.parse(self.sources[0])
            self._history_start = history_start(self.close.store, self.account, first)
        return self._history_start

    def saved_state(self, shard: str, period: str, known_at: str) -> Snapshot | None:
        """``StateStore.latest`` for one of the unit's shards: the most recent state saved
        at the start of ``period`` or of an earlier period, as known by the close of
        ``known_at``. The versions of all the unit's shards are listed once per unit (one
        request, not one per shard): a unit writes only its own shards' states, each after
        it has read them, so the listing is what each shard's own would have been."""
        if shard not in self.shards:  # not one of the unit's: listed on its own
            return self.close.states.latest(self.account, shard, period, known_at)
        if self._saved is None:
            self._saved = self.close.states.account_versions(self.account, self.shards)
        best = pick(self._saved.get(shard, []), period, known_at)
        return None if best is None else self.close.states.read(self.account, shard, *best)
