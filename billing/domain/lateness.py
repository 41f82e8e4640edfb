"""When an event may happen: the time window of the contract and the late-event policy.

One place for both, used by ingest (and, for a late change, by the id-conflict marker):

- not before the **horizon** (a stage setting, default period 2020-01);
- not more than ``max_future_seconds`` ahead of the wall clock at ingest (default 300 s);
- **maximum lateness**: an event of a frozen (closed) period is accepted only if the period
  that adjusts for it (the first period after it that is not frozen) is at most
  ``max_late_periods`` periods after the event's period (default 3, at most 12: facts are
  kept 13 months). Deliberately not relative to the wall clock: a stored scenario dated
  2026-10 stays valid forever; the horizon and the future bound reject 1969 and 2099;
- where a late change is billed: the **adjusting period** (``adjustment_period``) and the
  frozen periods whose invoices it changes (``affected_periods``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from billing.domain.facts import Fact
from billing.domain.periods import MS_PER_HOUR, Period

DEFAULT_HORIZON = Period(2020, 1)
DEFAULT_MAX_FUTURE_SECONDS = 300
DEFAULT_MAX_LATE_PERIODS = 3
MAX_LATE_PERIODS_LIMIT = 12  # 13 months of stored facts


@dataclass(frozen=True)
class TimeRefusal:
    reason: str  # "out_of_window" or "too_late"
    message: str


@dataclass(frozen=True)
class TimePolicy:
    horizon: Period = DEFAULT_HORIZON
    max_future_seconds: int = DEFAULT_MAX_FUTURE_SECONDS
    max_late_periods: int = DEFAULT_MAX_LATE_PERIODS

    def __post_init__(self) -> None:
        if not 0 <= self.max_late_periods <= MAX_LATE_PERIODS_LIMIT:
            raise ValueError(f"max_late_periods must be 0..{MAX_LATE_PERIODS_LIMIT}")
        if not 0 <= self.max_future_seconds <= 86_400:
            raise ValueError("max_future_seconds must be 0..86400")

    def check(
        self,
        when: datetime,
        now: datetime,
        frozen: Collection[str],
        period: Period | None = None,
    ) -> TimeRefusal | None:
        """``None`` when an event that happened at ``when`` is accepted at ``now``, given
        the frozen periods; the reason and a message otherwise. ``period``: the event's
        period in the account's calendar (default its UTC month), ``frozen`` the periods
        frozen for that calendar's zone (``frozen_in_zone``)."""
        refusal = self.check_window(when, now)
        if refusal is not None:
            return refusal
        return self.check_late(period or Period.of(when), frozen)

    def check_window(self, when: datetime, now: datetime) -> TimeRefusal | None:
        """The horizon and the future bound (the lateness policy aside)."""
        if when.tzinfo is None:
            return TimeRefusal("out_of_window", "time must carry a zone")
        # compare before any conversion: a zone offset on year 1 or 9999 overflows
        if when.year < self.horizon.year - 1 or when.year > now.year + 1:
            return TimeRefusal("out_of_window", f"time {when.isoformat()} is out of range")
        if when < self.horizon.start:
            return TimeRefusal(
                "out_of_window", f"time is before the horizon {self.horizon} of this stage"
            )
        if when > now + timedelta(seconds=self.max_future_seconds):
            return TimeRefusal(
                "out_of_window",
                f"time is more than {self.max_future_seconds} s in the future",
            )
        return None

    def check_late(self, period: Period, frozen: Collection[str]) -> TimeRefusal | None:
        """The late-event policy. A frozen period is adjusted for by the first period after
        it that is not frozen (``adjustment_period``); a period older than every frozen
        period (before the first close) counts as frozen up to the first one."""
        if not frozen:
            return None
        start = period
        label = str(period)
        if label not in frozen:
            first = _first(frozen if isinstance(frozen, frozenset) else frozenset(frozen))
            if label >= first:  # YYYY-MM labels sort like periods
                return None
            start = Period.parse(first)  # before the first close: behind every closed period
        adjusting = Period.parse(adjustment_period(start, frozen))
        late = (adjusting.year - period.year) * 12 + adjusting.month - period.month
        if late > self.max_late_periods:
            return TimeRefusal(
                "too_late",
                f"period {period} is closed and is adjusted for by {adjusting}, {late} periods"
                f" later: more than the {self.max_late_periods} periods of lateness accepted",
            )
        return None


def adjustment_period(fact_period: Period, frozen: Iterable[str]) -> str:
    """The first period after ``fact_period`` that is not frozen: its close bills the fact."""
    frozen_set = frozen if isinstance(frozen, frozenset | set) else set(frozen)
    p = fact_period.next()
    while str(p) in frozen_set:
        p = p.next()
    return str(p)


def affected_periods(fact: Fact, frozen: Iterable[str], lookback_hours: int) -> list[str]:
    """The frozen periods whose invoices a late fact changes.

    A period fact changes its own period and, if it falls in the look-back window of the
    next period, that one too; a lifecycle fact changes every frozen period from its own
    on (a seat held since September is in October's peak too).
    """
    frozen_set = set(frozen)
    own = fact.period
    if fact.entity is not None:
        return sorted(p for p in frozen_set if p >= str(own))
    out = [str(own)] if str(own) in frozen_set else []
    nxt = own.next()
    if fact.at >= nxt.start_ms - lookback_hours * MS_PER_HOUR and str(nxt) in frozen_set:
        out.append(str(nxt))
    return out


@lru_cache(maxsize=8)
def _first(frozen: frozenset[str]) -> str:
    return min(frozen)


DEFAULT_TIME_POLICY = TimePolicy()


@lru_cache(maxsize=64)
def frozen_in_zone(frozen: frozenset[str], zone: str) -> frozenset[str]:
    """The periods (``YYYY-MM``) frozen for the accounts of ``zone``. The close freezes
    each close group on its own, under its label (``Period.label``: ``2026-10`` for the
    accounts whose period ends at midnight UTC, ``2026-10@+09:00`` for Seoul's...)."""
    out = set()
    for label in frozen:
        month = label.partition("@")[0]
        if Period.parse(month).in_zone(zone).label == label:
            out.add(month)
    return frozenset(out)


def wall_clock() -> datetime:
    return datetime.now(UTC)
