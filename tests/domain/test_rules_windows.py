"""Windows and sessions of sections 3 and 3a: WhatsApp (per template and conversation
based), Viber Bot, Viber session pricing, Kakao consultation sessions."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing.domain.events import Envelope
from tests.factories import at, mo, ms, mt, totals, usage

T = at(10, 12)  # a template's delivery time, mid-month
H = timedelta(hours=1)
USER = "+33611111111"


def template(
    when: datetime,
    message_id: str = "t1",
    status: str = "delivered",
    end_user: str = USER,
    **kw: Any,
) -> Envelope:
    return mt(
        when, message_id, status, channel="whatsapp", kind="template", end_user=end_user, **kw
    )


def free_form(
    when: datetime,
    message_id: str = "f1",
    status: str = "delivered",
    end_user: str = USER,
    **kw: Any,
) -> Envelope:
    return mt(
        when, message_id, status, channel="whatsapp", kind="free_form", end_user=end_user, **kw
    )


def inbound(
    when: datetime,
    message_id: str = "i1",
    end_user: str = USER,
    channel: str = "whatsapp",
    **kw: Any,
) -> Envelope:
    return mo(when, message_id, channel=channel, end_user=end_user, **kw)


# --- WhatsApp, per-template model (the default) --------------------------------------------


@pytest.mark.parametrize(
    ("inbound_before", "charged"),
    [
        pytest.param(None, 1, id="no-inbound"),
        pytest.param(H, 0, id="inbound-1h-before"),
        pytest.param(timedelta(0), 0, id="inbound-same-instant"),
        pytest.param(24 * H - ms(1), 0, id="inbound-24h-minus-1ms-before-inside"),
        pytest.param(24 * H, 1, id="inbound-exactly-24h-before-outside"),
        pytest.param(24 * H + ms(1), 1, id="inbound-24h-plus-1ms-before"),
        pytest.param(-ms(1), 1, id="inbound-1ms-after"),
    ],
)
def test_whatsapp_template_charged_outside_the_window(
    inbound_before: timedelta | None, charged: int
) -> None:
    events = [template(T, country="FR")]
    if inbound_before is not None:
        events.append(inbound(T - inbound_before))
    figures = usage(events).figures()
    assert figures.get(("whatsapp", (("country", "FR"),)), 0) == charged
    assert figures[("whatsapp.mau", ())] == 1


def test_whatsapp_window_is_from_the_last_inbound() -> None:
    events = [inbound(T - 47 * H, "i1"), inbound(T - 25 * H, "i2"), template(T)]
    assert totals(events)["whatsapp"] == 1
    events.append(inbound(T - 23 * H, "i3"))
    assert "whatsapp" not in totals(events)


def test_whatsapp_window_is_per_end_user() -> None:
    events = [inbound(T - H, end_user="+33622222222"), template(T)]
    assert totals(events)["whatsapp"] == 1


def test_whatsapp_window_opened_last_month_covers_early_templates() -> None:
    events = [inbound(at(30, 20, month=9)), template(at(1, 19)), template(at(1, 21), "t2")]
    assert totals(events) == {"whatsapp": 1, "whatsapp.mau": 1}


@pytest.mark.parametrize("status", ["submitted", "undelivered", "rejected"])
def test_whatsapp_template_not_delivered_is_not_charged(status: str) -> None:
    assert totals([template(T, status=status)]) == {}


def test_whatsapp_template_reported_delivered_twice_is_charged_once() -> None:
    events = [template(T, event_id="d1"), template(T + ms(5), event_id="d2")]
    assert totals(events) == {"whatsapp": 1, "whatsapp.mau": 1}


def test_whatsapp_template_is_judged_at_its_first_delivery() -> None:
    # delivered inside the window; a later report of the same delivery changes nothing
    events = [inbound(T - 23 * H), template(T, event_id="d1"), template(T + 2 * H, event_id="d2")]
    assert totals(events) == {"whatsapp.mau": 1}


def test_whatsapp_free_form_reported_twice_outside_the_window_is_one_violation() -> None:
    u = usage([free_form(T, event_id="d1"), free_form(T + H, event_id="d2")])
    assert u.note_counts == {"whatsapp.outside_window": 1}


def test_whatsapp_inbound_messages_are_not_charged() -> None:
    assert totals([inbound(T, "i1"), inbound(T + H, "i2")]) == {}


def test_whatsapp_free_form_inside_the_window_is_free() -> None:
    u = usage([inbound(T - H), free_form(T)])
    assert u.by_metric() == {"whatsapp.mau": 1}
    assert u.note_counts == {}


@pytest.mark.parametrize(
    "inbound_before",
    [pytest.param(None, id="never-opened"), pytest.param(24 * H, id="window-expired")],
)
def test_whatsapp_free_form_outside_the_window_is_a_violation_not_a_charge(
    inbound_before: timedelta | None,
) -> None:
    events = [free_form(T)]
    if inbound_before is not None:
        events.append(inbound(T - inbound_before))
    u = usage(events)
    assert u.by_metric() == {"whatsapp.mau": 1}
    assert u.note_counts == {"whatsapp.outside_window": 1}
    (note,) = u.notes()
    assert note.kind == "whatsapp.outside_window"
    assert "free_form" in note.detail


def test_whatsapp_mau_distinct_per_number_across_templates_and_free_form() -> None:
    events = [
        template(at(2), "t1", end_user="+331"),
        template(at(3), "t2", end_user="+331"),
        inbound(at(3, 1), "i1", end_user="+331"),
        free_form(at(3, 2), "f1", end_user="+331"),
        inbound(at(4), "i2", end_user="+332"),
        free_form(at(4, 1), "f2", end_user="+332"),
        inbound(at(5), "i3", end_user="+333"),  # wrote in, never answered
        template(at(5), "t3", "undelivered", end_user="+334"),
        mt(at(5), "s1", "delivered", channel="whatsapp", end_user="+335"),  # neither kind
        template(at(30, month=9), "t4", end_user="+336"),  # last month
    ]
    u = usage(events)
    assert u.figures()[("whatsapp.mau", ())] == 2
    assert u.distinct[("whatsapp.mau", ())] == {"+331", "+332"}


def test_whatsapp_template_and_mau_both_apply() -> None:
    events = [template(at(2), "t1"), template(at(20), "t2")]
    assert totals(events) == {"whatsapp": 2, "whatsapp.mau": 1}


# --- WhatsApp, conversation-based model (section 3a) ----------------------------------------


def conv(events: list[Envelope]) -> dict[str, Decimal]:
    figures = usage(events, whatsapp_model="conversation").figures()
    return {
        dict(dims)["category"]: qty
        for (metric, dims), qty in figures.items()
        if metric == "whatsapp.conversation"
    }


@pytest.mark.parametrize("category", ["marketing", "utility", "authentication"])
def test_conversation_opened_by_a_delivered_template_of_its_category(category: str) -> None:
    events = [template(T, category=category, country="BR")]
    figures = usage(events, whatsapp_model="conversation").figures()
    assert figures == {
        ("whatsapp.conversation", (("category", category), ("country", "BR"))): 1,
        ("whatsapp.mau", ()): 1,
    }


def test_conversation_model_does_not_charge_per_template() -> None:
    events = [template(T, category="utility")]
    assert "whatsapp" not in usage(events, whatsapp_model="conversation").by_metric()


def test_template_inside_the_support_window_still_opens_a_conversation() -> None:
    assert conv([inbound(T - H), template(T, category="utility")]) == {"utility": 1}


@pytest.mark.parametrize(
    ("second_after", "conversations"),
    [
        pytest.param(H, 1, id="same-category-1h-later"),
        pytest.param(24 * H - ms(1), 1, id="same-category-just-before-24h"),
        pytest.param(24 * H, 2, id="same-category-at-24h"),
    ],
)
def test_conversation_is_a_fixed_24h_session(second_after: timedelta, conversations: int) -> None:
    events = [
        template(T, "t1", category="marketing"),
        template(T + second_after, "t2", category="marketing"),
    ]
    assert conv(events) == {"marketing": conversations}


def test_marketing_template_inside_an_open_utility_conversation_opens_a_marketing_one() -> None:
    events = [template(T, "t1", category="utility"), template(T + H, "t2", category="marketing")]
    assert conv(events) == {"marketing": 1, "utility": 1}


def test_service_conversation_opened_by_free_form_inside_the_window() -> None:
    assert conv([inbound(T - H), free_form(T)]) == {"service": 1}


def test_no_service_conversation_while_another_conversation_is_open() -> None:
    events = [template(T, "t1", category="utility"), inbound(T + H), free_form(T + 2 * H)]
    assert conv(events) == {"utility": 1}


def test_service_conversation_after_the_other_conversation_expired() -> None:
    events = [
        template(T, "t1", category="utility"),
        inbound(T + 23 * H),
        free_form(T + 24 * H),  # utility over, support window open
    ]
    assert conv(events) == {"service": 1, "utility": 1}


def test_template_inside_a_service_conversation_opens_its_own_category() -> None:
    events = [inbound(T - H), free_form(T), template(T + H, "t1", category="utility")]
    assert conv(events) == {"service": 1, "utility": 1}


def test_free_form_messages_inside_one_service_conversation_are_one_conversation() -> None:
    events = [
        inbound(T - H),
        free_form(T, "f1"),
        free_form(T + 10 * H, "f2"),
        inbound(T + 20 * H, "i2"),
        free_form(T + 23 * H, "f3"),
    ]
    assert conv(events) == {"service": 1}


def test_conversation_model_free_form_outside_the_window_is_a_violation() -> None:
    u = usage([free_form(T)], whatsapp_model="conversation")
    assert u.by_metric() == {"whatsapp.mau": 1}
    assert u.note_counts == {"whatsapp.outside_window": 1}


def test_template_without_a_category_counts_as_marketing_and_is_reported() -> None:
    u = usage([template(T)], whatsapp_model="conversation")
    assert conv([template(T)]) == {"marketing": 1}
    assert u.note_counts == {"whatsapp.template_without_category": 1}


def test_conversations_are_per_end_user() -> None:
    events = [
        template(T, "t1", category="utility", end_user="+331"),
        template(T, "t2", category="utility", end_user="+332"),
    ]
    assert conv(events) == {"utility": 2}


def test_undelivered_template_opens_no_conversation() -> None:
    assert conv([template(T, status="undelivered", category="marketing")]) == {}


# --- Viber Bot ----------------------------------------------------------------------------


def bot_out(when: datetime, message_id: str, status: str = "delivered", **kw: Any) -> Envelope:
    return mt(when, message_id, status, channel="viber_bot", end_user=USER, **kw)


@pytest.mark.parametrize(
    ("inbound_before", "charged"),
    [
        pytest.param(None, 1, id="no-inbound-outside"),
        pytest.param(H, 0, id="inside"),
        pytest.param(24 * H - ms(1), 0, id="24h-minus-1ms-inside"),
        pytest.param(24 * H, 1, id="exactly-24h-outside"),
    ],
)
def test_viber_bot_charged_outside_the_window(
    inbound_before: timedelta | None, charged: int
) -> None:
    events = [bot_out(T, "o1", country="UA")]
    if inbound_before is not None:
        events.append(inbound(T - inbound_before, channel="viber_bot"))
    assert usage(events).figures().get(("viber_bot", (("country", "UA"),)), 0) == charged


def test_viber_bot_any_kind_is_charged_outside_and_inbound_never() -> None:
    events = [
        bot_out(T, "o1"),
        bot_out(T, "o2", kind="session"),
        bot_out(T, "o3", status="undelivered"),
        bot_out(T, "o4", status="submitted"),
        inbound(T + H, "i1", channel="viber_bot"),
    ]
    assert totals(events) == {"viber_bot": 2}


def test_viber_bot_message_is_judged_at_its_first_delivery() -> None:
    events = [
        inbound(T - 23 * H, channel="viber_bot"),
        bot_out(T, "o1"),
        bot_out(T + 2 * H, "o1"),
        bot_out(T + 2 * H, "o2"),
    ]
    assert totals(events) == {"viber_bot": 1}


def test_viber_bot_window_setting() -> None:
    events = [inbound(T - 30 * H, channel="viber_bot"), bot_out(T, "o1")]
    assert totals(events) == {"viber_bot": 1}
    assert totals(events, viber_bot_csw_hours=36) == {}


# --- Viber session pricing (section 3a) -------------------------------------------------------


def viber_out(
    when: datetime, message_id: str, kind: str = "session", status: str = "delivered"
) -> Envelope:
    return mt(when, message_id, status, channel="viber", kind=kind, end_user=USER)


def viber_in(when: datetime, message_id: str = "i1") -> Envelope:
    return inbound(when, message_id, channel="viber", country="UA")


def session_totals(events: list[Envelope], **settings: Any) -> dict[str, Decimal]:
    return totals(events, viber_model="session", **settings)


def test_viber_session_opened_by_the_end_user() -> None:
    figures = usage([viber_in(T)], viber_model="session").figures()
    assert figures == {("viber.session", (("country", "UA"),)): 1}


def test_viber_session_covers_60_session_messages_then_per_message() -> None:
    events = [viber_in(T), *(viber_out(T + ms(i + 1), f"s{i}") for i in range(60))]
    assert session_totals(events) == {"viber.session": 1}
    events.append(viber_out(T + H, "s60"))
    events.append(viber_out(T + H, "s61"))
    assert session_totals(events) == {"viber": 2, "viber.session": 1}


def test_viber_session_message_limit_setting() -> None:
    events = [viber_in(T), *(viber_out(T + ms(i + 1), f"s{i}") for i in range(5))]
    assert session_totals(events, viber_session_message_limit=3) == {
        "viber": 2,
        "viber.session": 1,
    }


def test_viber_other_message_types_inside_a_session_are_charged_per_message() -> None:
    events = [viber_in(T), viber_out(T + H, "m1", kind="standard"), viber_out(T + H, "s1")]
    assert session_totals(events) == {"viber": 1, "viber.session": 1}


def test_viber_session_messages_outside_a_session_are_charged_per_message() -> None:
    events = [viber_out(T, "s1")]
    assert session_totals(events) == {"viber": 1}


@pytest.mark.parametrize(
    ("after", "sessions", "per_message"),
    [
        pytest.param(24 * H - ms(1), 1, 0, id="just-before-24h-inside"),
        pytest.param(24 * H, 1, 1, id="at-24h-outside"),
    ],
)
def test_viber_session_is_a_fixed_24h_session(
    after: timedelta, sessions: int, per_message: int
) -> None:
    events = [viber_in(T), viber_in(T + 23 * H, "i2"), viber_out(T + after, "s1")]
    assert session_totals(events).get("viber.session") == sessions
    assert session_totals(events).get("viber", 0) == per_message


def test_viber_new_inbound_after_the_session_opens_a_new_session() -> None:
    events = [viber_in(T), viber_in(T + 24 * H, "i2"), viber_out(T + 25 * H, "s1")]
    assert session_totals(events) == {"viber.session": 2}


def test_viber_undelivered_messages_neither_charged_nor_use_the_quota() -> None:
    events = [
        viber_in(T),
        viber_out(T + H, "u1", status="undelivered"),
        viber_out(T + H, "u2", status="submitted"),
        viber_out(T + 2 * H, "s1"),
    ]
    assert session_totals(events, viber_session_message_limit=1) == {"viber.session": 1}


def test_viber_session_message_reported_twice_uses_the_quota_once() -> None:
    events = [
        viber_in(T),
        viber_out(T + H, "s1"),
        viber_out(T + H + ms(5), "s1"),
        viber_out(T + 2 * H, "s2"),
    ]
    assert session_totals(events, viber_session_message_limit=2) == {"viber.session": 1}


# --- Kakao consultation sessions -----------------------------------------------------------


def kakao_in(when: datetime, message_id: str, end_user: str = USER, **kw: Any) -> Envelope:
    return inbound(when, message_id, channel="kakao_consultation", end_user=end_user, **kw)


@pytest.mark.parametrize(
    ("second_after", "sessions"),
    [
        pytest.param(timedelta(hours=23, minutes=59), 1, id="0h-and-23h59-one-session"),
        pytest.param(24 * H - ms(1), 1, id="24h-minus-1ms-one-session"),
        pytest.param(24 * H, 2, id="0h-and-24h-two-sessions"),
    ],
)
def test_kakao_consultation_session_is_24h_from_its_first_message(
    second_after: timedelta, sessions: int
) -> None:
    events = [kakao_in(T, "k1"), kakao_in(T + second_after, "k2")]
    assert totals(events) == {"kakao.consultation": sessions}


def test_kakao_consultation_window_is_fixed_not_sliding() -> None:
    events = [kakao_in(T + i * 6 * H, f"k{i}") for i in range(5)]  # every 6 h for 24 h
    assert totals(events) == {"kakao.consultation": 2}


def test_kakao_consultation_sessions_per_end_user_and_only_user_initiated() -> None:
    events = [
        kakao_in(T, "k1", end_user="+821"),
        kakao_in(T, "k2", end_user="+822"),
        kakao_in(T, "k3", end_user="+823", status="rejected"),
        mt(T, "o1", "delivered", channel="kakao_consultation", end_user="+824"),
    ]
    assert totals(events) == {"kakao.consultation": 2}


def test_kakao_session_hours_setting() -> None:
    events = [kakao_in(T, "k1"), kakao_in(T + 13 * H, "k2")]
    assert totals(events, kakao_session_hours=12) == {"kakao.consultation": 2}


def test_kakao_session_started_last_month_is_not_charged_again() -> None:
    events = [kakao_in(at(30, 12, month=9), "k1"), kakao_in(at(1, 11), "k2")]
    assert totals(events) == {}
