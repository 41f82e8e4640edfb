"""A credit note's credit of an amount carries the credited invoice and the reason as data
(``price_detail``, kind ``credit``): its name in every language comes from them, not from
reading its English description back."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from billing.documents.localize import LANGUAGES, Localizer
from billing.documents.render import invoice_csv, invoice_json
from billing.domain.finance import credit_note
from billing.domain.invoice import Invoice
from tests.rating.test_documents_localized import finance_invoice

ISSUED = date(2026, 11, 20)


def _credit(language: str, reason: str) -> Invoice:
    return credit_note(finance_invoice(language), "CN-9", ISSUED, reason, amount=Decimal("2.50"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_credit_of_an_amount_carries_its_invoice_and_reason(language: str) -> None:
    note = _credit(language, "billing error: see ticket 42")
    (line,) = [x for x in note.adjustment_lines if x.metric == "credit"]
    assert line.description == "Credit on invoice EU-2026-000042: billing error: see ticket 42"
    doc = json.loads(invoice_json(note))
    (shown,) = [x for x in doc["adjustment_lines"] if x["metric"] == "credit"]
    assert shown["price_detail"] == {
        "invoice": "EU-2026-000042",
        "kind": "credit",
        "reason": "billing error: see ticket 42",
    }
    assert shown["price_note"] is None
    assert shown["service"] == Localizer(language).label(
        "credit_line", number="EU-2026-000042", reason="billing error: see ticket 42"
    )
    assert invoice_json(Invoice.model_validate_json(invoice_json(note))) == invoice_json(note)
    assert '{""invoice"":""EU-2026-000042"",""kind"":""credit""' in invoice_csv(note).decode()


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_credit_line_is_named_from_its_data_whatever_its_english_words(language: str) -> None:
    """The English description reworded: the JSON, the CSV and the PDF name the line as
    before, from the credited invoice and the reason."""
    note = _credit(language, "goodwill")
    lines = [
        x.model_copy(update={"description": "Refund (goodwill), invoice EU-2026-000042"})
        if x.metric == "credit"
        else x
        for x in note.adjustment_lines
    ]
    reworded = note.model_copy(update={"adjustment_lines": lines})

    def service(inv: Invoice) -> str:
        doc = json.loads(invoice_json(inv))
        (line,) = [x for x in doc["adjustment_lines"] if x["metric"] == "credit"]
        return str(line["service"])

    expected = Localizer(language).label("credit_line", number="EU-2026-000042", reason="goodwill")
    assert service(reworded) == service(note) == expected
