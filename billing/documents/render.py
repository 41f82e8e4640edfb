"""Renderers of invoices: pure functions, deterministic bytes.

- ``invoice_json``: the canonical JSON (sorted keys, Decimals as strings), every line
  with its ``service`` and ``service_group`` in the invoice's language; it is the
  document of record and reads back with ``Invoice.model_validate_json``.
- ``invoice_csv``: one row per line (usage, fees, commitments, adjustments) and per tax
  rate, for spreadsheets: the columns of a line are exactly the fields of a line of the
  JSON, followed by the document's fields named by their JSON path (``invoice.number``).
- ``invoice_pdf``: the printable document a customer reads (fpdf2, vendored fonts), in
  the invoice's language (``localize.py``): a first page with seller, customer, number,
  dates, totals by service group, taxes and payment instructions, then the lines grouped
  by service under human names. The PDF's creation date is the issue date and its file id
  is derived from its content, so re-rendering gives the same bytes.
- ``summary_csv``: one row per invoice of a period, for finance.
- ``manifest``: the close's JSON record: invoices with their totals and the SHA-256 of
  their JSON, failures with their reasons, totals per currency.
- ``explain``: plain text showing, for each line, the rule, the counts and the price row
  (what ``billing explain`` prints).
"""

from __future__ import annotations

import calendar
import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from fpdf import FPDF

from billing.documents import pdf_table
from billing.documents.localize import (
    COMMITMENTS,
    Localizer,
    allocate,
    group_of,
    group_order,
    named,
)
from billing.domain.invoice import FreeNote, Invoice, InvoiceLine, canonical_json, plain

#: the CSV's line columns: exactly the fields of a line of the JSON (``InvoiceLine``), same
#: names, same values as text (``dims`` as ``key=value;...``, ``price_detail`` as compact
#: JSON with sorted keys, absent as empty)
LINE_COLUMNS = (
    "kind",
    "adjusts",
    "metric",
    "dims",
    "service_group",
    "service",
    "description",
    "quantity",
    "unit",
    "included",
    "billable",
    "unit_price",
    "price_note",
    "price_detail",
    "amount",
    "evidence",
    "rule",
    "rule_section",
    "price_row",
    "period",
)

#: the document's fields repeated on every row, named by their path in the JSON
#: (``invoice.customer.legal_name`` is the JSON's ``customer.legal_name``). A field the
#: JSON leaves out has its implied value: a usage statement without a billing profile is
#: an ``invoice`` in English whose net and gross are its total (no tax stated), and a
#: period in UTC has the calendar month's dates.
DOCUMENT_COLUMNS = (
    "invoice.kind",
    "invoice.number",
    "invoice.status",
    "invoice.account",
    "invoice.period",
    "invoice.issue_date",
    "invoice.due_date",
    "invoice.language",
    "invoice.currency",
    "invoice.seller.legal_name",
    "invoice.seller.tax_id",
    "invoice.customer.legal_name",
    "invoice.customer.tax_id",
    "invoice.customer.purchase_order",
    "invoice.credits",
    "invoice.total",
    "invoice.totals.net",
    "invoice.totals.tax",
    "invoice.totals.gross",
    "invoice.period_dates.first_day",
    "invoice.period_dates.last_day",
    "invoice.period_dates.time_zone",
)

CSV_COLUMNS = LINE_COLUMNS + DOCUMENT_COLUMNS

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
    """The canonical JSON, every line named in the invoice's language (``named``)."""
    return canonical_json(named(inv))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ";".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def _line_cell(line: Mapping[str, Any], column: str) -> str:
    """A line's field as text; ``price_detail`` (nested data) as its compact JSON."""
    value = line.get(column)
    if column == "price_detail" and value is not None:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _cell(value)


