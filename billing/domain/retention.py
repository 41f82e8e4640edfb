"""How long a period's facts stay in the table (hot), and when a reader adds the archive.

A fact of period ``P`` is written with a TTL derived from ``P`` alone: the end of the
period ``hot_months`` after ``P`` plus ``margin_days``. Every item of a period therefore
expires at the same moment, fixed at write time: no second write per fact. The setting
is tied to the lateness bound (``max_late_periods``): late events of ``P`` are accepted
until the close of ``P + max_late_periods`` freezes it, and that close runs in the month
after; so ``hot_months`` is at least ``max_late_periods + 1`` (the default), and never
below ``HOT_MONTHS_FLOOR``.

Before a period's facts expire its closes have written them to the archive (one part per
account, period and storage shard; late facts in parts written by the adjusting closes).
Readers add the archive to the table's items only once items may be gone: from the end of
the period ``HOT_MONTHS_FLOOR`` after ``P``, a moment no item of ``P`` can expire before,
whatever ``hot_months`` was when it was written (it is never below the floor). Until then
a read costs what it cost before (no S3 request).
"""

from __future__ import annotations

from collections.abc import Mapping

from billing.domain.periods import Period

HOT_MONTHS_FLOOR = 2  # a period's close and the re-runs of the next month read the table only
DEFAULT_MAX_LATE_PERIODS = 3  # billing.domain.lateness
TTL_MARGIN_DAYS = 14  # after the hot months: time to notice and repair a missing archive part
ARCHIVE_RETENTION_DAYS = 400  # the fact log is kept 13 months after its period (audit)


def default_hot_months(max_late_periods: int = DEFAULT_MAX_LATE_PERIODS) -> int:
    return max(HOT_MONTHS_FLOOR, max_late_periods + 1)


def checked_hot_months(hot_months: int, max_late_periods: int) -> int:
    """``hot_months`` if it keeps every late fact hot until its adjusting close has run."""
    least = default_hot_months(max_late_periods)
    if hot_months < least:
        raise ValueError(
            f"HOT_MONTHS={hot_months} is below {least}: max_late_periods + 1 (late facts must"
            f" stay in the table until their adjusting close has run) and at least"
            f" {HOT_MONTHS_FLOOR}"
        )
    return hot_months


def hot_months_from(env: Mapping[str, str]) -> int:
    """``HOT_MONTHS`` (default ``MAX_LATE_PERIODS + 1``), checked against ``MAX_LATE_PERIODS``."""
    late = int(env.get("MAX_LATE_PERIODS", str(DEFAULT_MAX_LATE_PERIODS)))
    return checked_hot_months(int(env.get("HOT_MONTHS", default_hot_months(late))), late)


def after(period: Period, months: int) -> Period:
    for _ in range(months):
        period = period.next()
    return period


def expires_at(period: Period, hot_months: int, margin_days: int = TTL_MARGIN_DAYS) -> int:
    """Epoch seconds at which the table's items of ``period`` expire (the TTL attribute)."""
    return after(period, hot_months).end_ms // 1000 + margin_days * 86_400


def archive_needed(period: Period, now_ms: int) -> bool:
    """Whether some item of ``period`` may have expired at ``now_ms``: readers then add the
    archive. False until the end of the period ``HOT_MONTHS_FLOOR`` after it."""
    return now_ms >= after(period, HOT_MONTHS_FLOOR).end_ms


def archive_retain_until_s(period: Period, days: int = ARCHIVE_RETENTION_DAYS) -> int:
    """Epoch seconds until which an archive part of ``period`` is locked (Object Lock)."""
    return period.end_ms // 1000 + days * 86_400


__all__ = [
    "ARCHIVE_RETENTION_DAYS",
    "HOT_MONTHS_FLOOR",
    "TTL_MARGIN_DAYS",
    "after",
    "archive_needed",
    "archive_retain_until_s",
    "checked_hot_months",
    "default_hot_months",
    "expires_at",
    "hot_months_from",
]
