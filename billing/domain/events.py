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

import json
import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

# --- bounds: plausible maxima of every number a producer sends -----------------------------

MAX_SECONDS = 86_400  # one call leg or one recording: at most 24 h
MAX_PARTS = 255  # concatenated SMS: the UDH part counter is one byte
MAX_RECORDING_BYTES = 10**12  # one stored recording: 1 TB
MAX_SIM_BYTES = 10**12  # one SIM data-usage report: 1 TB

#: the account id: a letter or digit, then letters, digits, ``-``, ``_``, ``.``; no ``..``;
#: at most 64 characters. Never ``#`` or ``/``, the separators of storage keys.
ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ACCOUNT_ID_MAX = 64
_ACCOUNT_ID = re.compile(ACCOUNT_ID_PATTERN)


def validate_account_id(value: str) -> str:
    """The account id if it is one; ``ValueError`` with the reason otherwise."""
    if not isinstance(value, str) or not value:
        raise ValueError("an account id is a non-empty string")
    if len(value) > ACCOUNT_ID_MAX:
        raise ValueError(f"an account id has at most {ACCOUNT_ID_MAX} characters")
    if not _ACCOUNT_ID.match(value) or ".." in value:
        raise ValueError(
            "an account id starts with a letter or digit, then letters, digits, '-', '_' or"
            " '.', without '..'"
        )
    return value


_DECIMAL_TEXT = re.compile(r"^-?[0-9]{1,12}(\.[0-9]{1,12})?$")


def _seconds(value: Any) -> Any:
    """Strict seconds: a JSON number or a plain decimal string (``"93.4"``), never a
    boolean, an exponent, ``NaN`` or padding."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, str) and not _DECIMAL_TEXT.match(value):
        raise ValueError("must be a decimal number of seconds like 93.4")
    return value


Identifier = Annotated[str, Field(min_length=1, max_length=256)]
AccountId = Annotated[
    str,
    Field(min_length=1, max_length=ACCOUNT_ID_MAX, pattern=ACCOUNT_ID_PATTERN),
    AfterValidator(validate_account_id),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": ACCOUNT_ID_MAX,
            "pattern": r"^(?!.*\.\.)" + ACCOUNT_ID_PATTERN[1:],
        }
    ),
]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
Seconds = Annotated[
    Decimal,
    BeforeValidator(_seconds),
    Field(ge=0, le=MAX_SECONDS, max_digits=12, decimal_places=3),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
                {"type": "string", "pattern": _DECIMAL_TEXT.pattern},
            ],
            "description": f"seconds, at most {MAX_SECONDS} (exact: a decimal string)",
        }
    ),
]


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
    parts: StrictInt = Field(
        1, ge=1, le=MAX_PARTS, description="message parts of a concatenated SMS"
    )
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
    parts: StrictInt = Field(1, ge=1, le=MAX_PARTS)
    country: CountryCode | None = None
    network: Annotated[str, Field(max_length=32)] | None = None
    via: Via = Via.API
    person_id: Identifier | None = None
    conversation_id: Identifier | None = None
    sender_id: Identifier | None = None
    bot_id: Identifier | None = Field(None, description="Answers bot the message was sent to")
    bot_timeout_minutes: StrictInt | None = Field(
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
    amd: StrictBool = Field(False, description="answering-machine detection requested")
    byoc: StrictBool = Field(False, description="carried over the account's own carrier")
    video: StrictBool = False

    @model_validator(mode="after")
    def _duration_only_when_answered(self) -> CallLeg:
        if self.disposition is not Disposition.ANSWERED and self.answered_seconds != 0:
            raise ValueError("answered_seconds must be 0 when the call was not answered")
        return self


class RecordingStarted(Payload):
    recording_id: Identifier
    call_id: Identifier
    via_conversations: StrictBool = False


class RecordingStopped(Payload):
    recording_id: Identifier
    call_id: Identifier


class RecordingStored(Payload):
    recording_id: Identifier
    size_bytes: StrictInt = Field(ge=0, le=MAX_RECORDING_BYTES)
    duration_seconds: Seconds
    via_conversations: StrictBool = False
    video: StrictBool = False


class RecordingDeleted(Payload):
    recording_id: Identifier


# --- numbers, SaaS seats, IoT ------------------------------------------------------------


class NumberProvisioned(Payload):
    number: Identifier
    number_type: NumberType
    country: CountryCode | None = None
    missed_call: StrictBool = Field(False, description="configured for the missed-call service")


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
    bytes: StrictInt = Field(ge=0, le=MAX_SIM_BYTES)
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


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _DuplicateKey(dup)
    return doc


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def check_json(raw: str | bytes) -> Any:
    """Decode a JSON document, refusing a key repeated in any object (``ValidationError``
    of type ``duplicate_key``). A document nested too deep raises ``RecursionError``."""
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as dup:
        error = PydanticCustomError(
            "duplicate_key",
            "duplicate key {key!r}: a key appears once per object",
            {"key": dup.key},
        )
        details: list[InitErrorDetails] = [{"type": error, "loc": (), "input": dup.key}]
        raise ValidationError.from_exception_data("UsageEvent", details) from None
    except ValueError as err:
        error = PydanticCustomError("json_invalid", "invalid JSON: {msg}", {"msg": str(err)})
        details = [{"type": error, "loc": (), "input": ""}]
        raise ValidationError.from_exception_data("UsageEvent", details) from None


def parse_event(raw: str | bytes) -> Envelope:
    """Validate one CloudEvent JSON document. Raises ``pydantic.ValidationError``
    (duplicate keys included)."""
    check_json(raw)
    return _ADAPTER.validate_json(raw)


def parse_event_obj(obj: Any) -> Envelope:
    """Validate an already-decoded CloudEvent (a dict)."""
    return _ADAPTER.validate_python(obj)


def event_adapter() -> TypeAdapter[Envelope]:
    return _ADAPTER
