"""Rating: table-driven cases for every pricing construct of a plan."""

# Decimal quantities are compared with int literals on purpose.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from billing.domain.invoice import InvoiceLine
from billing.domain.periods import Period
from billing.domain.rating import (
    RatingError,
    adjustment_lines,
    build_invoice,
    minor_unit,
    rate,
    round_money,
)
from billing.domain.usage import Dims, Usage
from tests.rating.helpers import one, plan, usage

D = Decimal
TIERS = [
    {"up_to": 1000, "unit_price": "0.05"},
    {"up_to": 5000, "unit_price": "0.04"},
    {"unit_price": "0.03"},
]


def amounts(u: Usage, **fields: Any) -> dict[tuple[str, str, str], str]:
    """(kind, metric, dims) -> amount of every line, commitment lines included."""
    r = rate(u, plan(**fields))
    return {(x.kind, x.metric, x.dims_text): str(x.amount) for x in r.all_lines()}


# --- tiers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "quantity", "amount"),
    [
        ("graduated", 1, "0.05"),
        ("graduated", 1000, "50.00"),
        ("graduated", 1001, "50.04"),
        ("graduated", 5000, "210.00"),
        ("graduated", 6000, "240.00"),
        ("volume", 1, "0.05"),
        ("volume", 1000, "50.00"),
        ("volume", 1001, "40.04"),
        ("volume", 5000, "200.00"),
        ("volume", 5001, "150.03"),
    ],
)
def test_tiers_graduated_and_volume(mode: str, quantity: int, amount: str) -> None:
    r = rate(one("email", quantity), plan(prices={"email": {"tiers": TIERS, "tier_mode": mode}}))
    (line,) = r.lines
    assert str(line.amount) == amount
    assert line.quantity == quantity
    assert line.price_row == "email[default]"
    assert line.price_note
    assert mode in line.price_note


def test_tiers_count_the_whole_volume_a_row_matches() -> None:
    u = usage(
        {
            ("sms.mt", (("country", "FR"), ("network", "orange"))): 800,
            ("sms.mt", (("country", "FR"), ("network", "sfr"))): 400,
            ("sms.mt", (("country", "DE"),)): 10,
        }
    )
    p = plan(
        prices={"sms.mt": [{"match": {"country": "FR"}, "tiers": TIERS}, {"unit_price": "0.07"}]}
    )
    lines = {x.dims_text: x for x in rate(u, p).lines}
    assert set(lines) == {"country=FR", "country=DE"}
    fr = lines["country=FR"]
    assert (fr.quantity, str(fr.amount), fr.evidence) == (1200, "58.00", 2)  # 1000x.05 + 200x.04
    assert fr.price_note == "graduated (units): 1000 x 0.05 + 200 x 0.04; 2 usage lines"
    assert str(lines["country=DE"].amount) == "0.70"


# --- dimensions -----------------------------------------------------------------------------

ROWS = [
    {"match": {"country": "FR", "network": "orange"}, "unit_price": "0.04"},
    {"match": {"country": "FR"}, "unit_price": "0.045"},
    {"match": {"network": "orange"}, "unit_price": "0.06"},
    {"unit_price": "0.09"},
]


@pytest.mark.parametrize(
    ("dims", "row", "amount"),
    [
        ({"country": "FR", "network": "orange"}, "sms.mt[country=FR,network=orange]", "4.00"),
        ({"country": "FR", "network": "sfr"}, "sms.mt[country=FR]", "4.50"),
        ({"country": "FR"}, "sms.mt[country=FR]", "4.50"),
        ({"country": "DE", "network": "orange"}, "sms.mt[network=orange]", "6.00"),
        ({"country": "DE"}, "sms.mt[default]", "9.00"),
        ({}, "sms.mt[default]", "9.00"),
    ],
)
def test_the_most_specific_row_wins(dims: dict[str, str], row: str, amount: str) -> None:
    (line,) = rate(one("sms.mt", 100, **dims), plan(prices={"sms.mt": ROWS})).lines
    assert (line.price_row, str(line.amount), line.dims) == (row, amount, dims)
    assert line.unit_price is not None
    assert line.rule_section == "3"
    assert line.description == "SMS parts submitted to the operator"


