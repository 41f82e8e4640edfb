"""The usage-event contract: CloudEvents 1.0 JSON envelopes with one typed payload per type.

Producers send one CloudEvent per occurrence. ``subject`` is the account, ``time`` is when
the occurrence happened (it decides the billing period), ``id`` is unique per ``source``
and is what makes a redelivered event harmless. Status transitions of one message are
separate events that share ``data.message_id``.

Every model forbids unknown payload fields so that a typo is an error, not a silent zero
on an invoice. The JSON Schemas in ``schemas/`` are generated from these models
(``python -m billing.domain.schema``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    create_model,
    model_validator,
)

Identifier = Annotated[str, Field(min_length=1, max_length=256)]
AccountId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
Seconds = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=3)]


class Channel(StrEnum):
    SMS = "sms"
    MMS = "mms"
    RCS = "rcs"
    EMAIL = "email"
    VIBER = "viber"
    VIBER_BOT = "viber_bot"
    WHATSAPP = "whatsapp"
    MESSENGER = "messenger"
    TELEGRAM = "telegram"
    ZALO = "zalo"
    GOOGLE_BM = "google_bm"
    APPLE_BC = "apple_bc"
    KAKAO_NOTIFICATION = "kakao_notification"
    KAKAO_FRIENDS = "kakao_friends"
    KAKAO_CONSULTATION = "kakao_consultation"
    PUSH = "push"
    LIVE_CHAT = "live_chat"
    SOCIAL = "social"


class OutboundStatus(StrEnum):
    SUBMITTED = "submitted"  # passed validation, handed to the operator / provider
    REJECTED = "rejected"  # failed validation: never charged
    DELIVERED = "delivered"  # delivery report: delivered to the end user
    UNDELIVERED = "undelivered"  # delivery report: not delivered
    SUPPRESSED = "suppressed"  # email to a suppressed address: not sent, still charged
    BOUNCED = "bounced"  # email: the address is invalid or does not exist


class InboundStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class MessageKind(StrEnum):
    STANDARD = "standard"
    TEMPLATE = "template"  # WhatsApp HSM
    FREE_FORM = "free_form"  # WhatsApp FFM
    SESSION = "session"  # Viber session-type message


class TemplateCategory(StrEnum):
    MARKETING = "marketing"
    UTILITY = "utility"
    AUTHENTICATION = "authentication"


class Via(StrEnum):
    API = "api"
    FLOW = "flow"  # Moments Flow
    BROADCAST = "broadcast"  # Moments Broadcast
    CONVERSATIONS = "conversations"
    BOT = "bot"  # Answers chatbot


class SignalsOutcome(StrEnum):
    PASSED = "passed"
    BLOCKED = "blocked"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class VoiceService(StrEnum):
    WEBRTC = "webrtc"
    MESSAGE = "message"
    IVR = "ivr"
    CLICK_TO_CALL = "click_to_call"
    NUMBER_MASKING = "number_masking"
    SIP_TRUNK = "sip_trunk"
    FORWARD = "forward"
    MISSED_CALL = "missed_call"


class Disposition(StrEnum):
    ANSWERED = "answered"  # by the end user or an answering machine
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    REJECTED = "rejected"


class NumberType(StrEnum):
    LONG = "long"
    TOLL_FREE = "toll_free"
    SHORT_CODE = "short_code"
    VOICE = "voice"


class UssdInitiator(StrEnum):
    ACCOUNT = "account"
    THIRD_PARTY = "third_party"
    END_USER = "end_user"


class LookupKind(StrEnum):
    NUMBER_LOOKUP = "number_lookup"
    EMAIL_VALIDATION = "email_validation"


class LookupStatus(StrEnum):
    SUBMITTED = "submitted"
    REJECTED = "rejected"


class SimStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


# --- messaging -------------------------------------------------------------------------


class MessageOutbound(Payload):
    """A status transition of an outbound message (MT, email, chat app message...)."""

    message_id: Identifier
    channel: Channel
    status: OutboundStatus
    end_user: Identifier = Field(description="MSISDN, email address or app user id")
    parts: int = Field(1, ge=1, le=255, description="message parts of a concatenated SMS")
    country: CountryCode | None = None
    network: Annotated[str, Field(max_length=32)] | None = None
    kind: MessageKind = MessageKind.STANDARD
    category: TemplateCategory | None = Field(
        None, description="WhatsApp template category (conversation-based pricing)"
    )
    via: Via = Via.API
    person_id: Identifier | None = Field(None, description="Moments person (MEP)")
    conversation_id: Identifier | None = Field(None, description="Conversations thread (MAC)")
    sender_id: Identifier | None = Field(None, description="Viber Service ID")
    bot_id: Identifier | None = Field(None, description="Answers bot that sent the message")
    signals: SignalsOutcome | None = Field(None, description="Signals fraud screening outcome")


class MessageInbound(Payload):
    """A message from an end user to the account (MO, WhatsApp inbound, bot input...)."""

    message_id: Identifier
    channel: Channel
    status: InboundStatus = InboundStatus.ACCEPTED
    end_user: Identifier
    parts: int = Field(1, ge=1, le=255)
    country: CountryCode | None = None
    network: Annotated[str, Field(max_length=32)] | None = None
    via: Via = Via.API
    person_id: Identifier | None = None
    conversation_id: Identifier | None = None
    sender_id: Identifier | None = None
    bot_id: Identifier | None = Field(None, description="Answers bot the message was sent to")
    bot_timeout_minutes: int | None = Field(
        None, ge=1, le=1440, description="the bot's inactivity timeout (at most 24 h)"
    )
    signals: SignalsOutcome | None = None


class BotSessionEnded(Payload):
    """An Answers session ended by completion or transfer to an agent."""

    bot_id: Identifier
    end_user: Identifier
    reason: Literal["completed", "transferred"]


class UssdSession(Payload):
    session_id: Identifier
    end_user: Identifier
    initiator: UssdInitiator
    country: CountryCode | None = None
    network: Annotated[str, Field(max_length=32)] | None = None


class Lookup(Payload):
    """A Number Lookup (HLR) or an email validation request."""

    request_id: Identifier
    kind: LookupKind
    status: LookupStatus
    end_user: Identifier = Field(description="the number or address looked up")
    result: Literal["YES", "NO", "UNKNOWN"] | None = None
    country: CountryCode | None = None


# --- voice -----------------------------------------------------------------------------


class CallLeg(Payload):
    """One leg of a call, reported once it has ended (a CDR)."""

    call_id: Identifier
    leg_id: Identifier
    service: VoiceService
    direction: Direction
    disposition: Disposition
    answered_seconds: Seconds = Field(
        description="answered (for masking: connected) duration; 0 unless answered"
    )
    end_user: Identifier
    country: CountryCode | None = None
    network: Annotated[str, Field(max_length=32)] | None = None
    amd: bool = Field(False, description="answering-machine detection requested")
    byoc: bool = Field(False, description="carried over the account's own carrier")
    video: bool = False

    @model_validator(mode="after")
    def _duration_only_when_answered(self) -> CallLeg:
        if self.disposition is not Disposition.ANSWERED and self.answered_seconds != 0:
            raise ValueError("answered_seconds must be 0 when the call was not answered")
        return self


class RecordingStarted(Payload):
    recording_id: Identifier
    call_id: Identifier
    via_conversations: bool = False


class RecordingStopped(Payload):
    recording_id: Identifier
    call_id: Identifier


class RecordingStored(Payload):
    recording_id: Identifier
    size_bytes: int = Field(ge=0)
    duration_seconds: Seconds
    via_conversations: bool = False
    video: bool = False


class RecordingDeleted(Payload):
    recording_id: Identifier


# --- numbers, SaaS seats, IoT ------------------------------------------------------------


class NumberProvisioned(Payload):
    number: Identifier
    number_type: NumberType
    country: CountryCode | None = None
    missed_call: bool = Field(False, description="configured for the missed-call service")


class NumberReleased(Payload):
    number: Identifier


class NamedUserProvisioned(Payload):
    user_id: Identifier
    role: Annotated[str, Field(max_length=32)] = "agent"


class NamedUserDeprovisioned(Payload):
    user_id: Identifier


class NamedUserSessionOpened(Payload):
    user_id: Identifier
    session_id: Identifier


class NamedUserSessionClosed(Payload):
    user_id: Identifier
    session_id: Identifier


class SimActivated(Payload):
    sim_id: Identifier


class SimStatusChanged(Payload):
    sim_id: Identifier
    status: SimStatus


class SimDataUsage(Payload):
    sim_id: Identifier
    bytes: int = Field(ge=0)
    country: CountryCode


# --- envelopes -------------------------------------------------------------------------

TYPE_PREFIX = "cpaas.usage."


class Envelope(BaseModel):
    """CloudEvents 1.0 attributes. Extension attributes are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: Literal["1.0"]
    id: Annotated[str, Field(min_length=1, max_length=128)]
    source: Annotated[str, Field(min_length=1, max_length=256)]
    subject: AccountId = Field(description="the account the usage belongs to")
    time: AwareDatetime = Field(description="when it happened; decides the billing period")
    datacontenttype: Literal["application/json"] | None = None
    dataschema: str | None = None


