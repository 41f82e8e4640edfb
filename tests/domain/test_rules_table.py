"""The rules table against the rulebook: every key of its tables has a rule, every rule is
a rulebook key, and every Decision is a setting whose default is the rulebook's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from billing.domain.events import UssdInitiator
from billing.domain.rules import FREE_UNLESS_PRICED, RULES, RULES_BY_METRIC
from billing.domain.settings import DEFAULT_SETTINGS, ContractSettings, Increment
from tests.factories import at, mo, mt, totals

#: rulebook key (sections 2, 3, 3a, 4 and recording) -> the metrics that bill it.
RULEBOOK: dict[str, set[str]] = {
    # 2. SaaS packages
    "conversations.maa": {"conversations.maa", "conversations.maa.initial"},
    "conversations.mac": {"conversations.mac"},
    "moments.mep": {"moments.mep"},
    "answers.mas": {"answers.mas"},
    # 3. messaging
    "sms.mt": {"sms.mt"},
    "sms.mo": {"sms.mo"},
    "mms.mt": {"mms.mt"},
    "mms.mo": {"mms.mo"},
    "number_lookup": {"number_lookup"},
    "numbers.setup": {"numbers.setup"},
    "numbers.recurring": {"numbers.recurring"},
    "email": {"email", "email.suppressed"},
    "email_validation": {"email_validation"},
    "viber": {"viber"},
    "ussd": {"ussd"},
    "push": {"push"},
    "messenger": {"messenger.active_users"},
    "telegram": {"telegram.active_users"},
    "whatsapp": {"whatsapp", "whatsapp.mau"},
    "zalo": {"zalo"},
    "google_bm": {"google_bm.active_users"},
    "apple_bc": {"apple_bc.active_users"},
    "viber_bot": {"viber_bot"},
    "kakao.notification": {"kakao.notification"},
    "kakao.friends": {"kakao.friends"},
    "kakao.consultation": {"kakao.consultation"},
    "live_chat": {"live_chat"},
    "social": {"social"},
    # 3a. alternative models
    "whatsapp.conversation": {"whatsapp.conversation"},
    "viber.session": {"viber.session"},
    "viber.mmc": {"viber.mmc"},
    "rcs.mt": {"rcs.mt"},
    "rcs.mo": {"rcs.mo"},
    "things.*": {"things.activation", "things.subscription", "things.data"},
    "signals": {"signals"},
    # 4. voice and video
    "voice.webrtc": {"voice.webrtc"},
    "voice.message": {"voice.message", "voice.amd"},
    "voice.ivr": {"voice.ivr"},
    "voice.click_to_call": {"voice.click_to_call"},
    "voice.number_masking": {"voice.number_masking"},
    "voice.sip_trunk": {"voice.sip_trunk"},
    "voice.forward": {"voice.forward"},
    "voice.missed_call": {"voice.missed_call"},
    "voice.byoc": {"voice.byoc"},
    "voice.number": {"voice.number"},
    # recording
    "recording": {"recording.licence", "recording.storage_minutes", "recording.storage_gb"},
}

DERIVED = {
    "conversations.maa.initial",
    "conversations.licence_violation",
    "recording.conversations_flag",
}


@pytest.mark.parametrize("key", sorted(RULEBOOK))
def test_every_rulebook_key_has_its_rules(key: str) -> None:
    for metric in RULEBOOK[key] - DERIVED:
        assert metric in RULES_BY_METRIC, f"{key}: no rule bills {metric}"


def test_every_rule_bills_a_rulebook_key() -> None:
    billed = set().union(*RULEBOOK.values()) | DERIVED
    assert set(RULES_BY_METRIC) <= billed


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.metric}-{r.section}")
def test_every_rule_names_its_section_and_its_selection(rule) -> None:  # type: ignore[no-untyped-def]
    assert rule.section in {"2", "3", "3a", "4"}
    assert rule.title
    assert rule.select
    assert rule.strategy.metric == rule.metric


def test_free_unless_priced_rows_are_the_saas_channels_and_reports() -> None:
    assert {
        "push",
        "live_chat",
        "social",
        "email.suppressed",
        "conversations.licence_violation",
        "conversations.maa.initial",
        "recording.conversations_flag",
    } == FREE_UNLESS_PRICED


@pytest.mark.parametrize(
    ("setting", "metric_on", "metric_off"),
    [
        ({"whatsapp_model": "template"}, "whatsapp", "whatsapp.conversation"),
        ({"whatsapp_model": "conversation"}, "whatsapp.conversation", "whatsapp"),
        ({"viber_model": "message"}, "viber", "viber.session"),
        ({"viber_model": "session"}, "viber.session", "viber.mmc"),
        ({"viber_model": "mmc"}, "viber.mmc", "viber.session"),
    ],
    ids=["wa-template", "wa-conversation", "viber-message", "viber-session", "viber-mmc"],
)
def test_one_pricing_model_per_channel(
    setting: dict[str, str], metric_on: str, metric_off: str
) -> None:
    settings = ContractSettings(**setting)
    enabled = {r.metric for r in RULES if r.when(settings)}
    assert metric_on in enabled
    assert metric_off not in enabled


# --- Decisions: settings with the rulebook's defaults -----------------------------------------


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("whatsapp_model", "template"),
        ("whatsapp_csw_hours", 24),
        ("whatsapp_conversation_hours", 24),
        ("viber_model", "message"),
        ("viber_session_hours", 24),
        ("viber_session_message_limit", 60),
        ("viber_bot_csw_hours", 24),
        ("answers_default_timeout_minutes", 24 * 60),
        ("kakao_session_hours", 24),
        ("ussd_charged_initiators", {UssdInitiator.ACCOUNT, UssdInitiator.THIRD_PARTY}),
        ("sms_count_parts", True),
        ("mep_counts_broadcast", False),
        ("voice_increment", Increment(first=60, next=60)),
        ("voice_increments", {}),
        ("byoc_increment", Increment(first=60, next=60)),
        ("recording_limit", 10),
        ("gigabyte_bytes", 10**9),
        ("named_user_service_start", None),
    ],
)
def test_decision_defaults_are_the_rulebook(name: str, default: object) -> None:
    assert getattr(DEFAULT_SETTINGS, name) == default


def test_unknown_setting_is_an_error() -> None:
    with pytest.raises(ValidationError) as info:
        ContractSettings(whatsapp_window_hours=12)  # type: ignore[call-arg]
    assert info.value.errors()[0]["loc"] == ("whatsapp_window_hours",)


def test_answers_timeout_is_at_most_24h() -> None:
    with pytest.raises(ValidationError):
        ContractSettings(answers_default_timeout_minutes=24 * 60 + 1)


def test_increment_str() -> None:
    assert str(Increment(first=30, next=6)) == "30/6"


# --- the look-back must cover every window ------------------------------------------------


@pytest.mark.parametrize(
    "window",
    [
        "whatsapp_csw_hours",
        "whatsapp_conversation_hours",
        "viber_session_hours",
        "viber_bot_csw_hours",
        "kakao_session_hours",
    ],
)
def test_window_longer_than_the_lookback_is_refused(window: str) -> None:
    with pytest.raises(ValidationError, match="lookback_hours"):
        ContractSettings(**{window: 72})
    assert getattr(ContractSettings(**{window: 72, "lookback_hours": 72}), window) == 72


def test_longer_window_with_a_longer_lookback_is_exact_across_the_month_start() -> None:
    opened = mo(at(1, month=10) - timedelta(hours=60), "i1", channel="whatsapp")
    template = mt(at(1, 1), "t1", "delivered", channel="whatsapp", kind="template")
    assert totals([opened, template], whatsapp_csw_hours=72, lookback_hours=72) == {
        "whatsapp.mau": 1
    }
    assert totals([opened, template]) == {"whatsapp": 1, "whatsapp.mau": 1}
