"""Monthly usage figures and the engine that computes them from facts.

``Usage`` holds the figures of one account and period; ``Sink`` is what the counting
strategies write to. The engine itself is ``billing.domain.engine.monthly_usage``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billing.domain.facts import Fact
from billing.domain.periods import MS_PER_HOUR, Period
from billing.domain.settings import ContractSettings

Dims = tuple[tuple[str, str], ...]
LineKey = tuple[str, Dims]

MAX_NOTE_EXAMPLES = 20


@dataclass(frozen=True, order=True, slots=True)
class Note:
    """Something to report that is not a charge: a policy or licence violation."""

    kind: str
    at: int
    detail: str


@dataclass
class Peak:
    """Simultaneously open entities (seats, recorded calls) over the period, kept as the net
    change at each instant so that shards merge exactly (their sum); the figure is the
    maximum overlap, optionally capped, computed once everything is merged.

    Intervals are half-open: one ending and another starting at the same instant net out.
    ``initial`` names a second figure: the peak within one day (the named-user service
    start day, which the first month's proration applies to).
    """

    steps: dict[int, int] = field(default_factory=dict)
    cap: int | None = None
    initial: tuple[str, int, int] | None = None  # metric, [lo, hi) in epoch ms

    def add_interval(self, start: int, end: int) -> None:
        if start < end:
            self.steps[start] = self.steps.get(start, 0) + 1
            self.steps[end] = self.steps.get(end, 0) - 1

    def merge(self, other: Peak) -> Peak:
        steps = dict(self.steps)
        for at, step in other.steps.items():
            steps[at] = steps.get(at, 0) + step
        return Peak(steps, self.cap, self.initial)

    def highest(self, lo: int | None = None, hi: int | None = None) -> int:
        """The maximum number open at one instant within [lo, hi) (the whole period)."""
        peak = current = 0
        for at in sorted(self.steps):
            if hi is not None and at >= hi:
                break
            current += self.steps[at]
            if lo is None or at >= lo:
                peak = max(peak, current)
        if lo is not None:  # open at ``lo`` itself
            peak = max(peak, sum(s for at, s in self.steps.items() if at <= lo))
        return peak


@dataclass
class Usage:
    """Usage figures of one account for one period (or a shard of it).

    ``quantities`` are additive; ``distinct`` keeps the distinct keys themselves so that
    shards merge exactly (their union, not the sum of their sizes); ``peaks`` keep the
    concurrency steps for the same reason; ``events`` counts the chargeable events behind
    each line (evidence); ``notes`` keep violations by kind.
    """

    period: str
    quantities: dict[LineKey, Decimal] = field(default_factory=dict)
    events: dict[LineKey, int] = field(default_factory=dict)
    distinct: dict[LineKey, set[str]] = field(default_factory=dict)
    note_counts: dict[str, int] = field(default_factory=dict)
    note_examples: list[Note] = field(default_factory=list)
    peaks: dict[str, Peak] = field(default_factory=dict)

    # --- recording ----------------------------------------------------------------

    def add(self, metric: str, dims: Dims, quantity: Decimal | int) -> None:
        key = (metric, tuple(sorted(dims)))  # canonical: the order ``from_json`` restores
        self.quantities[key] = self.quantities.get(key, Decimal(0)) + quantity
        self.events[key] = self.events.get(key, 0) + 1

    def add_distinct(self, metric: str, dims: Dims, member: str) -> None:
        key = (metric, tuple(sorted(dims)))
        self.distinct.setdefault(key, set()).add(member)

    def add_note(self, note: Note) -> None:
        self.note_counts[note.kind] = self.note_counts.get(note.kind, 0) + 1
        self.note_examples.append(note)

    def peak(self, metric: str) -> Peak:
        return self.peaks.setdefault(metric, Peak())

    # --- reading ------------------------------------------------------------------

    def resolved(self) -> Usage:
        """The usage with every peak turned into its figure (and its above-cap note):
        what rating reads, once all shards are merged."""
        if not self.peaks:
            return self
        out = self.merge(Usage(self.period))
        out.peaks = {}
        for metric, peak in sorted(self.peaks.items()):
            highest = peak.highest()
            if peak.cap is not None and highest > peak.cap:
                start = Period.parse(self.period).start_ms
                out.add_note(Note(f"{metric}.above_limit", start, f"peak {highest} > {peak.cap}"))
                highest = peak.cap
            if highest:
                out.add(metric, (), highest)
            if peak.initial is not None:
                name, lo, hi = peak.initial
                if first_day := peak.highest(lo, hi):
                    out.add(name, (), first_day)
        return out.compact()

    def figures(self) -> dict[LineKey, Decimal]:
        """Every line's billable quantity, distinct metrics counted, peaks resolved."""
        if self.peaks:
            return self.resolved().figures()
        out = dict(self.quantities)
        for key, members in self.distinct.items():
            out[key] = out.get(key, Decimal(0)) + len(members)
        return {k: out[k] for k in sorted(out)}

    def evidence(self, key: LineKey) -> int:
        """How many chargeable events (or distinct members) make up a line."""
        if key in self.distinct:
            return len(self.distinct[key])
        return self.events.get(key, 0)

    def by_metric(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for (metric, _), qty in self.figures().items():
            totals[metric] += qty
        return dict(sorted(totals.items()))

    def notes(self) -> list[Note]:
        return sorted(self.note_examples)[:MAX_NOTE_EXAMPLES]

    # --- combining ----------------------------------------------------------------

    def merge(self, other: Usage) -> Usage:
        """Combine the usage of two disjoint shards of the same account and period."""
        if other.period != self.period:
            raise ValueError(f"cannot merge {other.period} into {self.period}")
        out = Usage(self.period, dict(self.quantities), dict(self.events))
        for key, qty in other.quantities.items():
            out.quantities[key] = out.quantities.get(key, Decimal(0)) + qty
        for key, n in other.events.items():
            out.events[key] = out.events.get(key, 0) + n
        for source in (self.distinct, other.distinct):
            for key, members in source.items():
                out.distinct.setdefault(key, set()).update(members)
        for source_counts in (self.note_counts, other.note_counts):
            for kind, n in source_counts.items():
                out.note_counts[kind] = out.note_counts.get(kind, 0) + n
        out.note_examples = sorted(self.note_examples + other.note_examples)[:MAX_NOTE_EXAMPLES]
        for source_peaks in (self.peaks, other.peaks):
            for metric, peak in source_peaks.items():
                out.peaks[metric] = out.peaks[metric].merge(peak) if metric in out.peaks else peak
        return out

    def compact(self) -> Usage:
        self.note_examples = self.notes()
        return self

    # --- serialization (S3 partials, CLI --json) ----------------------------------

    def to_json(self) -> dict[str, Any]:
        self.compact()
        return {
            "period": self.period,
            "lines": [
                {"metric": m, "dims": dict(d), "quantity": str(q), "events": self.events[(m, d)]}
                for (m, d), q in sorted(self.quantities.items())
            ],
            "distinct": [
                {"metric": m, "dims": dict(d), "members": sorted(members)}
                for (m, d), members in sorted(self.distinct.items())
            ],
            "notes": {
                "counts": dict(sorted(self.note_counts.items())),
                "examples": [[n.kind, n.at, n.detail] for n in self.note_examples],
            },
            "peaks": [
                {
                    "metric": m,
                    "steps": [[at, step] for at, step in sorted(p.steps.items()) if step],
                    "cap": p.cap,
                    "initial": list(p.initial) if p.initial else None,
                }
                for m, p in sorted(self.peaks.items())
            ],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Usage:
        out = cls(str(doc["period"]))
        for line in doc["lines"]:
            key = (line["metric"], tuple(sorted(line["dims"].items())))
            out.quantities[key] = Decimal(line["quantity"])
            out.events[key] = int(line["events"])
        for line in doc["distinct"]:
            key = (line["metric"], tuple(sorted(line["dims"].items())))
            out.distinct[key] = set(line["members"])
        out.note_counts = dict(doc["notes"]["counts"])
        out.note_examples = [Note(k, int(at), d) for k, at, d in doc["notes"]["examples"]]
        for p in doc.get("peaks", ()):
            initial = p.get("initial")
            out.peaks[p["metric"]] = Peak(
                {int(at): int(step) for at, step in p["steps"]},
                p.get("cap"),
                (str(initial[0]), int(initial[1]), int(initial[2])) if initial else None,
            )
        return out

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))


class Sink:
    """What strategies write to: charges count only when they fall inside the period."""

    __slots__ = ("period", "settings", "usage")

    def __init__(self, usage: Usage, period: Period, settings: ContractSettings) -> None:
        self.usage = usage
        self.period = period
        self.settings = settings

    def charge(self, metric: str, dims: Dims, quantity: Decimal | int, at: int) -> None:
        if self.period.contains_ms(at) and quantity:
            self.usage.add(metric, dims, quantity)

    def count_distinct(self, metric: str, dims: Dims, member: str, at: int) -> None:
        if self.period.contains_ms(at):
            self.usage.add_distinct(metric, dims, member)

    def note(self, kind: str, at: int, detail: str) -> None:
        if self.period.contains_ms(at):
            self.usage.add_note(Note(kind, at, detail))


def fact_order(fact: Fact) -> tuple[int, int, str]:
    """Deterministic processing order: time, then inbound before outbound before endings
    (at one instant an entity opens before it closes, a user's session closes before the
    next one opens)."""
    return (fact.at, _TYPE_RANK.get(fact.type, 1), fact.id)


_TYPE_RANK = {
    "message.inbound": 0,
    "named_user.provisioned": 0,
    "recording.started": 0,
    "number.provisioned": 0,
    "sim.activated": 0,
    "named_user.session_closed": 0,  # a session ending as the next one starts: no overlap
    "bot.session_ended": 2,
    "recording.stopped": 2,
    "named_user.deprovisioned": 2,
    "number.released": 2,
    "recording.deleted": 2,
}


def unique_facts(facts: Iterable[Fact], period: Period, lookback_hours: int) -> list[Fact]:
    """De-duplicate by id and keep what can matter for the period, in processing order."""
    since = period.start_ms - lookback_hours * MS_PER_HOUR
    until = period.end_ms
    kept = (f for f in facts if f.at < until and (f.entity is not None or f.at >= since))
    return sorted(unique_by_id(kept), key=fact_order)


def unique_by_id(facts: Iterable[Fact]) -> list[Fact]:
    """One fact per id. Two different facts under one id (a producer re-using an id)
    resolve to the same one whatever the arrival order: the smallest by content."""
    chosen: dict[str, Fact] = {}
    for f in facts:
        seen = chosen.get(f.id)
        if seen is None or (seen != f and _content(f) < _content(seen)):
            chosen[f.id] = f
    return list(chosen.values())


def _content(f: Fact) -> str:
    return json.dumps(f.to_item(), sort_keys=True, default=str)
