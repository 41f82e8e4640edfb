"""How long a fact stays in the table (hot), and when a reader adds the archive.

A fact is written with a TTL derived from the period whose close first bills it alone:
its own period ``P`` when it is on time, the adjusting period ``A`` (its ``adj`` tag) when
it is late. It expires at the end of the period ``hot_months`` after that one, plus
``margin_days``: once that close and its re-runs of the following month(s) are done, and
that close has archived it (one part per account, period and storage shard: ``base`` for
the period's own close, ``adj-{A}`` for an adjusting close). Every item of one billing
close therefore expires at the same moment, fixed at write time: no second write per fact.
The lateness bound does not hold a period's items in the table: a late fact of ``P`` keeps
itself hot until ``A``'s close, which reads ``P``'s other facts from the archive.

The default, ``hot_months`` 0, keeps an on-time fact until ``margin_days`` after its own
period ends: its close runs in the first days of the next month, and a re-run after that
reads the archive. ``margin_days`` is ``TTL_MARGIN_DAYS`` at least; a deployment whose
invoices stay drafts for some days (the final close runs then) raises it by as many
(``TTL_MARGIN_DAYS`` in the functions' environment, set by ``infra``). An item that
expires before its close archived it (a close that did not run in time) is not lost: the
expiry guard (``billing.expiry``) reads its deletion from the table's stream and stores
it again.

Readers add the archive to the table's items only once items may be gone: from
``TTL_MARGIN_DAYS`` after the end of the period ``HOT_MONTHS_FLOOR`` after ``P``, a moment
no item of ``P`` can expire before, whatever ``hot_months`` and the margin were when it was
written (they are never below their floors). Until then a read costs what it cost before
(no S3 request).
"""

from __future__ import annotations

from collections.abc import Mapping

from billing.domain.periods import Period

HOT_MONTHS_FLOOR = 0  # a fact stays in the table until the close that bills it has run
TTL_MARGIN_DAYS = 14  # after the hot months, at least: time for the close to run and archive
ARCHIVE_RETENTION_DAYS = 400  # the fact log is kept 13 months after its period (audit)


def checked_hot_months(hot_months: int) -> int:
    """``hot_months`` if it keeps every fact hot until the close that bills it has run."""
    if hot_months < HOT_MONTHS_FLOOR:
        raise ValueError(
            f"HOT_MONTHS={hot_months} is below {HOT_MONTHS_FLOOR}: a fact must stay in the"
            " table until the close that bills it has archived it"
        )
    return hot_months


def hot_months_from(env: Mapping[str, str]) -> int:
    """``HOT_MONTHS`` (default and least value ``HOT_MONTHS_FLOOR``)."""
    return checked_hot_months(int(env.get("HOT_MONTHS", str(HOT_MONTHS_FLOOR))))


def margin_days_from(env: Mapping[str, str]) -> int:
    """``TTL_MARGIN_DAYS`` (default and least value ``TTL_MARGIN_DAYS``): readers count on
    no item expiring sooner (``archive_needed``)."""
    days = int(env.get("TTL_MARGIN_DAYS", str(TTL_MARGIN_DAYS)))
    if days < TTL_MARGIN_DAYS:
        raise ValueError(
            f"TTL_MARGIN_DAYS={days} is below {TTL_MARGIN_DAYS}: readers add the archive only"
            f" {TTL_MARGIN_DAYS} days after a period's hot months"
        )
    return days


def after(period: Period, months: int) -> Period:
    for _ in range(months):
        period = period.next()
    return period


def expires_at(period: Period, hot_months: int, margin_days: int = TTL_MARGIN_DAYS) -> int:
    """Epoch seconds at which the table's items first billed by the close of ``period``
    expire (the TTL attribute)."""
    return after(period, hot_months).end_ms // 1000 + margin_days * 86_400


def archive_needed(period: Period, now_ms: int) -> bool:
    """Whether some item of ``period`` may have expired at ``now_ms``: readers then add the
    archive. False until ``TTL_MARGIN_DAYS`` after the end of the period
    ``HOT_MONTHS_FLOOR`` after it."""
    return now_ms >= after(period, HOT_MONTHS_FLOOR).end_ms + TTL_MARGIN_DAYS * 86_400_000


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
    "expires_at",
    "hot_months_from",
    "margin_days_from",
]
