"""Per-contract settings: every Decision of the rulebook, with the rulebook's default.

The Service Description says "unless otherwise agreed between the parties" throughout, so
each place where the rulebook had to decide is a field here. A price plan carries one
``ContractSettings``; an account without overrides gets exactly the rulebook.
"""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from billing.domain.events import UssdInitiator, VoiceService


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


class ContractSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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


DEFAULT_SETTINGS = ContractSettings()