def _envelope(type_name: str, payload: type[Payload]) -> type[Envelope]:
    """One concrete envelope model per event type, discriminated by ``type``."""
    full = TYPE_PREFIX + type_name
    name = "".join(p.title() for p in re.split(r"[._]", type_name)) + "Event"
    return create_model(
        name,
        __base__=Envelope,
        __doc__=f"CloudEvent `{full}`: {payload.__doc__ or payload.__name__}",
        type=(Literal[full], ...),  # type: ignore[arg-type]
        data=(payload, ...),
    )


#: event type (without prefix and version) -> payload model. The single list of types.
PAYLOADS: dict[str, type[Payload]] = {
    "message.outbound.v1": MessageOutbound,
    "message.inbound.v1": MessageInbound,
    "bot.session_ended.v1": BotSessionEnded,
    "ussd.session.v1": UssdSession,
    "lookup.v1": Lookup,
    "call.leg.v1": CallLeg,
    "recording.started.v1": RecordingStarted,
    "recording.stopped.v1": RecordingStopped,
    "recording.stored.v1": RecordingStored,
    "recording.deleted.v1": RecordingDeleted,
    "number.provisioned.v1": NumberProvisioned,
    "number.released.v1": NumberReleased,
    "named_user.provisioned.v1": NamedUserProvisioned,
    "named_user.deprovisioned.v1": NamedUserDeprovisioned,
    "named_user.session_opened.v1": NamedUserSessionOpened,
    "named_user.session_closed.v1": NamedUserSessionClosed,
    "sim.activated.v1": SimActivated,
    "sim.status_changed.v1": SimStatusChanged,
    "sim.data_usage.v1": SimDataUsage,
}

ENVELOPES: dict[str, type[Envelope]] = {
    TYPE_PREFIX + name: _envelope(name, payload) for name, payload in PAYLOADS.items()
}

#: Any usage event: the union of every envelope model, discriminated by ``type``.
UsageEvent = Annotated[Union[tuple(ENVELOPES.values())], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007

_ADAPTER: TypeAdapter[Envelope] = TypeAdapter(UsageEvent)  # type: ignore[arg-type]


def parse_event(raw: str | bytes) -> Envelope:
    """Validate one CloudEvent JSON document. Raises ``pydantic.ValidationError``."""
    return _ADAPTER.validate_json(raw)


def parse_event_obj(obj: Any) -> Envelope:
    """Validate an already-decoded CloudEvent (a dict)."""
    return _ADAPTER.validate_python(obj)


def event_adapter() -> TypeAdapter[Envelope]:
    return _ADAPTER
