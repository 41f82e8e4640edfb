"""The invoice as finance sends it: drafts, final invoices, credit notes (pure functions).

The close rates a month into a usage statement (``rating.build_invoice``). With the
account's billing profile and its seller, ``draft`` turns it into a **draft**: seller and
customer blocks, language, currency, due date, VAT/GST per rate (``billing.domain.tax``)
and net/tax/gross totals, but no number. ``finalize`` gives the draft its number (from
the seller's series, assigned by the store at finalization) and makes it ``final``.

Corrections never touch a final invoice: ``credit_note`` issues a credit note (its own
series) for the whole invoice or for some of its lines or an amount, with negative
amounts and the tax of the credited base at the invoice's rate; ``reissue`` makes a new
draft from a voided invoice's lines with the profile in force now (a corrected address,
tax id or purchase order), to be finalized with a new number.

Dates: the issue date is the first day after the period (as for the usage statement), the
due date the issue date plus the profile's payment terms; a credit note is issued on the
day it is made (the caller passes it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from billing.domain.invoice import (
    BankBlock,
    CreditAmountNote,
    CustomerBlock,
    Invoice,
    InvoiceLine,
    SellerBlock,
    TaxEntry,
    Totals,
)
from billing.domain.profile import BillingProfile, Seller
from billing.domain.rating import price_note_text, round_money
from billing.domain.tax import TaxTable, Treatment, tax_lines, treatment


class ProfileMismatch(ValueError):
    """The billing profile cannot invoice this statement (another currency or seller)."""


def _seller_block(seller: Seller) -> SellerBlock:
    return SellerBlock(
        legal_name=seller.legal_name,
        address=list(seller.address),
        country=seller.country,
        tax_id=seller.tax_id,
        bank=BankBlock(**seller.bank.model_dump()),
    )


def _customer_block(profile: BillingProfile) -> CustomerBlock:
    return CustomerBlock(
        legal_name=profile.legal_name,
        address=list(profile.address),
        country=profile.country,
        tax_id=profile.tax_id,
        purchase_order=profile.purchase_order,
        email=profile.invoice_email,
    )


def _taxed(
    lines: Sequence[InvoiceLine], how: Treatment, places: int
) -> tuple[list[TaxEntry], Totals]:
    # a zero base too: an invoice without lines still shows its rate (and mention)
    entries, totals = tax_lines(
        [(how, Decimal(0)), *((how, line.amount) for line in lines)], places
    )
    return (
        [TaxEntry(rate=t.rate, base=t.base, tax=t.tax, mention=t.mention) for t in entries],
        Totals(net=totals.net, tax=totals.tax, gross=totals.gross),
    )


def draft(
    statement: Invoice,
    profile: BillingProfile,
    seller: Seller,
    table: TaxTable | None = None,
) -> Invoice:
    """The draft of ``statement`` for ``profile``'s customer, issued by ``seller``."""
    if profile.currency != statement.currency:
        raise ProfileMismatch(
            f"billing profile of {profile.account} invoices in {profile.currency}, "
            f"the price plan in {statement.currency}"
        )
    if profile.seller != seller.id:
        raise ProfileMismatch(f"profile names seller {profile.seller}, not {seller.id}")
    how = treatment(seller.country, profile.country, profile.tax_id, statement.period, table)
    taxes, totals = _taxed(statement.all_lines(), how, statement.minor_unit)
    if totals.net != statement.total:  # every line is taxed once: the bases add up
        raise AssertionError(f"taxed {totals.net}, invoice total {statement.total}")
    return statement.model_copy(
        update={
            "number": None,
            "status": "draft",
            "kind": "invoice",
            "due_date": statement.issue_date + timedelta(days=profile.payment_terms_days),
            "language": profile.language,
            "seller": _seller_block(seller),
            "customer": _customer_block(profile),
            "taxes": taxes,
            "totals": totals,
        }
    )


def finalize(invoice: Invoice, number: str) -> Invoice:
    """The draft ``invoice`` made final under ``number``."""
    if invoice.status != "draft":
        raise ValueError(f"only a draft can be finalized, not a {invoice.status} document")
    return invoice.model_copy(update={"number": number, "status": "final"})