def _document_cells(inv: Invoice, doc: Mapping[str, Any], loc: Localizer) -> list[str]:
    totals = _totals(inv, doc)
    first, last, zone = _local_period(inv)
    implied: dict[str, Any] = {
        "kind": "invoice",
        "language": loc.language,
        "totals.net": plain(totals.net),
        "totals.gross": plain(totals.gross),
        "period_dates.first_day": first,
        "period_dates.last_day": last,
        "period_dates.time_zone": zone,
    }
    cells = []
    for column in DOCUMENT_COLUMNS:
        path = column.removeprefix("invoice.")
        value: Any = doc
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        cells.append(_cell(implied.get(path) if value is None else value))
    return cells


def invoice_csv(inv: Invoice) -> bytes:
    """One row per line of the JSON (its fields, ``LINE_COLUMNS``), then one per tax rate
    (kind ``tax``: quantity and billable = the base, unit price = the rate in percent,
    amount = the tax, description = the legal mention), each with the document's fields
    (``DOCUMENT_COLUMNS``): number, status, dates, seller, customer and totals."""
    inv = named(inv)
    doc = inv.model_dump(mode="json")
    loc = Localizer.of(inv)
    header = _document_cells(inv, doc, loc)
    rows: list[list[str]] = []
    for section in ("lines", "commitment_lines", "adjustment_lines"):
        for line in doc[section]:
            rows.append([_line_cell(line, column) for column in LINE_COLUMNS] + header)
    for tax in doc.get("taxes") or ():
        base, rate = _str(tax.get("base")), _str(tax.get("rate"))
        shown_base = loc.money(Decimal(base or "0"), inv.currency, inv.minor_unit)
        row = {
            "kind": "tax",
            "metric": "tax",
            "service_group": loc.label("tax"),
            "service": loc.label("tax_line", rate=loc.percent(rate or "0"), base=shown_base),
            "description": tax.get("mention"),
            "quantity": base,
            "included": "0",
            "billable": base,
            "unit_price": rate,
            "amount": tax.get("tax"),
            "evidence": 0,
            "period": inv.period,
        }
        rows.append([_cell(row.get(column)) for column in LINE_COLUMNS] + header)
    return _csv_bytes(CSV_COLUMNS, rows)


def _local_period(inv: Invoice) -> tuple[str, str, str]:
    """First and last day of the invoiced period and the zone of those dates."""
    if inv.period_dates is not None:
        dates = inv.period_dates
        return dates.first_day.isoformat(), dates.last_day.isoformat(), dates.time_zone
    year, month = (int(part) for part in inv.period.split("@")[0].split("-"))
    last = calendar.monthrange(year, month)[1]
    return f"{year:04d}-{month:02d}-01", f"{year:04d}-{month:02d}-{last:02d}", "UTC"


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


#: why an account's document is a usage statement: reported in the manifest, the close
#: result, the finance summary and ``billing invoices list`` (a failure instead where the
#: stage sets ``require_billing_profile``)
NO_PROFILE_NOTE = "usage statement, not an invoice: no billing profile in force for the period"


