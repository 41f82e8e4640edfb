"""The live view of usage: every shard's usage kept current from the fact log.

The fact log stays the source of truth. When facts are stored, the table's stream names the
shards they belong to (``F#``/``E#`` partitions); :meth:`LiveUsage.refresh` recomputes each
named shard's usage from its stored facts, with the same code as the close and
``billing usage --recompute`` (``billing.queries.shard_now``), and stores it as one item
``L#{acct}#{period} / S#{nn}``. Reading an account's usage is then one Query of one
partition, at most ``SHARDS`` items, whatever its volume. The entity state carried into
the period starts from the state the previous close saved (``billing.shard.saved_start``:
late lifecycle facts since make it start earlier), so what a refresh reads does not grow
with the account's age; an account never closed rebuilds it from its stored history.

Why this converges exactly: a refresh is a pure function of the items stored when it
reads them; every new item produces a stream record, and the refresh it triggers reads
after the item was written. So once every record is processed, each shard's item is the
usage of all its stored facts: the recomputation's figure, late inbound messages,
out-of-order stops, redelivered events and conflicts included. Stream retries and
duplicates only refresh again; two refreshes racing store the one that read more items
(a conditional put on the item count; items are never removed from a hot period). A
refresh from a later close's saved state counts only what that close did not know, so the
put orders by (that close, count): ``UsageStore.put_live_shard``'s ``epoch``.

Each shard item also carries the usage without the late facts (``on_time``, only when it
differs): what the period's own close bills, which the close reconciles with.

Thresholds (plan ``thresholds`` and ``billing alerts set``) are checked after a refresh:
the merged live usage and the estimate (the live usage rated with the plan by the close's
own rating code) against each level; a threshold reached is claimed once per period
(``ALERT#`` item, conditional put) and then announced as ``UsageThresholdReached``; an
announcement EventBridge refuses gives the claim back, so a retry sends it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from billing.adapters.archive import listing_scope
from billing.adapters.bus import publish_one
from billing.adapters.state import StateStore
from billing.adapters.store import ShardKey, UsageStore, shard_labels, shard_of_item
from billing.domain.invoice import Invoice
from billing.domain.periods import Period, ZoneOf, period_at, zoned, zones_from
from billing.domain.plan import PricePlan
from billing.domain.rating import build_invoice
from billing.domain.settings import DEFAULT_SETTINGS
from billing.domain.thresholds import Difference, Threshold, differences
from billing.domain.usage import Usage
from billing.queries import shard_now
from billing.shard import Start, history_start, saved_start

THRESHOLD_EVENT = "UsageThresholdReached"
ZONES_TTL_SECONDS = 300  # an account's zones are cached as long as ingest caches them
# The rollover schedule runs hourly around month end: an account is rolled over by the runs
# within this time of its local period's start (two runs: one may fail).
ROLLOVER_WINDOW_MS = 2 * 3_600_000
LOG = logging.getLogger(__name__)


def plan_digest(doc: Mapping[str, Any] | None) -> str:
    """Which plan a shard's figures were computed under (settings change figures)."""
    if doc is None:
        return "none"
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RefreshBudget:
    """How often a shard's facts may be re-read. A shard of up to ``inline_items`` items
    is refreshed on every stream batch that names it; a larger one at most once per
    ``items / read_rate`` seconds (so the reads a shard costs grow with time, not with the
    square of its size); the records in between mark it deferred."""

    inline_items: int = 50_000
    read_rate: int = 500  # items per second per shard, on average

    @classmethod
    def from_env(cls) -> RefreshBudget:
        env = os.environ
        return cls(
            int(env.get("LIVE_INLINE_ITEMS", cls.inline_items)),
            int(env.get("LIVE_READ_RATE", cls.read_rate)),
        )

    def defers(self, items: int, refreshed_at: int, now: int) -> bool:
        if items <= self.inline_items:
            return False
        return now - refreshed_at < items * 1000 // max(self.read_rate, 1)


@dataclass
class LiveView:
    """An account's live usage in a period, merged over its refreshed shards."""

    account: str
    period: str
    usage: Usage
    on_time: Usage
    shards: int = 0
    items: int = 0
    refreshed_at: int | None = None  # the oldest shard refresh (epoch ms)
    plans: set[str] = field(default_factory=set)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    oversized: list[str] = field(default_factory=list)  # shards whose usage is too large

    def computed_under(self, digest: str) -> bool:
        """Whether every shard was computed under the plan ``digest``."""
        return self.plans <= {digest}


