"""Billing periods: calendar months in the account's time zone (UTC by default).

A period is named by its month (``YYYY-MM``) whatever the zone: the zone is carried along
(``zone``; not part of its identity, equality or order) and decides its bounds. The end is
local midnight of the 1st of the next month in ``zone``; the start is the end of the
previous period, i.e. local midnight of the 1st in ``start_zone`` (the zone in force for
the previous period, default ``zone``). A zone change therefore makes one period longer or
shorter and never loses or double-counts an instant. Days inside a period are local days
(``local_day_start``), 23 or 25 hours long on daylight-saving days.
"""

from __future__ import annotations

import bisect
import calendar
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 24 * MS_PER_HOUR


UTC_ZONE = "UTC"


@lru_cache(maxsize=512)
def zone_info(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ValueError`` for a name that is not one."""
    if not isinstance(name, str) or not name or name != name.strip() or "@" in name:
        raise ValueError(f"not an IANA time zone name: {name!r}")
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError) as err:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name!r}") from err


def check_zone(name: str) -> str:
    zone_info(name)
    return name


_OFFSET = re.compile(r"^([+-])(0\d|1[0-4]):([0-5]\d)$")


def _offset_minutes(text: str) -> int:
    """``+09:00`` -> 540: a fixed UTC offset (the zone of a close group's label)."""
    m = _OFFSET.match(text)
    if not m:
        raise ValueError(f"not a UTC offset: {text!r}")
    return (1 if m.group(1) == "+" else -1) * (int(m.group(2)) * 60 + int(m.group(3)))


def _format_offset(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _midnight_ms(year: int, month: int, day: int, zone: str) -> int:
    """Epoch ms of local midnight of the given date in ``zone`` (the first instant of the
    local day: where midnight does not exist, the instant the day begins). ``zone`` is an
    IANA name, or a fixed offset ``+HH:MM`` (close group labels)."""
    naive = calendar.timegm((year, month, day, 0, 0, 0)) * 1000
    if zone == UTC_ZONE:
        return naive
    if zone[:1] in "+-":
        return naive - _offset_minutes(zone) * 60_000
    local = datetime(year, month, day, tzinfo=zone_info(zone))
    # a wall time skipped by a DST jump maps to after the jump (fold=0): still the first
    # instant of that local date, since midnight itself is the skipped time
    return int(local.timestamp()) * 1000


@dataclass(frozen=True, order=True, slots=True)
class Period:
    year: int
    month: int
    zone: str = field(default=UTC_ZONE, compare=False)
    start_zone: str | None = field(default=None, compare=False)
    _start_ms: int = field(init=False, compare=False, repr=False)
    _end_ms: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        begin = self.start_zone or self.zone
        nxt_y, nxt_m = self.year + self.month // 12, self.month % 12 + 1
        object.__setattr__(self, "_start_ms", _midnight_ms(self.year, self.month, 1, begin))
        object.__setattr__(self, "_end_ms", _midnight_ms(nxt_y, nxt_m, 1, self.zone))

    @classmethod
    def parse(cls, text: str) -> Period:
        m = _PERIOD.match(text)
        if not m:
            raise ValueError(f"period must be YYYY-MM, got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, when: datetime) -> Period:
        utc = when.astimezone(UTC)
        return cls(utc.year, utc.month)

    @classmethod
    def of_ms(cls, epoch_ms: int) -> Period:
        return cls.of(datetime.fromtimestamp(epoch_ms / 1000, tz=UTC))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> datetime:
        """The first instant (UTC datetime)."""
        return datetime.fromtimestamp(self._start_ms / 1000, tz=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive end: the first instant of the next period (UTC datetime)."""
        return datetime.fromtimestamp(self._end_ms / 1000, tz=UTC)

    @property
    def start_ms(self) -> int:
        return self._start_ms

    @property
    def end_ms(self) -> int:
        return self._end_ms

    @property
    def days(self) -> int:
        """Calendar days of the month (proration counts dates, not 24 h spans)."""
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def end_offset(self) -> str:
        """The zone's UTC offset at the period's end (``+09:00``)."""
        nxt = self.next()
        naive = calendar.timegm((nxt.year, nxt.month, 1, 0, 0, 0)) * 1000
        return _format_offset((naive - self._end_ms) // 60_000)

    @property
    def label(self) -> str:
        """The close group of this period (freeze, close lock, frozen set): the accounts
        whose period ends at the same instant. ``YYYY-MM`` when it ends at midnight UTC,
        else ``YYYY-MM@+09:00`` (the offset of local midnight at the end)."""
        offset = self.end_offset
        return str(self) if offset == "+00:00" else f"{self}@{offset}"

    @classmethod
    def parse_label(cls, text: str) -> Period:
        """The period of a close group label (``2026-10``, ``2026-10@+09:00``), with the
        group's end (its ``zone`` is the fixed offset)."""
        month, _, offset = text.partition("@")
        p = cls.parse(month)
        if not offset:
            return p
        _offset_minutes(offset)
        return p.in_zone(offset)

    def in_zone(self, zone: str, start_zone: str | None = None) -> Period:
        """This month with its bounds in ``zone`` (starting where ``start_zone`` ended
        the previous period, default ``zone``)."""
        return Period(self.year, self.month, zone, None if start_zone == zone else start_zone)

    def local_dates(self) -> tuple[date, date]:
        """First and last local date of the period (the month's, whatever the zone)."""
        return date(self.year, self.month, 1), date(self.year, self.month, self.days)

    def local_day_start(self, day: date) -> int:
        """Epoch ms of the first instant of local date ``day`` in the period's zone."""
        return _midnight_ms(day.year, day.month, day.day, self.zone)

    def next(self) -> Period:
        """The next month, in the same zone."""
        return Period(self.year + self.month // 12, self.month % 12 + 1, self.zone)

    def prev(self) -> Period:
        """The previous month, in the same zone."""
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1, self.zone)

    def contains_ms(self, epoch_ms: int) -> bool:
        return self._start_ms <= epoch_ms < self._end_ms


ZoneOf = Callable[[Period], str]
"""The time zone in force for a period (from the account's price plans)."""


def zones_from(versions: Sequence[tuple[str, str]]) -> ZoneOf:
    """The zone of each period from (effective period ``YYYY-MM``, zone) versions: the
    latest one effective on or before the period; before the first, the first one's (the
    account's calendar does not change where its first plan starts); UTC without any."""
    ordered = sorted(versions)
    starts = [v[0] for v in ordered]

    def of(period: Period) -> str:
        if not ordered:
            return UTC_ZONE
        i = bisect.bisect_right(starts, str(period)) - 1
        return ordered[max(i, 0)][1]

    return of


def zoned(period: Period, zone_of: ZoneOf) -> Period:
    """``period`` with the bounds the account's zones give it: it ends in its own zone and
    starts where the previous period (in that period's zone) ended."""
    return _zoned(period.year, period.month, zone_of(period), zone_of(period.prev()))


@lru_cache(maxsize=4096)
def _zoned(year: int, month: int, zone: str, start_zone: str) -> Period:
    return Period(year, month, zone, None if start_zone == zone else start_zone)


def period_at(epoch_ms: int, zone_of: ZoneOf) -> Period:
    """The (zoned) period an instant belongs to in the account's local calendar. Zoned
    periods partition time, and a local month is never more than a day off the UTC one."""
    utc = Period.of_ms(epoch_ms)
    for candidate in (utc, utc.prev(), utc.next()):
        p = zoned(candidate, zone_of)
        if p.contains_ms(epoch_ms):
            return p
    raise ValueError(f"no period contains {epoch_ms}")  # pragma: no cover - zones are < 1 day


def to_ms(when: datetime) -> int:
    """Epoch milliseconds of an aware datetime (sub-millisecond precision is dropped)."""
    return (int(when.timestamp() * 1_000_000)) // 1000
