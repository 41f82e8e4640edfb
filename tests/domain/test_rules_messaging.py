"""Section 3 (and 3a RCS, Signals) of the rulebook: per-message channels, lookups, USSD,
active-user channels and the usage that is recorded but free unless priced."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.domain.events import UssdInitiator
from billing.domain.rules import FREE_UNLESS_PRICED, RULES_BY_METRIC
from tests.factories import at, lookup, mo, mt, totals, usage, ussd

FR = (("country", "FR"),)

# --- SMS / MMS / RCS ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "parts", "expected"),
    [
        pytest.param("sms", 1, 1, id="sms-1-part"),
        pytest.param("sms", 3, 3, id="sms-3-parts"),
        pytest.param("mms", 1, 1, id="mms-1-part"),
        pytest.param("mms", 2, 2, id="mms-2-parts"),
        pytest.param("rcs", 1, 1, id="rcs"),
    ],
)
def test_mt_submitted_is_charged_by_parts(channel: str, parts: int, expected: int) -> None:
    events = [mt(at(2), "m1", "submitted", channel=channel, parts=parts, country="FR")]
    assert usage(events).figures() == {(f"{channel}.mt", FR): expected}


@pytest.mark.parametrize("channel", ["sms", "mms", "rcs"])
def test_mt_rejected_at_validation_is_not_charged(channel: str) -> None:
    assert totals([mt(at(2), "m1", "rejected", channel=channel, parts=3)]) == {}


@pytest.mark.parametrize("report", ["delivered", "undelivered"])
@pytest.mark.parametrize(("channel", "parts"), [("sms", 3), ("mms", 2), ("rcs", 1)])
def test_delivery_report_after_submit_adds_nothing(channel: str, parts: int, report: str) -> None:
    events = [
        mt(at(2, 10), "m1", "submitted", channel=channel, parts=parts),
        mt(at(2, 10, 1), "m1", report, channel=channel, parts=parts),
    ]
    assert totals(events) == {f"{channel}.mt": parts}


@pytest.mark.parametrize("channel", ["sms", "mms", "rcs"])
def test_delivery_report_without_a_submit_is_not_charged(channel: str) -> None:
    assert totals([mt(at(2), "m1", "delivered", channel=channel)]) == {}


def test_delivery_report_of_a_message_submitted_last_month_adds_nothing() -> None:
    events = [
        mt(at(30, 23, 59, month=9), "m1", "submitted", parts=2),
        mt(at(1, 0, 1), "m1", "delivered", parts=2),
    ]
    assert totals(events) == {}


def test_different_messages_to_one_user_are_each_charged() -> None:
    events = [mt(at(2), "m1", parts=2), mt(at(2), "m2"), mt(at(2), "m3", end_user="+4912345")]
    assert totals(events) == {"sms.mt": 4}


@pytest.mark.parametrize(
    ("channel", "parts", "expected"),
    [
        pytest.param("sms", 1, 1, id="sms-1-part"),
        pytest.param("sms", 3, 3, id="sms-3-parts"),
        pytest.param("mms", 2, 2, id="mms-2-parts"),
        pytest.param("rcs", 1, 1, id="rcs"),
    ],
)
def test_mo_accepted_is_charged(channel: str, parts: int, expected: int) -> None:
    events = [mo(at(2), "i1", channel=channel, parts=parts, country="FR")]
    assert usage(events).figures() == {(f"{channel}.mo", FR): expected}


@pytest.mark.parametrize("channel", ["sms", "mms", "rcs"])
def test_mo_rejected_is_not_charged(channel: str) -> None:
    assert totals([mo(at(2), "i1", channel=channel, status="rejected", parts=2)]) == {}


@pytest.mark.parametrize(
    ("build", "metric"),
    [
        pytest.param(lambda: mt(at(2), "m1", parts=3), "sms.mt", id="sms-mt"),
        pytest.param(lambda: mo(at(2), "i1", parts=3), "sms.mo", id="sms-mo"),
        pytest.param(lambda: mt(at(2), "m1", channel="mms", parts=3), "mms.mt", id="mms-mt"),
        pytest.param(lambda: mo(at(2), "i1", channel="mms", parts=3), "mms.mo", id="mms-mo"),
    ],
)
def test_counting_messages_instead_of_parts(build, metric: str) -> None:  # type: ignore[no-untyped-def]
    assert totals([build()]) == {metric: 3}
    assert totals([build()], sms_count_parts=False) == {metric: 1}


def test_sms_priced_by_destination_country_and_network() -> None:
    events = [
        mt(at(2), "m1", country="FR", network="20801", parts=2),
        mt(at(2), "m2", country="FR", network="20810"),
        mt(at(2), "m3", country="FR"),
        mt(at(2), "m4", country="DE", network="26201"),
    ]
    assert usage(events).figures() == {
        ("sms.mt", (("country", "DE"), ("network", "26201"))): 1,
        ("sms.mt", (("country", "FR"),)): 1,
        ("sms.mt", (("country", "FR"), ("network", "20801"))): 2,
        ("sms.mt", (("country", "FR"), ("network", "20810"))): 1,
    }


def test_resubmitted_message_with_a_new_event_id_is_charged_once() -> None:
    events = [mt(at(2), "m1", parts=2, event_id="a"), mt(at(2, 0, 5), "m1", parts=2, event_id="b")]
    assert usage(events).figures() == {("sms.mt", ()): 2}
    assert usage(events).evidence(("sms.mt", ())) == 1


# --- email, email validation, number lookup ----------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "charged", "suppressed"),
    [
        pytest.param(["submitted"], 1, 0, id="submitted"),
        pytest.param(["submitted", "delivered"], 1, 0, id="submitted-delivered"),
        pytest.param(["submitted", "bounced"], 1, 0, id="invalid-address-first-submission"),
        pytest.param(["suppressed"], 1, 1, id="suppressed-not-sent-still-charged"),
        pytest.param(["rejected"], 0, 0, id="rejected-by-validation"),
        pytest.param(["bounced"], 0, 0, id="bounce-report-alone"),
    ],
)
def test_email(statuses: list[str], charged: int, suppressed: int) -> None:
    events = [
        mt(at(2, 9, i), "e1", status, channel="email", end_user="jane@example.com")
        for i, status in enumerate(statuses)
    ]
    result = totals(events)
    assert result.get("email", 0) == charged
    assert result.get("email.suppressed", 0) == suppressed


def test_suppressed_address_is_charged_on_every_later_email() -> None:
    events = [
        mt(at(2), "e1", "submitted", channel="email", end_user="gone@example.com"),
        mt(at(2, 0, 1), "e1", "bounced", channel="email", end_user="gone@example.com"),
        mt(at(9), "e2", "suppressed", channel="email", end_user="gone@example.com"),
        mt(at(9, 1), "e3", "suppressed", channel="email", end_user="gone@example.com"),
    ]
    assert totals(events) == {"email": 3, "email.suppressed": 2}
    assert "email.suppressed" in FREE_UNLESS_PRICED  # already inside ``email``


@pytest.mark.parametrize("result", ["YES", "NO", "UNKNOWN", None])
def test_email_validation_is_charged_whatever_the_result(result: str | None) -> None:
    extra = {} if result is None else {"result": result}
    events = [lookup(at(2), "r1", "email_validation", end_user="jane@example.com", **extra)]
    assert totals(events) == {"email_validation": 1}


def test_email_validation_rejected_before_submission_is_not_charged() -> None:
    assert totals([lookup(at(2), "r1", "email_validation", "rejected")]) == {}


@pytest.mark.parametrize(
    ("status", "charged"),
    [pytest.param("submitted", 1, id="submitted"), pytest.param("rejected", 0, id="rejected")],
)
def test_number_lookup(status: str, charged: int) -> None:
    figures = usage([lookup(at(2), "r1", "number_lookup", status, country="FR")]).figures()
    assert figures.get(("number_lookup", FR), 0) == charged


def test_number_lookups_are_counted_per_request() -> None:
    events = [lookup(at(2), "r1"), lookup(at(2), "r2"), lookup(at(2), "r2", event_id="again")]
    assert totals(events) == {"number_lookup": 2}


# --- Viber (message model), Zalo, Kakao notification / friends ------------------------------


@pytest.mark.parametrize(
    ("channel", "metric"),
    [
        ("viber", "viber"),
        ("zalo", "zalo"),
        ("kakao_notification", "kakao.notification"),
        ("kakao_friends", "kakao.friends"),
    ],
)
@pytest.mark.parametrize(
    ("statuses", "charged"),
    [
        pytest.param(["delivered"], 1, id="delivered"),
        pytest.param(["submitted", "delivered"], 1, id="submitted-then-delivered"),
        pytest.param(["delivered", "delivered"], 1, id="delivered-reported-twice"),
        pytest.param(["submitted"], 0, id="submitted-only"),
        pytest.param(["submitted", "undelivered"], 0, id="undelivered"),
        pytest.param(["rejected"], 0, id="rejected"),
    ],
)
def test_charged_when_delivered(
    channel: str, metric: str, statuses: list[str], charged: int
) -> None:
    events = [mt(at(2, 9, i), "m1", s, channel=channel) for i, s in enumerate(statuses)]
    assert totals(events).get(metric, 0) == charged


def test_viber_mmc_model_counts_active_senders_and_delivered_messages_per_sender() -> None:
    events = [
        mt(at(2), "m1", "delivered", channel="viber", sender_id="S1", country="FR"),
        mt(at(2), "m2", "delivered", channel="viber", sender_id="S1", country="FR"),
        mt(at(2), "m3", "delivered", channel="viber", sender_id="S2", end_user="+4900"),
        mt(at(2), "m4", "undelivered", channel="viber", sender_id="S3"),
    ]
    assert usage(events, viber_model="mmc").figures() == {
        ("viber", (("country", "FR"), ("sender_id", "S1"))): 2,
        ("viber", (("sender_id", "S2"),)): 1,
        ("viber.mmc", ()): 2,
    }
    assert "viber.mmc" not in totals(events)  # only under the mmc model


# --- USSD --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("initiator", "charged"),
    [
        pytest.param("account", 1, id="account"),
        pytest.param("third_party", 1, id="third-party"),
        pytest.param("end_user", 0, id="end-user"),
    ],
)
def test_ussd_sessions_by_initiator(initiator: str, charged: int) -> None:
    assert totals([ussd(at(2), "u1", initiator, country="ID")]).get("ussd", 0) == charged


def test_ussd_end_user_sessions_charged_when_the_contract_says_so() -> None:
    events = [ussd(at(2), "u1", "end_user"), ussd(at(2), "u2", "account")]
    assert totals(events, ussd_charged_initiators=frozenset(UssdInitiator)) == {"ussd": 2}
    only_end_user = frozenset({UssdInitiator.END_USER})
    assert totals(events, ussd_charged_initiators=only_end_user) == {"ussd": 1}


def test_ussd_session_reported_twice_is_one_session() -> None:
    events = [ussd(at(2), "u1"), ussd(at(2, 0, 1), "u1"), ussd(at(2), "u2", end_user="+6281")]
    assert usage(events).figures() == {("ussd", ()): 2}


# --- active-user channels ------------------------------------------------------------------

ACTIVE_USER_CHANNELS = ["messenger", "telegram", "google_bm", "apple_bc"]


@pytest.mark.parametrize("channel", ACTIVE_USER_CHANNELS)
def test_active_users_are_distinct_per_month(channel: str) -> None:
    events = [
        mt(at(2), "m1", "delivered", channel=channel, end_user="u-1"),
        mt(at(9), "m2", "delivered", channel=channel, end_user="u-1"),
        mt(at(31, 23, 59), "m3", "delivered", channel=channel, end_user="u-2"),
        mt(at(3), "m4", "undelivered", channel=channel, end_user="u-3"),
        mt(at(3), "m5", "submitted", channel=channel, end_user="u-4"),
        mt(at(30, month=9), "m6", "delivered", channel=channel, end_user="u-5"),
        mt(at(1, month=11), "m7", "delivered", channel=channel, end_user="u-6"),
    ]
    assert usage(events).figures() == {(f"{channel}.active_users", ()): 2}
    assert usage(events).evidence((f"{channel}.active_users", ())) == 2


@pytest.mark.parametrize("channel", ACTIVE_USER_CHANNELS)
def test_user_without_a_delivered_message_is_not_active(channel: str) -> None:
    events = [
        mt(at(2), "m1", "undelivered", channel=channel, end_user="u-1"),
        mo(at(2), "i1", channel=channel, end_user="u-1"),
    ]
    assert totals(events) == {}


def test_active_users_are_counted_per_channel() -> None:
    events = [
        mt(at(2), "m1", "delivered", channel="messenger", end_user="u-1"),
        mt(at(2), "m2", "delivered", channel="telegram", end_user="u-1"),
    ]
    assert totals(events) == {"messenger.active_users": 1, "telegram.active_users": 1}


# --- recorded, free unless priced --------------------------------------------------------


@pytest.mark.parametrize("metric", ["push", "live_chat", "social"])
def test_saas_channels_are_recorded_but_free_unless_priced(metric: str) -> None:
    assert metric in FREE_UNLESS_PRICED
    assert all(r.free_unless_priced for r in RULES_BY_METRIC[metric])


@pytest.mark.parametrize(
    ("statuses", "recorded"),
    [
        pytest.param(["submitted"], 1, id="submitted"),
        pytest.param(["submitted", "delivered"], 1, id="submitted-delivered"),
        pytest.param(["rejected"], 0, id="rejected"),
    ],
)
def test_push_messages_are_recorded(statuses: list[str], recorded: int) -> None:
    events = [mt(at(2, 0, i), "p1", s, channel="push") for i, s in enumerate(statuses)]
    assert totals(events).get("push", 0) == recorded


@pytest.mark.parametrize("channel", ["live_chat", "social"])
def test_live_chat_and_social_messages_are_recorded_both_ways(channel: str) -> None:
    events = [
        mo(at(2), "i1", channel=channel),
        mt(at(2, 0, 1), "o1", "submitted", channel=channel),
        mt(at(2, 0, 2), "o1", "delivered", channel=channel),
        mo(at(2), "i2", channel=channel, status="rejected"),
    ]
    assert totals(events) == {channel: 2}


def test_free_unless_priced_metrics_are_real_metrics() -> None:
    derived = {"conversations.licence_violation", "conversations.maa.initial"}
    assert FREE_UNLESS_PRICED - derived <= set(RULES_BY_METRIC)


# --- Signals -------------------------------------------------------------------------------


def test_signals_interactions_are_the_unblocked_screened_messages() -> None:
    events = [
        *(mt(at(2), f"ok{i}", signals="passed", end_user=f"+3360000{i}") for i in range(5)),
        *(mt(at(2), f"bad{i}", signals="blocked", end_user=f"+2250000{i}") for i in range(2)),
        mt(at(2), "unscreened"),
    ]
    assert totals(events) == {"signals": 5, "sms.mt": 6}


def test_signals_counts_a_message_once_across_its_status_reports() -> None:
    events = [
        mt(at(2), "m1", "submitted", signals="passed"),
        mt(at(2, 0, 1), "m1", "delivered", signals="passed"),
    ]
    assert totals(events) == {"signals": 1, "sms.mt": 1}


@pytest.mark.parametrize(
    "channel", ["sms", "mms", "rcs", "viber", "zalo", "email", "kakao_notification", "push"]
)
def test_blocked_traffic_is_neither_charged_nor_counted(channel: str) -> None:
    events = [
        mt(
            at(2),
            "m1",
            "submitted",
            channel=channel,
            signals="blocked",
            conversation_id="t1",
            via="flow",
            person_id="p1",
        ),
        mt(
            at(2, 0, 1),
            "m1",
            "delivered",
            channel=channel,
            signals="blocked",
            conversation_id="t1",
            via="flow",
            person_id="p1",
        ),
    ]
    assert totals(events) == {}


@pytest.mark.parametrize("channel", ["whatsapp", "messenger", "telegram"])
def test_blocked_traffic_does_not_count_in_distinct_metrics(channel: str) -> None:
    blocked = [
        mt(
            at(2),
            "m1",
            "delivered",
            channel=channel,
            kind="template",
            signals="blocked",
            conversation_id="t1",
            via="flow",
            person_id="p1",
        ),
    ]
    assert totals(blocked) == {}
    passed = [
        mt(
            at(2),
            "m1",
            "delivered",
            channel=channel,
            kind="template",
            signals="passed",
            conversation_id="t1",
            via="flow",
            person_id="p1",
        ),
    ]
    assert totals(passed)["signals"] == Decimal(1)
    assert totals(passed)["conversations.mac"] == Decimal(1)
    assert totals(passed)["moments.mep"] == Decimal(1)


def test_blocked_inbound_is_not_counted() -> None:
    assert totals([mo(at(2), "i1", signals="blocked", parts=2)]) == {}