class _CallState(threading.local):
    """What one stream batch or one refresh call of a ``LiveUsage`` keeps, apart for each
    thread: the live function caches its ``LiveUsage``, and where invocations run
    concurrently in one process (the embedded runtime: a stream batch beside the sweep)
    one call's end must not clear another's caches."""

    def __init__(self) -> None:
        # per stream batch (None outside one): plans and zones read once, and the shards
        # refreshed (or deferred) with their origin
        self.plans: dict[tuple[str, str], dict[str, Any] | None] | None = None
        self.plan_zones: dict[str, list[tuple[str, str]]] | None = None
        self.batch_done: set[tuple[ShardKey, Period | None]] | None = None
        # per refresh call: the markers read once, the close groups read not closed
        self.markers: dict[tuple[str, str], list[str]] = {}
        self.open: set[str] = set()


class LiveUsage:
    def __init__(
        self,
        store: UsageStore,
        events: Any = None,
        bus_name: str = "",
        clock: Callable[[], float] = time.time,
        budget: RefreshBudget | None = None,
        states: StateStore | None = None,
    ) -> None:
        self.store = store
        self.states = states  # the closes' saved entity state (None: the stored history)
        self._closed: set[str] = set()  # close groups known closed (they stay closed)
        self.events = events
        self.bus_name = bus_name
        self.clock = clock
        self.budget = budget or RefreshBudget.from_env()
        # what one stream batch or refresh call keeps, apart for each thread
        self._call = _CallState()
        self._zones: dict[str, tuple[ZoneOf, float]] = {}

    # --- refresh ----------------------------------------------------------------------

    def refresh(self, keys: Iterable[ShardKey], forced: bool = False) -> list[tuple[str, str]]:
        """Recompute and store each shard's usage; the (account, period) pairs touched.

        A large shard is not re-read more often than its refresh budget allows (see
        ``RefreshBudget``): it is noted as deferred and the sweep refreshes it later;
        ``forced`` (the sweep) refreshes regardless and clears the deferral. Within a
        stream batch a shard is refreshed once: every item its records name was stored
        before the batch was delivered, so the first refresh read them all (an item stored
        since has a record of its own, in a later batch)."""
        todo: dict[tuple[str, str], set[str]] = defaultdict(set)
        origins: dict[tuple[str, str, str], Period] = {}  # a refresh following an earlier one
        self._call.markers, self._call.open = {}, set()
        for key in keys:
            todo[(key.account, key.period)].add(key.shard)
        done: list[tuple[str, str]] = []
        while todo:
            account, period = group = min(todo)
            shards = todo.pop(group)
            done.append(group)
            doc = self._plan_document(account, period)
            settings = PricePlan.model_validate(doc).settings if doc else DEFAULT_SETTINGS
            p = Period.parse(period)
            zones = self._zones_of(account)
            if zones is None:
                zones = self.store.plan_zones(account)
            stored_history: Period | None = None
            following: set[str] | None = None  # the shards with a live item in the next period
            meta = self.store.live_meta(account, period) if not forced else {}
            for shard in sorted(shards):
                key = ShardKey(account, period, shard)
                origin = origins.get((account, period, shard))
                done_in_batch = self._call.batch_done
                if done_in_batch is not None and (key, origin) in done_in_batch:
                    continue  # refreshed (or deferred) earlier in this stream batch
                read_from = int(self.clock() * 1000)
                if shard in meta and self.budget.defers(*meta[shard], read_from):
                    self.store.defer_live(key, read_from)
                    if done_in_batch is not None:
                        done_in_batch.add((key, origin))
                    continue
                start: Period | Start | None = self._saved_start(key, zones, origin)
                if start is None:  # never closed: the stored history
                    if stored_history is None:
                        stored_history = history_start(self.store, account, p)
                    start = stored_history
                now = shard_now(self.store, key, settings, start, zones)
                if p < self.current_period(account):
                    if following is None and not now.carries:
                        following = self.store.live_shards(account, str(p.next()))
                    if now.carries or shard in (following or set()):
                        # entities held on into the next period are billed there too, with
                        # or without new facts (or were, until a late stop: the next
                        # period's item, if any, is refreshed): that period's figure
                        # changes with this one, from this period's history on
                        todo[(account, str(p.next()))].add(shard)
                        nxt = (account, str(p.next()), shard)
                        origins[nxt] = min(origins.get(nxt, p), origin or p, p)
                if now.read == 0 and not now.carries and not now.usage.figures():
                    if done_in_batch is not None:
                        done_in_batch.add((key, origin))
                    continue
                body: dict[str, Any] = {"usage": now.usage.to_json(), "plan": plan_digest(doc)}
                if now.on_time is not now.usage:
                    body["on_time"] = now.on_time.to_json()
                self.store.put_live_shard(
                    key, body, now.items, read_from, carries=now.carries, epoch=now.epoch
                )
                if forced:
                    self.store.clear_deferred_live(key, read_from)
                if done_in_batch is not None:
                    done_in_batch.add((key, origin))
        return sorted(set(done))

    def _saved_start(
        self, key: ShardKey, zones: list[tuple[str, str]], origin: Period | None
    ) -> Start | None:
        """The state the latest close before the period saved for the shard, with the late
        lifecycle facts stored since (``billing.shard.saved_start``); ``None`` without."""
        if self.states is None:
            return None
        zone_of = zones_from(zones)

        def closed(period: str) -> bool:
            """Whether the account's close of ``period`` is done (a draft close saves
            states too, but the period is still open: later facts are not late)."""
            p = Period.parse(period)
            label = p.in_zone(zone_of(p)).label
            if label in self._closed:
                return True
            if label in self._call.open:  # every shard of the call asks: read once per call
                return False
            if (self.store.period_status(label) or {}).get("state") != "closed":
                self._call.open.add(label)
                return False
            self._closed.add(label)
            return True

        def markers(period: str) -> list[str]:
            """The account's ``ADJ#`` markers under a period (every shard shares them)."""
            if (key.account, period) not in self._call.markers:
                found = self.store.adjustment_periods(period, key.account)
                self._call.markers[(key.account, period)] = found
            return self._call.markers[(key.account, period)]

        p = Period.parse(key.period)
        last = max(p, self.current_period(key.account))
        return saved_start(
            self.store, self.states, key.account, key.shard, p, last, closed, origin, markers
        )

    def sweep(self) -> list[tuple[str, str]]:
        """Refresh the deferred shards whose refresh interval has passed (the schedule
        runs this every few minutes; at quiescence every shard converges)."""
        now = int(self.clock() * 1000)
        due = []
        for key, _ in self.store.deferred_live():
            meta = self.store.live_meta(key.account, key.period).get(key.shard)
            if meta is None or not self.budget.defers(*meta, now):
                due.append(key)
        return self.refresh(due, forced=True)

    def current_period(self, account: str) -> Period:
        """The account's period now, in its local calendar (its plans' zones,
        ``periods.zones_from``: the close's and ingest's): in a stream batch the batch's
        reading, otherwise read at most every ``ZONES_TTL_SECONDS`` per container."""
        now = self.clock()
        in_batch = self._zones_of(account)
        if in_batch is not None:
            return period_at(int(now * 1000), zones_from(in_batch))
        cached = self._zones.get(account)
        if cached is None or now - cached[1] >= ZONES_TTL_SECONDS:
            cached = (zones_from(self.store.plan_zones(account)), now)
            self._zones[account] = cached
        return period_at(int(now * 1000), cached[0])

    def roll_over(self, period: str | None = None) -> list[tuple[str, str]]:
        """When an account's period starts: refresh every shard whose entities were held
        on at the end of its previous period (numbers, recordings, seats are billed in the
        new period before any new fact arrives). With ``period``: every account, into that
        period. Without (the schedule, hourly around month end): each account whose local
        period started within ``ROLLOVER_WINDOW_MS``, in its own calendar (Seoul's
        November at 15:00 UTC on 10-31, New York's at 04:00 UTC on 11-01)."""
        now, window = int(self.clock() * 1000), ROLLOVER_WINDOW_MS
        utc = Period.of_ms(now)
        targets = [Period.parse(period)] if period else [utc, utc.next()]
        keys: list[ShardKey] = []
        for target in targets:
            prev = str(target.prev())
            cursor: str | None = None
            while True:
                accounts, cursor = self.store.accounts_page(prev, cursor, 1000)
                if period is None:  # the accounts whose own period ``target`` just started
                    zones = self.store.plan_zones_of(accounts)
                    starts = {a: zoned(target, zones_from(zones.get(a, []))) for a in accounts}
                    accounts = [a for a in accounts if 0 <= now - starts[a].start_ms < window]
                for account in accounts:
                    for item in self.store.live_items(account, prev):
                        if str(item["sk"]).startswith("S#") and item.get("carries"):
                            keys.append(ShardKey(account, str(target), str(item["sk"])[2:]))
                if cursor is None:
                    break
        return self.refresh(keys)

    def refresh_account(self, account: str, periods: Iterable[str]) -> list[tuple[str, str]]:
        """Refresh every shard of the account in the periods where it has facts (after a
        plan change: its settings change the figures)."""
        stored = self.store.periods_with_facts(account, list(periods))
        labels = shard_labels(self.store.shards)
        return self.refresh(ShardKey(account, p, s) for p in stored for s in labels)

    def handle_stream(self, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """One batch of the table's stream (see ``_handle_stream``). An archived period's
        parts are listed once per account in the batch (``listing_scope``). A part a close
        writes meanwhile is missed only if its items also leave the table during the
        batch: that refresh then reads fewer items than the live item counts, and its
        conditional put replaces nothing."""
        self._call.plans, self._call.plan_zones, self._call.batch_done = {}, {}, set()
        try:
            with listing_scope(self.store), self._states_scope():
                return self._handle_stream(records)
        finally:
            self._call.plans, self._call.plan_zones, self._call.batch_done = None, None, None

    def _states_scope(self) -> AbstractContextManager[None]:
        """The saved states listed once per account in a batch (``StateStore``)."""
        return self.states.listing_scope() if self.states is not None else nullcontext()

    def _handle_stream(self, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """One batch of the table's stream: refresh the shards the records name (a plan
        record refreshes the account's current and previous periods), then check the
        thresholds of each account touched (a threshold record: the account's current
        period). A failure is reported as the first record of
        the failed account and period (``batchItemFailures``): the stream retries from it,
        and everything after it is refreshed again, which changes nothing that was right."""
        keys: dict[tuple[str, str], set[ShardKey]] = defaultdict(set)
        first: dict[tuple[str, str], str] = {}
        plans: dict[str, str] = {}
        thresholds: dict[str, str] = {}
        for record in records:
            if record.get("eventName") == "REMOVE":
                continue  # an expired item of an archived period: the usage is unchanged
            pk = str(record["dynamodb"]["Keys"]["pk"]["S"])
            seq = str(record["dynamodb"]["SequenceNumber"])
            key = shard_of_item(pk)
            if key is not None:
                group = (key.account, key.period)
                keys[group].add(key)
                first.setdefault(group, seq)
            elif pk.startswith("PLAN#"):
                plans.setdefault(pk[len("PLAN#") :], seq)
            elif pk.startswith("THRESHOLD#"):  # set or changed: checked against the usage now
                thresholds.setdefault(pk[len("THRESHOLD#") :], seq)
        failed: list[str] = []
        refreshed: set[tuple[str, str]] = set()
        for account, seq in sorted(plans.items()):
            try:
                now = self.current_period(account)
                refreshed.update(self.refresh_account(account, [str(now.prev()), str(now)]))
            except Exception:
                LOG.exception("live view refresh failed for plan of %s", account)
                failed.append(seq)
        for group, group_keys in sorted(keys.items()):
            try:
                refreshed.update(self.refresh(group_keys))
            except Exception:
                LOG.exception("live view refresh failed for %s %s", *group)
                failed.append(first[group])
        # a threshold set below what the period has already used is reached now, not at
        # the account's next fact
        changed = {
            (account, str(self.current_period(account))): seq for account, seq in thresholds.items()
        }
        alerts = 0
        for account, period in sorted(refreshed | set(changed)):
            try:
                alerts += len(self.check_thresholds(account, period))
            except Exception:
                LOG.exception("threshold check failed for %s %s", account, period)
                failed.append(
                    first.get((account, period)) or plans.get(account) or changed[(account, period)]
                )
        failures = [{"itemIdentifier": min(failed, key=int)}] if failed else []
        return {"batchItemFailures": failures, "refreshed": len(refreshed), "alerts": alerts}

    # --- read ---------------------------------------------------------------------------

    def view(self, account: str, period: str) -> LiveView:
        out = LiveView(account, period, Usage(period), Usage(period))
        for item in self.store.live_items(account, period):
            sk = str(item["sk"])
            if sk.startswith("ALERT#"):
                out.alerts.append(json.loads(str(item["alert"])))
                continue
            if "doc" not in item:
                out.oversized.append(sk[2:])
                continue
            doc = item["doc"]
            usage = Usage.from_json(doc["usage"])
            out.usage = out.usage.merge(usage)
            out.on_time = out.on_time.merge(Usage.from_json(doc.get("on_time", doc["usage"])))
            out.shards += 1
            out.items += int(item["n"])
            at = int(item["at"])
            out.refreshed_at = at if out.refreshed_at is None else min(out.refreshed_at, at)
            out.plans.add(str(doc["plan"]))
        out.usage, out.on_time = out.usage.resolved(), out.on_time.resolved()
        return out

    def _plan_document(self, account: str, period: str) -> dict[str, Any] | None:
        """The plan in force, read once per stream batch (refresh, thresholds and estimate
        all need it); outside a batch (the CLI) read each time."""
        if self._call.plans is None:
            return self.store.plan_document(account, period)
        if (account, period) not in self._call.plans:
            self._call.plans[(account, period)] = self.store.plan_document(account, period)
        return self._call.plans[(account, period)]

    def _zones_of(self, account: str) -> list[tuple[str, str]] | None:
        """The account's zones, read once per stream batch (every shard refresh needs
        them); outside a batch ``None``: each refresh reads them."""
        if self._call.plan_zones is None:
            return None
        if account not in self._call.plan_zones:
            self._call.plan_zones[account] = self.store.plan_zones(account)
        return self._call.plan_zones[account]

    def estimate(self, account: str, period: str, usage: Usage) -> Invoice | None:
        """The period so far rated with the plan in force, by the close's rating code:
        packages, tiers and commitments pro forma, no prior-period adjustments."""
        doc = self._plan_document(account, period)
        if doc is None:
            return None
        return build_invoice(account, period, PricePlan.model_validate(doc), usage)

    def thresholds(self, account: str, period: str) -> list[Threshold]:
        doc = self._plan_document(account, period)
        given = PricePlan.model_validate(doc).thresholds if doc else []
        stored = [Threshold.model_validate(t) for t in self.store.thresholds(account)]
        by_id = {t.id: t for t in given}
        by_id.update({t.id: t for t in stored})  # the CLI's setting wins over the plan's
        return [by_id[i] for i in sorted(by_id)]

    # --- thresholds ---------------------------------------------------------------------

    def check_thresholds(self, account: str, period: str) -> list[dict[str, Any]]:
        """Announce every threshold reached and not yet announced in the period."""
        levels = self.thresholds(account, period)
        if not levels:
            return []
        view = self.view(account, period)
        done = {a["threshold"] for a in view.alerts}
        pending = [t for t in levels if t.id not in done]
        if not pending:
            return []
        needs_amount = any(t.amount is not None for t in pending)
        estimate = self.estimate(account, period, view.usage) if needs_amount else None
        total = estimate.total if estimate is not None else None
        fired = []
        for threshold in pending:
            value = threshold.reached(view.usage, total)
            if value is None:
                continue
            alert = {
                "account": account,
                "period": period,
                "threshold": threshold.id,
                "metric": threshold.metric,
                "level": str(threshold.level),
                "value": str(value),
                "currency": estimate.currency if estimate and threshold.amount else None,
                "at": int(self.clock() * 1000),
            }
            if self.store.claim_alert(account, period, threshold.id, alert):
                try:
                    self._announce(alert)
                except Exception:
                    self.store.release_alert(account, period, threshold.id)
                    raise
                fired.append(alert)
        return fired

    def _announce(self, alert: Mapping[str, Any]) -> None:
        publish_one(self.events, self.bus_name, THRESHOLD_EVENT, alert)

    # --- reconciliation -----------------------------------------------------------------

    def reconcile(self, account: str, period: str, billed: Usage) -> list[Difference]:
        """Where the close's figures (``billed``) and the live view (without late facts,
        as the close bills them) differ: none when the view is complete."""
        return differences(billed.resolved(), self.view(account, period).on_time)
