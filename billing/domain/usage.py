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
class Usage:
    """Usage figures of one account for one period (or a shard of it).

    ``quantities`` are additive; ``distinct`` keeps the distinct keys themselves so that
    shards merge exactly (their union, not the sum of their sizes); ``events`` counts the
    chargeable events behind each line (evidence); ``notes`` keep violations by kind.
    """

    period: str
    quantities: dict[LineKey, Decimal] = field(default_factory=dict)
    events: dict[LineKey, int] = field(default_factory=dict)
    distinct: dict[LineKey, set[str]] = field(default_factory=dict)
    note_counts: dict[str, int] = field(default_factory=dict)
    note_examples: list[Note] = field(default_factory=list)

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

    # --- reading ------------------------------------------------------------------

    def figures(self) -> dict[LineKey, Decimal]:
        """Every line's billable quantity, distinct metrics counted."""
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
    """Deterministic processing order: time, then inbound before outbound before endings."""
    return (fact.at, _TYPE_RANK.get(fact.type, 1), fact.id)


_TYPE_RANK = {
    "message.inbound": 0,
    "named_user.provisioned": 0,
    "recording.started": 0,
    "number.provisioned": 0,
    "sim.activated": 0,
    "bot.session_ended": 2,
    "recording.stopped": 2,
    "named_user.deprovisioned": 2,
    "number.released": 2,
}


def unique_facts(facts: Iterable[Fact], period: Period, lookback_hours: int) -> list[Fact]:
    """De-duplicate by id and keep what can matter for the period, in processing order.

    Two different facts under one id (a producer re-using an id) resolve to the same one
    whatever the arrival order: the smallest by content.
    """
    since = period.start_ms - lookback_hours * MS_PER_HOUR
    until = period.end_ms
    chosen: dict[str, Fact] = {}
    for f in facts:
        if f.at >= until or (f.entity is None and f.at < since):
            continue
        seen = chosen.get(f.id)
        if seen is None or (seen != f and _content(f) < _content(seen)):
            chosen[f.id] = f
    return sorted(chosen.values(), key=fact_order)


def _content(f: Fact) -> str:
    return json.dumps(f.to_item(), sort_keys=True, default=str)
