"""The finance summary of a period: one row per invoice and per credit note.

``finance_summary_csv`` takes the period's final documents (invoices and credit notes) and
what the store knows of each invoice's state (``void``, the credit note that voided it) and
returns the CSV finance reconciles with: net, tax, gross, status, and for each invoice the
credit notes issued against it and what is left due (gross minus credited).

A usage statement (an account without a billing profile) is listed too, after them, so that
finance sees it cannot be sent: kind ``usage_statement``, status ``no_billing_profile``,
its total as net, no tax, gross or amount due, and the reason in ``note``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from decimal import Decimal

from billing.documents.render import NO_PROFILE_NOTE
from billing.domain.invoice import Invoice, plain

FINANCE_COLUMNS = (
    "period",
    "account",
    "kind",
    "number",
    "status",
    "credits",
    "issue_date",
    "due_date",
    "currency",
    "net",
    "tax",
    "gross",
    "credit_notes",
    "credited_gross",
    "due_gross",
    "note",
)

NO_PROFILE = "no_billing_profile"


def finance_summary_csv(
    documents: Iterable[Invoice], statuses: Mapping[str, str] | None = None
) -> bytes:
    """Invoices then credit notes, by account and number; ``statuses``: number -> state
    recorded after issue (``void``)."""
    given = list(documents)
    docs = [d for d in given if d.number is not None and d.totals is not None]
    statements = sorted(
        (d for d in given if d.number is not None and d.totals is None), key=lambda d: d.account
    )
    states = dict(statuses or {})
    notes: dict[str, list[Invoice]] = {}
    for d in docs:
        if d.kind == "credit_note" and d.credits:
            notes.setdefault(d.credits, []).append(d)
    rows: list[tuple[str, ...]] = []
    order = sorted(docs, key=lambda d: (d.kind == "credit_note", d.account, d.number or ""))
    for d in order:
        assert d.totals is not None
        assert d.number is not None
        against = notes.get(d.number, []) if d.kind != "credit_note" else []
        credited = sum((n.totals.gross for n in against if n.totals), Decimal(0)).quantize(
            Decimal(1).scaleb(-d.minor_unit)
        )
        is_note = d.kind == "credit_note"
        rows.append(
            (
                d.period,
                d.account,
                d.kind or "invoice",
                d.number,
                states.get(d.number, d.status or "final"),
                d.credits or "",
                d.issue_date.isoformat(),
                d.due_date.isoformat() if d.due_date else "",
                d.currency,
                plain(d.totals.net),
                plain(d.totals.tax),
                plain(d.totals.gross),
                ";".join(sorted(n.number or "" for n in against)),
                "" if is_note else plain(credited),
                "" if is_note else plain(d.totals.gross + credited),
                "",
            )
        )
    for d in statements:
        rows.append(
            (
                *(d.period, d.account, "usage_statement", d.number or "", NO_PROFILE, ""),
                *(d.issue_date.isoformat(), "", d.currency, plain(d.total), "", "", ""),
                *("", "", NO_PROFILE_NOTE),
            )
        )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(FINANCE_COLUMNS)
    writer.writerows(rows)
    return buf.getvalue().encode()