def test_equally_specific_rows_the_first_listed_wins() -> None:
    rows = [ROWS[2], ROWS[1]]  # network=orange before country=FR
    (line,) = rate(
        one("sms.mt", 1, country="FR", network="orange"), plan(prices={"sms.mt": rows})
    ).lines
    assert line.price_row == "sms.mt[network=orange]"


def test_usage_without_a_matching_row_or_price_is_an_error() -> None:
    u = usage(
        {
            ("sms.mt", (("country", "FR"),)): 5,
            ("sms.mt", (("country", "DE"),)): 5,
            ("whatsapp", (("country", "BR"),)): 2,
            ("push", ()): 7,  # free unless priced: no error
        }
    )
    p = plan(prices={"sms.mt": [{"match": {"country": "DE"}, "unit_price": "0.07"}]})
    with pytest.raises(RatingError) as err:
        rate(u, p)
    assert err.value.missing == (
        ("sms.mt", (("country", "FR"),)),
        ("whatsapp", (("country", "BR"),)),
    )
    assert "sms.mt [country=FR]" in str(err.value)
    assert "whatsapp [country=BR]" in str(err.value)
    assert "acme 2026-10" in str(err.value)


def test_free_unless_priced_metrics_are_shown_at_zero_or_priced() -> None:
    u = usage(
        {("push", ()): 1200, ("email.suppressed", ()): 3, ("conversations.maa.initial", ()): 2}
    )
    free = rate(u, plan())
    assert [(x.metric, x.quantity, x.amount, x.billable) for x in free.lines] == [
        ("email.suppressed", 3, 0, 0),
        ("push", 1200, 0, 0),
    ]
    priced = rate(u, plan(prices={"push": "0.001"}))
    assert {x.metric: str(x.amount) for x in priced.lines}["push"] == "1.20"


# --- voice ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "price", "amount"),
    [
        (60, "0.013", "0.01"),
        (90, "0.013", "0.02"),  # 1.5 min x 0.013 = 0.0195
        (3600, "0.013", "0.78"),
        (61, "0.0120", "0.01"),  # 1/1 increments: 61 s = 1.01666 min
        (6000, "0.0125", "1.25"),
        (30, "0.01", "0.01"),  # 0.005 -> half up
    ],
)
def test_voice_is_priced_per_minute_from_seconds(seconds: int, price: str, amount: str) -> None:
    (line,) = rate(
        one("voice.ivr", seconds, country="FR", direction="outbound"),
        plan(prices={"voice.ivr": price}),
    ).lines
    assert (str(line.amount), line.quantity, line.unit, line.unit_price) == (
        amount,
        seconds,
        "second",
        D(price),
    )


def test_voice_tiers_are_in_minutes() -> None:
    p = plan(
        prices={
            "voice.sip_trunk": {
                "tiers": [{"up_to": 100, "unit_price": "0.02"}, {"unit_price": "0.01"}]
            }
        }
    )
    (line,) = rate(one("voice.sip_trunk", 7200, direction="outbound"), p).lines
    assert str(line.amount) == "2.20"  # 100 min x 0.02 + 20 min x 0.01
    assert line.price_note == "graduated (minutes): 100 x 0.02 + 20 x 0.01"


# --- rounding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        (D("0.005"), 2, "0.01"),
        (D("0.0049999"), 2, "0.00"),
        (D("-0.005"), 2, "-0.01"),
        (D("2.675"), 2, "2.68"),
        (D("14.5"), 0, "15"),
        (D("43.49"), 0, "43"),
        (D("0.0005"), 3, "0.001"),
        (Fraction(1, 3), 2, "0.33"),
        (Fraction(2, 3), 2, "0.67"),
        (D("0"), 2, "0.00"),
        (D("1E+3"), 2, "1000.00"),
    ],
)
def test_round_half_up(value: Decimal | Fraction, places: int, expected: str) -> None:
    assert str(round_money(value, places)) == expected


