"""The rules table: for every service of the rulebook, which facts are chargeable and how
they are counted. One row per billed metric; adding a service is a row here plus a test.

Reading a row: ``Rule(metric, rulebook section, title, select, strategy)``. ``select`` is
one or more ``Match``es (fact type and attribute values); the strategy (``counting.py``)
decides what among the selected facts is charged and how much. ``when`` switches a row on
for a contract setting (e.g. WhatsApp's per-template vs conversation-based model).
``free_unless_priced`` rows are recorded for reports and cost nothing unless the price plan
prices them. ``product`` names the product a row's metric belongs to: it does not change
what is counted, it tells ``billing plans check`` which priced metrics can never occur for
an account whose contract states its products (``plancheck.py``).

Where is WhatsApp's 24 h window decided? The ``whatsapp`` row: ``OutsideWindow`` with
``whatsapp_csw_hours``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from billing.domain.counting import (
    CallSeconds,
    Distinct,
    FixedSessions,
    FlagConflict,
    HeldInPeriod,
    InactivitySessions,
    Lifecycle,
    Opened,
    OutsideWindow,
    OverlappingSessions,
    PeakConcurrency,
    PerOccurrence,
    StorageDays,
    Strategy,
    Sum,
    ViberSessions,
    WhatsAppConversations,
)
from billing.domain.events import VoiceService
from billing.domain.facts import Fact
from billing.domain.settings import ContractSettings, Product
from billing.domain.usage import Sink, fact_order

PRESENT = object()  # attribute must be present, whatever its value


@dataclass(frozen=True)
class Match:
    """Selects facts of one type whose attributes have the given values.

    A value may be a single value, a set of values, or ``PRESENT``. An absent attribute
    compares as its contract default (``status`` of inbound messages is ``accepted``,
    ``kind`` is ``standard``, ``via`` is ``api``, booleans are false).
    """

    type: str
    where: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, fact: Fact) -> bool:
        if fact.type != self.type:
            return False
        for name, wanted in self.where.items():
            value = fact.attrs.get(name, _DEFAULTS.get(name))
            if wanted is PRESENT:
                if value is None:
                    return False
            elif isinstance(wanted, frozenset):
                if value not in wanted:
                    return False
            elif value != wanted:
                return False
        return True


_DEFAULTS: Mapping[str, Any] = {
    "status": "accepted",
    "kind": "standard",
    "via": "api",
    "amd": False,
    "byoc": False,
    "via_conversations": False,
    "missed_call": False,
}


def out(channel: str | frozenset[str], **where: Any) -> Match:
    return Match("message.outbound", {"channel": channel, **where})


def inb(channel: str | frozenset[str], **where: Any) -> Match:
    return Match("message.inbound", {"channel": channel, "status": "accepted", **where})


def _always(_: ContractSettings) -> bool:
    return True


@dataclass(frozen=True)
class Rule:
    metric: str
    section: str
    title: str
    select: tuple[Match, ...]
    strategy: Strategy
    when: Callable[[ContractSettings], bool] = _always
    free_unless_priced: bool = False
    product: Product | None = None  # the metric exists only for accounts with this product

    def __post_init__(self) -> None:
        assert self.strategy.metric == self.metric, f"{self.metric}: strategy metric differs"


def rule(
    metric: str,
    section: str,
    title: str,
    select: Match | Iterable[Match],
    strategy: Strategy,
    **kw: Any,
) -> Rule:
    matches = (select,) if isinstance(select, Match) else tuple(select)
    return Rule(metric, section, title, matches, strategy, **kw)


DELIVERED = "delivered"
SUBMITTED = frozenset({"submitted"})
SENT = frozenset({"submitted", "delivered", "undelivered"})
SCREENED = frozenset({"submitted", "delivered", "undelivered", "suppressed", "bounced"})
EMAIL_CHARGED = frozenset({"submitted", "suppressed"})
MESSAGING_NUMBERS = frozenset({"long", "toll_free", "short_code"})
ACTIVE_USER_CHANNELS = ("messenger", "telegram", "google_bm", "apple_bc")
SEAT = Lifecycle(frozenset({"named_user.provisioned"}), frozenset({"named_user.deprovisioned"}))
RECORDING = Lifecycle(frozenset({"recording.started"}), frozenset({"recording.stopped"}))
NUMBER = Lifecycle(frozenset({"number.provisioned"}), frozenset({"number.released"}))
SIM = Lifecycle(
    frozenset({"sim.activated"}),
    frozenset(),
    open_statuses=frozenset({"active"}),
    close_statuses=frozenset({"suspended", "terminated"}),
)


def _per_message(
    metric: str, charge_on: frozenset[str] | str, quantity: Literal["one", "parts"] = "one"
) -> PerOccurrence:
    statuses = frozenset({charge_on}) if isinstance(charge_on, str) else charge_on
    return PerOccurrence(metric, ("message_id",), statuses, quantity)


def _voice(service: VoiceService, title: str) -> Rule:
    return rule(
        f"voice.{service.value}",
        "4",
        title,
        Match("call.leg", {"service": service.value}),
        CallSeconds(f"voice.{service.value}"),
    )


RULES: tuple[Rule, ...] = (
    # --- 2. SaaS packages ----------------------------------------------------------------
    rule(
        "conversations.maa",
        "2",
        "peak concurrently provisioned named users (seats)",
        (Match("named_user.provisioned"), Match("named_user.deprovisioned")),
        PeakConcurrency("conversations.maa", SEAT, initial_metric="conversations.maa.initial"),
        product=Product.CONVERSATIONS,
    ),
    rule(
        "conversations.licence_violation",
        "2",
        "second concurrent session of a named user",
        (Match("named_user.session_opened"), Match("named_user.session_closed")),
        OverlappingSessions("conversations.licence_violation"),
        product=Product.CONVERSATIONS,
    ),
    rule(
        "conversations.mac",
        "2",
        "conversations with a message in the month",
        (
            Match(
                "message.outbound",
                {"conversation_id": PRESENT, "status": frozenset({"submitted", "delivered"})},
            ),
            Match("message.inbound", {"conversation_id": PRESENT, "status": "accepted"}),
        ),
        Distinct("conversations.mac", "conversation_id"),
        product=Product.CONVERSATIONS,
    ),
    rule(
        "moments.mep",
        "2",
        "persons who received a Flow message or entered a Flow",
        (
            Match("message.outbound", {"via": "flow", "status": DELIVERED}),
            Match("message.inbound", {"via": "flow", "status": "accepted"}),
        ),
        Distinct("moments.mep", "person_id"),
        product=Product.MOMENTS,
    ),
    rule(
        "moments.mep",
        "2",
        "Broadcast recipients (only when the contract counts them)",
        Match("message.outbound", {"via": "broadcast", "status": DELIVERED}),
        Distinct("moments.mep", "person_id"),
        when=lambda s: s.mep_counts_broadcast,
        product=Product.MOMENTS,
    ),
    rule(
        "answers.mas",
        "2",
        "bot sessions started in the month",
        (
            Match("message.inbound", {"bot_id": PRESENT, "status": "accepted"}),
            Match("message.outbound", {"bot_id": PRESENT}),
            Match("bot.session_ended"),
        ),
        InactivitySessions("answers.mas"),
        product=Product.ANSWERS,
    ),
    # --- 3. messaging ---------------------------------------------------------------------
    rule(
        "sms.mt",
        "3",
        "SMS parts submitted to the operator",
        out("sms"),
        _per_message("sms.mt", SUBMITTED, "parts"),
    ),
    rule(
        "sms.mo",
        "3",
        "SMS parts accepted by the platform",
        inb("sms"),
        PerOccurrence("sms.mo", ("message_id",), None, "parts"),
    ),
    rule(
        "mms.mt",
        "3",
        "MMS submitted to the operator",
        out("mms"),
        _per_message("mms.mt", SUBMITTED, "parts"),
    ),
    rule(
        "mms.mo",
        "3",
        "MMS accepted by the platform",
        inb("mms"),
        PerOccurrence("mms.mo", ("message_id",), None, "parts"),
    ),
    rule("rcs.mt", "3a", "RCS messages submitted", out("rcs"), _per_message("rcs.mt", SUBMITTED)),
    rule(
        "rcs.mo",
        "3a",
        "RCS messages accepted",
        inb("rcs"),
        PerOccurrence("rcs.mo", ("message_id",)),
    ),
    rule(
        "number_lookup",
        "3",
        "lookup requests submitted to the operator",
        Match("lookup", {"kind": "number_lookup"}),
        PerOccurrence("number_lookup", ("request_id",), SUBMITTED, dims=("country",)),
    ),
    rule(
        "email",
        "3",
        "emails submitted, or not sent to a suppressed address (still charged)",
        out("email"),
        PerOccurrence("email", ("message_id",), EMAIL_CHARGED, dims=()),
    ),
    rule(
        "email.suppressed",
        "3",
        "of which not sent: address on the suppression list",
        out("email"),
        PerOccurrence("email.suppressed", ("message_id",), frozenset({"suppressed"}), dims=()),
        free_unless_priced=True,
    ),
    rule(
        "email_validation",
        "3",
        "email validation requests, whatever the answer",
        Match("lookup", {"kind": "email_validation"}),
        PerOccurrence("email_validation", ("request_id",), SUBMITTED, dims=()),
    ),
    rule(
        "viber",
        "3",
        "Viber service messages delivered",
        out("viber"),
        _per_message("viber", DELIVERED),
        when=lambda s: s.viber_model == "message",
    ),
    rule(
        "viber",
        "3a",
        "Viber messages delivered (per sender, beyond the monthly fee)",
        out("viber"),
        PerOccurrence(
            "viber", ("message_id",), frozenset({DELIVERED}), dims=("sender_id", "country")
        ),
        when=lambda s: s.viber_model == "mmc",
    ),
    rule(
        "viber.mmc",
        "3a",
        "active Viber senders (Service IDs)",
        out("viber", status=DELIVERED),
        Distinct("viber.mmc", "sender_id"),
        when=lambda s: s.viber_model == "mmc",
    ),
    rule(
        "viber.session",
        "3a",
        "Viber sessions initiated by end users",
        (inb("viber"), out("viber")),
        ViberSessions("viber.session", "viber"),
        when=lambda s: s.viber_model == "session",
    ),
    rule(
        "ussd",
        "3",
        "USSD sessions initiated by the account or a third party",
        Match("ussd.session"),
        PerOccurrence(
            "ussd",
            ("session_id",),
            status_field="initiator",
            charge_on_setting="ussd_charged_initiators",
        ),
    ),
    rule(
        "push",
        "3",
        "push messages (sold inside Moments)",
        out("push"),
        _per_message("push", frozenset({"submitted", DELIVERED})),
        free_unless_priced=True,
        product=Product.MOMENTS,
    ),
    *(
        rule(
            f"{ch}.active_users",
            "3",
            f"{ch} end users with a delivered message in the month",
            out(ch, status=DELIVERED),
            Distinct(f"{ch}.active_users"),
        )
        for ch in ACTIVE_USER_CHANNELS
    ),
    rule(
        "whatsapp",
        "3",
        "templates delivered outside the 24 h customer-support window",
        (inb("whatsapp"), out("whatsapp")),
        OutsideWindow(
            "whatsapp",
            "whatsapp_csw_hours",
            frozenset({"template"}),
            violation_kinds=frozenset({"free_form"}),
        ),
        when=lambda s: s.whatsapp_model == "template",
    ),
    rule(
        "whatsapp.conversation",
        "3a",
        "WhatsApp conversations opened, by category",
        (inb("whatsapp"), out("whatsapp")),
        WhatsAppConversations("whatsapp.conversation"),
        when=lambda s: s.whatsapp_model == "conversation",
    ),
    rule(
        "whatsapp.mau",
        "3",
        "WhatsApp users who received a template or free-form message",
        out("whatsapp", status=DELIVERED, kind=frozenset({"template", "free_form"})),
        Distinct("whatsapp.mau"),
    ),
    rule("zalo", "3", "Zalo ZNS messages received", out("zalo"), _per_message("zalo", DELIVERED)),
    rule(
        "viber_bot",
        "3",
        "Viber Bot messages delivered outside the 24 h window",
        (inb("viber_bot"), out("viber_bot")),
        OutsideWindow("viber_bot", "viber_bot_csw_hours", None),
    ),
    rule(
        "kakao.notification",
        "3",
        "Kakao Notification Talk messages delivered",
        out("kakao_notification"),
        _per_message("kakao.notification", DELIVERED),
    ),
    rule(
        "kakao.friends",
        "3",
        "Kakao Friends Talk messages delivered",
        out("kakao_friends"),
        _per_message("kakao.friends", DELIVERED),
    ),
    rule(
        "kakao.consultation",
        "3",
        "Kakao consultation sessions initiated by end users",
        inb("kakao_consultation"),
        FixedSessions("kakao.consultation", "kakao_session_hours"),
    ),
    rule(
        "live_chat",
        "3",
        "live chat messages (billed inside SaaS)",
        (out("live_chat", status=SENT), inb("live_chat")),
        PerOccurrence("live_chat", ("message_id",), dims=()),
        free_unless_priced=True,
    ),
    rule(
        "social",
        "3",
        "social media messages (billed inside SaaS)",
        (out("social", status=SENT), inb("social")),
        PerOccurrence("social", ("message_id",), dims=()),
        free_unless_priced=True,
    ),
    rule(
        "signals",
        "3a",
        "Signals interactions on regular (unblocked) traffic",
        Match("message.outbound", {"signals": "passed", "status": SCREENED}),
        PerOccurrence("signals", ("message_id",), dims=()),
        product=Product.SIGNALS,
    ),
    # --- numbers ---------------------------------------------------------------------------
    rule(
        "numbers.setup",
        "3",
        "long numbers, toll-free numbers and short codes provisioned (setup fee)",
        (
            Match("number.provisioned", {"number_type": MESSAGING_NUMBERS}),
            Match("number.released"),
        ),
        Opened("numbers.setup", NUMBER, dims=("number_type", "country")),
        when=lambda s: not s.voice_number_setup_fee,
    ),
    rule(
        "numbers.setup",
        "3",
        "numbers of every type provisioned, voice numbers too (setup fee)",
        (Match("number.provisioned"), Match("number.released")),
        Opened("numbers.setup", NUMBER, dims=("number_type", "country")),
        when=lambda s: s.voice_number_setup_fee,
    ),
    rule(
        "numbers.recurring",
        "3",
        "numbers held on any day of the month",
        (
            Match(
                "number.provisioned",
                {"number_type": MESSAGING_NUMBERS},
            ),
            Match("number.released"),
        ),
        HeldInPeriod("numbers.recurring", NUMBER, dims=("number_type", "country")),
    ),
    # --- 4. voice --------------------------------------------------------------------------
    _voice(VoiceService.WEBRTC, "answered web and in-app call legs"),
    _voice(VoiceService.MESSAGE, "answered voice-message calls"),
    _voice(VoiceService.IVR, "answered IVR calls"),
    _voice(VoiceService.CLICK_TO_CALL, "answered click-to-call legs (each of the two)"),
    _voice(VoiceService.NUMBER_MASKING, "connected masked-call legs"),
    _voice(VoiceService.SIP_TRUNK, "answered SIP trunk calls"),
    _voice(VoiceService.FORWARD, "answered forwarded calls"),
    rule(
        "voice.amd",
        "4",
        "answering-machine detection on answered calls",
        Match("call.leg", {"amd": True, "disposition": "answered"}),
        PerOccurrence("voice.amd", ("call_id", "leg_id"), dims=("country",)),
    ),
    rule(
        "voice.byoc",
        "4",
        "BYOC minutes, inbound or outbound, over any service",
        Match("call.leg", {"byoc": True}),
        CallSeconds("voice.byoc", "byoc"),
        product=Product.CONVERSATIONS,
    ),
    rule(
        "voice.number",
        "4",
        "voice numbers leased on any day of the month (a missed-call number pays its own fee)",
        (
            Match("number.provisioned", {"number_type": "voice", "missed_call": False}),
            Match("number.released"),
        ),
        HeldInPeriod("voice.number", NUMBER, dims=("country",)),
        when=lambda s: not s.missed_call_pays_lease,
    ),
    rule(
        "voice.number",
        "4",
        "voice numbers leased on any day of the month, missed-call numbers too",
        (Match("number.provisioned", {"number_type": "voice"}), Match("number.released")),
        HeldInPeriod("voice.number", NUMBER, dims=("country",)),
        when=lambda s: s.missed_call_pays_lease,
    ),
    rule(
        "voice.missed_call",
        "4",
        "numbers configured for the missed-call service",
        (Match("number.provisioned", {"missed_call": True}), Match("number.released")),
        HeldInPeriod("voice.missed_call", NUMBER, dims=("country",)),
    ),
    # --- recording -------------------------------------------------------------------------
    # Whether a recording is made through Conversations is the contract's products when it
    # states them (the events' via_conversations flag is then only checked), else the flag.
    rule(
        "recording.licence",
        "4",
        "peak simultaneously recorded calls, capped at the limit",
        (Match("recording.started", {"via_conversations": False}), Match("recording.stopped")),
        PeakConcurrency("recording.licence", RECORDING, cap="recording_limit"),
        when=lambda s: s.products is None,
    ),
    rule(
        "recording.licence",
        "4",
        "peak simultaneously recorded calls, capped at the limit (no Conversations)",
        (Match("recording.started"), Match("recording.stopped")),
        PeakConcurrency("recording.licence", RECORDING, cap="recording_limit"),
        when=lambda s: s.subscribes(Product.CONVERSATIONS) is False,
    ),
    rule(
        "recording.storage_minutes",
        "4",
        "recorded minutes stored, per started day",
        (Match("recording.stored"), Match("recording.deleted"), Match("recording.started")),
        StorageDays("recording.storage_minutes", conversations=False),
        when=lambda s: s.subscribes(Product.CONVERSATIONS) is not True,
    ),
    rule(
        "recording.storage_gb",
        "4",
        "Conversations recordings stored, GB per started day",
        (Match("recording.stored"), Match("recording.deleted"), Match("recording.started")),
        StorageDays("recording.storage_gb", conversations=True),
        when=lambda s: s.subscribes(Product.CONVERSATIONS) is not False,
    ),
    rule(
        "recording.conversations_flag",
        "4",
        "recording events flagged via_conversations for a contract without Conversations",
        (
            Match("recording.started", {"via_conversations": True}),
            Match("recording.stored", {"via_conversations": True}),
        ),
        FlagConflict("recording.conversations_flag", "via_conversations", Product.CONVERSATIONS),
        when=lambda s: s.subscribes(Product.CONVERSATIONS) is False,
        free_unless_priced=True,
    ),
    # --- 3a. Things (IoT) -------------------------------------------------------------------
    rule(
        "things.activation",
        "3a",
        "SIMs activated",
        Match("sim.activated"),
        PerOccurrence("things.activation", ("sim_id",), dims=()),  # once per SIM supplied
        product=Product.THINGS,
    ),
    rule(
        "things.subscription",
        "3a",
        "SIMs active on any day of the month",
        (Match("sim.activated"), Match("sim.status_changed")),
        HeldInPeriod("things.subscription", SIM),
        product=Product.THINGS,
    ),
    rule(
        "things.data",
        "3a",
        "SIM data traffic in MB, by the SIM's location",
        Match("sim.data_usage"),
        Sum("things.data", "bytes", 10**6),
        product=Product.THINGS,
    ),
)

#: metric -> its rule(s): the evidence behind an invoice line.
RULES_BY_METRIC: Mapping[str, tuple[Rule, ...]] = {
    m: tuple(r for r in RULES if r.metric == m) for m in dict.fromkeys(r.metric for r in RULES)
}
#: metrics that are recorded but cost nothing unless a price plan prices them.
FREE_UNLESS_PRICED = frozenset(r.metric for r in RULES if r.free_unless_priced) | {
    "conversations.licence_violation",
    "conversations.maa.initial",
}


def run_rules(ordered: Sequence[Fact], sink: Sink, rules: Sequence[Rule] = RULES) -> None:
    """Apply every enabled rule to the facts it selects (kept in processing order).

    Traffic blocked by Signals is neither charged nor counted anywhere.
    """
    by_type: dict[str, list[Fact]] = defaultdict(list)
    for f in ordered:
        if f.attrs.get("signals") != "blocked":
            by_type[f.type].append(f)
    for r in rules:
        if not r.when(sink.settings):
            continue
        if len(r.select) == 1:
            selected = [f for f in by_type[r.select[0].type] if r.select[0](f)]
        else:
            selected = [f for f in _merge(by_type, r.select) if any(m(f) for m in r.select)]
        if selected:
            r.strategy.apply(selected, sink)


def _merge(by_type: Mapping[str, list[Fact]], matches: Sequence[Match]) -> list[Fact]:
    types = dict.fromkeys(m.type for m in matches)
    merged = [f for t in types for f in by_type.get(t, ())]
    if len(types) > 1:
        merged.sort(key=fact_order)
    return merged
