"""Renderers of invoices: pure functions, deterministic bytes.

- ``invoice_json``: the canonical JSON (sorted keys, Decimals as strings); it is the
  document of record and reads back with ``Invoice.model_validate_json``.
- ``invoice_csv``: one row per line (usage, fees, commitments, adjustments) under a
  header row, amounts as plain decimals, for spreadsheets.
- ``invoice_pdf``: the printable invoice (fpdf2, core fonts). The PDF's creation date is
  the issue date and its file id is derived from its content, so re-rendering gives the
  same bytes.
- ``summary_csv``: one row per invoice of a period, for finance.
- ``manifest``: the close's JSON record: invoices with their totals and the SHA-256 of
  their JSON, failures with their reasons, totals per currency.
- ``explain``: plain text showing, for each line, the rule, the counts and the price row
  (what ``billing explain`` prints).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace

from billing.domain.invoice import Invoice, InvoiceLine, canonical_json, plain

CSV_COLUMNS = (
    "section",
    "kind",
    "metric",
    "dimensions",
    "description",
    "quantity",
    "unit",
    "included",
    "billable",
    "unit_price",
    "price_note",
    "amount",
    "currency",
    "evidence",
    "rule_section",
    "price_row",
    "period",
)

SUMMARY_COLUMNS = (
    "account",
    "period",
    "invoice",
    "issue_date",
    "currency",
    "subtotal",
    "commitments",
    "adjustments",
    "total",
    "lines",
    "notes",
)


def _sections(inv: Invoice) -> list[tuple[str, list[InvoiceLine]]]:
    return [
        ("charges", inv.lines),
        ("commitments", inv.commitment_lines),
        ("adjustments", inv.adjustment_lines),
    ]


def _sum(lines: Iterable[InvoiceLine]) -> Decimal:
    return sum((line.amount for line in lines), Decimal(0))


def _money(value: Decimal, places: int) -> str:
    return plain(value.quantize(Decimal(1).scaleb(-places)))


def _csv_bytes(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


# --- JSON and CSV ---------------------------------------------------------------------------


def invoice_json(inv: Invoice) -> bytes:
    return canonical_json(inv)


def invoice_csv(inv: Invoice) -> bytes:
    rows = []
    for section, lines in _sections(inv):
        for line in lines:
            rows.append(
                (
                    section,
                    line.kind if line.adjusts is None else f"{line.kind}:{line.adjusts}",
                    line.metric,
                    ";".join(f"{k}={v}" for k, v in sorted(line.dims.items())),
                    line.description,
                    plain(line.quantity),
                    line.unit,
                    plain(line.included),
                    plain(line.billable),
                    "" if line.unit_price is None else plain(line.unit_price),
                    line.price_note or "",
                    plain(line.amount),
                    inv.currency,
                    line.evidence,
                    line.rule_section or "",
                    line.price_row or "",
                    line.period or inv.period,
                )
            )
    return _csv_bytes(CSV_COLUMNS, rows)


def summary_csv(invoices: Iterable[Invoice]) -> bytes:
    """One row per invoice, sorted by account then period."""
    rows = []
    for inv in sorted(invoices, key=lambda i: (i.account, i.period)):
        places = inv.minor_unit
        rows.append(
            (
                inv.account,
                inv.period,
                inv.number,
                inv.issue_date.isoformat(),
                inv.currency,
                plain(inv.subtotal),
                _money(_sum(inv.commitment_lines), places),
                _money(_sum(inv.adjustment_lines), places),
                plain(inv.total),
                len(inv.all_lines()),
                sum(n.count for n in inv.notes),
            )
        )
    return _csv_bytes(SUMMARY_COLUMNS, rows)


def manifest(
    period: str,
    invoices: Iterable[Invoice],
    failures: Iterable[Mapping[str, Any]] = (),
    adjustment_failures: Iterable[Mapping[str, Any]] = (),
) -> bytes:
    """The close's record of a period: what was issued (with a SHA-256 of each invoice's
    JSON), what failed and why, and the totals per currency."""
    issued = sorted(invoices, key=lambda i: i.account)
    failed = sorted(
        ({"account": str(f["account"]), "error": str(f.get("error", ""))} for f in failures),
        key=lambda f: f["account"],
    )
    totals: dict[str, Decimal] = {}
    for inv in issued:
        totals[inv.currency] = totals.get(inv.currency, Decimal(0)) + inv.total
    doc = {
        "period": period,
        "issued": len(issued),
        "failed": len(failed),
        "invoices": [
            {
                "account": inv.account,
                "invoice": inv.number,
                "issue_date": inv.issue_date.isoformat(),
                "currency": inv.currency,
                "total": plain(inv.total),
                "lines": len(inv.all_lines()),
                "sha256": hashlib.sha256(invoice_json(inv)).hexdigest(),
            }
            for inv in issued
        ],
        "failures": failed,
        "adjustment_failures": sorted(
            (
                {
                    "account": str(a["account"]),
                    "period": str(a["period"]),
                    "reason": str(a.get("reason", "")),
                    **({"carried_to": str(a["carried_to"])} if "carried_to" in a else {}),
                }
                for a in adjustment_failures
            ),
            key=lambda a: (a["account"], a["period"]),
        ),
        "totals_by_currency": {c: plain(t) for c, t in sorted(totals.items())},
    }
    if not doc["adjustment_failures"]:  # the key appears only when something was left out
        del doc["adjustment_failures"]
    return (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()


# --- PDF ------------------------------------------------------------------------------------

_HEAD = FontFace(emphasis="BOLD", fill_color=(225, 230, 238))
_COLUMNS = (
    ("Service", 25),
    ("Dimensions", 15),
    ("Quantity", 10),
    ("Included", 9),
    ("Billable", 10),
    ("Unit price / note", 22),
    ("Amount", 11),
)


def _latin1(text: str) -> str:
    """Core PDF fonts are Latin-1: anything else becomes '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _grouped(value: Decimal) -> str:
    """1234567.5 -> 1,234,567.5 (exact digits, never exponent notation)."""
    text = plain(value)
    sign = "-" if text.startswith("-") else ""
    whole, _, frac = text.lstrip("-").partition(".")
    whole = f"{int(whole):,}"
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def _price_cell(line: InvoiceLine) -> str:
    parts = []
    if line.unit_price is not None:
        parts.append(plain(line.unit_price) + (" /min" if line.unit == "second" else ""))
    if line.price_note:
        parts.append(line.price_note)
    return "\n".join(parts)