def test_minor_units() -> None:
    assert [minor_unit(c) for c in ("EUR", "USD", "KRW", "VND", "IDR", "JPY", "BHD")] == [
        2,
        2,
        0,
        0,
        0,
        0,
        3,
    ]


def test_totals_are_sums_of_rounded_lines() -> None:
    u = usage({("sms.mt", (("country", "FR"),)): 1, ("sms.mt", (("country", "DE"),)): 1})
    inv = build_invoice("acme", "2026-10", plan(prices={"sms.mt": "0.005"}), u)
    assert [str(x.amount) for x in inv.lines] == ["0.01", "0.01"]
    assert str(inv.subtotal) == "0.02"
    assert str(inv.total) == "0.02"


def test_zero_decimal_currency() -> None:
    u = usage({("zalo", ()): 3, ("kakao.notification", ()): 1})
    inv = build_invoice(
        "acme",
        "2026-10",
        plan(currency="KRW", prices={"zalo": "14.5", "kakao.notification": "7.5"}),
        u,
    )
    assert [(x.metric, str(x.unit_price), str(x.amount)) for x in inv.lines] == [
        ("kakao.notification", "7.5", "8"),
        ("zalo", "14.5", "44"),  # 43.5 -> 44
    ]
    assert str(inv.total) == "52"
    assert inv.minor_unit == 0


# --- packages -------------------------------------------------------------------------------

PACKAGE = {"monthly_fee": "100.00", "included": 1000, "overage_unit_price": "0.05"}


@pytest.mark.parametrize(
    ("used", "included", "billable", "overage"),
    [(800, 800, 0, "0.00"), (1000, 1000, 0, "0.00"), (1250, 1000, 250, "12.50"), (1, 1, 0, "0.00")],
)
def test_package_included_and_overage(
    used: int, included: int, billable: int, overage: str
) -> None:
    u = Usage("2026-10")
    for i in range(used):
        u.add_distinct("whatsapp.mau", (), f"user{i}")
    fee, line = rate(u, plan(packages={"whatsapp.mau": PACKAGE})).lines
    assert (fee.kind, str(fee.amount), fee.price_row) == ("fee", "100.00", "packages.whatsapp.mau")
    assert (line.quantity, line.included, line.billable, str(line.amount)) == (
        used,
        included,
        billable,
        overage,
    )
    assert line.evidence == used


def test_package_fee_is_due_without_usage_and_free_packages_stay_silent() -> None:
    lines = rate(Usage("2026-10"), plan(packages={"answers.mas": PACKAGE})).lines
    assert [(x.kind, str(x.amount), x.quantity) for x in lines] == [
        ("fee", "100.00", 1),
        ("usage", "0.00", 0),
    ]
    free = {"included": 10, "overage_unit_price": "0.05"}
    assert rate(Usage("2026-10"), plan(packages={"answers.mas": free})).lines == ()


# --- named users ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "period", "initial", "peak", "price", "prorated", "full"),
    [
        ("2026-10-01", "2026-10", 3, 5, "31.00", "93.00", "62.00"),  # 31/31
        ("2026-10-15", "2026-10", 3, 5, "31.00", "51.00", "62.00"),  # 17/31
        ("2026-10-31", "2026-10", 3, 5, "31.00", "3.00", "62.00"),  # 1/31
        ("2026-10-15", "2026-10", 1, 1, "45.00", "24.68", "0.00"),  # 45 x 17/31 = 24.677
        ("2027-02-28", "2027-02", 2, 2, "28.00", "2.00", "0.00"),  # 1/28
        ("2026-11-20", "2026-11", 0, 4, "30.00", None, "120.00"),  # nobody on the start day
    ],
)
def test_first_month_proration(
    start: str, period: str, initial: int, peak: int, price: str, prorated: str | None, full: str
) -> None:
    figures: dict[tuple[str, Dims], int] = {("conversations.maa", ()): peak}
    if initial:
        figures[("conversations.maa.initial", ())] = initial
    p = plan(
        effective_from="2026-10",
        named_users={"seat_price": price},
        settings={"named_user_service_start": start},
    )
    lines = {x.metric: x for x in rate(usage(figures, period), p).lines}
    if prorated is None:
        assert "conversations.maa.initial" not in lines
    else:
        first = lines["conversations.maa.initial"]
        assert (first.billable, str(first.amount)) == (initial, prorated)
        assert first.price_note
        assert first.price_note.startswith("prorated")
    rest = lines["conversations.maa"]
    assert (rest.quantity, rest.billable, str(rest.amount)) == (peak, peak - initial, full)