def manifest(
    period: str,
    invoices: Iterable[Invoice],
    failures: Iterable[Mapping[str, Any]] = (),
    adjustment_failures: Iterable[Mapping[str, Any]] = (),
    live_differences: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
    id_conflicts: Iterable[Mapping[str, Any]] = (),
) -> bytes:
    """The close's record of a period: what was issued (with a SHA-256 of each invoice's
    JSON), what failed and why, the totals per currency, where the live view of usage
    differed from the invoices (per account and metric line; empty when it agrees), the
    accounts whose document is a usage statement, not an invoice, because they have no
    billing profile (``without_billing_profile``; empty when every account has one), and
    the event ids the close's id audit found reused (``id_conflicts``, only when there are
    some: each id and where its versions are stored; none of them is billed)."""
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
        "without_billing_profile": [
            {"account": inv.account, "invoice": inv.number, "note": NO_PROFILE_NOTE}
            for inv in issued
            if inv.totals is None
        ],
        "live_view_differences": {
            account: list(diffs)
            for account, diffs in sorted((live_differences or {}).items())
            if diffs
        },
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
    conflicts = sorted((dict(c) for c in id_conflicts), key=lambda c: str(c["id"]))
    if conflicts:
        doc["id_conflicts"] = conflicts
    return (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()


# --- PDF ------------------------------------------------------------------------------------
#
# First page: seller and customer, number (DRAFT while a draft), dates, the totals by
# service group (net, tax, gross), the tax lines with their mentions and the payment
# instructions. Then the lines grouped by service, with human names in the document's
# language. Fonts are vendored (``fonts/``, SIL OFL): Noto Sans, and Noto Sans CJK KR as
# the fallback for Hangul, loaded only when the document has such characters.

FONTS_DIR = Path(__file__).resolve().parent / "fonts"
_FONT = "NotoSans"
_CJK_FONT = "NotoSansCJKkr"
_HEAD_FILL = (225, 230, 238)
_GREY = 110
_LEFT = 15.0
_WIDTH = 180.0  # A4 portrait less the margins
_RIGHT_COLUMN = 110.0
_SUMMARY_TAXED = pdf_table.Grid((90, 30, 30, 30), "LRRR", line_height=5, heading_fill=_HEAD_FILL)
_SUMMARY_UNTAXED = pdf_table.Grid((150, 30), "LR", line_height=5, heading_fill=_HEAD_FILL)
_DETAILS = pdf_table.Grid(
    (70, 24, 20, 22, 24, 20), "LRRRRR", line_height=4.2, heading_fill=_HEAD_FILL
)


def _needs_cjk(text: str) -> bool:
    """Characters that only the CJK font has: Hangul, CJK symbols and ideographs, kana."""
    return any(ord(ch) >= 0x2E80 for ch in text)


def _add_fonts(pdf: FPDF, cjk: bool) -> None:
    pdf.add_font(_FONT, "", str(FONTS_DIR / "NotoSans-Regular.ttf"))
    pdf.add_font(_FONT, "B", str(FONTS_DIR / "NotoSans-Bold.ttf"))
    if cjk:
        pdf.add_font(_CJK_FONT, "", str(FONTS_DIR / "NotoSansCJKkr-Regular.ttf"))
        pdf.add_font(_CJK_FONT, "B", str(FONTS_DIR / "NotoSansCJKkr-Bold.ttf"))
        pdf.set_fallback_fonts([_CJK_FONT], exact_match=False)


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _address(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if v not in (None, "")]
    return str(value).splitlines() if value else []


def _period_text(loc: Localizer, period: str, dates: Mapping[str, Any] | None) -> str:
    """The period as the PDF names it; outside UTC with its local dates and zone."""
    if not dates:
        return loc.period(period)
    first, last = loc.date(dates["first_day"]), loc.date(dates["last_day"])
    return f"{loc.period(period)} ({first} - {last}, {dates['time_zone']})"


@dataclass(frozen=True)
class _Totals:
    net: Decimal
    tax: Decimal | None  # None: the invoice states no tax (documents before taxes)
    gross: Decimal


def _totals(inv: Invoice, doc: Mapping[str, Any]) -> _Totals:
    """The invoice's ``totals`` when it has them, else its total as net and gross."""
    given = doc.get("totals") or {}
    net = Decimal(str(given["net"])) if given.get("net") is not None else inv.total
    tax = Decimal(str(given["tax"])) if given.get("tax") is not None else None
    if given.get("gross") is not None:
        gross = Decimal(str(given["gross"]))
    else:
        gross = net + (tax or Decimal(0))
    return _Totals(net, tax, gross)


@dataclass(frozen=True)
class _GroupRow:
    group: str
    net: Decimal
    tax: Decimal | None
    gross: Decimal | None


def group_rows(inv: Invoice) -> list[_GroupRow]:
    """Net, tax and gross per service group. The tax of a group is the invoice's tax shared
    out by net amount when the invoice has a single rate (the shares add up to the tax
    exactly); with several rates it is not split (``None``)."""
    doc = inv.model_dump(mode="json")
    nets: dict[str, Decimal] = {}
    for line in inv.all_lines():
        key = group_of(line)
        nets[key] = nets.get(key, Decimal(0)) + line.amount
    order = [g for g in group_order() if g in nets]
    totals = _totals(inv, doc)
    rates = {str(t.get("rate")) for t in doc.get("taxes") or ()}
    shares: list[Decimal | None] = [None] * len(order)
    if totals.tax is not None and len(rates) <= 1:
        shares = list(allocate(totals.tax, [nets[g] for g in order], inv.minor_unit))
    return [
        _GroupRow(g, nets[g], tax, None if tax is None else nets[g] + tax)
        for g, tax in zip(order, shares, strict=True)
    ]


class _InvoicePDF(FPDF):
    footer_text = ""
    page_label = "{page}/{pages}"

    def _render_styled_text_line(self, *args: Any, **kwargs: Any) -> Any:
        # fpdf2 2.8.9: a line whose text is drawn in the fallback font leaves that font
        # selected in the content stream while fpdf2 records the main font as selected, so
        # the next line in the main font would be drawn with the fallback's glyphs. Selecting
        # the font again at every line avoids it (tests: Korean then figures in bold).
        self.current_font_is_set_on_page = False
        return super()._render_styled_text_line(*args, **kwargs)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(_FONT, size=7)
        self.set_text_color(_GREY)
        page = self.page_label.format(page=self.page_no(), pages="{nb}")
        self.cell(0, 5, f"{self.footer_text}  ·  {page}", align="C")
        self.set_text_color(0)


def _put(
    pdf: FPDF,
    x: float,
    y: float,
    w: float,
    text: str,
    *,
    size: float = 9,
    bold: bool = False,
    align: str = "L",
    color: int | tuple[int, int, int] = 0,
    h: float | None = None,
) -> float:
    """Writes wrapped text at (x, y); returns the y below it."""
    pdf.set_xy(x, y)
    pdf.set_font(_FONT, style="B" if bold else "", size=size)
    if isinstance(color, tuple):
        pdf.set_text_color(*color)
    else:
        pdf.set_text_color(color)
    pdf_table.put_text(pdf, w, h or size * 0.5, text, align)
    pdf.set_text_color(0)
    return float(pdf.get_y())


def _party(
    pdf: FPDF, loc: Localizer, party: Mapping[str, Any], x: float, y: float, w: float
) -> float:
    if party.get("legal_name"):
        y = _put(pdf, x, y, w, _str(party["legal_name"]), size=10.5, bold=True)
    for line in _address(party.get("address")):
        y = _put(pdf, x, y, w, line)
    if party.get("country"):
        y = _put(pdf, x, y, w, loc.country(_str(party["country"])))
    if party.get("tax_id"):
        y = _put(pdf, x, y, w, f"{loc.label('tax_id')}: {party['tax_id']}")
    if party.get("email"):
        y = _put(pdf, x, y, w, f"{loc.label('email')}: {party['email']}")
    return y


def _meta_rows(pdf: FPDF, rows: Iterable[tuple[str, str]], x: float, y: float) -> float:
    for label, value in rows:
        if not value:
            continue
        _put(pdf, x, y, 38, label, bold=True)
        y = max(_put(pdf, x + 38, y, _LEFT + _WIDTH - x - 38, value), y + 4.5)
    return y


def _first_page(pdf: FPDF, inv: Invoice, doc: Mapping[str, Any], loc: Localizer) -> None:
    places = inv.minor_unit
    money = partial(loc.money, currency=inv.currency, places=places)
    status = _str(doc.get("status"))
    credit_note = doc.get("kind") == "credit_note"
    number = doc.get("number")
    shown_number = loc.label("draft") if status == "draft" or not number else _str(number)
    right_w = _LEFT + _WIDTH - _RIGHT_COLUMN

    top = 15.0
    seller = doc.get("seller") or {}
    left_y = _party(pdf, loc, seller, _LEFT, top, 90) if seller else top
    title = loc.label("credit_note" if credit_note else "invoice")
    right_y = _put(pdf, _RIGHT_COLUMN, top, right_w, title, size=20, bold=True, align="R")
    right_y = _put(
        pdf, _RIGHT_COLUMN, right_y + 1, right_w, shown_number, size=12, bold=True, align="R"
    )
    if status == "void":
        right_y = _put(
            pdf, _RIGHT_COLUMN, right_y, right_w, loc.label("void"), size=12, bold=True,
            align="R", color=(180, 20, 20),
        )  # fmt: skip

    y = max(left_y, right_y) + 8
    customer = doc.get("customer") or {"legal_name": inv.account}
    block_y = _put(pdf, _LEFT, y, 90, loc.label("customer"), size=8, bold=True, color=_GREY)
    left_y = _party(pdf, loc, customer, _LEFT, block_y + 1, 90)
    right_y = _meta_rows(
        pdf,
        (
            (loc.label("number"), "" if shown_number == loc.label("draft") else shown_number),
            (loc.label("credits"), _str(doc.get("credits")) if credit_note else ""),
            (loc.label("reason"), _str(doc.get("reason")) if credit_note else ""),
            (loc.label("issue_date"), loc.date(doc.get("issue_date"))),
            (loc.label("due_date"), loc.date(doc.get("due_date"))),
            (loc.label("period"), _period_text(loc, inv.period, doc.get("period_dates"))),
            (loc.label("account"), inv.account),
            (loc.label("purchase_order"), _str(customer.get("purchase_order"))),
            (loc.label("currency"), inv.currency),
        ),
        _RIGHT_COLUMN,
        y,
    )
    pdf.set_y(max(left_y, right_y) + 8)

    # --- totals by service group
    pdf.set_x(_LEFT)
    pdf.set_font(_FONT, style="B", size=12)
    pdf.cell(0, 8, loc.label("summary"), new_x="LMARGIN", new_y="NEXT")
    rows = group_rows(inv)
    totals = _totals(inv, doc)
    taxed = totals.tax is not None  # a statement without a billing profile states no tax
    pdf.set_font(_FONT, size=9)
    names = ("service", "net", "tax", "gross") if taxed else ("service", "net")
    grid = _SUMMARY_TAXED if taxed else _SUMMARY_UNTAXED
    body = []
    for row in rows:
        cells = [loc.group(row.group), money(row.net)]
        if taxed:
            cells.append("\u2013" if row.tax is None else money(row.tax))
            cells.append("\u2013" if row.gross is None else money(row.gross))
        body.append(cells)
    pdf_table.draw(pdf, grid, [loc.label(name) for name in names], body)
    pdf.ln(2)

    # --- totals and tax lines
    x, w_label = 80.0, 80.0
    y = float(pdf.get_y())

    def amount_row(label: str, value: Decimal, bold: bool = False, size: float = 9.5) -> None:
        nonlocal y
        _put(pdf, x, y, w_label, label, bold=bold, size=size, align="R")
        y = _put(pdf, x + w_label, y, _LEFT + _WIDTH - x - w_label, money(value), bold=bold,
                 size=size, align="R")  # fmt: skip

    amount_row(loc.label("total_net"), totals.net)
    for tax in doc.get("taxes") or ():
        rate = loc.percent(_str(tax.get("rate") or "0"))
        base = money(Decimal(str(tax.get("base") or "0")))
        amount_row(loc.label("tax_line", rate=rate, base=base), Decimal(str(tax.get("tax") or "0")))
        if tax.get("mention"):
            y = _put(pdf, _LEFT + 20, y, _WIDTH - 20, loc.mention(_str(tax["mention"])), size=7.5,
                     align="R", color=_GREY)  # fmt: skip
    if totals.tax is not None:
        amount_row(loc.label("total_tax"), totals.tax)
    label = "total_credited" if credit_note else "total_gross"
    amount_row(loc.label(label), totals.gross, bold=True, size=11)
    if len({str(t.get("rate")) for t in doc.get("taxes") or ()}) == 1:
        y = _put(pdf, _LEFT, y + 1, _WIDTH, loc.label("tax_group_note"), size=7, color=_GREY)
    y += 4

    # --- state and payment
    if status == "draft":
        y = _put(pdf, _LEFT, y, _WIDTH, loc.label("draft_note"), bold=True, color=(180, 20, 20))
    elif status == "void":
        y = _put(pdf, _LEFT, y, _WIDTH, loc.label("void_note"), bold=True, color=(180, 20, 20))
    if credit_note:
        note = loc.label("credit_note_note", number=_str(doc.get("credits")))
        y = _put(pdf, _LEFT, y, _WIDTH, note) + 2
        pdf.set_y(y)
        return
    y += 2
    y = _put(pdf, _LEFT, y, _WIDTH, loc.label("payment"), size=11, bold=True) + 1
    due = doc.get("due_date")
    text = (
        loc.label("pay_by", amount=money(totals.gross), date=loc.date(due))
        if due
        else loc.label("pay", amount=money(totals.gross))
    )
    y = _put(pdf, _LEFT, y, _WIDTH, text) + 1
    bank = seller.get("bank") or {}
    y = _meta_rows(
        pdf,
        (
            (loc.label("bank"), _str(bank.get("bank_name"))),
            (loc.label("iban"), _str(bank.get("iban"))),
            (loc.label("bic"), _str(bank.get("bic"))),
            (loc.label("reference"), shown_number),
        ),
        _LEFT,
        y,
    )
    pdf.set_y(y + 2)


def _price_cell(line: InvoiceLine, loc: Localizer) -> str:
    if line.unit_price is not None:
        per = f" {loc.label('per_minute')}" if line.unit == "second" else ""
        return loc.number(line.unit_price) + per
    if line.price_detail is None:  # a document written before price_detail
        if line.amount == 0 and (line.price_note or "").startswith("not charged"):
            return loc.label("not_charged")
    elif isinstance(line.price_detail, FreeNote) and line.amount == 0:
        return loc.label("not_charged")
    return loc.line_note(line)  # the tier computation


def _columns_explain(line: InvoiceLine) -> bool:
    """Whether a line's billable quantity times its unit price (per minute for seconds)
    gives its amount to the last digit; a line without a unit price shows its computation
    in the price column already (``_price_cell``)."""
    if line.unit_price is None or line.price_detail is None:
        return True
    per = Decimal(60) if line.unit == "second" else Decimal(1)
    exponent = line.amount.as_tuple().exponent
    step = Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)  # its last digit
    return abs(line.billable * line.unit_price / per - line.amount) < step