class _InvoicePDF(FPDF):
    footer_text = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=7)
        self.set_text_color(110)
        self.cell(0, 5, _latin1(f"{self.footer_text}  -  page {self.page_no()}/{{nb}}"), align="C")


def _amount_row(pdf: FPDF, label: str, figure: Decimal, currency: str, bold: bool = False) -> None:
    pdf.set_font("Helvetica", style="B" if bold else "", size=11 if bold else 10)
    pdf.cell(220, 6, _latin1(label), align="R")
    pdf.cell(0, 6, f"{_grouped(figure)} {currency}", align="R", new_x="LMARGIN", new_y="NEXT")


def _lines_table(pdf: FPDF, lines: list[InvoiceLine]) -> None:
    pdf.set_font("Helvetica", size=8)
    with pdf.table(
        col_widths=tuple(w for _, w in _COLUMNS),
        headings_style=_HEAD,
        line_height=4.2,
        text_align=("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "LEFT", "RIGHT"),
        padding=1,
    ) as table:
        heading = table.row()
        for name, _ in _COLUMNS:
            heading.cell(name)
        for line in lines:
            metric = f"{line.metric} ({line.period})" if line.period else line.metric
            row = table.row()
            for text in (
                f"{metric}\n{line.description}",
                line.dims_text.replace(", ", "\n"),
                f"{_grouped(line.quantity)} {line.unit}",
                _grouped(line.included),
                _grouped(line.billable),
                _price_cell(line),
                _grouped(line.amount),
            ):
                row.cell(_latin1(text))


def _commitment_text(inv: Invoice) -> list[str]:
    out = []
    for report in inv.commitments:
        text = (
            f"Commitment {report.name} ({report.mode}) on {', '.join(report.metrics)}: "
            f"minimum {plain(report.minimum)}, actual {plain(report.actual)}, "
            f"charged {plain(report.charged)}"
        )
        if report.credit_balance is not None and report.credit_after is not None:
            text += f"; prepaid credit {plain(report.credit_balance)} -> "
            text += plain(report.credit_after)
        if report.credit_to_buy:
            text += f"; credit to buy {plain(report.credit_to_buy)} {inv.currency}"
        out.append(text)
    return out


def invoice_pdf(inv: Invoice) -> bytes:
    pdf = _InvoicePDF(orientation="landscape", unit="mm", format="A4")
    pdf.footer_text = f"{inv.number} - {inv.account} - {inv.period}"
    issued = datetime(inv.issue_date.year, inv.issue_date.month, inv.issue_date.day, tzinfo=UTC)
    pdf.set_creation_date(issued)
    pdf.set_title(_latin1(f"Invoice {inv.number}"))
    pdf.set_subject(_latin1(f"Invoice for {inv.account}, period {inv.period}"))
    pdf.set_author("CPaaS billing")
    pdf.set_creator("CPaaS billing")
    pdf.set_producer("CPaaS billing")
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.set_margins(12, 12, 12)
    pdf.add_page()

    pdf.set_font("Helvetica", style="B", size=18)
    pdf.cell(0, 10, "Invoice", new_x="LMARGIN", new_y="NEXT")
    header = (
        ("Account", inv.account),
        ("Period", inv.period),
        ("Invoice number", inv.number),
        ("Issue date", inv.issue_date.isoformat()),
        ("Currency", inv.currency),
    )
    for label, value in header:
        pdf.set_font("Helvetica", style="B", size=10)
        pdf.cell(35, 6, label)
        pdf.set_font("Helvetica", size=10)
        pdf.cell(0, 6, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    sums = {
        "charges": ("Subtotal", inv.subtotal),
        "commitments": ("Commitments", _sum(inv.commitment_lines)),
        "adjustments": ("Prior-period adjustments", _sum(inv.adjustment_lines)),
    }
    for section, lines in _sections(inv):
        if not lines and section != "charges":
            continue
        pdf.set_font("Helvetica", style="B", size=12)
        pdf.cell(0, 8, section.capitalize(), new_x="LMARGIN", new_y="NEXT")
        if lines:
            _lines_table(pdf, lines)
        pdf.ln(1)
        _amount_row(pdf, *sums[section], inv.currency)
        if section == "commitments":
            pdf.set_font("Helvetica", size=9)
            for text in _commitment_text(inv):
                pdf.multi_cell(0, 5, _latin1(text), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    _amount_row(pdf, f"Total ({inv.currency})", inv.total, inv.currency, bold=True)

    if inv.notes:
        pdf.ln(3)
        pdf.set_font("Helvetica", style="B", size=11)
        pdf.cell(0, 7, "Notes (reported, not charged)", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=9)
        for note in inv.notes:
            text = f"{note.kind}: {note.count}"
            if note.examples:
                text += " - e.g. " + "; ".join(note.examples[:3])
            pdf.multi_cell(0, 5, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    return bytes(pdf.output())


# --- explain --------------------------------------------------------------------------------


def _explain_line(line: InvoiceLine, currency: str) -> list[str]:
    head = f"{line.metric}" + (f" [{line.dims_text}]" if line.dims else "")
    if line.kind != "usage":
        head += f"  ({line.kind}" + (f" of {line.adjusts}, {line.period}" if line.adjusts else "")
        head += ")"
    out = [head, f"  what:     {line.description}"]
    if line.rule:
        out.append(f"  rule:     section {line.rule_section or '-'}: {line.rule}")
    counted = f"  counted:  {line.evidence} event(s) -> quantity {plain(line.quantity)} {line.unit}"
    if line.included:
        counted += f", {plain(line.included)} included"
    counted += f", {plain(line.billable)} billable"
    out.append(counted)
    price = f"  price:    {line.price_row or 'not priced'}"
    if line.unit_price is not None:
        price += f", unit price {plain(line.unit_price)}"
        price += " per minute" if line.unit == "second" else ""
    if line.price_note:
        price += f" ({line.price_note})"
    out.append(price)
    out.append(f"  amount:   {plain(line.amount)} {currency}")
    return out


def explain(inv: Invoice) -> str:
    """Each line with its rule, its counts and its price row, then the totals and notes."""
    out = [
        f"Invoice {inv.number} for {inv.account}, period {inv.period}, "
        f"issued {inv.issue_date.isoformat()}, in {inv.currency} "
        f"(plan effective from {inv.plan_effective_from})",
        "",
    ]
    for title, lines in _sections(inv):
        if not lines:
            continue
        out.append(f"== {title} ==")
        for line in lines:
            out.extend(_explain_line(line, inv.currency))
        out.append("")
    out.extend(_commitment_text(inv))
    out.append(f"subtotal: {plain(inv.subtotal)} {inv.currency}")
    if inv.commitment_lines:
        out.append(f"commitments: {plain(_sum(inv.commitment_lines))} {inv.currency}")
    if inv.adjustment_lines:
        out.append(f"adjustments: {plain(_sum(inv.adjustment_lines))} {inv.currency}")
    out.append(f"total: {plain(inv.total)} {inv.currency}")
    for note in inv.notes:
        out.append(f"note: {note.kind}: {note.count}")
        out.extend(f"  e.g. {example}" for example in note.examples)
    return "\n".join(out) + "\n"
