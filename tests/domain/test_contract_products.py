"""Issue 11 (contract part): the two number defaults of the rulebook with their settings,
subscribed products in the price plan, and the plan check."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing.domain.engine import usage_of_events
from billing.domain.periods import Period
from billing.domain.plan import PricePlan, load_plan, parse_plan, select_plan
from billing.domain.plancheck import check_plan, plan_warnings, possible_metrics
from billing.domain.rating import build_invoice
from billing.domain.settings import ContractSettings, Product
from billing.domain.usage import Usage
from tests.factories import (
    at,
    number,
    number_released,
    rec_deleted,
    rec_start,
    rec_stop,
    rec_stored,
    usage,
)

OCTOBER = Period(2026, 10)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plans"

# --- the rulebook's number rows -------------------------------------------------------------
#
# Section 3: "numbers.setup / numbers.recurring | Numbers and short codes (long, toll-free,
# short code) | setup fee when a number is provisioned". Section 4: "voice.missed_call |
# monthly fee per voice number configured for inbound calls"; "voice.number | monthly fee
# per leased number". One row per (number, settings): the monthly figures of October.

FR = (("country", "FR"),)


def setup(kind: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("numbers.setup", (("country", "FR"), ("number_type", kind)))


def recurring(kind: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("numbers.recurring", (("country", "FR"), ("number_type", kind)))


NUMBER_ROWS = [
    # number_type, missed_call, settings, expected figures
    ("long", False, {}, {setup("long"): 1, recurring("long"): 1}),
    ("toll_free", False, {}, {setup("toll_free"): 1, recurring("toll_free"): 1}),
    ("short_code", False, {}, {setup("short_code"): 1, recurring("short_code"): 1}),
    ("voice", False, {}, {("voice.number", FR): 1}),
    ("voice", True, {}, {("voice.missed_call", FR): 1}),
    (
        "voice",
        False,
        {"voice_number_setup_fee": True},
        {setup("voice"): 1, ("voice.number", FR): 1},
    ),
    (
        "voice",
        True,
        {"missed_call_pays_lease": True},
        {("voice.missed_call", FR): 1, ("voice.number", FR): 1},
    ),
    (
        "voice",
        True,
        {"missed_call_pays_lease": True, "voice_number_setup_fee": True},
        {setup("voice"): 1, ("voice.missed_call", FR): 1, ("voice.number", FR): 1},
    ),
    ("long", False, {"voice_number_setup_fee": True}, {setup("long"): 1, recurring("long"): 1}),
    (
        "long",
        True,
        {},
        {setup("long"): 1, recurring("long"): 1, ("voice.missed_call", FR): 1},
    ),
]


@pytest.mark.parametrize(
    ("number_type", "missed_call", "settings", "expected"),
    NUMBER_ROWS,
    ids=[f"{r[0]}-missed{int(r[1])}-{'+'.join(r[2]) or 'default'}" for r in NUMBER_ROWS],
)
def test_number_provisioned_in_the_month(
    number_type: str, missed_call: bool, settings: dict[str, Any], expected: dict[Any, int]
) -> None:
    kw: dict[str, Any] = {"missed_call": True} if missed_call else {}
    events = [number(at(5), "+3311", number_type, country="FR", **kw)]
    assert usage(events, **settings).figures() == expected


def test_a_voice_number_held_from_before_pays_one_monthly_fee_without_setup() -> None:
    events = [number(at(5, month=8), "+3311", "voice", country="FR", missed_call=True)]
    assert usage(events).figures() == {("voice.missed_call", FR): 1}
    assert usage(events, missed_call_pays_lease=True).figures() == {
        ("voice.missed_call", FR): 1,
        ("voice.number", FR): 1,
    }


def test_a_voice_number_provisioned_again_pays_the_setup_again_only_when_agreed() -> None:
    events = [
        number(at(5), "+3311", "voice", country="FR"),
        number_released(at(6), "+3311"),
        number(at(7), "+3311", "voice", country="FR"),
    ]
    assert setup("voice") not in usage(events).figures()
    assert usage(events, voice_number_setup_fee=True).figures()[setup("voice")] == 2


def test_the_settings_document_their_default_and_the_other_reading() -> None:
    fields = ContractSettings.model_fields
    assert ContractSettings().voice_number_setup_fee is False
    assert ContractSettings().missed_call_pays_lease is False
    assert "voice.missed_call" in (fields["missed_call_pays_lease"].description or "")
    assert "short codes" in (fields["voice_number_setup_fee"].description or "")


# --- products in the contract ---------------------------------------------------------------

GB = 10**9


def recording_events(**flags: Any) -> list[Any]:
    """One call recorded 10:00-10:05, stored 10:06 (2 GB, 300 s), deleted 2 days later."""
    return [
        rec_start(at(3, 10), "r1", **flags),
        rec_stop(at(3, 10, 5), "r1"),
        rec_stored(at(3, 10, 6), "r1", size_bytes=2 * GB, duration_seconds=300, **flags),
        rec_deleted(at(5, 10, 6), "r1"),
    ]


def settings_with(*products: Product) -> ContractSettings:
    return ContractSettings(products=frozenset(products))


CONVERSATIONS_FIGURES: dict[Any, Decimal | int] = {("recording.storage_gb", ()): Decimal(4)}
LICENCE_FIGURES: dict[Any, Decimal | int] = {
    ("recording.licence", ()): Decimal(1),
    ("recording.storage_minutes", ()): 10,
}


def test_a_conversations_account_bills_recordings_without_any_event_flag() -> None:
    u = usage_of_events(recording_events(), OCTOBER, settings_with(Product.CONVERSATIONS))
    assert u.figures() == CONVERSATIONS_FIGURES  # 2 GB x 2 days, no licence
    assert u.note_counts == {}


def test_the_contract_decides_when_the_producer_flags_only_one_of_the_events() -> None:
    mixed = recording_events()
    mixed[0] = rec_start(at(3, 10), "r1", via_conversations=True)  # started flagged, stored not
    legacy = usage_of_events(mixed, OCTOBER).figures()
    assert ("recording.storage_minutes", ()) in legacy  # without products: the mixed result
    contract = usage_of_events(mixed, OCTOBER, settings_with(Product.CONVERSATIONS))
    assert contract.figures() == CONVERSATIONS_FIGURES


def test_a_flag_that_claims_conversations_against_the_contract_is_reported() -> None:
    events = recording_events(via_conversations=True)
    u = usage_of_events(events, OCTOBER, settings_with(Product.MOMENTS))
    assert u.resolved().figures() == LICENCE_FIGURES  # billed as the contract says
    assert u.note_counts == {"recording.conversations_flag": 2}
    notes = [n.detail for n in u.notes()]
    assert all("contract has no conversations" in d for d in notes)
    plan = PricePlan.model_validate(
        {
            "account": "acme",
            "currency": "EUR",
            "effective_from": "2026-10",
            "products": ["moments"],
            "prices": {"recording.licence": "10", "recording.storage_minutes": "0.01"},
        }
    )
    invoice = build_invoice("acme", OCTOBER, plan, u)
    assert [(n.kind, n.count) for n in invoice.notes] == [("recording.conversations_flag", 2)]
    assert invoice.total == Decimal("10.10")


@pytest.mark.parametrize("flag", [False, True])
def test_an_account_without_products_is_unchanged(flag: bool) -> None:
    u = usage_of_events(recording_events(via_conversations=flag), OCTOBER)
    assert u.resolved().figures() == (CONVERSATIONS_FIGURES if flag else LICENCE_FIGURES)
    assert u.note_counts == {}


def plan_doc(**extra: Any) -> dict[str, Any]:
    return {"account": "acme", "currency": "EUR", "effective_from": "2026-10", **extra}


def test_the_plan_states_products_and_the_engine_reads_them_from_its_settings() -> None:
    plan = parse_plan("account: a\ncurrency: EUR\neffective_from: 2026-10\nproducts: [answers]\n")
    assert plan.products == frozenset({Product.ANSWERS})
    assert plan.settings.products == frozenset({Product.ANSWERS})
    again = PricePlan.model_validate(plan.model_dump(mode="json"))
    assert again == plan
    assert plan.model_dump(mode="json")["products"] == ["answers"]
    assert PricePlan.model_validate(plan_doc()).settings.products is None


def test_products_stated_twice_must_agree() -> None:
    with pytest.raises(ValueError, match=r"products and settings\.products differ"):
        PricePlan.model_validate(plan_doc(products=["moments"], settings={"products": ["answers"]}))


def test_an_unknown_product_is_refused() -> None:
    with pytest.raises(ValueError, match="telepathy"):
        PricePlan.model_validate(plan_doc(products=["telepathy"]))


def test_products_are_effective_from_the_plan_version() -> None:
    before = PricePlan.model_validate(plan_doc())
    after = PricePlan.model_validate(
        {**plan_doc(products=["conversations"]), "effective_from": "2026-11"}
    )
    events = recording_events()
    for period, figures in [(OCTOBER, LICENCE_FIGURES), (Period(2026, 11), {})]:
        plan = select_plan([before, after], period)
        assert plan is not None
        assert usage_of_events(events, period, plan.settings).resolved().figures() == figures
    nov = [
        rec_start(at(3, 10, month=11), "r2"),
        rec_stored(at(3, 10, 6, month=11), "r2", size_bytes=GB, duration_seconds=60),
    ]
    plan = select_plan([before, after], "2026-11")
    assert plan is not None
    november = usage_of_events(nov, Period(2026, 11), plan.settings).figures()
    assert set(november) == {("recording.storage_gb", ())}


# --- the plan check -------------------------------------------------------------------------


def test_possible_metrics_follow_products_and_pricing_models() -> None:
    legacy = possible_metrics(ContractSettings())
    assert {"recording.licence", "recording.storage_gb", "voice.byoc", "moments.mep"} <= legacy
    conv = possible_metrics(settings_with(Product.CONVERSATIONS))
    assert {"recording.storage_gb", "voice.byoc"} <= conv
    assert not {"recording.licence", "recording.storage_minutes"} & conv
    assert not {"moments.mep", "things.data"} & conv
    assert "sms.mt" in conv  # channels belong to no product
    other = possible_metrics(ContractSettings(whatsapp_model="conversation"))
    assert "whatsapp.conversation" in other
    assert "whatsapp" not in other
    viber = possible_metrics(ContractSettings(viber_model="session"))
    assert {"viber.session", "viber"} <= viber  # messages outside sessions are "viber"


@pytest.mark.parametrize(
    ("doc", "impossible"),
    [
        (plan_doc(prices={"sms.mt": "0.05"}), []),
        (plan_doc(prices={"voice.byoc": "0.01"}), []),  # products not stated: no guess
        (plan_doc(products=["moments"], prices={"voice.byoc": "0.01"}), ["voice.byoc"]),
        (
            plan_doc(
                products=["conversations"],
                prices={"recording.licence": "10", "recording.storage_gb": "0.01"},
            ),
            ["recording.licence"],
        ),
        (
            plan_doc(products=["answers"], named_users={"seat_price": "40"}),
            ["conversations.maa"],
        ),
        (plan_doc(prices={"whatsapp.conversation": "0.05"}), ["whatsapp.conversation"]),
        (
            plan_doc(settings={"viber_model": "mmc"}, prices={"viber.session": "0.1"}),
            ["viber.session"],
        ),
    ],
)
def test_plan_warnings_name_the_priced_metrics_that_can_never_occur(
    doc: dict[str, Any], impossible: list[str]
) -> None:
    findings = plan_warnings(PricePlan.model_validate(doc))
    assert [f.metric for f in findings] == impossible
    assert all(f.kind == "impossible_price" for f in findings)


def test_check_reports_usage_the_plan_does_not_price_and_estimates_the_rest() -> None:
    plan = PricePlan.model_validate(
        plan_doc(prices={"sms.mt": [{"match": {"country": "FR"}, "unit_price": "0.05"}]})
    )
    u = Usage("2026-10")
    u.add("sms.mt", (("country", "FR"),), 100)
    u.add("sms.mt", (("country", "DE"),), 7)
    u.add("zalo", (), 3)
    u.add("push", (), 5)  # free unless priced: no finding
    result = check_plan(plan, "2026-10", u)
    unpriced = result.of_kind("unpriced_usage")
    assert [(f.metric, f.dims, f.quantity) for f in unpriced] == [
        ("sms.mt", (("country", "DE"),), Decimal(7)),
        ("zalo", (), Decimal(3)),
    ]
    assert "no price row matches" in unpriced[0].detail
    assert "no price, package" in unpriced[1].detail
    assert result.estimate is not None
    assert result.estimate.total == Decimal("5.00")
    assert result.estimate_excludes == (("sms.mt", (("country", "DE"),)), ("zalo", ()))
    doc = result.to_json()
    assert doc["estimate"]["note"].startswith("estimate")
    assert doc["findings"][0]["quantity"] == "7"


def test_check_reports_usage_of_a_product_the_contract_does_not_include() -> None:
    plan = PricePlan.model_validate(
        plan_doc(products=["conversations"], prices={"moments.mep": "0.1"})
    )
    u = Usage("2026-10")
    u.add_distinct("moments.mep", (), "p1")
    result = check_plan(plan, "2026-10", u)
    kinds = sorted((f.kind, f.metric) for f in result.findings)
    assert kinds == [
        ("impossible_price", "moments.mep"),
        ("usage_outside_products", "moments.mep"),
    ]
    assert result.estimate is not None
    assert result.estimate.total == Decimal("0.10")


def test_check_of_a_clean_plan_has_no_findings_and_the_invoice_estimate() -> None:
    plan = PricePlan.model_validate(plan_doc(prices={"voice.number": "2.50"}))
    u = usage_of_events([number(at(5), "+3311", "voice", country="FR")], OCTOBER)
    result = check_plan(plan, "2026-10", u)
    assert result.findings == ()
    assert result.estimate == build_invoice("acme", OCTOBER, plan, u)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_example_plans_warn_of_nothing_and_check_a_month_of_the_mix(path: Path) -> None:
    from billing.domain.events import parse_event
    from billing.gen.mix import generate

    plan = load_plan(path)
    assert plan_warnings(plan) == []
    events = []
    for line in generate(seed=5, size=1500, period="2026-10", accounts=1):
        try:
            events.append(parse_event(line))
        except ValueError:
            continue
    plan = plan.model_copy(update={"account": events[0].subject})
    result = check_plan(plan, "2026-10", usage_of_events(events, OCTOBER, plan.settings))
    assert result.of_kind("unpriced_usage") == []
    assert result.estimate is not None
    assert result.estimate.total > 0
