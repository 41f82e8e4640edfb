"""Documents a customer reads: the first page in each language, human names, fonts, CSV."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import subprocess
import sys
import unicodedata
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from billing.documents.localize import (
    LANGUAGES,
    Localizer,
    allocate,
    group_of,
    group_order,
    metric_groups,
    texts,
)
from billing.documents.render import (
    CSV_COLUMNS,
    DOCUMENT_COLUMNS,
    LINE_COLUMNS,
    explain,
    group_rows,
    invoice_csv,
    invoice_json,
    invoice_pdf,
)
from billing.domain.finance import credit_note
from billing.domain.invoice import Invoice, InvoiceLine, InvoiceNote
from billing.domain.plan import MAA_INITIAL
from billing.domain.rules import RULES_BY_METRIC
from billing.domain.tax import default_table
from tests.rating.test_documents import rich_invoice

ROOT = Path(__file__).resolve().parents[2]

CUSTOMERS = {
    "en": ("Acme Trading Ltd", "GB", ["1 Main Street", "London EC1A 1BB"]),
    "fr": ("Société Générale des Télécoms", "FR", ["12 avenue de l'Opéra", "75001 Paris"]),
    "id": ("PT Nusantara Digital", "ID", ["Jl. Sudirman 5", "Jakarta 10220"]),
    "ko": ("주식회사 한빛통신", "KR", ["테헤란로 152", "서울 06236"]),
}


def finance_invoice(
    language: str,
    status: str = "final",
    *,
    inv: Invoice | None = None,
    **extra: Any,
) -> Invoice:
    """The usage invoice of ``rich_invoice`` with the finance keys of a billing profile: a
    seller, a customer, 20 % tax, due date, number (none while a draft)."""
    base = inv or rich_invoice()
    name, country, address = CUSTOMERS[language]
    tax = (base.total * Decimal("0.20")).quantize(Decimal("0.01"))
    doc = base.model_dump()
    doc.update(
        status=status,
        kind="invoice",
        language=language,
        number=None if status == "draft" else "EU-2026-000042",
        due_date="2026-12-01",
        seller={
            "legal_name": "CPaaS Europe SAS",
            "address": ["8 rue de la Bourse", "75002 Paris"],
            "country": "FR",
            "tax_id": "FR32812345678",
            "bank": {
                "iban": "FR7630006000011234567890189",
                "bic": "AGRIFRPPXXX",
                "bank_name": "Banque Exemple",
            },
        },
        customer={
            "legal_name": name,
            "address": address,
            "country": country,
            "tax_id": "XX123456789",
            "purchase_order": "PO-7781",
            "email": "ap@example.com",
        },
        taxes=[{"rate": "20", "base": str(base.total), "tax": str(tax), "mention": None}],
        totals={"net": str(base.total), "tax": str(tax), "gross": str(base.total + tax)},
    )
    doc.update(extra)
    return Invoice.model_validate(doc)


@functools.cache
def rendered(language: str, status: str = "final") -> bytes:
    """The PDF of ``finance_invoice(language, status)``, rendered once per test session."""
    return invoice_pdf(finance_invoice(language, status))


def page_texts(body: bytes) -> list[str]:
    """Each page's text, with the no-break spaces of the locales made plain spaces."""
    out = []
    for page in PdfReader(io.BytesIO(body)).pages:
        text = page.extract_text()
        out.append(text.replace("\u202f", " ").replace("\u00a0", " "))
    return out


def plain_spaces(text: str) -> str:
    return text.replace("\u202f", " ").replace("\u00a0", " ")


# --- names as data --------------------------------------------------------------------------

ALL_METRICS = sorted({*RULES_BY_METRIC, MAA_INITIAL})


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_metric_of_the_rules_table_has_a_name_in_every_language(language: str) -> None:
    names = texts(language).metrics
    missing = [m for m in ALL_METRICS if not names.get(m, "").strip()]
    assert not missing, f"{language}: no name for {missing}"
    assert set(names) <= set(ALL_METRICS), set(names) - set(ALL_METRICS)