def test_after_the_first_month_seats_are_full_price() -> None:
    p = plan(named_users={"seat_price": "45"}, settings={"named_user_service_start": "2026-10-15"})
    u = usage({("conversations.maa", ()): 4}, "2026-11")
    (line,) = rate(u, p).lines
    assert (line.billable, str(line.amount)) == (4, "180.00")


def test_named_users_package_with_included_seats_and_prorated_fee() -> None:
    p = plan(
        named_users={"seat_price": "31", "monthly_fee": "310", "included_seats": 2},
        settings={"named_user_service_start": "2026-10-15"},
    )
    u = usage({("conversations.maa", ()): 6, ("conversations.maa.initial", ()): 3})
    got = [(x.kind, x.metric, x.billable, str(x.amount)) for x in rate(u, p).lines]
    assert got == [
        ("fee", "conversations.maa", 1, "170.00"),  # 310 x 17/31
        ("usage", "conversations.maa.initial", 1, "17.00"),  # 3 - 2 included, 31 x 17/31
        ("usage", "conversations.maa", 3, "93.00"),  # 6 - max(3, 2) at full price
    ]


# --- fees -----------------------------------------------------------------------------------

FEES = [
    {
        "code": "byoc.setup",
        "description": "BYOC setup",
        "amount": "500",
        "billed": "once",
        "period": "2026-10",
    },
    {
        "code": "sender",
        "description": "sender",
        "amount": "50",
        "quantity": 2,
        "billed": "monthly",
        "period": "2026-11",
        "until": "2026-12",
    },
    {"code": "platform", "description": "platform", "amount": "99", "billed": "monthly"},
]


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("2026-10", [("byoc.setup", "500.00"), ("platform", "99.00")]),
        ("2026-11", [("sender", "100.00"), ("platform", "99.00")]),
        ("2026-12", [("sender", "100.00"), ("platform", "99.00")]),
        ("2027-01", [("platform", "99.00")]),
    ],
)
def test_fees_by_period(period: str, expected: list[tuple[str, str]]) -> None:
    lines = rate(Usage(period), plan(fees=FEES)).lines
    assert [(x.metric, str(x.amount)) for x in lines] == expected
    assert all(x.kind == "fee" for x in lines)


# --- commitments ----------------------------------------------------------------------------

VIBER = {"viber": "0.0120"}


@pytest.mark.parametrize(
    ("messages", "top_up", "total"),
    [(10_000, "180.00", "300.00"), (25_000, "0.00", "300.00"), (30_000, "0.00", "360.00")],
)
def test_post_pay_commitment_invoices_the_minimum(messages: int, top_up: str, total: str) -> None:
    c = {"name": "viber.minimum", "metrics": ["viber"], "minimum": "300", "mode": "post_pay"}
    inv = build_invoice(
        "acme", "2026-10", plan(prices=VIBER, commitments=[c]), one("viber", messages)
    )
    (report,) = inv.commitments
    assert str(report.top_up) == top_up
    assert str(inv.total) == total
    assert [str(x.amount) for x in inv.commitment_lines] == ([top_up] if top_up != "0.00" else [])


