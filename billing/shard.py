"""One storage shard of one account, period after period: the unit of close work.

A shard's usage in a period needs three things: the period's facts (and the look-back tail
of the previous one), the period's lifecycle facts, and the entity state carried in from
before the period (``billing.domain.entities``). ``Walk`` rolls the carried state forward
from a starting point, reading each period's lifecycle facts once, for one or more *views*:
what a given close knew (facts stored on time, plus late facts up to that close), or
everything stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from billing.adapters.state import StateStore, pick
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
        """The facts known at ``known_at``, without any whose id has a known conflict: a
        reused event id, no version of which is billed. A conflict is known when two
        contents of the id are among them (one item per content: ``fact_sk``), or from a
        marker the close's id audit wrote (``billing.adapters.ids``)."""
        at = self.known_at
        known = [s for s in stored if at is None or s.adj is None or s.adj <= at]
        seen: set[str] = set()
        void: set[str] = set()
        for s in known:
            if s.conflict or s.fact.id in seen:
                void.add(s.fact.id)
            seen.add(s.fact.id)
        return [s.fact for s in known if s.fact.id not in void]


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


@dataclass(frozen=True)
class Start:
    """Where a shard's entity state is rolled forward from: the state a close saved at
    the start of ``period`` (``billing.adapters.state``), as the close of ``known_at``
    knew it (lifecycle facts on time, and late ones with ``adj <= known_at``)."""

    period: Period
    state: list[Fact]
    known_at: str

    def new_since_close(self, q: Period, stored: StoredFact) -> bool:
        """Whether the close of ``known_at`` did not know a lifecycle item of ``q`` (a
        period after it, or a late fact adjusted after it): the items a refresh from this
        start counts, whatever period it walks from."""
        return str(q) > self.known_at or (stored.adj is not None and stored.adj > self.known_at)


def saved_start(
    store: UsageStore,
    states: StateStore,
    account: str,
    shard: str,
    period: Period,
    last: Period,
    closed: Callable[[str], bool],
    origin: Period | None = None,
    markers: Callable[[str], Sequence[str]] | None = None,
) -> Start | None:
    """Where a live refresh of ``period`` starts instead of the stored history: the state
    the latest closed period before it (``closed``) saved, at the start of ``period`` (or of
    ``origin`` if earlier: the period whose change this refresh follows). A late lifecycle
    fact stored after a close is not in its state: the ``ADJ#`` markers under every period
    after the state's close, up to ``last`` (the account's current period) and the one
    after it, name the prior periods it changed (``markers``: the account's markers under a
    period, default ``adjustment_periods``), and the walk starts at the earliest of them,
    from the state saved there (or, if none is, from the stored history with the same
    knowledge: ``history_start``). ``None`` when no close before the period saved any
    state: the caller rebuilds it from the stored history.

    The usual case costs one object read and no listing: the previous period is closed
    and its close saved the state at this period's start (``StateStore.probe``)."""
    adjusted = markers or (lambda q: store.adjustment_periods(q, account))
    priors: set[str] = set()
    unread = str(last.next())  # markers are read under the periods after the state's close

    def read_markers(after: str) -> None:
        nonlocal unread
        q = Period.parse(after).next()
        while str(q) <= unread:
            priors.update(adjusted(str(q)))
            q = q.next()
        unread = min(unread, after)

    target = str(min(period, origin)) if origin is not None else str(period)
    prev = str(period.prev())
    if target == str(period) and closed(prev):
        snapshot = states.probe(account, shard, str(period), prev)
        if snapshot is not None:
            read_markers(prev)
            if min(priors, default=target) >= target:
                return Start(period, snapshot.facts, prev)
    versions = states.versions(account, shard)
    closes = sorted({as_of for _, as_of in versions if as_of < str(period)}, reverse=True)
    known = next((as_of for as_of in closes if closed(as_of)), None)
    if known is None:
        return None
    while True:
        best = pick(versions, target, known)
        if best is None:  # no state saved that early: rebuilt from the stored history
            return Start(history_start(store, account, Period.parse(target)), [], known)
        of, as_of = best
        read_markers(as_of)
        earliest = min(priors, default=of)
        if earliest >= of:
            break
        target = earliest
    saved = states.read(account, shard, of, as_of)
    if saved is None:  # expired since it was listed
        return Start(history_start(store, account, Period.parse(of)), [], known)
    return Start(Period.parse(of), saved.facts, known)


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
