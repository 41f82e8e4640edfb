"""Billing profiles and sellers: schemas, examples, versions by effective period."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from billing.adapters.store import FinanceStore
from billing.domain.plan import load_plan
from billing.domain.profile import (
    SCHEMAS,
    BillingProfile,
    Seller,
    load_profile,
    load_seller,
    rendered,
)
from tests.pipeline.conftest import Env

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROFILES = sorted((EXAMPLES / "profiles").glob("*.yaml"))
SELLERS = sorted((EXAMPLES / "sellers").glob("*.yaml"))


def test_schema_files_are_up_to_date() -> None:
    for path, content in rendered().items():
        assert path.read_text() == content, f"{path} is stale: python -m billing.domain.profile"


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_example_profiles_validate_and_match_their_plans(path: Path) -> None:
    profile = load_profile(path)
    schema = json.loads((SCHEMAS / "billing-profile.schema.json").read_text())
    jsonschema.validate(profile.model_dump(mode="json"), schema)
    plan = load_plan(EXAMPLES / "plans" / path.name)  # the plan of the same name
    assert (profile.account, profile.currency) == (plan.account, plan.currency)
    assert any(load_seller(s).id == profile.seller for s in SELLERS)


@pytest.mark.parametrize("path", SELLERS, ids=lambda p: p.stem)
def test_example_sellers_validate(path: Path) -> None:
    seller = load_seller(path)
    schema = json.loads((SCHEMAS / "seller.schema.json").read_text())
    jsonschema.validate(seller.model_dump(mode="json"), schema)


def test_profile_languages_cover_the_contract_annex() -> None:
    assert {load_profile(p).language for p in PROFILES} <= {"en", "fr", "id", "ko"}


@pytest.mark.parametrize(
    "change",
    [
        {"country": "France"},
        {"currency": "eur"},
        {"language": "de"},
        {"payment_terms_days": -1},
        {"invoice_email": "not an address"},
        {"seller": "Bad Seller"},
        {"account": "a..b"},
        {"vat": "FR1"},  # unknown field
    ],
    ids=lambda c: next(iter(c)),
)
def test_invalid_profiles_are_refused(change: dict[str, object]) -> None:
    doc = {**load_profile(PROFILES[0]).model_dump(mode="json"), **change}
    with pytest.raises(ValidationError):
        BillingProfile.model_validate(doc)


def test_invalid_series_are_refused() -> None:
    doc = load_seller(SELLERS[0]).model_dump(mode="json")
    doc["series"] = {"invoice": "EU {year} #", "credit_note": "C-", "digits": 6}
    with pytest.raises(ValidationError):
        Seller.model_validate(doc)


def test_profiles_are_versioned_by_effective_period(env: Env) -> None:
    fin = FinanceStore(env.table)
    first = load_profile(PROFILES[0]).model_dump(mode="json")
    later = {**first, "effective_from": "2027-01", "purchase_order": "PO-2027"}
    fin.put_profile(first["account"], "2026-10", first)
    fin.put_profile(first["account"], "2027-01", later)
    assert fin.profile_document(first["account"], "2026-09") is None
    assert fin.profile_document(first["account"], "2026-12") == first
    assert fin.profile_document(first["account"], "2027-03") == later
    assert len(fin.profile_versions(first["account"])) == 2
