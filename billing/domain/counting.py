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
  (The last four work on an entity's holdings and say what of it a later month needs.)
- ``OverlappingSessions``: a named user with two sessions at once (licence violation).
- ``FlagConflict``: an event flag that contradicts the contract's products (reported).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

from billing.domain.facts import Fact
from billing.domain.periods import MS_PER_DAY, MS_PER_HOUR
from billing.domain.settings import ContractSettings, Product
from billing.domain.usage import Dims, Sink


class Strategy(Protocol):
    @property
    def metric(self) -> str: ...

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None: ...


@runtime_checkable
class Carries(Protocol):
    """A strategy over lifecycle facts: which of one entity's facts later periods need."""

    def carry(self, facts: Sequence[Fact]) -> list[Fact]: ...


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
        for ident, f in self._chargeable(facts, charge_on):
            first.setdefault(ident, f)
            qty = int(f.attrs.get("parts", 1)) if count_parts else 1
            quantity[ident] = max(quantity.get(ident, 0), qty)
        for ident, f in first.items():
            sink.charge(self.metric, dims_of(f, self.dims), quantity[ident], f.at)

    def carry(self, facts: Sequence[Fact]) -> list[Fact]:
        """Over lifecycle facts (a SIM's activation): the first chargeable fact of each
        occurrence stays known, so that a repeat in a later month is not charged again."""
        first: dict[object, Fact] = {}
        for ident, f in self._chargeable(facts, self.charge_on):
            first.setdefault(ident, f)
        return list(first.values())

    def _chargeable(
        self, facts: Sequence[Fact], charge_on: frozenset[str] | None
    ) -> Iterator[tuple[object, Fact]]:
        """(occurrence, fact) for every fact with a chargeable status."""
        for f in facts:
            if charge_on is not None and f.attrs.get(self.status_field) not in charge_on:
                continue
            if self.id_fields:
                yield (f.key, *(f.attrs.get(n) for n in self.id_fields)), f
            else:
                yield f.id, f


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
#
# An entity (a seat, a recording, a number, a SIM) lives across months. Its strategies see
# the entity's facts as *holdings*: from a fact that opens it to the next one that closes
# it. Everything a holding contributes (its dimensions included) comes from its own facts,
# so a holding that ended before a period contributes nothing to it: ``carry`` names the
# facts that can still matter after a period end, which is what the close keeps from one
# month to the next instead of the entity's whole history (``billing.domain.entities``).


@dataclass(frozen=True, slots=True)
class Holding:
    """One uninterrupted holding of an entity: ``facts`` run from the opening fact up to and
    including the closing one; ``end`` is ``None`` while it lasts."""

    facts: tuple[Fact, ...]
    end: int | None

    @property
    def opened(self) -> Fact:
        return self.facts[0]

    @property
    def start(self) -> int:
        return self.facts[0].at

    def attr(self, name: str) -> object:
        """An attribute of the holding: the value on its earliest fact that has one."""
        return next((f.attrs[name] for f in self.facts if name in f.attrs), None)

    def dims(self, names: Sequence[str]) -> Dims:
        return tuple((n, str(v)) for n in names if (v := self.attr(n)) is not None)


@dataclass(frozen=True)
class Lifecycle:
    """Which facts open and which close an entity's holding (``status`` values optional).

    A fact that opens an entity already held, or closes one not held, changes nothing.
    """

    opens: frozenset[str]
    closes: frozenset[str]
    open_statuses: frozenset[str] = frozenset()
    close_statuses: frozenset[str] = frozenset()

    def holdings(self, facts: Sequence[Fact]) -> list[Holding]:
        """The holdings of one entity, from its facts in processing order."""
        out: list[Holding] = []
        current: list[Fact] | None = None
        for f in facts:
            status = f.attrs.get("status")
            if f.type in self.opens or (status in self.open_statuses and f.type not in self.closes):
                if current is None:
                    current = []
            elif (f.type in self.closes or status in self.close_statuses) and current is not None:
                current.append(f)
                out.append(Holding(tuple(current), f.at))
                current = None
                continue
            if current is not None:
                current.append(f)
        if current is not None:
            out.append(Holding(tuple(current), None))
        return out

    def intervals(self, facts: Sequence[Fact]) -> list[tuple[int, int | None]]:
        """Half-open [start, end) intervals of one entity; ``None`` end: still open."""
        return [(h.start, h.end) for h in self.holdings(facts)]

    def carry(self, facts: Sequence[Fact]) -> list[Fact]:
        """What later periods need of an entity whose facts so far are ``facts``: the facts
        of its open holding, or nothing once it has ended."""
        held = self.holdings(facts)
        if not held or held[-1].end is not None:
            return []
        return [f for f in facts if f.at >= held[-1].start]


def _entities(facts: Sequence[Fact]) -> dict[str, list[Fact]]:
    by_entity: dict[str, list[Fact]] = defaultdict(list)
    for f in facts:
        by_entity[str(f.entity)].append(f)
    return by_entity


@dataclass(frozen=True)
class EntityStrategy:
    """Base of the lifecycle strategies: an entity's future depends on its open holding."""

    metric: str
    lifecycle: Lifecycle

    def carry(self, facts: Sequence[Fact]) -> list[Fact]:
        return self.lifecycle.carry(facts)


@dataclass(frozen=True)
class PeakConcurrency(EntityStrategy):
    """The month's peak number of simultaneously open entities, optionally capped by a
    settings field (the Recording Limit): a peak above the cap is reported.
    ``initial_metric`` additionally counts the peak during the named-user service start
    day, the seats the first month's proration applies to.

    The peak is not additive over shards of entities, so the strategy records the holdings
    as steps (``usage.Peak``) and the figure is taken once the shards are merged.
    """

    cap: str | None = None
    initial_metric: str | None = None

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        lo, hi = sink.period.start_ms, sink.period.end_ms
        peak = sink.usage.peak(self.metric)
        if self.cap is not None:
            peak.cap = int(getattr(sink.settings, self.cap))
        start_day = sink.settings.named_user_service_start
        if self.initial_metric and start_day is not None:
            # the start day is a local date: from its local midnight to the next one
            first = sink.period.local_day_start(start_day)
            after = sink.period.local_day_start(start_day + timedelta(days=1))
            if sink.period.contains_ms(first):
                peak.initial = (self.initial_metric, first, after)
        for fs in _entities(facts).values():
            for start, end in self.lifecycle.intervals(fs):
                peak.add_interval(max(start, lo), min(hi if end is None else end, hi))


@dataclass(frozen=True)
class Opened(EntityStrategy):
    """One per holding that starts in the period (setup fees): provisioning a number that
    is already held adds nothing; provisioning it again after a release does."""

    dims: tuple[str, ...] = ()

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        for fs in _entities(facts).values():
            for holding in self.lifecycle.holdings(fs):
                sink.charge(self.metric, holding.dims(self.dims), 1, holding.start)


@dataclass(frozen=True)
class HeldInPeriod(EntityStrategy):
    """One per entity held on any day of the period (recurring number fees, SIM
    subscriptions), with the attributes of its first holding in the period as dimensions."""

    dims: tuple[str, ...] = ()

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        lo, hi = sink.period.start_ms, sink.period.end_ms
        for fs in _entities(facts).values():
            held = next(
                (
                    h
                    for h in self.lifecycle.holdings(fs)
                    if h.start < hi and (h.end is None or h.end > lo)
                ),
                None,
            )
            if held is not None:
                sink.charge(self.metric, held.dims(self.dims), 1, max(held.start, lo))


STORED = Lifecycle(frozenset({"recording.stored"}), frozenset({"recording.deleted"}))


@dataclass(frozen=True)
class StorageDays(EntityStrategy):
    """Recording storage: every started 24 h period from creation (``recording.stored``)
    until deletion, each day in the month in which it starts. Conversations recordings
    are charged per GB-day, others per minute-day (recorded minutes rounded up).

    A deletion timed before the recording was stored deletes nothing (it is not held).
    """

    conversations: bool = False
    lifecycle: Lifecycle = STORED

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        lo, hi = sink.period.start_ms, sink.period.end_ms
        for fs in _entities(facts).values():
            for holding in self.lifecycle.holdings(fs):
                stored = holding.opened
                if sink.settings.via_conversations(stored.attrs.get("via_conversations")) != (
                    self.conversations
                ):
                    continue
                created = holding.start
                until = hi if holding.end is None else min(hi, holding.end)
                first = max(0, -(-(lo - created) // MS_PER_DAY))  # first day starting in period
                last = -(-(until - created) // MS_PER_DAY) - 1  # last day starting before until
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


@dataclass(frozen=True)
class FlagConflict:
    """Reports events whose ``flag`` claims a product the contract does not include (a
    ``recording.started`` flagged ``via_conversations`` for an account whose contract
    states its products without Conversations). The contract decides the charge; the
    conflict is a note on the invoice, one per event, never a charge.

    An unset flag contradicts nothing: false is the flag's default, so an event that
    does not carry it (the way to send recordings once the contract names the product)
    and one that says false cannot be told apart."""

    metric: str
    flag: str
    product: Product

    def carry(self, facts: Sequence[Fact]) -> list[Fact]:
        """Each event is judged in its own period: later periods need none of them."""
        return []

    def apply(self, facts: Sequence[Fact], sink: Sink) -> None:
        if sink.settings.subscribes(self.product) is not False:
            return
        for f in facts:
            if f.attrs.get(self.flag):
                sink.note(
                    self.metric,
                    f.at,
                    f"{f.type} {self.flag}=true but the contract has no "
                    f"{self.product.value}: billed as the contract says",
                )