@pytest.mark.parametrize(
    ("balance", "messages", "after", "to_buy"),
    [
        ("1000", 10_000, "700.00", "0"),  # charged the minimum, 300
        ("1000", 100_000, "-200.00", "200.00"),  # charged 1200
        (None, 10_000, None, None),
    ],
)
def test_pre_pay_commitment_deducts_from_credit(
    balance: str | None, messages: int, after: str | None, to_buy: str | None
) -> None:
    c: dict[str, Any] = {
        "name": "viber.minimum",
        "metrics": ["viber"],
        "minimum": "300",
        "mode": "pre_pay",
    }
    if balance is not None:
        c["credit_balance"] = balance
    inv = build_invoice(
        "acme",
        "2026-10",
        plan(prices={**VIBER, "sms.mt": "0.05"}, commitments=[c]),
        usage({("viber", ()): messages, ("sms.mt", ()): 10}),
    )
    (report,) = inv.commitments
    charged = max(D(messages) * D("0.0120"), D(300))
    assert report.charged == charged
    prepaid = [x for x in inv.commitment_lines if x.kind == "prepaid"]
    assert [x.amount for x in prepaid] == [-charged]
    assert str(inv.total) == "0.50"  # only the SMS: Viber is paid from the credit
    assert (None if report.credit_after is None else str(report.credit_after)) == after
    assert (None if report.credit_to_buy is None else str(report.credit_to_buy)) == to_buy
    notes = [n.kind for n in inv.notes]
    assert ("prepaid.credit_to_buy.viber.minimum" in notes) == bool(to_buy and to_buy != "0")


def test_commitment_scope_may_name_fees_and_several_metrics() -> None:
    c = {
        "name": "chat.minimum",
        "metrics": ["viber", "viber_bot", "sender"],
        "minimum": "100",
        "mode": "post_pay",
    }
    fee = {"code": "sender", "description": "sender", "amount": "50", "billed": "monthly"}
    r = rate(
        usage({("viber", ()): 1000, ("viber_bot", ()): 1000}),
        plan(prices={**VIBER, "viber_bot": "0.01"}, fees=[fee], commitments=[c]),
    )
    (report,) = r.commitments
    assert (str(report.actual), str(report.top_up)) == ("72.00", "28.00")  # 12 + 10 + 50


# --- adjustments ----------------------------------------------------------------------------


def test_adjustment_lines_are_per_line_differences_labelled_with_the_prior_period() -> None:
    p = plan(
        prices={
            "sms.mt": [{"match": {"country": "FR"}, "unit_price": "0.05"}, {"unit_price": "0.07"}]
        }
    )
    without = usage({("sms.mt", (("country", "FR"),)): 100}, "2026-09")
    with_late = usage(
        {("sms.mt", (("country", "FR"),)): 110, ("sms.mt", (("country", "DE"),)): 10}, "2026-09"
    )
    p_sep = plan(effective_from="2026-09", prices=p.model_dump()["prices"])
    adj = adjustment_lines("2026-09", rate(with_late, p_sep), rate(without, p_sep))
    assert [(x.kind, x.adjusts, x.period, x.dims_text, x.quantity, str(x.amount)) for x in adj] == [
        ("adjustment", "usage", "2026-09", "country=DE", 10, "0.70"),
        ("adjustment", "usage", "2026-09", "country=FR", 10, "0.50"),
    ]
    assert adj[1].description.startswith("adjustment for 2026-09: SMS parts")
    inv = build_invoice("acme", "2026-10", p, one("sms.mt", 20, country="FR"), adjustments=adj)
    assert (str(inv.subtotal), str(inv.total)) == ("1.00", "2.20")
    assert inv.adjustment_lines == adj


def test_adjustments_follow_commitments_and_cancel_out_under_a_minimum() -> None:
    c = {"name": "viber.minimum", "metrics": ["viber"], "minimum": "300", "mode": "post_pay"}
    p = plan(effective_from="2026-09", prices=VIBER, commitments=[c])
    adj = adjustment_lines(
        Period(2026, 9), rate(one("viber", 150), p), rate(one("viber", 100), p).all_lines()
    )
    assert [(x.adjusts, x.metric, str(x.amount)) for x in adj] == [
        ("usage", "viber", "0.60"),
        ("commitment", "viber.minimum", "-0.60"),
    ]
    assert sum(x.amount for x in adj) == 0