def _negated(line: InvoiceLine) -> InvoiceLine:
    return line.model_copy(
        update={
            "quantity": -line.quantity,
            "billable": -line.billable,
            "included": -line.included,
            "amount": -line.amount,
        }
    )


def credit_note(
    invoice: Invoice,
    number: str,
    issued: date,
    reason: str,
    *,
    metrics: Sequence[str] = (),
    amount: Decimal | None = None,
) -> Invoice:
    """A credit note for the final ``invoice``: all of it (no ``metrics``, no ``amount``),
    the lines of ``metrics``, or ``amount`` (before tax, one line). Amounts are negative;
    the tax is that of the credited base at the invoice's rate, rounded per rate."""
    if invoice.status != "final" or invoice.number is None or invoice.seller is None:
        raise ValueError("only a final invoice can be credited")
    if not invoice.taxes:
        raise ValueError("the invoice has no tax lines")
    rate, mention = invoice.taxes[0].rate, invoice.taxes[0].mention
    how = Treatment("domestic", rate, mention)  # the invoice's own rate, whatever the case
    places = invoice.minor_unit
    if amount is not None:
        if metrics:
            raise ValueError("credit either lines or an amount, not both")
        value = round_money(amount, places)
        if value <= 0 or invoice.totals is None or value > invoice.totals.net:
            raise ValueError(f"amount {amount} must be positive and at most the invoice's net")
        credited = CreditAmountNote(invoice=invoice.number, reason=reason)
        lines = [
            InvoiceLine(
                kind="adjustment",
                metric="credit",
                description=price_note_text(credited),
                price_detail=credited,
                quantity=Decimal(1),
                billable=Decimal(1),
                amount=-value,
                period=invoice.period,
                adjusts="usage",
            )
        ]
        kept: list[InvoiceLine] = []
        extra: list[InvoiceLine] = lines
    else:
        chosen = [
            line for line in invoice.all_lines() if not metrics or line.metric in set(metrics)
        ]
        if not chosen:
            raise ValueError(f"invoice {invoice.number} has no line of {', '.join(metrics)}")
        kept = [_negated(line) for line in chosen]
        extra = []
    every = [*kept, *extra]
    taxes, totals = _taxed(every, how, places)
    total = round_money(sum((line.amount for line in every), Decimal(0)), places)
    return invoice.model_copy(
        update={
            "number": number,
            "status": "final",
            "kind": "credit_note",
            "credits": invoice.number,
            "reason": reason,
            "issue_date": issued,
            "due_date": issued,
            "lines": [line for line in every if line.kind in {"usage", "fee"}],
            "commitment_lines": [line for line in every if line.kind in {"commitment", "prepaid"}],
            "adjustment_lines": [line for line in every if line.kind == "adjustment"],
            # the credited commitments' scopes (their lines are named by what they cover)
            "commitments": [
                c
                for c in invoice.commitments
                if any(line.metric == c.name for line in every if line.kind == "commitment")
            ],
            "subtotal": round_money(
                sum(
                    (line.amount for line in every if line.kind in {"usage", "fee"}),
                    Decimal(0),
                ),
                places,
            ),
            "total": total,
            "taxes": taxes,
            "totals": totals,
            "notes": [],
        }
    )


def is_full_credit(note: Invoice, invoice: Invoice) -> bool:
    return (
        note.totals is not None
        and invoice.totals is not None
        and (note.totals.gross == -invoice.totals.gross)
    )


def reissue(
    voided: Invoice,
    profile: BillingProfile,
    seller: Seller,
    issued: date,
    table: TaxTable | None = None,
) -> Invoice:
    """A new draft with the voided invoice's lines and the profile and seller in force
    now, issued on ``issued`` (to be finalized with a new number)."""
    cleared: dict[str, object] = {
        key: None for key in ("status", "kind", "seller", "customer", "taxes", "totals")
    }
    statement = voided.model_copy(update={**cleared, "issue_date": issued})
    return draft(statement, profile, seller, table)