def _quantity(value: Decimal, unit: str, loc: Localizer) -> str:
    shown = loc.unit(unit)
    return f"{loc.number(value)} {shown}".strip()


def _details(pdf: FPDF, inv: Invoice, loc: Localizer) -> None:
    money = partial(loc.money, currency=inv.currency, places=inv.minor_unit)
    pdf.set_font(_FONT, style="B", size=14)
    pdf.cell(0, 10, loc.label("details"), new_x="LMARGIN", new_y="NEXT")
    by_group: dict[str, list[InvoiceLine]] = {}
    for line in inv.all_lines():
        by_group.setdefault(group_of(line), []).append(line)
    for group in (g for g in group_order() if g in by_group):
        lines = by_group[group]
        pdf.set_font(_FONT, style="B", size=11)
        pdf.cell(0, 8, loc.group(group), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(_FONT, size=8)
        body = []
        for line in lines:
            name = loc.line_name(line)
            if line.dims:
                name += "\n" + loc.dims(line.dims)
            if not _columns_explain(line):  # e.g. a prorated fee: how, under its name
                name += "\n" + loc.line_note(line)
            body.append(
                (
                    name,
                    _quantity(line.quantity, line.unit, loc),
                    loc.number(line.included),
                    loc.number(line.billable),
                    _price_cell(line, loc),
                    money(line.amount),
                )
            )
        names = ("service", "quantity", "included", "billable", "unit_price", "amount")
        pdf_table.draw(pdf, _DETAILS, [loc.label(name) for name in names], body)
        pdf.ln(1)
        pdf.set_font(_FONT, style="B", size=9)
        pdf.cell(_WIDTH - 30, 6, loc.label("net"), align="R")
        pdf.cell(30, 6, money(_sum(lines)), align="R", new_x="LMARGIN", new_y="NEXT")
        if group == COMMITMENTS and inv.kind != "credit_note":  # how the invoice settled them
            pdf.set_font(_FONT, size=8)
            for text in _commitment_reports(inv, loc):
                pdf.multi_cell(0, 4.5, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)

    if inv.notes:
        pdf.ln(2)
        pdf.set_font(_FONT, style="B", size=11)
        pdf.cell(0, 7, loc.label("notes"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(_FONT, size=8.5)
        for note in inv.notes:
            pdf.multi_cell(0, 4.5, loc.note(note), new_x="LMARGIN", new_y="NEXT")


def _commitment_reports(inv: Invoice, loc: Localizer) -> list[str]:
    """How each minimum commitment was settled, in the document's language."""
    money = partial(loc.money, currency=inv.currency, places=inv.minor_unit)
    out = []
    for report in inv.commitments:
        text = loc.label(
            "commitment_report",
            name=report.name,
            metrics=", ".join(loc.metric(m) for m in report.metrics),
            minimum=money(report.minimum),
            actual=money(report.actual),
            charged=money(report.charged),
        )
        if report.credit_balance is not None and report.credit_after is not None:
            before, after = money(report.credit_balance), money(report.credit_after)
            text += "; " + loc.label("prepaid_credit", before=before, after=after)
        if report.credit_to_buy:
            text += "; " + loc.label("credit_to_buy", amount=money(report.credit_to_buy))
        out.append(text)
    return out


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
    """The printable document, in the invoice's ``language`` (English when it has none)."""
    doc = inv.model_dump(mode="json")
    loc = Localizer.of(inv)
    credit_note = doc.get("kind") == "credit_note"
    number = _str(doc.get("number")) or loc.label("draft")
    title = f"{loc.label('credit_note' if credit_note else 'invoice')} {number}"

    pdf = _InvoicePDF(orientation="portrait", unit="mm", format="A4")
    _add_fonts(pdf, cjk=loc.language == "ko" or _needs_cjk(json.dumps(doc, ensure_ascii=False)))
    pdf.footer_text = f"{number} · {inv.account} · {inv.period}"
    pdf.page_label = loc.label("page", page="{page}", pages="{pages}")
    issued = datetime(inv.issue_date.year, inv.issue_date.month, inv.issue_date.day, tzinfo=UTC)
    pdf.set_creation_date(issued)
    pdf.set_lang(loc.language)
    pdf.set_title(title)
    pdf.set_subject(f"{title} · {inv.account} · {inv.period}")
    pdf.set_author("CPaaS billing")
    pdf.set_creator("CPaaS billing")
    pdf.set_producer("CPaaS billing")
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.set_margins(_LEFT, 15, _LEFT)
    pdf.add_page()
    _first_page(pdf, inv, doc, loc)
    pdf.add_page()
    _details(pdf, inv, loc)
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
        f"Invoice {inv.number or 'DRAFT'} for {inv.account}, period {inv.period}, "
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
