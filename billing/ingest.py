"""Ingest: an SQS batch of usage events in, facts stored exactly once.

Per batch: every record is parsed and validated (powertools batch processing: a record
that fails unexpectedly is reported as a batch item failure and redelivered, then lands
in the DLQ), reduced to its fact and written with one idempotent put; invalid records are
kept in the rejected-events store with the validation errors and are not retried. A record
may carry several events as JSON Lines (``billing.envelope``): each line is an event of its
own, rejected or stored on its own; a failure of any of them redelivers the record. Facts
of frozen periods are written once, tagged with the period whose close adjusts for them,
and leave a marker there. A write that still fails after retries fails its records only.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from billing import envelope
from billing.adapters.rejects import RejectStore
from billing.adapters.store import (
    UsageStore,
    WriteFailed,
    fact_item,
    late_change,
    registered,
    registry_item,
)
from billing.domain.events import check_json, parse_event
from billing.domain.facts import Fact, Pseudonymize, to_fact
from billing.domain.lateness import (
    DEFAULT_TIME_POLICY,
    TimePolicy,
    adjustment_period,
    frozen_in_zone,
    wall_clock,
)
from billing.domain.periods import UTC_ZONE, ZoneOf, period_at, zones_from
from billing.domain.settings import DEFAULT_SETTINGS

MAX_BODY_BYTES = 64 * 1024  # a usage event is about 0.5 KB; anything this large is not one
FROZEN_CACHE_SECONDS = 30  # the close waits longer than this before reading (SETTLE_SECONDS)
# an account's time zones (its plan versions) are re-read this often: a zone change is
# refused unless it takes effect from a period that starts at least an hour later
ZONE_CACHE_SECONDS = 300

logger = Logger(service="billing-ingest")
metrics = Metrics(namespace="Billing", service="billing-ingest")


class Rejected(Exception):
    def __init__(self, reason: str, errors: Sequence[dict[str, Any]]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = list(errors)


def describe(err: ValidationError) -> list[dict[str, Any]]:
    """Validation errors with the field path as producers wrote it (``data.parts``)."""
    out = []
    for e in err.errors(include_url=False, include_input=False):
        loc = [str(p) for p in e["loc"]]
        if loc and loc[0].startswith("cpaas.usage."):
            loc = loc[1:]  # the discriminated-union branch, not a field
        message = e["msg"]
        if e["type"] == "union_tag_invalid":
            loc, message = ["type"], f"unknown event type {e['ctx']['tag']!r}"
        elif e["type"] == "union_tag_not_found":
            loc, message = ["type"], "missing event type"
        out.append({"field": ".".join(loc) or "(body)", "error": message, "type": e["type"]})
    return out


def unwrap(body: str) -> str:
    """Events published on EventBridge arrive as the rule's target input; accept both the
    bare CloudEvent and a full EventBridge envelope (``detail`` holds the CloudEvent)."""
    if body.startswith("{") and '"detail-type"' in body[:400]:
        # a duplicate key or invalid JSON anywhere is a ValidationError, too deep a nesting
        # a RecursionError: both reject the record in ``classify``
        doc = check_json(body)
        if isinstance(doc, dict) and isinstance(doc.get("detail"), dict):
            return json.dumps(doc["detail"])
    return body


@dataclass
class Accepted:
    message_id: str
    account: str
    fact: Fact
    item: dict[str, Any]  # the fact's storage item (on-time form), computed once
    body: str = ""
    frozen: frozenset[str] = frozenset()  # the periods frozen for the account's zone


@dataclass
class Classified:
    """What one record (one SQS message) carried: its events accepted, how many rejected."""

    accepted: list[Accepted] = field(default_factory=list)
    rejected: int = 0


@dataclass
class BatchOutcome:
    accepted: int = 0
    rejected: int = 0
    late: int = 0
    failed: list[str] = field(default_factory=list)


class Ingestor:
    def __init__(
        self,
        store: UsageStore,
        rejects: RejectStore,
        pseudonymize: Pseudonymize,
        lookback_hours: int = DEFAULT_SETTINGS.lookback_hours,
        clock: Callable[[], float] = time.monotonic,
        time_policy: TimePolicy = DEFAULT_TIME_POLICY,
        wall_clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        self.time_policy = time_policy
        self.wall_clock = wall_clock
        self.store = store
        self.rejects = rejects
        self.pseudonymize = pseudonymize
        self.lookback_hours = lookback_hours
        self.clock = clock
        self._frozen: frozenset[str] = frozenset()
        self._frozen_read_at = -1e9
        self._batch = 0  # the batch being handled; the frozen set is read once per batch at most
        self._frozen_batch = -1
        self._registered: set[tuple[str, str]] = set()
        self._zones: dict[str, tuple[float, ZoneOf | None]] = {}

    # --- per record ---------------------------------------------------------------

    def classify(self, record: SQSRecord) -> Classified:
        """Parse one record: its event, or each line of a JSON Lines record; the rejected
        ones are stored with their reason.

        Everything computed from the record's content runs here, inside the per-record
        guard: an exception it causes (a nesting too deep, a number out of range...) rejects
        that event only. Reading the frozen periods and storing a rejection are the
        transient parts: they fail this record only (a batch item failure, redelivered)."""
        body = record.body or ""
        frozen = self.frozen()
        out = Classified()
        if not envelope.is_json_lines(record.raw_event.get("messageAttributes")):
            self._classify(record.message_id, body, record.message_id, frozen, out)
            return out
        lines = envelope.lines_of(body)
        refusal = envelope.oversized(body, len(lines))
        if refusal is not None:  # refused whole: kept as it came, with the reason
            errors = [{"field": "(body)", "error": refusal, "type": "oversized"}]
            self._reject(Rejected("oversized", errors), body, record.message_id, out)
            return out
        for number, line in enumerate(lines, 1):
            self._classify(record.message_id, line, f"{record.message_id}#{number}", frozen, out)
        return out

    def _classify(
        self,
        message_id: str,
        body: str,
        reference: str,
        frozen: frozenset[str],
        out: Classified,
    ) -> None:
        """One event: accepted into ``out``, or rejected and kept under ``reference`` (the
        message id, ``#`` and the line's number for a line of a JSON Lines message)."""
        try:
            out.accepted.append(self._accept(message_id, body, frozen))
        except Rejected as rej:
            self._reject(rej, body, reference, out)

    def _reject(self, rej: Rejected, body: str, reference: str, out: Classified) -> None:
        self.rejects.put(body, rej.reason, rej.errors, reference)
        logger.info("event rejected", extra={"reason": rej.reason, "errors": rej.errors[:5]})
        out.rejected += 1

    def _accept(self, message_id: str, body: str, frozen: frozenset[str]) -> Accepted:
        try:
            if len(body.encode("utf-8", "surrogateescape")) > MAX_BODY_BYTES:
                raise Rejected(
                    "oversized", [{"field": "(body)", "error": f"over {MAX_BODY_BYTES} bytes"}]
                )
            try:
                event = parse_event(unwrap(body))
            except ValidationError as err:
                raise Rejected("invalid", describe(err)) from err
            refusal = self.time_policy.check_window(event.time, self.wall_clock())
            if refusal is None:  # the period in the account's calendar, then its lateness
                fact = to_fact(event, self.pseudonymize)
                zone_of = self.zone_of(event.subject)
                if zone_of is None:  # UTC throughout: the fact's UTC month
                    local = fact.period
                else:
                    local = period_at(fact.at, zone_of)
                    fact = replace(fact, local=local)
                frozen = frozen_in_zone(frozen, local.zone)
                refusal = self.time_policy.check_late(local, frozen)
            if refusal is not None:
                raise Rejected(
                    refusal.reason,
                    [{"field": "time", "error": refusal.message, "type": refusal.reason}],
                )
            # the storage item and the period arithmetic, computed once here so that a fact
            # that cannot be stored is this record's rejection, not the batch's failure
            item = fact_item(event.subject, fact, self.store.shards)
            if str(fact.period) in frozen:
                adjustment_period(fact.period, frozen)
        except Rejected:
            raise
        except (RecursionError, ValueError, ArithmeticError, TypeError, KeyError) as err:
            raise Rejected(
                "invalid",
                [
                    {
                        "field": "(body)",
                        "error": f"unprocessable: {type(err).__name__}",
                        "type": "unprocessable",
                    }
                ],
            ) from err
        return Accepted(message_id, event.subject, fact, item, body, frozen)

    def zone_of(self, account: str) -> ZoneOf | None:
        """The account's zone per period (its plan versions), ``None`` when it is UTC
        throughout (no plan, or only UTC ones); cached ``ZONE_CACHE_SECONDS`` per
        container."""
        now = self.clock()
        cached = self._zones.get(account)
        if cached is None or now - cached[0] > ZONE_CACHE_SECONDS:
            versions = self.store.plan_zones(account)
            utc = all(zone == UTC_ZONE for _, zone in versions)
            cached = (now, None if utc else zones_from(versions))
            self._zones[account] = cached
        return cached[1]

    # --- per batch ----------------------------------------------------------------

    def frozen(self) -> frozenset[str]:
        """The frozen close groups, read again once ``FROZEN_CACHE_SECONDS`` have passed,
        for the records of a batch at most once."""
        now = self.clock()
        max_age = float(os.environ.get("FROZEN_CACHE_SECONDS", FROZEN_CACHE_SECONDS))
        if now - self._frozen_read_at > max_age and self._frozen_batch != self._batch:
            # this read is the answer, whatever a concurrent batch stores in the cache
            frozen = self._frozen = self.store.frozen_periods()
            self._frozen_read_at = now
            self._frozen_batch = self._batch
            return frozen
        return self._frozen

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        self._batch += 1
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        with processor(records=list(event.get("Records", [])), handler=self.classify):
            processed = processor.process()
        classified = [result for status, result, _ in processed if status == "success"]
        outcome = self.store_facts([acc for c in classified for acc in c.accepted])
        outcome.rejected = sum(c.rejected for c in classified)
        response: dict[str, Any] = dict(processor.response())
        failures = response["batchItemFailures"]
        failures.extend(
            {"itemIdentifier": m}
            for m in outcome.failed
            if m not in {f["itemIdentifier"] for f in failures}
        )
        metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=outcome.accepted)
        metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=outcome.rejected)
        metrics.add_metric(name="LateEvents", unit=MetricUnit.Count, value=outcome.late)
        metrics.add_metric(name="RecordFailures", unit=MetricUnit.Count, value=len(failures))
        return response

    def store_facts(self, accepted: Sequence[Accepted]) -> BatchOutcome:
        outcome = BatchOutcome()
        items: dict[tuple[str, str], dict[str, Any]] = {}
        owners: dict[tuple[str, str], list[str]] = {}
        late: list[Accepted] = []
        for acc in accepted:
            if str(acc.fact.period) in acc.frozen:
                late.append(acc)
                continue
            item = acc.item
            key = (item["pk"], item["sk"])
            items[key] = item  # a duplicate inside one batch is written once
            owners.setdefault(key, []).append(acc.message_id)
            registry = (acc.account, str(acc.fact.period))
            if registry not in self._registered:
                reg = registry_item(*registry)
                items[(reg["pk"], reg["sk"])] = reg
        try:
            self.store.put_items(list(items.values()))
            self._registered.update(r for i in items.values() if (r := registered(i)))
        except WriteFailed as err:
            failed_keys = {(i["pk"], i["sk"]) for i in err.failed}
            for key in failed_keys:
                outcome.failed.extend(owners.get(key, []))
            logger.warning("items not written after retries", extra={"count": len(failed_keys)})
        for acc in late:
            try:
                self.store_late(acc, acc.frozen)
                outcome.late += 1
            except Exception:
                logger.exception("late fact not written")
                outcome.failed.append(acc.message_id)
        outcome.accepted = len(accepted) - len(outcome.failed)
        return outcome

    def store_late(self, acc: Accepted, frozen: frozenset[str]) -> None:
        """A fact for a frozen period: stored once (never overwriting the on-time version
        of a duplicate), tagged with the open period whose invoice adjusts for it."""
        change = late_change(acc.account, acc.fact, frozen, self.lookback_hours)
        # the markers first: the live view's refresh that the fact's write triggers finds
        # them (it starts from the prior periods they name); a crash in between leaves
        # markers of nothing new, and the redelivery stores the fact
        self.store.put_items(change.markers)
        self.store.put_late(fact_item(acc.account, acc.fact, self.store.shards, adj=change.adj))
