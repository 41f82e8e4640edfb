"""Per-contract settings: every Decision of the rulebook, with the rulebook's default.

The Service Description says "unless otherwise agreed between the parties" throughout, so
each place where the rulebook had to decide is a field here. A price plan carries one
``ContractSettings``; an account without overrides gets exactly the rulebook.
"""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from billing.domain.events import UssdInitiator, VoiceService
from billing.domain.periods import UTC_ZONE, check_zone


class Increment(BaseModel):
    """A voice charging scheme: first block, then next blocks, in seconds (60/60, 1/1, 30/6)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first: int = Field(60, ge=1, le=3600)
    next: int = Field(60, ge=1, le=3600)

    def billable_seconds(self, answered: Decimal) -> int:
        """Seconds charged for an answered duration: the first block, then whole next blocks."""
        if answered <= 0:
            return 0
        if answered <= self.first:
            return self.first
        return self.first + math.ceil((answered - self.first) / self.next) * self.next

    def __str__(self) -> str:
        return f"{self.first}/{self.next}"


class Product(StrEnum):
    """A product an account subscribes to (the channel pricing models are settings:
    ``whatsapp_model``, ``viber_model``)."""

    CONVERSATIONS = "conversations"  # Conversations (web UI and API); recording inside it
    MOMENTS = "moments"  # Flows, Broadcast, push
    ANSWERS = "answers"  # chatbots
    THINGS = "things"  # IoT connectivity (global SIMs)
    SIGNALS = "signals"  # fraud blocking


ProductSet = Annotated[
    frozenset[Product],
    PlainSerializer(lambda v: sorted(p.value for p in v), return_type=list[str], when_used="json"),
]


class ContractSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- products -------------------------------------------------------------------
    products: ProductSet | None = Field(
        None,
        description="the products the account subscribes to; a price plan states them in "
        "its top-level products term and they are copied here. None: not stated, and "
        "event flags (via_conversations) decide as before",
    )

    # --- calendar -------------------------------------------------------------------
    time_zone: str = Field(
        UTC_ZONE,
        min_length=1,
        max_length=64,
        description="the IANA time zone of the account's calendar: periods run from local "
        "midnight of the 1st, and local days (DST days included) count inside them. A "
        "change takes effect from a period that has not started in either zone",
    )

    # --- WhatsApp -----------------------------------------------------------------
    whatsapp_model: Literal["template", "conversation"] = Field(
        "template",
        description="per-template outside the CSW (EN/ID/KO copies) or conversation-based (FR)",
    )
    whatsapp_csw_hours: int = Field(24, ge=1, le=168)
    whatsapp_conversation_hours: int = Field(24, ge=1, le=168)

    # --- Viber ----------------------------------------------------------------------
    viber_model: Literal["message", "session", "mmc"] = "message"
    viber_session_hours: int = Field(24, ge=1, le=168)
    viber_session_message_limit: int = Field(60, ge=1)
    viber_bot_csw_hours: int = Field(24, ge=1, le=168)

    # --- sessions -------------------------------------------------------------------
    answers_default_timeout_minutes: int = Field(
        1440, ge=1, le=1440, description="Decision: 24 h when the bot does not say"
    )
    kakao_session_hours: int = Field(24, ge=1, le=168, description="Decision: 24 h")
    ussd_charged_initiators: frozenset[UssdInitiator] = Field(
        frozenset({UssdInitiator.ACCOUNT, UssdInitiator.THIRD_PARTY}),
        description="Decision: end-user-initiated sessions are not charged",
    )

    # --- messaging ------------------------------------------------------------------
    sms_count_parts: bool = Field(True, description="Decision: a 3-part SMS is 3 CE")
    mep_counts_broadcast: bool = Field(
        False, description="Decision: Broadcast-only recipients are not engaged persons"
    )

    # --- voice ----------------------------------------------------------------------
    voice_increment: Increment = Increment()
    voice_increments: dict[VoiceService, Increment] = Field(
        default_factory=dict, description="per-service overrides of voice_increment"
    )
    byoc_increment: Increment = Field(Increment(), description="BYOC is billed per minute")
    byoc_replaces_service_charge: bool = Field(
        False,
        description="the document lists BYOC minutes and each voice service as chargeable and "
        "exempts neither, so a BYOC leg pays both unless the contract says BYOC replaces it",
    )

    # --- numbers --------------------------------------------------------------------
    voice_number_setup_fee: bool = Field(
        False,
        description="the setup-fee row names long numbers, toll-free numbers and short "
        "codes only, so provisioning a voice number charges no numbers.setup unless the "
        "contract says so",
    )
    missed_call_pays_lease: bool = Field(
        False,
        description="a number configured for the missed-call service pays one monthly fee, "
        "voice.missed_call (the service's 'monthly fee per voice number'), and not also "
        "voice.number, unless the contract charges the lease as well",
    )

    # --- recording ------------------------------------------------------------------
    recording_limit: int = Field(10, ge=1, description="simultaneously recorded calls")
    gigabyte_bytes: int = Field(10**9, description="GB means 10^9 bytes unless agreed")

    # --- named users ----------------------------------------------------------------
    named_user_service_start: date | None = Field(
        None, description="start of Named User Pricing; its month is prorated by day"
    )

    # --- cross-period state ---------------------------------------------------------
    lookback_hours: int = Field(
        48,
        ge=24,
        le=24 * 31,
        description="how far before the period window and session state is rebuilt from",
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)

    @model_validator(mode="after")
    def _lookback_covers_every_window(self) -> ContractSettings:
        # a window longer than the look-back would lose the message that opened it
        longest = max(
            self.whatsapp_csw_hours,
            self.whatsapp_conversation_hours,
            self.viber_session_hours,
            self.viber_bot_csw_hours,
            self.kakao_session_hours,
        )
        if self.lookback_hours < longest:
            raise ValueError(
                f"lookback_hours ({self.lookback_hours}) must cover the longest window or "
                f"session ({longest} h)"
            )
        return self

    def increment_for(self, service: VoiceService) -> Increment:
        return self.voice_increments.get(service, self.voice_increment)

    def subscribes(self, product: Product) -> bool | None:
        """Whether the contract includes ``product``; ``None`` when it states no products."""
        return None if self.products is None else product in self.products

    def via_conversations(self, flag: object) -> bool:
        """Whether a recording is a Conversations recording: the contract's products when
        it states them, else the event's ``via_conversations`` flag."""
        stated = self.subscribes(Product.CONVERSATIONS)
        return bool(flag) if stated is None else stated


DEFAULT_SETTINGS = ContractSettings()
