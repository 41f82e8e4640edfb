"""Billing periods: calendar months in UTC."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 24 * MS_PER_HOUR


@dataclass(frozen=True, order=True, slots=True)
class Period:
    year: int
    month: int

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
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive end: the first instant of the next period."""
        return self.next().start

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    @property
    def days(self) -> int:
        return (self.end - self.start) // timedelta(days=1)

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def prev(self) -> Period:
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def contains_ms(self, epoch_ms: int) -> bool:
        return self.start_ms <= epoch_ms < self.end_ms


def to_ms(when: datetime) -> int:
    """Epoch milliseconds of an aware datetime (sub-millisecond precision is dropped)."""
    return (int(when.timestamp() * 1_000_000)) // 1000
