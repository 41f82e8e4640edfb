"""The sample documents of the finance interface (draft, final invoice, credit note) that
the renderers use: they read back as invoices and carry every agreed key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from billing.domain.invoice import FINANCE_KEYS, Invoice, canonical_json

SAMPLES = Path(__file__).with_name("samples")
AGREED = {"status", "number", "issue_date", "due_date", "language", "currency", "seller"}
AGREED |= {"customer", "taxes", "totals", "kind"}


@pytest.mark.parametrize("name", ["draft", "final", "credit_note"])
def test_samples_are_invoices_with_the_agreed_keys(name: str) -> None:
    raw = (SAMPLES / f"{name}.json").read_bytes()
    doc = json.loads(raw)
    assert set(doc) >= AGREED
    assert set(doc["seller"]) == {"legal_name", "address", "country", "tax_id", "bank"}
    assert set(doc["seller"]["bank"]) == {"iban", "bic", "bank_name"}
    assert set(doc["customer"]) == {
        "legal_name",
        "address",
        "country",
        "tax_id",
        "purchase_order",
        "email",
    }
    assert set(doc["totals"]) == {"net", "tax", "gross"}
    assert all(set(t) == {"rate", "base", "tax", "mention"} for t in doc["taxes"])
    invoice = Invoice.model_validate_json(raw)
    assert canonical_json(invoice) == raw  # byte-identical round trip
    assert (invoice.number is None) == (name == "draft")
    assert (invoice.credits is not None) == (name == "credit_note")


def test_a_statement_without_finance_keys_keeps_its_bytes() -> None:
    doc = json.loads((SAMPLES / "final.json").read_bytes())
    for key in FINANCE_KEYS:
        doc.pop(key, None)
    statement = Invoice.model_validate(doc)
    assert not set(FINANCE_KEYS) & set(json.loads(canonical_json(statement)))