def test_every_metric_belongs_to_a_service_group_named_in_every_language() -> None:
    groups = metric_groups()
    assert [m for m in ALL_METRICS if m not in groups] == []
    for language in LANGUAGES:
        named = texts(language).groups
        assert set(group_order()) <= set(named), language
        assert all(named[g].strip() for g in group_order())


def test_every_language_has_every_label_unit_and_dimension_of_english() -> None:
    english = texts("en")
    for language in LANGUAGES:
        other = texts(language)
        for part in ("labels", "units", "dimensions", "values", "notes", "mentions"):
            assert set(getattr(other, part)) == set(getattr(english, part)), (language, part)
        for part in ("labels", "notes"):
            for key, text in getattr(english, part).items():
                fields = {f for f in _fields(text)}
                assert {f for f in _fields(getattr(other, part)[key])} == fields, (language, key)


def _fields(text: str) -> list[str]:
    import string

    return [name for _, name, _, _ in string.Formatter().parse(text) if name]


# --- the first page in each language --------------------------------------------------------

FIRST_PAGE = {
    "en": {
        "title": "Invoice",
        "issue": "November 1, 2026",
        "due": "December 1, 2026",
        "period": "October 2026",
        "gross": "€1,271.47",
        "tax": "Tax 20% on €1,059.56",
        "group": "Channels / communication services",
        "country": "United Kingdom",
        "pay": "Please pay €1,271.47 by December 1, 2026",
    },
    "fr": {
        "title": "Facture",
        "issue": "1 novembre 2026",
        "due": "1 décembre 2026",
        "period": "octobre 2026",
        "gross": "1 271,47 €",
        "tax": "TVA 20 % sur 1 059,56 €",
        "group": "Canaux / services de communication",
        "country": "France",
        "pay": "Merci de régler 1 271,47 € au plus tard le 1 décembre 2026",
    },
    "id": {
        "title": "Faktur",
        "issue": "1 November 2026",
        "due": "1 Desember 2026",
        "period": "Oktober 2026",
        "gross": "€1.271,47",
        "tax": "Pajak 20% atas €1.059,56",
        "group": "Saluran / layanan komunikasi",
        "country": "Indonesia",
        "pay": "Harap bayar €1.271,47 paling lambat 1 Desember 2026",
    },
    "ko": {
        "title": "청구서",
        "issue": "2026년 11월 1일",
        "due": "2026년 12월 1일",
        "period": "2026년 10월",
        "gross": "€1,271.47",
        "tax": "세율 20%, 과세표준 €1,059.56",
        "group": "채널 / 통신 서비스",
        "country": "대한민국",
        "pay": "2026년 12월 1일까지 아래 계좌로 €1,271.47",
    },
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_first_page_carries_the_key_fields_in_the_language(language: str) -> None:
    first, *rest = page_texts(rendered(language))
    want = FIRST_PAGE[language]
    name = CUSTOMERS[language][0]
    for needle in (
        want["title"],
        "EU-2026-000042",  # the number, and the payment reference
        "CPaaS Europe SAS",
        "FR32812345678",
        name,
        "PO-7781",
        want["country"],
        want["issue"],
        want["due"],
        want["period"],
        want["group"],
        want["tax"],
        want["gross"],
        want["pay"],
        "FR7630006000011234567890189",
        "AGRIFRPPXXX",
        texts(language).groups["commitments"],
        texts(language).groups["adjustments"],
    ):
        assert needle in first, f"{language}: {needle!r} not on the first page:\n{first}"
    assert first.count("EU-2026-000042") >= 3  # header, number row, payment reference
    # the lines come after, under human names, never metric ids
    details = "\n".join(rest)
    assert texts(language).metrics["sms.mt"] in details
    assert texts(language).metrics["voice.ivr"] in details
    assert "sms.mt" not in first + details
    assert "voice.ivr" not in first + details


def test_the_totals_by_service_group_add_up_to_net_tax_and_gross() -> None:
    inv = finance_invoice("en")
    rows = group_rows(inv)
    assert inv.totals is not None
    assert sum(r.net for r in rows) == inv.totals.net
    assert sum(r.tax or 0 for r in rows) == inv.totals.tax
    assert sum(r.gross or 0 for r in rows) == inv.totals.gross
    assert [r.group for r in rows] == [
        "messaging",
        "voice",
        "fees",
        "commitments",
        "adjustments",
    ]


def test_tax_shares_keep_the_exact_total_even_with_negative_groups() -> None:
    shares = allocate(Decimal("10.01"), [Decimal(50), Decimal(-10), Decimal(10)], 2)
    assert sum(shares) == Decimal("10.01")
    assert allocate(Decimal("1"), [Decimal(1), Decimal(1), Decimal(1)], 0) == [1, 0, 0]
    assert allocate(Decimal("5"), [Decimal(0)], 2) == [Decimal("0.00")]


def test_several_tax_rates_are_listed_but_not_split_by_group() -> None:
    inv = finance_invoice(
        "en",
        taxes=[
            {"rate": "20", "base": "1000.00", "tax": "200.00", "mention": None},
            {"rate": "0", "base": "59.56", "tax": "0.00", "mention": "Reverse charge"},
        ],
        totals={"net": "1059.56", "tax": "200.00", "gross": "1259.56"},
    )
    assert all(r.tax is None for r in group_rows(inv))
    first = page_texts(invoice_pdf(inv))[0]
    assert "Tax 20% on €1,000.00" in first
    assert "Tax 0% on €59.56" in first
    assert "Reverse charge" in first
    assert "€1,259.56" in first


# --- Korean: the font ------------------------------------------------------------------------


def test_a_korean_page_renders_hangul_with_an_embedded_font() -> None:
    reader = PdfReader(io.BytesIO(rendered("ko")))
    first = reader.pages[0].extract_text()
    hangul = [ch for ch in first if unicodedata.name(ch, "").startswith("HANGUL SYLLABLE")]
    assert len(hangul) > 50
    for word in ("청구서", "주식회사 한빛통신", "결제 안내", "서비스별 요약"):
        assert word in first
    fonts = reader.pages[0]["/Resources"]["/Font"]
    names = []
    for ref in fonts.values():
        font = ref.get_object()
        names.append(str(font["/BaseFont"]))
        descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"]
        assert "/FontFile2" in descriptor, font["/BaseFont"]  # embedded (TrueType subset)
    assert any("NotoSansCJKKR" in n for n in names), names
    # figures drawn right after Hangul in the same style keep their own glyphs
    assert "청구 금액 €1,271.47" in first


def test_latin_documents_do_not_embed_the_korean_font() -> None:
    fonts = PdfReader(io.BytesIO(rendered("fr"))).pages[0]["/Resources"]["/Font"]
    names = [str(ref.get_object()["/BaseFont"]) for ref in fonts.values()]
    assert names
    assert not any("CJK" in n for n in names)


def test_hangul_in_a_customer_name_gets_the_korean_font_in_any_language() -> None:
    inv = finance_invoice("en")
    customer = inv.model_dump()["customer"]
    customer["legal_name"] = "한빛통신 Ltd"
    first = page_texts(invoice_pdf(finance_invoice("en", customer=customer)))[0]
    assert "한빛통신 Ltd" in first


# --- states ----------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_draft_shows_draft_instead_of_a_number(language: str) -> None:
    first = page_texts(rendered(language, "draft"))[0]
    draft = texts(language).labels["draft"]
    assert draft in first
    assert plain_spaces(texts(language).labels["draft_note"])[:20] in first
    assert "EU-2026-000042" not in first
    assert "None" not in first


def test_a_void_invoice_and_a_credit_note_say_so() -> None:
    void = page_texts(rendered("fr", "void"))[0]
    assert "ANNULÉE" in void
    assert "Cette facture est annulée par un avoir" in void
    note = finance_invoice("fr", kind="credit_note", credits="EU-2026-000041", reason="Taux erroné")
    first = page_texts(invoice_pdf(note))[0]
    assert "Avoir" in first
    assert "Motif Taux erroné" in first
    assert "Rectifie la facture" in first
    assert "Cet avoir rectifie la facture EU-2026-000041" in first
    assert "Montant crédité" in first
    assert "Modalités de paiement" not in first


def test_a_usage_statement_without_a_profile_still_renders_in_english() -> None:
    inv = rich_invoice()
    first = page_texts(invoice_pdf(inv))[0]
    assert "Invoice" in first
    assert "INV-2026-10-acme" in first
    assert "acme" in first
    assert f"€{inv.total:,}" in first
    assert "Tax" not in first  # no tax is stated without a billing profile


# --- determinism -----------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["ko"])  # en: test_documents.py
def test_localized_pdfs_are_byte_identical_across_processes(language: str) -> None:
    script = (
        "import sys, hashlib; "
        "from tests.rating.test_documents_localized import finance_invoice; "
        "from billing.documents.render import invoice_pdf; "
        f"sys.stdout.write(hashlib.sha256(invoice_pdf(finance_invoice({language!r}))).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "7", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    body = invoice_pdf(finance_invoice(language))
    assert body == rendered(language)
    assert out.stdout == hashlib.sha256(body).hexdigest()
    meta = PdfReader(io.BytesIO(body)).metadata
    assert meta is not None
    assert meta.creation_date is not None
    assert meta.creation_date.isoformat().startswith("2026-11-01T00:00:00")


# --- CSV and JSON carry what the PDF shows -------------------------------------------------


def test_the_csv_carries_the_header_the_names_and_the_taxes() -> None:
    inv = finance_invoice("fr")
    rows = list(csv.DictReader(io.StringIO(invoice_csv(inv).decode())))
    assert tuple(rows[0]) == CSV_COLUMNS
    lines = [r for r in rows if r["kind"] != "tax"]
    taxes = [r for r in rows if r["kind"] == "tax"]
    assert len(lines) == len(inv.all_lines())
    assert sum(Decimal(r["amount"]) for r in lines) == Decimal(rows[0]["invoice.totals.net"])
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal(rows[0]["invoice.totals.gross"])
    for row in rows:
        assert row["invoice.number"] == "EU-2026-000042"
        assert row["invoice.status"] == "final"
        assert (row["invoice.issue_date"], row["invoice.due_date"]) == ("2026-11-01", "2026-12-01")
        assert row["invoice.seller.legal_name"] == "CPaaS Europe SAS"
        assert row["invoice.customer.legal_name"] == "Société Générale des Télécoms"
        assert row["invoice.customer.purchase_order"] == "PO-7781"
        totals = tuple(row[f"invoice.totals.{k}"] for k in ("net", "tax", "gross"))
        assert totals == ("1059.56", "211.91", "1271.47")
    sms = next(r for r in lines if r["metric"] == "sms.mt" and r["dims"] == "country=FR")
    assert sms["service"] == texts("fr").metrics["sms.mt"]
    assert sms["service_group"] == "Canaux / services de communication"
    assert sms["rule_section"] == "3"  # the evidence stays
    assert [(t["unit_price"], t["amount"]) for t in taxes] == [("20", "211.91")]
    assert plain_spaces(taxes[0]["service"]) == "TVA 20 % sur 1 059,56 €"


def test_the_json_carries_the_finance_keys_and_explain_keeps_the_evidence() -> None:
    inv = finance_invoice("ko")
    doc = json.loads(inv.canonical_json())
    for key in ("status", "number", "issue_date", "due_date", "language", "seller", "customer"):
        assert doc[key], key
    assert doc["totals"]["gross"] == "1271.47"
    text = explain(inv)
    assert "section 3: SMS parts submitted to the operator" in text
    assert "sms.mt[country=FR]" in text


def test_a_draft_is_explained_without_a_number() -> None:
    assert explain(finance_invoice("en", status="draft")).startswith("Invoice DRAFT for acme")


# --- formats ------------------------------------------------------------------------------


def test_amounts_keep_the_invoice_decimals_not_cldr_ones() -> None:
    assert Localizer("id").money(Decimal("1234567"), "IDR", 0) == "Rp1.234.567"
    assert Localizer("ko").money(Decimal("1234567"), "KRW", 0) == "₩1,234,567"
    assert plain_spaces(Localizer("fr").money(Decimal("1.234"), "KWD", 3)) == "1,234 KWD"
    assert Localizer("en").number(Decimal("0.000000512")) == "0.000000512"


def test_unknown_languages_read_as_english_and_regional_tags_as_their_language() -> None:
    assert Localizer(None).language == "en"
    assert Localizer("de").language == "en"
    assert Localizer("fr-CA").language == "fr"
    assert Localizer("ko_KR").language == "ko"


def test_commitments_and_free_lines_are_reported_in_the_language() -> None:
    details = "\n".join(page_texts(rendered("fr"))[1:])
    viber = texts("fr").metrics["viber"]
    assert f"Engagement viber.minimum sur {viber} :" in details
    assert "minimum 300,00 €, consommé 30,00 €, facturé 300,00 €" in details
    assert "non facturé" in details  # push: free unless priced
    assert "Commitment viber.minimum" not in details


# --- every line named in the JSON; the CSV's columns are the JSON's fields ------------------


def _json_lines(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [*doc["lines"], *doc["commitment_lines"], *doc["adjustment_lines"]]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_line_of_the_json_carries_its_name_and_group_in_the_language(
    language: str,
) -> None:
    inv = finance_invoice(language)
    doc = json.loads(invoice_json(inv))
    loc = Localizer.of(inv)
    lines = _json_lines(doc)
    assert len(lines) == len(inv.all_lines())
    for line, source in zip(lines, inv.all_lines(), strict=True):
        assert line["service"] == loc.line_name(source), line["metric"]
        assert line["service_group"] == loc.group(group_of(source)), line["metric"]
    sms = next(x for x in lines if x["metric"] == "sms.mt" and x["kind"] == "usage")
    assert sms["service"] == texts(language).metrics["sms.mt"]
    assert sms["service_group"] == texts(language).groups["messaging"]
    adjustment = next(x for x in lines if x["kind"] == "adjustment")
    assert texts(language).metrics["sms.mt"] in adjustment["service"]
    assert adjustment["service_group"] == texts(language).groups["adjustments"]
    # a minimum commitment is named by what it covers, not by its plan name
    (top_up,) = [x for x in lines if x["kind"] == "commitment"]
    (scope,) = [c.metrics for c in inv.commitments if c.name == top_up["metric"]]
    assert top_up["metric"] not in top_up["service"]
    assert all(texts(language).metrics[m] in top_up["service"] for m in scope)
    assert invoice_json(Invoice.model_validate_json(invoice_json(inv))) == invoice_json(inv)


def test_a_statement_without_a_profile_names_its_lines_in_english() -> None:
    doc = json.loads(invoice_json(rich_invoice()))
    names = {x["metric"]: x["service"] for x in _json_lines(doc) if x["kind"] == "usage"}
    assert names["sms.mt"] == texts("en").metrics["sms.mt"]
    assert all(x["service"] and x["service_group"] for x in _json_lines(doc))


def _cell(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if column == "price_detail":  # nested data: its compact JSON, keys sorted
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, dict):
        return ";".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


@pytest.mark.parametrize("language", ["en", "ko"])
def test_the_csv_columns_are_exactly_the_fields_of_the_json(language: str) -> None:
    """An invoice with graduated tiers, a package, a commitment, an adjustment and taxes:
    the CSV's line columns are the JSON's line fields, with the same values; its other
    columns are the document's fields by their JSON path, with the same values."""
    inv = finance_invoice(language)
    assert any(x.price_note and "graduated" in x.price_note for x in inv.lines)  # tiers
    assert any(x.price_row and x.price_row.startswith("packages.") for x in inv.lines)
    assert inv.adjustment_lines
    assert inv.commitment_lines
    assert inv.taxes
    doc = json.loads(invoice_json(inv))
    rows = list(csv.DictReader(io.StringIO(invoice_csv(inv).decode())))
    line_columns = {c for c in rows[0] if not c.startswith("invoice.")}
    for line in _json_lines(doc):  # a line without a computation has no price_detail
        assert set(line) | {"price_detail"} == line_columns
    assert any("price_detail" in line for line in _json_lines(doc))
    assert line_columns == set(LINE_COLUMNS) == set(InvoiceLine.model_fields)
    lines = [r for r in rows if r["kind"] != "tax"]
    for row, line in zip(lines, _json_lines(doc), strict=True):
        expected = {c: _cell(line.get(c), c) for c in line_columns}
        assert {c: row[c] for c in line_columns} == expected
    document_columns = [c for c in rows[0] if c.startswith("invoice.")]
    assert document_columns == list(DOCUMENT_COLUMNS)
    for column in document_columns:
        path = column.split(".")[1:]
        assert path[0] in Invoice.model_fields, column
        value: Any = doc
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            assert {r[column] for r in rows} == {_cell(value)}, column
    taxes = [r for r in rows if r["kind"] == "tax"]
    assert [(t["billable"], t["unit_price"], t["amount"]) for t in taxes] == [
        (t["base"], t["rate"], t["tax"]) for t in doc["taxes"]
    ]


# --- notes in the document's language ---------------------------------------------------------

REVERSE_CHARGE, OUTSIDE_SCOPE = (
    default_table().mentions[k] for k in ("reverse_charge", "outside_scope")
)

#: what the rating writes in English, by kind of note: (how the invoice carries it, the
#: English texts that must not reach a French, Indonesian or Korean page)
NOTE_KINDS: dict[str, tuple[str, list[str]]] = {
    "outside_window": (
        "whatsapp.outside_window",
        ["whatsapp.outside_window", "free_form outside the window"],
    ),
    "template_without_category": (
        "whatsapp.template_without_category",
        ["whatsapp.template_without_category", "as marketing"],
    ),
    "licence_violation": (
        "conversations.licence_violation",
        ["conversations.licence_violation", "second concurrent session"],
    ),
    "flag_conflict": (
        "recording.conversations_flag",
        ["recording.conversations_flag", "but the contract has no", "billed as the contract says"],
    ),
    "above_limit": (
        "recording.licence.above_limit",
        ["recording.licence.above_limit", "peak 12 > 10"],
    ),
    "credit_to_buy": (
        "prepaid.credit_to_buy.viber.prepaid",
        ["prepaid.credit_to_buy", "does not cover", "EUR to buy"],
    ),
    "tier": ("price_note", ["graduated", "1000 x 0.045"]),
    "adjustment": ("adjustment_line", ["adjustment for", "Prior-period"]),
    "credit": ("credit_line", ["Credit on invoice", "Credits"]),
    "reverse_charge": ("mention", [REVERSE_CHARGE, "Reverse charge", "recipient"]),
    "outside_scope": ("mention", [OUTSIDE_SCOPE, "Outside the scope"]),
}
EXAMPLES = {
    "whatsapp.outside_window": "2026-10-03T04:00:00Z free_form outside the window",
    "whatsapp.template_without_category": "2026-10-04T05:00:00Z as marketing",
    "conversations.licence_violation": "2026-10-05T06:00:00Z second concurrent session of one user",
    "recording.conversations_flag": (
        "2026-10-06T07:00:00Z recording.started via_conversations=true but the contract has "
        "no conversations: billed as the contract says"
    ),
    "recording.licence.above_limit": "2026-10-01T00:00:00Z peak 12 > 10",
    "prepaid.credit_to_buy.viber.prepaid": "credit 100 does not cover 300: 200 EUR to buy",
}


def noted_invoice(language: str) -> Invoice:
    """``finance_invoice`` with a note of every kind, a partial credit line and the two
    legal mentions (reverse charge and outside the scope, both at 0 %)."""
    base = rich_invoice()
    credit = InvoiceLine(
        kind="adjustment",
        metric="credit",
        description="Credit on invoice EU-2026-000041: goodwill",
        quantity=Decimal(1),
        billable=Decimal(1),
        amount=Decimal("-1.00"),
        period="2026-10",
        adjusts="usage",
    )
    notes = [InvoiceNote(kind=k, count=2, examples=[e]) for k, e in sorted(EXAMPLES.items())]
    total = base.total - 1
    half = (total / 2).quantize(Decimal("0.01"))
    return finance_invoice(
        language,
        inv=base.model_copy(
            update={
                "notes": notes,
                "adjustment_lines": [*base.adjustment_lines, credit],
                "total": total,
            }
        ),
        taxes=[
            {"rate": "0", "base": str(half), "tax": "0.00", "mention": REVERSE_CHARGE},
            {"rate": "0", "base": str(total - half), "tax": "0.00", "mention": OUTSIDE_SCOPE},
        ],
        totals={"net": str(total), "tax": "0.00", "gross": str(total)},
    )


def _words(text: str) -> str:
    return " ".join(plain_spaces(text).split())


@functools.cache
def noted_text(language: str) -> str:
    """The whole PDF's text, lines joined by spaces (a wrapped sentence reads whole)."""
    pages = page_texts(invoice_pdf(noted_invoice(language)))
    return _words(" ".join(pages))


@pytest.mark.parametrize("kind", sorted(NOTE_KINDS))
@pytest.mark.parametrize("language", [x for x in LANGUAGES if x != "en"])
def test_no_english_note_text_remains_in_a_localized_pdf(language: str, kind: str) -> None:
    carried, english = NOTE_KINDS[kind]
    text = noted_text(language)
    loc, en = Localizer(language), Localizer("en")
    for fragment in english:
        assert fragment not in text, (language, kind, fragment)
    if carried in EXAMPLES:  # the note's kind in the language
        assert _words(loc.note_kind(carried)) in text, (language, kind)
        assert _words(en.note_kind(carried)) not in text
    elif carried == "mention":
        assert _words(texts(language).mentions[kind]) in text
    elif carried == "price_note":
        assert _words(loc.price_note("graduated (units): 1000 x 0.045 + 234 x 0.04")) in text
    elif carried == "credit_line":
        shown = loc.label("credit_line", number="EU-2026-000041", reason="goodwill")
        assert _words(shown) in text
        assert _words(texts(language).groups["credits"]) in text  # not a prior period
    elif carried == "adjustment_line":
        assert _words(texts(language).groups["adjustments"]) in text


def test_an_english_pdf_shows_the_notes_in_english() -> None:
    text = noted_text("en")
    assert "WhatsApp \u2013 free-form messages outside the customer service window" in text
    assert "graduated tiers: 1,000 \u00d7 0.045 + 234 \u00d7 0.04" in text
    assert REVERSE_CHARGE in text
    assert "Credit on invoice EU-2026-000041: goodwill" in text


def test_note_kinds_not_in_the_texts_are_shown_by_their_id() -> None:
    loc = Localizer("fr")
    assert loc.note_kind("new.kind") == "Événements signalés (new.kind)"
    assert loc.price_note("a note the documents do not know") == ""
    assert Localizer("en").price_note("a note the documents do not know") == (
        "a note the documents do not know"
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_credited_commitment_is_named_by_what_it_covers(language: str) -> None:
    """A credit note copies the invoice's commitment line: it keeps that commitment's scope,
    so the line is named as on the invoice, not by the plan's name for it."""
    invoice = finance_invoice(language)
    note = credit_note(invoice, "CN-1", date(2026, 11, 20), "goodwill")
    (line,) = [x for x in _json_lines(json.loads(invoice_json(note))) if x["kind"] == "commitment"]
    (original,) = [
        x for x in _json_lines(json.loads(invoice_json(invoice))) if x["kind"] == "commitment"
    ]
    assert line["service"] == original["service"]
    assert line["metric"] not in line["service"]
    assert line["metric"] not in "".join(page_texts(invoice_pdf(note)))
