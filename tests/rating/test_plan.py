"""Price plans: parsing, shorthands, validation, schema freshness."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from billing.domain.plan import (
    KNOWN_DIMS,
    SCHEMA_PATH,
    PricePlan,
    load_plan,
    parse_plan,
    schema_text,
    select_plan,
)
from tests.rating.helpers import BASE, plan

ROOT = Path(__file__).resolve().parents[2]


def test_yaml_shorthands_become_rows() -> None:
    p = parse_plan(
        """
account: acme
currency: EUR
effective_from: 2026-10
prices:
  sms.mo: "0.005"
  sms.mt: 0.045
  email: {tiers: [{up_to: 10, unit_price: "0.1"}, {unit_price: "0.05"}]}
  mms.mt:
    - {match: {country: FR}, unit_price: "0.18"}
    - unit_price: "0.25"
"""
    )
    assert p.prices["sms.mo"][0].unit_price == Decimal("0.005")
    assert p.prices["sms.mt"][0].unit_price == Decimal("0.045")  # a YAML float, read exactly
    assert p.prices["email"][0].tiers is not None
    assert [r.match for r in p.prices["mms.mt"]] == [{"country": "FR"}, {}]
    assert p.settings.whatsapp_model == "template"  # the rulebook default


def test_json_plan_and_round_trip_through_a_store() -> None:
    p = plan(
        prices={"sms.mt": "0.05"},
        packages={
            "whatsapp.mau": {"monthly_fee": "10", "included": 100, "overage_unit_price": "0.1"}
        },
        named_users={"seat_price": "45", "included_seats": 2},
        settings={"named_user_service_start": "2026-10-15", "ussd_charged_initiators": ["account"]},
    )
    doc = p.model_dump(mode="json")
    assert PricePlan.model_validate(doc) == p
    # DynamoDB hands integers back as Decimal
    doc["named_users"]["included_seats"] = Decimal(2)
    doc["settings"]["recording_limit"] = Decimal(10)
    assert PricePlan.model_validate(doc) == p
    assert parse_plan(p.model_dump_json(), "json") == p


def test_load_plan_reads_yaml_and_json(tmp_path: Path) -> None:
    p = plan(prices={"sms.mt": "0.05"})
    (tmp_path / "p.json").write_text(p.model_dump_json())
    (tmp_path / "p.yaml").write_text(
        "account: acme\ncurrency: EUR\neffective_from: 2026-10\nprices: {sms.mt: '0.05'}\n"
    )
    assert load_plan(tmp_path / "p.json") == p
    assert load_plan(tmp_path / "p.yaml") == p


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prices": {"sms.mtt": "0.05"}}, "unknown metric 'sms.mtt'"),
        (
            {"prices": {"sms.mt": [{"match": {"contry": "FR"}, "unit_price": "1"}]}},
            "unknown dimension",
        ),
        ({"prices": {"sms.mt": [{"unit_price": "1"}, {"unit_price": "2"}]}}, "appears twice"),
        ({"prices": {"sms.mt": [{"unit_price": "1", "tiers": [{"unit_price": "1"}]}]}}, "either"),
        ({"prices": {"sms.mt": [{}]}}, "either unit_price or tiers"),
        (
            {"prices": {"sms.mt": {"tiers": [{"up_to": 10, "unit_price": "1"}]}}},
            "last tier has no up_to",
        ),
        (
            {
                "prices": {
                    "sms.mt": {
                        "tiers": [
                            {"up_to": 10, "unit_price": "1"},
                            {"up_to": 5, "unit_price": "1"},
                            {"unit_price": "1"},
                        ]
                    }
                }
            },
            "strictly increasing",
        ),
        ({"prices": {"sms.mt": "-0.01"}}, "greater than or equal to 0"),
        ({"prices": {"sms.mt": True}}, "valid list"),
        ({"prices": {"sms.mt": [{"unit_price": True}]}}, "boolean"),
        (
            {"prices": {"sms.mt": "1"}, "packages": {"sms.mt": {"overage_unit_price": "1"}}},
            "both in prices and in packages",
        ),
        ({"prices": {"conversations.maa": "45"}}, "priced by named_users"),
        ({"packages": {"voice.ivr": {"overage_unit_price": "1"}}}, "per minute"),
        (
            {"fees": [{"code": "x", "description": "x", "amount": "1", "billed": "once"}]},
            "names its period",
        ),
        (
            {
                "fees": [
                    {"code": "x", "description": "x", "amount": "1", "billed": "monthly"},
                    {"code": "x", "description": "y", "amount": "1", "billed": "monthly"},
                ]
            },
            "appears twice",
        ),
        (
            {"fees": [{"code": "sms.mt", "description": "x", "amount": "1", "billed": "monthly"}]},
            "is a usage metric name",
        ),
        (
            {
                "fees": [
                    {
                        "code": "old",
                        "description": "x",
                        "amount": "1",
                        "billed": "once",
                        "period": "2026-09",
                    }
                ]
            },
            "before the plan",
        ),
        (
            {
                "commitments": [
                    {"name": "c", "metrics": ["viberr"], "minimum": "300", "mode": "post_pay"}
                ]
            },
            "no metric or fee code",
        ),
        (
            {
                "commitments": [
                    {
                        "name": "c",
                        "metrics": ["viber"],
                        "minimum": "300",
                        "mode": "post_pay",
                        "credit_balance": "10",
                    }
                ]
            },
            "pre_pay only",
        ),
        ({"currency": "euro"}, "currency"),
        ({"effective_from": "2026-13"}, "effective_from"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
        ({"settings": {"whatsapp_model": "per-message"}}, "whatsapp_model"),
    ],
)
def test_invalid_plans_are_rejected(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PricePlan.model_validate({**BASE, **fields})


def test_a_yaml_norway_must_be_quoted() -> None:
    with pytest.raises(ValidationError):
        parse_plan(
            "account: a\ncurrency: NOK\neffective_from: 2026-10\n"
            "prices: {sms.mt: [{match: {country: NO}, unit_price: '1'}]}\n"
        )


def test_known_dims_are_the_usage_dimensions() -> None:
    assert {"country", "network", "direction", "category", "number_type", "sender_id"} == KNOWN_DIMS


def test_select_plan_takes_the_latest_in_force() -> None:
    a = plan(effective_from="2026-01")
    b = plan(effective_from="2026-10")
    assert select_plan([b, a], "2025-12") is None
    assert select_plan([b, a], "2026-09") is a
    assert select_plan([b, a], "2026-10") is b
    assert select_plan([a, b], "2027-03") is b


def test_schema_file_is_fresh() -> None:
    """Regenerate with: python -m billing.domain.plan"""
    on_disk = (ROOT / SCHEMA_PATH).read_text(encoding="utf-8")
    assert on_disk == schema_text(), "stale schema: run `python -m billing.domain.plan`"


def test_schema_accepts_the_shorthands() -> None:
    text = schema_text()
    assert '"PriceRow"' in text
    assert '"Tier"' in text
    assert '"ContractSettings"' in text
