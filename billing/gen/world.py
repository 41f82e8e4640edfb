"""The synthetic world behind the reference mix: countries, end users, the daily cycle.

Everything here is a pure function of its arguments (no random state), so that an end
user's phone number, email address and chat-app ids are the same wherever they are used:
one person index gives all of a person's identifiers.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta, timezone
from itertools import accumulate

from billing.domain.periods import Period

#: 30 destination countries: ISO code and calling code, most frequent first.
COUNTRIES: tuple[tuple[str, str], ...] = (
    ("FR", "33"),
    ("DE", "49"),
    ("GB", "44"),
    ("ES", "34"),
    ("IT", "39"),
    ("US", "1"),
    ("BR", "55"),
    ("IN", "91"),
    ("ID", "62"),
    ("NL", "31"),
    ("MX", "52"),
    ("VN", "84"),
    ("KR", "82"),
    ("PL", "48"),
    ("TR", "90"),
    ("PH", "63"),
    ("BE", "32"),
    ("PT", "351"),
    ("SE", "46"),
    ("JP", "81"),
    ("TH", "66"),
    ("MY", "60"),
    ("SG", "65"),
    ("ZA", "27"),
    ("NG", "234"),
    ("KE", "254"),
    ("EG", "20"),
    ("AE", "971"),
    ("SA", "966"),
    ("AR", "54"),
)
_COUNTRY_CUM = tuple(accumulate(1.0 / (i + 1) ** 0.8 for i in range(len(COUNTRIES))))

#: share of an account's end users living in the account's home country.
HOME_SHARE = 0.6
NETWORKS_PER_COUNTRY = 3

#: relative traffic per hour of the day (UTC): quiet nights, busy afternoons.
HOUR_OF_DAY_WEIGHTS: tuple[float, ...] = (
    1.5, 1.0, 0.8, 0.7, 0.7, 1.0, 2.0, 3.5, 5.5, 7.0, 8.0, 8.5,
    8.5, 9.0, 9.5, 10.0, 10.0, 9.0, 8.0, 7.0, 6.0, 4.5, 3.0, 2.0,
)  # fmt: skip
WEEKEND_FACTOR = 0.7

MS_PER_HOUR = 3_600_000


def _hash(*parts: int) -> int:
    """A small, fast, well-mixed 64-bit hash of integers (splitmix64 steps)."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (p & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 29
    return x


def _unit(*parts: int) -> float:
    return (_hash(*parts) >> 11) / float(1 << 53)


def pick_country(u: float) -> int:
    """Index of a country from a uniform number, Zipf-like over ``COUNTRIES``."""
    return min(bisect_right(_COUNTRY_CUM, u * _COUNTRY_CUM[-1]), len(COUNTRIES) - 1)


def home_country(account: int) -> int:
    return pick_country(_unit(account, 1))


def person_country(account: int, person: int) -> int:
    if _unit(account, person, 2) < HOME_SHARE:
        return home_country(account)
    return pick_country(_unit(account, person, 3))


def person_network(account: int, person: int) -> str:
    iso = COUNTRIES[person_country(account, person)][0].lower()
    return f"{iso}-mno{_hash(account, person, 4) % NETWORKS_PER_COUNTRY + 1}"


def msisdn(account: int, person: int) -> str:
    """The person's mobile number (also their WhatsApp and Viber number)."""
    code = COUNTRIES[person_country(account, person)][1]
    return f"+{code}7{account % 1000:03d}{person:07d}"


_DOMAINS = ("example.com", "example.net", "example.org", "mail.example", "inbox.example")


def email(account: int, person: int) -> str:
    return f"user{person:07d}.a{account:03d}@{_DOMAINS[_hash(account, person, 5) % 5]}"


_APP_PREFIX = {
    "messenger": "psid",
    "telegram": "tg",
    "google_bm": "gbm",
    "apple_bc": "abc",
    "zalo": "zalo",
    "kakao_notification": "kakao",
    "kakao_friends": "kakao",
    "kakao_consultation": "kakao",
    "push": "device",
    "live_chat": "visitor",
    "social": "social",
    "webrtc": "webrtc",
}


def identifier(channel: str, account: int, person: int) -> str:
    """The person's identifier on ``channel``: MSISDN, email address or app user id."""
    if channel in ("sms", "mms", "rcs", "whatsapp", "viber", "viber_bot", "voice", "ussd"):
        return msisdn(account, person)
    if channel == "email":
        return email(account, person)
    prefix = _APP_PREFIX[channel]
    return f"{prefix}-{_hash(account, person, 6) % 10**12:012d}"


def hour_weights(period: Period) -> list[float]:
    """Relative traffic of every hour of the period (daily cycle, quieter weekends)."""
    out: list[float] = []
    start = period.start
    for h in range(period.days * 24):
        moment = start + timedelta(hours=h)
        factor = WEEKEND_FACTOR if moment.weekday() >= 5 else 1.0
        out.append(HOUR_OF_DAY_WEIGHTS[moment.hour] * factor)
    return out


_OFFSETS = {m: timezone(timedelta(minutes=m)) for m in (-300, 60, 120, 330, 540)}
OFFSET_MINUTES: tuple[int, ...] = tuple(_OFFSETS)


class Clock:
    """Epoch milliseconds of a period to exact ISO-8601 strings with a zone."""

    __slots__ = ("_start", "_start_ms")

    def __init__(self, period: Period) -> None:
        self._start = period.start
        self._start_ms = period.start_ms

    @property
    def start_ms(self) -> int:
        return self._start_ms

    def iso(self, ms: int, offset_minutes: int = 0) -> str:
        moment = self._start + timedelta(milliseconds=ms - self._start_ms)
        if offset_minutes == 0:
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        local = moment.astimezone(_OFFSETS[offset_minutes])
        return local.isoformat(timespec="milliseconds")

    def naive(self, ms: int) -> str:
        """The same instant without a zone (a malformed time)."""
        moment = self._start + timedelta(milliseconds=ms - self._start_ms)
        return moment.replace(tzinfo=None).isoformat(timespec="milliseconds")


def utc(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
