"""One storage shard of one account, period after period: the unit of close work.

A shard's usage in a period needs three things: the period's facts (and the look-back tail
of the previous one), the period's lifecycle facts, and the entity state carried in from
before the period (``billing.domain.entities``). ``Walk`` rolls the carried state forward
from a starting point, reading each period's lifecycle facts once, for one or more *views*:
what a given close knew (facts stored on time, plus late facts up to that close), or
everything stored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from billing.adapters.store import HISTORY_MONTHS, StoredFact, UsageStore
from billing.domain.entities import carry_forward
from billing.domain.facts import Fact
from billing.domain.periods import Period, ZoneOf, zoned


@dataclass
class View:
    """What is known at the close of ``known_at`` (``None``: everything stored), and the
    entity state carried into the current period under that knowledge."""

    known_at: str | None
    state: list[Fact] = field(default_factory=list)

    def admit(self, stored: Sequence[StoredFact]) -> list[Fact]:
        """The facts known at ``known_at``, without any whose id has a known conflict
        (a reused event id: no version of it is billed)."""
        at = self.known_at
        known = [s for s in stored if at is None or s.adj is None or s.adj <= at]
        void = {s.fact.id for s in known if s.conflict}
        return [s.fact for s in known if not s.conflict and s.fact.id not in void]


def months_before(period: Period, months: int = HISTORY_MONTHS) -> Period:
    for _ in range(months):
        period = period.prev()
    return period


def history_start(store: UsageStore, account: str, first: Period) -> Period:
    """Where to rebuild entity state from when no close saved any: the account's earliest
    period with facts among those still stored (``first`` if none)."""
    back = [str(months_before(first, n)) for n in range(HISTORY_MONTHS, 0, -1)]
    stored = store.periods_with_facts(account, back)
    return Period.parse(stored[0]) if stored else first


@dataclass
class Walk:
    store: UsageStore
    account: str
    shard: str
    zone_of: ZoneOf | None = None  # the account's time zone per period (None: UTC)

    def periods(
        self, start: Period, last: Period, views: Sequence[View]
    ) -> Iterator[tuple[Period, list[StoredFact]]]:
        """Yield each period from ``start`` to ``last`` (zoned: ``zone_of``) with its
        lifecycle facts, while every view's ``state`` is the state carried into that
        period; after the caller is done with a period, the state is rolled over its
        lifecycle facts to the next one (up to the period's local end)."""
        q = start
        while q <= last:
            if self.zone_of is not None:  # the period's bounds in the account's calendar
                q = zoned(q, self.zone_of)
            lifecycle = self.store.read_lifecycle(self.account, q, self.shard)
            yield q, lifecycle
            for view in views:
                view.state = carry_forward(view.state + view.admit(lifecycle), q.end_ms)
            q = q.next()