def test_no_adjustment_when_nothing_changed_and_removed_lines_count_against_zero() -> None:
    p = plan(effective_from="2026-09", prices={"sms.mt": "0.05", "zalo": "0.02"})
    same = rate(one("sms.mt", 10), p)
    assert adjustment_lines("2026-09", same, same) == []
    gone = adjustment_lines("2026-09", rate(Usage("2026-09"), p), rate(one("zalo", 5), p))
    assert [(x.metric, x.quantity, str(x.amount)) for x in gone] == [("zalo", -5, "-0.10")]


def test_adjustments_must_come_from_adjustment_lines() -> None:
    line = rate(one("sms.mt", 1), plan(prices={"sms.mt": "1"})).lines[0]
    with pytest.raises(ValueError, match="adjustment_lines"):
        build_invoice(
            "acme", "2026-10", plan(prices={"sms.mt": "1"}), one("sms.mt", 1), adjustments=[line]
        )


# --- the invoice ----------------------------------------------------------------------------


def test_invoice_identity_is_deterministic() -> None:
    inv = build_invoice(
        "acme",
        Period(2026, 12),
        plan(prices={"sms.mt": "1"}),
        one("sms.mt", 1, country="FR") if False else usage({}, "2026-12"),
    )
    assert (inv.number, inv.issue_date.isoformat(), inv.currency) == (
        "INV-2026-12-acme",
        "2027-01-01",
        "EUR",
    )
    assert str(inv.total) == "0.00"


def test_invoice_refuses_mismatches() -> None:
    p = plan(prices={"sms.mt": "1"})
    with pytest.raises(ValueError, match="cannot invoice"):
        build_invoice("other", "2026-10", p, Usage("2026-10"))
    with pytest.raises(ValueError, match="cannot be invoiced"):
        build_invoice("acme", "2026-11", p, Usage("2026-10"))
    with pytest.raises(ValueError, match="rates no 2026-09"):
        rate(Usage("2026-09"), p)


def test_invoice_notes_come_from_usage_counts_and_examples() -> None:
    from billing.domain.usage import Note

    u = Usage("2026-10")
    u.add_note(Note("whatsapp.outside_window", Period(2026, 10).start_ms + 3_600_000, "free_form"))
    u.add_note(Note("whatsapp.outside_window", Period(2026, 10).start_ms + 7_200_000, "free_form"))
    inv = build_invoice("acme", "2026-10", plan(), u)
    (note,) = inv.notes
    assert (note.kind, note.count) == ("whatsapp.outside_window", 2)
    assert note.examples == ["2026-10-01T01:00:00Z free_form", "2026-10-01T02:00:00Z free_form"]


def test_line_evidence_rule_and_row() -> None:
    u = Usage("2026-10")
    for _ in range(3):
        u.add("sms.mt", (("country", "FR"),), 2)
    (line,) = rate(u, plan(prices={"sms.mt": "0.05"})).lines
    assert isinstance(line, InvoiceLine)
    assert (line.quantity, line.evidence, line.rule_section, line.price_row) == (
        6,
        3,
        "3",
        "sms.mt[default]",
    )


def test_adjustments_refuse_to_mix_currencies() -> None:
    eur = rate(one("sms.mt", 1), plan(effective_from="2026-09", prices={"sms.mt": "1"}))
    krw = rate(
        one("sms.mt", 1),
        plan(effective_from="2026-09", currency="KRW", prices={"sms.mt": "1"}),
    )
    with pytest.raises(ValueError, match="across currencies"):
        adjustment_lines("2026-09", eur, krw)


def test_a_zero_pre_pay_settlement_has_no_negative_zero() -> None:
    c = {"name": "m", "metrics": ["viber"], "minimum": "0", "mode": "pre_pay"}
    inv = build_invoice("acme", "2026-10", plan(prices=VIBER, commitments=[c]), Usage("2026-10"))
    assert b': "-0' not in inv.canonical_json()
    assert [str(x.amount) for x in inv.commitment_lines] == ["0.00"]
