"""Bordered tables and wrapped text for the invoice PDF, drawn line by line.

fpdf2's ``FPDF.table`` lays every cell out twice (once to size its row, once to draw it)
through ``multi_cell``'s general line breaking, which measures the line again at each
character: about two thirds of an invoice's render time went there, although nearly
every cell of an invoice is a number on one line. Here a cell's text is measured once
(``get_string_width``, which takes the fallback font into account) and drawn with
``cell``; only a line wider than its column goes through fpdf2's line breaking, once, to
find where it wraps. The layout is the one ``FPDF.table`` gave the invoices: column
widths shared out over the page's width in proportion to the given ones, the same padding
all round, text centred vertically in its row, a heading row in bold on a fill colour,
repeated at the top of a new page and never left alone at the bottom of one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fpdf import FPDF
from fpdf.util import Padding


def wrapped_lines(pdf: FPDF, text: str, width: float, padding: float) -> list[str]:
    """``text`` as the lines it takes in a column ``width`` wide with ``padding`` on each
    side, in the current font: one per line of the text when it fits, else where fpdf2's
    line breaking wraps it (which, like ``multi_cell``, ignores a final line break)."""
    out: list[str] = []
    room = width - 2 * padding
    given = text.split("\n")
    if len(given) > 1 and not given[-1]:
        given.pop()
    for line in given:
        if pdf.get_string_width(line) <= room:
            out.append(line)
        else:
            sides = Padding(top=0, right=padding, bottom=0, left=padding)
            wrapped = pdf.multi_cell(width, 1, line, padding=sides, dry_run=True, output="LINES")
            assert isinstance(wrapped, list)
            out.extend(wrapped)
    return out


def put_text(pdf: FPDF, w: float, h: float, text: str, align: str) -> None:
    """Writes ``text`` wrapped to ``w`` from the current position, ``h`` per line, and
    leaves the position at the left of the next line (``multi_cell``'s ``new_x="LEFT",
    new_y="NEXT"``)."""
    x = float(pdf.get_x())
    margin = float(pdf.c_margin)
    for line in wrapped_lines(pdf, text, w, margin):
        pdf.set_x(x)
        pdf.cell(w, h, line, align=align, new_x="LEFT", new_y="NEXT")


@dataclass(frozen=True)
class Grid:
    """How a table is laid out: its columns' relative widths (shared out over the page's
    width between its margins) and alignments, its line height and its cells' padding, and
    its heading row's fill colour."""

    widths: Sequence[float]
    aligns: Sequence[str]  # "L" or "R", per column
    line_height: float
    heading_fill: tuple[int, int, int]
    padding: float = 1.0


def draw(pdf: FPDF, grid: Grid, heading: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Draws the table from the current position, body in the current font, heading in
    its bold style, and leaves the position at the left margin below it."""
    family, size = pdf.font_family, pdf.font_size_pt
    total = float(sum(grid.widths))
    widths = [w / total * float(pdf.epw) for w in grid.widths]

    def sized(cells: Sequence[str]) -> tuple[list[list[str]], float]:
        laid = [
            wrapped_lines(pdf, text, w, grid.padding) for text, w in zip(cells, widths, strict=True)
        ]
        return laid, max(len(lines) for lines in laid) * grid.line_height + 2 * grid.padding

    def row(laid: list[list[str]], height: float, fill: bool) -> None:
        y = float(pdf.get_y())
        x = float(pdf.l_margin)
        for lines, w, align in zip(laid, widths, grid.aligns, strict=True):
            pdf.rect(x, y, w, height, style="DF" if fill else "D")
            top = y + (height - len(lines) * grid.line_height) / 2
            for n, line in enumerate(lines):
                pdf.set_xy(x + grid.padding, top + n * grid.line_height)
                pdf.cell(w - 2 * grid.padding, grid.line_height, line, align=align)
            x += w
        pdf.set_xy(pdf.l_margin, y + height)

    def head() -> None:
        pdf.set_font(family, style="B", size=size)
        row(head_laid, head_height, fill=True)
        pdf.set_font(family, style="", size=size)

    saved_margin, saved_fill = pdf.c_margin, pdf.fill_color
    pdf.c_margin = 0  # the cells' padding is the grid's
    pdf.set_fill_color(*grid.heading_fill)
    pdf.set_font(family, style="B", size=size)
    head_laid, head_height = sized(heading)
    pdf.set_font(family, style="", size=size)
    first = True
    for cells in rows:
        laid, height = sized(cells)
        needed = height + (head_height if first else 0)
        if float(pdf.get_y()) + needed > pdf.page_break_trigger:
            pdf.add_page()
            head()
        elif first:
            head()
        first = False
        row(laid, height, fill=False)
    if first:  # a table without rows: its heading alone
        if float(pdf.get_y()) + head_height > pdf.page_break_trigger:
            pdf.add_page()
        head()
    pdf.c_margin = saved_margin
    if saved_fill is not None:
        pdf.set_fill_color(saved_fill)
