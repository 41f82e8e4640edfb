"""How chargeable events are counted: the handful of strategies the rules table uses.

Each strategy receives the facts its rule selected, de-duplicated and in processing order
(see ``usage.fact_order``), and writes charges to a ``Sink``; the sink keeps only what
falls inside the period. Every decision that depends on other events (windows, sessions,
concurrency) is made here, from the facts alone, so arrival order cannot change it.

- ``PerOccurrence``: once per message / request / leg, on its chargeable status.
- ``Distinct``: monthly distinct users, conversations, persons, senders.
- ``OutsideWindow``: the 24 h customer-support windows (WhatsApp templates, Viber Bot).
- ``InactivitySessions``: Answers sessions with a per-bot timeout.
- ``FixedSessions``: Kakao consultation sessions (fixed window from the first message).
- ``ViberSessions``: Viber session pricing (60 session messages per 24 h session).
- ``WhatsAppConversations``: conversation-based WhatsApp pricing by category.
- ``CallSeconds``: answered call legs in increments (60/60, 1/1, 30/6...).
- ``Sum``: a measured amount (SIM data traffic).
- ``PeakConcurrency``: named-user seats and recording licences.
- ``Opened``: setup fees, once per holding that starts in the month.
- ``HeldInPeriod``: numbers and SIMs held on any day of the month.
- ``StorageDays``: recording storage per started 24 h period.
- ``OverlappingSessions``: a named user with two sessions at once (licence violation).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, Protocol

from billing.domain.facts import Fact
from billing.domain.periods import MS_PER_DAY, MS_PER_HOUR
from billing.domain.settings import ContractSettings
from billing.domain.usage import Dims, Sink


class Strategy(Protocol):
    @property
    def metric(self) -> str: ...

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None: ...


def dims_of(fact: Fact, names: Sequence[str]) -> Dims:
    return tuple((n, str(fact.attrs[n])) for n in names if fact.attrs.get(n) is not None)


def group_by(facts: Sequence[Fact], *fields: str) -> Iterator[list[Fact]]:
    """Facts grouped by key (and optional attributes), each group in processing order."""
    groups: dict[tuple[object, ...], list[Fact]] = defaultdict(list)
    for f in facts:
        groups[(f.key, *(f.attrs.get(n) for n in fields))].append(f)
    yield from groups.values()


def _hours(settings: ContractSettings, name: str) -> int:
    return int(getattr(settings, name)) * MS_PER_HOUR


# --- per occurrence ---------------------------------------------------------------------


@dataclass(frozen=True)
class PerOccurrence:
    """Charge once per occurrence (``id_fields``), at its first chargeable fact.

    ``charge_on`` lists the statuses that make it chargeable (``None``: any fact). The
    quantity is 1, or the message parts. Later facts of the same occurrence (a delivery
    report after a submit) add nothing.
    """

    metric: str
    id_fields: tuple[str, ...]
    charge_on: frozenset[str] | None = None
    quantity: Literal["one", "parts"] = "one"
    dims: tuple[str, ...] = ("country", "network")
    status_field: str = "status"
    charge_on_setting: str | None = None  # a settings field holding the chargeable values

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        count_parts = self.quantity == "parts" and sink.settings.sms_count_parts
        charge_on = self.charge_on
        if self.charge_on_setting is not None:
            charge_on = frozenset(str(v) for v in getattr(sink.settings, self.charge_on_setting))
        first: dict[object, Fact] = {}
        quantity: dict[object, int] = {}
        for f in facts:
            if charge_on is not None and f.attrs.get(self.status_field) not in charge_on:
                continue
            ident: object = (f.key, *(f.attrs.get(n) for n in self.id_fields))
            if not self.id_fields:
                ident = f.id
            first.setdefault(ident, f)
            qty = int(f.attrs.get("parts", 1)) if count_parts else 1
            quantity[ident] = max(quantity.get(ident, 0), qty)
        for ident, f in first.items():
            sink.charge(self.metric, dims_of(f, self.dims), quantity[ident], f.at)


@dataclass(frozen=True)
class Sum:
    """Charge a measured amount of each fact, in units of ``divisor``."""

    metric: str
    field: str
    divisor: int = 1
    dims: tuple[str, ...] = ("country",)

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        for f in facts:
            amount = Decimal(f.attrs[self.field]) / self.divisor
            sink.charge(self.metric, dims_of(f, self.dims), amount, f.at)


# --- distinct per month -----------------------------------------------------------------


@dataclass(frozen=True)
class Distinct:
    """Count distinct members in the month: ``member_field`` or the fact key (end user)."""

    metric: str
    member_field: str | None = None
    dims: tuple[str, ...] = ()

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        for f in facts:
            member = f.key if self.member_field is None else f.attrs.get(self.member_field)
            if member is not None:
                sink.count_distinct(self.metric, dims_of(f, self.dims), str(member), f.at)


# --- windows and sessions ---------------------------------------------------------------


@dataclass(frozen=True)
class OutsideWindow:
    """Outbound messages delivered outside the customer-support window are charged.

    The window is ``window_hours`` (a settings field) from the end user's **last** inbound
    message: a message at ``t`` is inside when some inbound message ``i`` has
    ``i <= t < i + window``. An inbound message exactly one window before is outside.
    ``charged_kinds`` are charged outside (``None``: every kind); ``violation_kinds`` are
    reported, not charged, when outside (free-form WhatsApp messages).
    """

    metric: str
    window_hours: str
    charged_kinds: frozenset[str] | None
    violation_kinds: frozenset[str] = frozenset()
    dims: tuple[str, ...] = ("country",)

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        window = _hours(sink.settings, self.window_hours)
        for group in group_by(facts):
            inbound = [f.at for f in group if f.type == "message.inbound"]
            decided: set[object] = set()  # a message is judged once, at its first delivery
            for f in group:
                if f.type != "message.outbound" or f.attrs.get("status") != "delivered":
                    continue
                if f.attrs["message_id"] in decided:
                    continue
                decided.add(f.attrs["message_id"])
                i = bisect.bisect_right(inbound, f.at) - 1
                if i >= 0 and f.at < inbound[i] + window:
                    continue
                kind = f.attrs.get("kind", "standard")
                if kind in self.violation_kinds:
                    sink.note(f"{self.metric}.outside_window", f.at, f"{kind} outside the window")
                elif self.charged_kinds is None or kind in self.charged_kinds:
                    sink.charge(self.metric, dims_of(f, self.dims), 1, f.at)


@dataclass(frozen=True)
class InactivitySessions:
    """Answers sessions: opened by an end-user message to a bot, closed by inactivity
    (the bot's timeout, at most 24 h; a gap equal to the timeout closes), completion or
    transfer. A message after closure opens a new session only if it is inbound. A
    session is charged in the month it starts."""

    metric: str

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        default = sink.settings.answers_default_timeout_minutes
        for group in group_by(facts, "bot_id"):
            open_ = False
            last = timeout = 0
            for f in group:
                if open_ and f.at - last >= timeout:
                    open_ = False
                if f.type == "bot.session_ended":
                    open_ = False
                    continue
                if not open_:
                    if f.type != "message.inbound":
                        continue
                    minutes = min(int(f.attrs.get("bot_timeout_minutes", default)), 1440)
                    timeout = minutes * 60_000
                    open_ = True
                    sink.charge(self.metric, (), 1, f.at)
                last = f.at


@dataclass(frozen=True)
class FixedSessions:
    """Sessions of a fixed length from the end user's first message (Kakao consultation)."""

    metric: str
    window_hours: str

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        window = _hours(sink.settings, self.window_hours)
        for group in group_by(facts):
            started: int | None = None
            for f in group:
                if started is None or f.at >= started + window:
                    started = f.at
                    sink.charge(self.metric, (), 1, f.at)


@dataclass(frozen=True)
class ViberSessions:
    """Viber session pricing: an end-user message opens a fixed 24 h session in which up
    to 60 session-type messages are covered by the session charge; other messages, and
    session messages beyond the limit or outside a session, are charged per message."""

    metric: str
    message_metric: str

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        window = _hours(sink.settings, "viber_session_hours")
        limit = sink.settings.viber_session_message_limit
        for group in group_by(facts):
            started: int | None = None
            used = 0
            seen: set[object] = set()
            for f in group:
                inside = started is not None and f.at < started + window
                if f.type == "message.inbound":
                    if not inside:
                        started, used = f.at, 0
                        sink.charge(self.metric, dims_of(f, ("country",)), 1, f.at)
                    continue
                if f.attrs.get("status") != "delivered" or f.attrs["message_id"] in seen:
                    continue
                seen.add(f.attrs["message_id"])
                if inside and f.attrs.get("kind") == "session" and used < limit:
                    used += 1
                    continue
                sink.charge(self.message_metric, dims_of(f, ("country",)), 1, f.at)


@dataclass(frozen=True)
class WhatsAppConversations:
    """Conversation-based WhatsApp pricing (the French copy).

    A delivered template opens (and charges) a 24 h conversation of its category unless
    one of that category is open with the user. A free-form reply inside the customer
    support window opens a ``service`` conversation when no conversation of any category
    is open. A template without a category is charged as ``marketing`` and reported.
    """

    metric: str

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        csw = _hours(sink.settings, "whatsapp_csw_hours")
        length = _hours(sink.settings, "whatsapp_conversation_hours")
        for group in group_by(facts):
            last_inbound: int | None = None
            opened: dict[str, int] = {}
            seen: set[object] = set()
            for f in group:
                if f.type == "message.inbound":
                    last_inbound = f.at
                    continue
                if f.attrs.get("status") != "delivered" or f.attrs["message_id"] in seen:
                    continue
                seen.add(f.attrs["message_id"])
                live = {c for c, at in opened.items() if f.at < at + length}
                kind = f.attrs.get("kind")
                if kind == "template":
                    category = f.attrs.get("category")
                    if category is None:
                        sink.note("whatsapp.template_without_category", f.at, "as marketing")
                        category = "marketing"
                elif kind == "free_form":
                    if last_inbound is None or f.at >= last_inbound + csw:
                        sink.note("whatsapp.outside_window", f.at, "free_form outside the window")
                        continue
                    if live:
                        continue
                    category = "service"
                else:
                    continue
                if category not in live:
                    opened[category] = f.at
                    sink.charge(
                        self.metric, (("category", category), *dims_of(f, ("country",))), 1, f.at
                    )


# --- voice ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallSeconds:
    """Billable seconds of each answered call leg, in the contract's increments.

    ``increment`` is ``"service"`` (the per-service voice scheme, 60/60 by default) or
    ``"byoc"``. Unanswered, busy, failed and rejected legs are not charged.
    """

    metric: str
    increment: Literal["service", "byoc"] = "service"
    dims: tuple[str, ...] = ("country", "direction")

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        from billing.domain.events import VoiceService

        seen: set[tuple[object, ...]] = set()
        for f in facts:
            leg = (f.attrs["call_id"], f.attrs["leg_id"])
            if f.attrs.get("disposition") != "answered" or leg in seen:
                continue
            seen.add(leg)
            if self.increment == "byoc":
                scheme = sink.settings.byoc_increment
            elif f.attrs.get("byoc") and sink.settings.byoc_replaces_service_charge:
                continue
            else:
                scheme = sink.settings.increment_for(VoiceService(f.attrs["service"]))
            seconds = scheme.billable_seconds(Decimal(f.attrs["answered_seconds"]))
            sink.charge(self.metric, dims_of(f, self.dims), seconds, f.at)


# --- entities: seats, recordings, numbers, SIMs -------------------------------------------


@dataclass(frozen=True)
class Lifecycle:
    """Which facts open and which close an entity's interval (``status`` values optional)."""

    opens: frozenset[str]
    closes: frozenset[str]
    open_statuses: frozenset[str] = frozenset()
    close_statuses: frozenset[str] = frozenset()

    def intervals(self, facts: Sequence[Fact]) -> list[tuple[int, int | None]]:
        """Half-open [start, end) intervals of one entity; ``None`` end: still open."""
        out: list[tuple[int, int | None]] = []
        start: int | None = None
        for f in facts:
            status = f.attrs.get("status")
            if f.type in self.opens or (status in self.open_statuses and f.type not in self.closes):
                if start is None:
                    start = f.at
            elif (f.type in self.closes or status in self.close_statuses) and start is not None:
                out.append((start, f.at))
                start = None
        if start is not None:
            out.append((start, None))
        return out


def _peak(intervals: list[tuple[int, int | None]], lo: int, hi: int) -> int:
    """Maximum number of intervals overlapping at one instant within [lo, hi)."""
    edges: list[tuple[int, int]] = []
    for start, end in intervals:
        s, e = max(start, lo), min(hi if end is None else end, hi)
        if s < e:
            edges.append((s, 1))
            edges.append((e, -1))
    edges.sort()  # at equal instants an end (-1) sorts before a start: half-open intervals
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def _entities(facts: Sequence[Fact]) -> dict[str, list[Fact]]:
    by_entity: dict[str, list[Fact]] = defaultdict(list)
    for f in facts:
        by_entity[str(f.entity)].append(f)
    return by_entity


def _attr(facts: Sequence[Fact], name: str) -> object:
    """An entity attribute: the value on its earliest fact that has one."""
    return next((f.attrs[name] for f in facts if name in f.attrs), None)


@dataclass(frozen=True)
class PeakConcurrency:
    """The month's peak number of simultaneously open entities, optionally capped by a
    settings field (the Recording Limit): a peak above the cap is reported.
    ``initial_metric`` additionally counts the peak during the named-user service start
    day, the seats the first month's proration applies to."""

    metric: str
    lifecycle: Lifecycle
    cap: str | None = None
    initial_metric: str | None = None

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        period = sink.period
        intervals = [iv for fs in _entities(facts).values() for iv in self.lifecycle.intervals(fs)]
        peak = _peak(intervals, period.start_ms, period.end_ms)
        if self.cap is not None:
            limit = int(getattr(sink.settings, self.cap))
            if peak > limit:
                sink.note(f"{self.metric}.above_limit", period.start_ms, f"peak {peak} > {limit}")
            peak = min(peak, limit)
        sink.charge(self.metric, (), peak, period.start_ms)
        start_day = sink.settings.named_user_service_start
        if self.initial_metric and start_day is not None:
            day = int(
                datetime(start_day.year, start_day.month, start_day.day, tzinfo=UTC).timestamp()
            )
            lo = day * 1000
            if period.contains_ms(lo):
                sink.charge(self.initial_metric, (), _peak(intervals, lo, lo + MS_PER_DAY), lo)


@dataclass(frozen=True)
class Opened:
    """One per holding that starts in the period (setup fees): provisioning a number that
    is already held adds nothing; provisioning it again after a release does."""

    metric: str
    lifecycle: Lifecycle
    dims: tuple[str, ...] = ()

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        for fs in _entities(facts).values():
            dims = tuple((n, str(v)) for n in self.dims if (v := _attr(fs, n)) is not None)
            for start, _ in self.lifecycle.intervals(fs):
                sink.charge(self.metric, dims, 1, start)


@dataclass(frozen=True)
class HeldInPeriod:
    """One per entity held on any day of the period (recurring number fees, SIM
    subscriptions), with the entity's attributes as dimensions."""

    metric: str
    lifecycle: Lifecycle
    dims: tuple[str, ...] = ()

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        lo, hi = sink.period.start_ms, sink.period.end_ms
        for fs in _entities(facts).values():
            held = [
                iv
                for iv in self.lifecycle.intervals(fs)
                if iv[0] < hi and (iv[1] is None or iv[1] > lo)
            ]
            if held:
                dims = tuple((n, str(v)) for n in self.dims if (v := _attr(fs, n)) is not None)
                sink.charge(self.metric, dims, 1, max(held[0][0], lo))


@dataclass(frozen=True)
class StorageDays:
    """Recording storage: every started 24 h period from creation (``recording.stored``)
    until deletion, each day in the month in which it starts. Conversations recordings
    are charged per GB-day, others per minute-day (recorded minutes rounded up)."""

    metric: str
    conversations: bool

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        lo, hi = sink.period.start_ms, sink.period.end_ms
        for fs in _entities(facts).values():
            stored = next((f for f in fs if f.type == "recording.stored"), None)
            via_conversations = bool(stored.attrs.get("via_conversations")) if stored else False
            if stored is None or via_conversations != self.conversations:
                continue
            deleted = next((f.at for f in fs if f.type == "recording.deleted"), None)
            created = stored.at
            until = hi if deleted is None else min(hi, deleted)
            first = max(0, -(-(lo - created) // MS_PER_DAY))  # first day starting in the period
            last = -(-(until - created) // MS_PER_DAY) - 1  # last day starting before `until`
            days = last - first + 1
            if days <= 0:
                continue
            if self.conversations:
                size = Decimal(stored.attrs["size_bytes"]) / sink.settings.gigabyte_bytes
            else:
                size = Decimal(math.ceil(Decimal(stored.attrs["duration_seconds"]) / 60))
            sink.charge(self.metric, (), size * days, created + first * MS_PER_DAY)


@dataclass(frozen=True)
class OverlappingSessions:
    """A named user with a second simultaneous session: a licence violation to report."""

    metric: str

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        for group in group_by(facts):
            open_sessions: set[object] = set()
            for f in group:
                session = f.attrs["session_id"]
                if f.type == "named_user.session_opened":
                    if open_sessions - {session}:
                        sink.note(self.metric, f.at, "second concurrent session of one user")
                    open_sessions.add(session)
                else:
                    open_sessions.discard(session)
