"""The invoice PDF's tables and wrapped text (``billing.documents.pdf_table``) put every
piece of text where fpdf2's ``FPDF.table`` and ``multi_cell`` put it: same lines, same
wraps, same page breaks with the heading repeated, the fallback font's text measured
like the main font's."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from fpdf import FPDF
from fpdf.fonts import FontFace
from pypdf import PdfReader

from billing.documents import pdf_table
from billing.documents.render import _FONT, _add_fonts, _InvoicePDF

FILL = (225, 230, 238)
HEADING = ["Service", "Quantity", "Amount"]

Placed = tuple[int, str, float, float]


def _rows(count: int) -> list[list[str]]:
    """Short numbers, names that wrap at spaces, a word wider than its column, Hangul in
    the fallback font, several lines per cell."""
    return [
        [
            f"Line {i}"
            + " word" * (i % 17)
            + "\nCountry: 한국어 번호" * (i % 3)
            + ("\n" + "x" * (i * 2) if i % 5 == 0 else ""),
            f"{i * 1000:,}",
            f"€{i}.00",
        ]
        for i in range(count)
    ]


def _document(draw: Callable[[FPDF], None]) -> bytes:
    pdf = _InvoicePDF(orientation="portrait", unit="mm", format="A4")
    _add_fonts(pdf, cjk=True)
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.set_margins(15, 15, 15)
    pdf.add_page()
    pdf.set_font(_FONT, size=8)
    pdf.set_y(272)  # room for the heading (6.2 mm) but not with a first row: both go over
    draw(pdf)
    pdf.set_font(_FONT, size=8)
    pdf.cell(0, 5, "below the table")
    return bytes(pdf.output())


def _placed(data: bytes) -> list[Placed]:
    """Every piece of text with its page and position (points, to a tenth)."""
    out: list[Placed] = []
    for number, page in enumerate(PdfReader(io.BytesIO(data)).pages):

        def visit(text: str, cm: object, tm: list[float], *_: object, n: int = number) -> None:
            if text.strip():
                out.append((n, text.strip(), round(tm[4], 1), round(tm[5], 1)))

        page.extract_text(visitor_text=visit)
    return out


def _fpdf2_table(widths: tuple[int, ...], aligns: tuple[str, ...], rows: list[list[str]]):
    def draw(pdf: FPDF) -> None:
        with pdf.table(
            col_widths=widths,
            headings_style=FontFace(emphasis="BOLD", fill_color=FILL),
            line_height=4.2,
            text_align=aligns,
            padding=1,
        ) as table:
            for cells in [HEADING, *rows]:
                row = table.row()
                for text in cells:
                    row.cell(text)

    return draw


@pytest.mark.parametrize("count", [1, 12, 90])
def test_a_table_puts_its_text_where_fpdf2s_table_did(count: int) -> None:
    rows = _rows(count)
    grid = pdf_table.Grid((70, 20, 20), "LRR", line_height=4.2, heading_fill=FILL)
    expected = _placed(_document(_fpdf2_table((70, 20, 20), ("LEFT", "RIGHT", "RIGHT"), rows)))
    drawn = _placed(_document(lambda pdf: pdf_table.draw(pdf, grid, HEADING, rows)))

    assert drawn == expected
    pages = {page for page, text, *_ in drawn if text.startswith("Line ")}
    headings = [page for page, text, *_ in drawn if text == "Service"]
    assert headings == sorted(pages)  # the heading on top of every page the table spans
    assert min(pages) == 1  # never alone at the bottom of the first
    if count == 90:
        assert len(pages) > 2
        assert any(text.startswith("xxxx") for _, text, *_ in drawn)  # a word cut in two


@pytest.mark.parametrize("align", ["L", "R", "C"])
def test_wrapped_text_is_where_multi_cell_put_it(align: str) -> None:
    text = "Orange Business Services international wholesale 한국어 interconnect " * 3

    def with_multi_cell(pdf: FPDF) -> None:
        pdf.set_x(40)
        pdf.multi_cell(60, 4.5, text, align=align, new_x="LEFT", new_y="NEXT")
        pdf.multi_cell(60, 4.5, "short", align=align, new_x="LEFT", new_y="NEXT")

    def with_put_text(pdf: FPDF) -> None:
        pdf.set_x(40)
        pdf_table.put_text(pdf, 60, 4.5, text, align)
        pdf_table.put_text(pdf, 60, 4.5, "short", align)

    expected = _placed(_document(with_multi_cell))
    assert _placed(_document(with_put_text)) == expected
    assert len(expected) > 5
