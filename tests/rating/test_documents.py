"""Invoice documents: canonical JSON, CSV, PDF, finance summary, manifest, explanations."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader

from billing.documents.localize import named
from billing.documents.render import (
    CSV_COLUMNS,
    explain,
    invoice_csv,
    invoice_json,
    invoice_pdf,
    manifest,
    summary_csv,
)
from billing.domain.invoice import Invoice
from billing.domain.rating import adjustment_lines, build_invoice, rate
from billing.domain.usage import Note, Usage
from tests.rating.helpers import plan, usage

ROOT = Path(__file__).resolve().parents[2]


def rich_invoice(account: str = "acme", lines: int = 0) -> Invoice:
    """Usage, tiers, a package, voice, a post-pay commitment, a note and an adjustment."""
    p = plan(
        account=account,
        effective_from="2026-09",
        prices={
            "sms.mt": [
                {
                    "match": {"country": "FR"},
                    "tiers": [{"up_to": 1000, "unit_price": "0.045"}, {"unit_price": "0.04"}],
                },
                {"unit_price": "0.0725"},
            ],
            "voice.ivr": "0.0130",
            "viber": "0.0120",
        },
        packages={
            "whatsapp.mau": {"monthly_fee": "150", "included": 5000, "overage_unit_price": "0.03"}
        },
        fees=[
            {
                "code": "byoc.setup",
                "description": "BYOC setup - one time",
                "amount": "500",
                "billed": "once",
                "period": "2026-10",
            }
        ],
        commitments=[
            {"name": "viber.minimum", "metrics": ["viber"], "minimum": "300", "mode": "post_pay"}
        ],
    )
    figures = {
        ("sms.mt", (("country", "FR"), ("network", "orange"))): 1234,
        ("sms.mt", (("country", "DE"),)): 321,
        ("voice.ivr", (("country", "FR"), ("direction", "outbound"))): 5430,
        ("viber", ()): 2500,
        ("push", ()): 99,
    }
    for i in range(lines):
        figures[("sms.mt", (("country", f"Z{i % 10}"), ("network", f"n{i}")))] = i + 1
    u = usage(figures)
    for i in range(6001):
        u.add_distinct("whatsapp.mau", (), f"u{i}")
    u.add_note(Note("whatsapp.outside_window", 1_791_000_000_000, "free_form outside the window"))
    adj = adjustment_lines(
        "2026-09",
        rate(usage({("sms.mt", (("country", "DE"),)): 20}, "2026-09"), p),
        rate(usage({("sms.mt", (("country", "DE"),)): 10}, "2026-09"), p),
    )
    return build_invoice(account, "2026-10", p, u, adjustments=adj)


@pytest.fixture(scope="module")
def inv() -> Invoice:
    return rich_invoice()


def test_the_fixture_has_every_section(inv: Invoice) -> None:
    assert inv.lines
    assert inv.commitment_lines
    assert inv.adjustment_lines
    assert inv.notes
    assert str(inv.total) == str(sum(x.amount for x in inv.all_lines()))


# --- JSON -----------------------------------------------------------------------------------


def test_json_is_canonical_and_reads_back(inv: Invoice) -> None:
    body = invoice_json(inv)
    assert body == invoice_json(rich_invoice())
    assert Invoice.model_validate_json(body) == named(inv)
    assert invoice_json(Invoice.model_validate_json(body)) == body
    doc = json.loads(body)
    assert list(doc) == sorted(doc)
    assert doc["total"] == str(inv.total)
    assert isinstance(doc["lines"][0]["amount"], str)
    assert doc["issue_date"] == "2026-11-01"
    assert doc["number"] == "INV-2026-10-acme"
    assert body.endswith(b"\n")
    assert b"E+" not in body
    assert b"E-" not in body


def test_tiny_quantities_serialize_without_exponents() -> None:
    u = usage({("recording.storage_gb", ()): Decimal(512) / 10**9})
    inv = build_invoice("acme", "2026-10", plan(prices={"recording.storage_gb": "0.01"}), u)
    body = invoice_json(inv)
    assert b'"quantity": "0.000000512"' in body
    assert Invoice.model_validate_json(body) == named(inv)


# --- CSV ------------------------------------------------------------------------------------


def test_csv_has_a_header_and_one_row_per_line(inv: Invoice) -> None:
    rows = list(csv.DictReader(io.StringIO(invoice_csv(inv).decode())))
    assert len(rows) == len(inv.all_lines())
    assert tuple(rows[0]) == CSV_COLUMNS
    assert sum(Decimal(r["amount"]) for r in rows) == inv.total
    assert {r["kind"] for r in rows} == {"usage", "fee", "commitment", "adjustment"}
    adj = next(r for r in rows if r["kind"] == "adjustment")
    assert (adj["adjusts"], adj["period"], adj["dims"]) == ("usage", "2026-09", "country=DE")
    assert adj["service_group"] == "Prior-period adjustments"
    fr = next(r for r in rows if r["dims"] == "country=FR")
    assert fr["amount"] == "54.36"
    assert fr["unit_price"] == ""
    assert invoice_csv(inv) == invoice_csv(rich_invoice())


def test_summary_csv_one_row_per_invoice() -> None:
    a, b = rich_invoice("bravo"), rich_invoice("alpha")
    rows = list(csv.DictReader(io.StringIO(summary_csv([a, b]).decode())))
    assert [r["account"] for r in rows] == ["alpha", "bravo"]
    assert rows[0]["total"] == str(b.total)
    assert rows[0]["invoice"] == "INV-2026-10-alpha"
    assert Decimal(rows[0]["subtotal"]) + Decimal(rows[0]["commitments"]) + Decimal(
        rows[0]["adjustments"]
    ) == Decimal(rows[0]["total"])


def test_manifest_lists_invoices_failures_and_totals() -> None:
    a, b = rich_invoice("bravo"), rich_invoice("alpha")
    doc = json.loads(manifest("2026-10", [a, b], [{"account": "zulu", "error": "RatingError: x"}]))
    assert (doc["period"], doc["issued"], doc["failed"]) == ("2026-10", 2, 1)
    assert [i["account"] for i in doc["invoices"]] == ["alpha", "bravo"]
    assert doc["failures"] == [{"account": "zulu", "error": "RatingError: x"}]
    assert doc["totals_by_currency"] == {"EUR": str(a.total + b.total)}
    import hashlib

    assert doc["invoices"][0]["sha256"] == hashlib.sha256(invoice_json(b)).hexdigest()
    assert manifest("2026-10", [b, a], []) == manifest("2026-10", [a, b], ())


# --- PDF ------------------------------------------------------------------------------------


def pdf_text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


def test_pdf_is_byte_identical_for_the_same_invoice(inv: Invoice) -> None:
    assert invoice_pdf(inv) == invoice_pdf(rich_invoice())


def test_pdf_is_byte_identical_across_processes(inv: Invoice) -> None:
    script = (
        "import sys, hashlib; from tests.rating.test_documents import rich_invoice; "
        "from billing.documents.render import invoice_pdf; "
        "sys.stdout.write(hashlib.sha256(invoice_pdf(rich_invoice())).hexdigest())"
    )
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(out.stdout)
    import hashlib

    assert digests == {hashlib.sha256(invoice_pdf(inv)).hexdigest()}


def test_pdf_text_has_account_period_number_and_total(inv: Invoice) -> None:
    body = invoice_pdf(inv)
    assert body.startswith(b"%PDF-")
    text = pdf_text(body)
    for needle in (
        "acme",
        "2026-10",
        "October 2026",
        "INV-2026-10-acme",
        "November 1, 2026",
        "EUR",
        f"€{inv.total:,}",
        "Minimum commitments",
        "Prior-period adjustments",
        "SMS \u2013 messages sent (MT)",
        "Country: France",
        "WhatsApp \u2013 free-form messages outside the customer service window",
    ):
        assert needle in text, needle
    assert "sms.mt" not in text  # human names, not metric ids
    reader = PdfReader(io.BytesIO(body))
    assert reader.metadata is not None
    assert reader.metadata.title == "Invoice INV-2026-10-acme"
    assert reader.metadata.creation_date is not None
    assert reader.metadata.creation_date.isoformat().startswith("2026-11-01T00:00:00")


def test_long_invoices_run_over_several_pages() -> None:
    long = rich_invoice(lines=120)
    reader = PdfReader(io.BytesIO(invoice_pdf(long)))
    assert len(reader.pages) > 2
    assert f"€{long.total:,}" in pdf_text(invoice_pdf(long))


def test_pdf_survives_text_outside_latin1() -> None:
    p = plan(
        fees=[
            {
                "code": "setup",
                "description": "Mise en service \u2013 \u2713 \u4e2d",
                "amount": "1",
                "billed": "monthly",
            }
        ]
    )
    body = invoice_pdf(build_invoice("acme", "2026-10", p, Usage("2026-10")))
    assert "Mise en service" in pdf_text(body)


# --- explain --------------------------------------------------------------------------------


def test_explain_shows_rule_counts_and_price_row(inv: Invoice) -> None:
    text = explain(inv)
    assert text.startswith("Invoice INV-2026-10-acme for acme, period 2026-10")
    block = text.split("sms.mt [country=FR]")[1].split("\n\n")[0]
    assert "section 3: SMS parts submitted to the operator" in block
    assert "1 event(s) -> quantity 1234 unit" in block
    assert "sms.mt[country=FR]" in block
    assert "1000 x 0.045 + 234 x 0.04" in block
    assert "amount:   54.36 EUR" in block
    assert "voice.ivr [country=FR, direction=outbound]" in text
    assert "unit price 0.0130 per minute" in text
    assert "(adjustment of usage, 2026-09)" in text
    assert "commitment viber.minimum (post_pay)" in text.lower()
    assert f"total: {inv.total} EUR" in text
    assert "note: whatsapp.outside_window: 1" in text


def test_the_csv_states_the_period_in_the_accounts_calendar() -> None:
    from datetime import date

    from billing.domain.invoice import PeriodDates

    def period_of(inv: Invoice) -> set[tuple[str, str, str]]:
        rows = list(csv.DictReader(io.StringIO(invoice_csv(inv).decode())))

        def get(r: dict[str, str], d: str) -> str:
            return r[f"invoice.period_dates.{d}"]

        return {(get(r, "first_day"), get(r, "last_day"), get(r, "time_zone")) for r in rows}

    utc = rich_invoice()
    assert period_of(utc) == {("2026-10-01", "2026-10-31", "UTC")}
    seoul = utc.model_copy(
        update={
            "period_dates": PeriodDates(
                time_zone="Asia/Seoul", first_day=date(2026, 10, 1), last_day=date(2026, 10, 31)
            )
        }
    )
    assert period_of(seoul) == {("2026-10-01", "2026-10-31", "Asia/Seoul")}
