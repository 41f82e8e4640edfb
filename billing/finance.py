"""The invoice lifecycle as finance sees it: draft -> final -> (void + credit note, reissue).

- **Draft**: a close that runs while the period is still open (``billing close --draft``,
  the schedule at the period's end) writes each account's invoice as a draft under
  ``drafts/{period}/{account}/`` (no number, rewritten by every draft close, so late
  events that arrive during the grace update it).
- **Final**: the close that freezes the period (``billing invoices finalize``, or the
  schedule when the stage's grace ends) gives each draft its number from the seller's
  series (``FinanceStore.assign_number``: gap-free, stable across re-runs) and writes it
  once, locked, under ``invoices/``; ``InvoiceFinalized`` is put on the bus. Events that
  arrive after it are billed as adjustments on the next period's invoice.
- **Void**: a final invoice is never changed; ``void`` issues a credit note for its whole
  amount (the seller's credit-note series), records the invoice as void
  (``InvoiceVoided``, ``CreditNoteIssued``) and, with ``reissue``, issues a corrected
  invoice with a new number (the same lines, the billing profile in force now).
- **Credit**: ``credit`` issues a partial credit note for some lines or an amount.

Accounts without a billing profile keep the usage statement of before (numbered
``INV-{period}-{account}``, no tax), reported for the account as not an invoice (its close
result's ``note``, the manifest's ``without_billing_profile``, a ``usage_statement`` row of
the finance summary), unless the stage requires a profile (``REQUIRE_BILLING_PROFILE``):
then their close fails like one without a price plan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from billing.adapters.bus import publish_one
from billing.adapters.invoices import (
    CONTENT_TYPES,
    INVOICES,
    DocumentStore,
    draft_key,
    invoice_key,
)
from billing.adapters.store import FinanceStore, period_documents
from billing.documents.finance import finance_summary_csv
from billing.documents.render import invoice_csv, invoice_json, invoice_pdf
from billing.domain import finance as books
from billing.domain.invoice import Invoice
from billing.domain.profile import BillingProfile, Seller

RENDERERS: dict[str, Callable[[Invoice], bytes]] = {
    "json": invoice_json,
    "csv": invoice_csv,
    "pdf": invoice_pdf,
}


class MissingProfile(Exception):
    """The account has no billing profile in force (and the stage requires one)."""


class MissingSeller(Exception):
    pass


class NotFound(Exception):
    pass


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Finance:
    store: FinanceStore
    documents: DocumentStore
    events: Any = None  # boto3 EventBridge client; None: nothing is announced
    bus_name: str = ""
    clock: Callable[[], datetime] = field(default=utc_now)

    # --- profiles ---------------------------------------------------------------------------

    def parties(self, account: str, period: str) -> tuple[BillingProfile, Seller] | None:
        """The billing profile in force for the period and its seller (None: no profile)."""
        doc = self.store.profile_document(account, period)
        if doc is None:
            return None
        profile = BillingProfile.model_validate(doc)
        seller_doc = self.store.seller_document(profile.seller, period)
        if seller_doc is None:
            raise MissingSeller(f"no seller {profile.seller} in force in {period} for {account}")
        return profile, Seller.model_validate(seller_doc)

    def draft(self, statement: Invoice) -> tuple[Invoice, Seller] | None:
        """The draft of a rated statement, with its seller; None without a profile."""
        parties = self.parties(statement.account, statement.period)
        if parties is None:
            return None
        profile, seller = parties
        return books.draft(statement, profile, seller), seller

    # --- documents --------------------------------------------------------------------------

    def write_draft(self, doc: Invoice) -> dict[str, str]:
        keys = {}
        for fmt, render in RENDERERS.items():
            key = draft_key(doc.period, doc.account, fmt)
            self.documents.write(key, render(doc), CONTENT_TYPES[fmt])
            keys[fmt] = key
        return keys

    def write_final(self, doc: Invoice) -> dict[str, str]:
        """Write a numbered document once (locked); identical bytes on a re-run."""
        assert doc.number is not None
        keys = {}
        for fmt, render in RENDERERS.items():
            key = invoice_key(doc.period, doc.account, doc.number, fmt)
            self.documents.write_once(key, render(doc), CONTENT_TYPES[fmt])
            keys[fmt] = key
        return keys

    def key_of(self, number: str, fmt: str) -> str:
        """The key of a numbered document (an invoice, a reissue, a credit note: its own
        series) in a format (json, csv, pdf), from the number's index."""
        index = self.store.document(number)
        if index is None:
            raise NotFound(f"no invoice or credit note numbered {number}")
        return invoice_key(index["period"], index["account"], number, fmt)

    def read(self, number: str) -> tuple[Invoice, dict[str, Any]]:
        index = self.store.document(number)
        if index is None:
            raise NotFound(f"no invoice or credit note numbered {number}")
        body = self.documents.read(invoice_key(index["period"], index["account"], number, "json"))
        if body is None:
            raise NotFound(f"the documents of {number} are not written (finalize again)")
        return Invoice.model_validate_json(body), index

    # --- finalization -------------------------------------------------------------------------

    def finalize(self, draft: Invoice, seller: Seller) -> Invoice:
        """The draft numbered (the number its period and account already have, or the
        next of the seller's invoice series) and final."""
        number = self.store.assign_number(
            seller.series_prefix("invoice", draft.issue_date),
            seller.series.digits,
            self.store.invoice_claim(draft.period, draft.account),
            {"period": draft.period, "account": draft.account, "kind": "invoice"},
        )
        return books.finalize(draft, number)

    # --- corrections --------------------------------------------------------------------------

    def _seller_of(self, invoice: Invoice, period: str) -> Seller:
        parties = self.parties(invoice.account, period)
        if parties is None:
            raise MissingProfile(f"no billing profile for {invoice.account} in {period}")
        return parties[1]

    def _issue_credit_note(
        self, invoice: Invoice, what: str, reason: str, **scope: Any
    ) -> tuple[Invoice, dict[str, str]]:
        assert invoice.number is not None
        seller = self._seller_of(invoice, invoice.period)
        claim = self.store.correction_claim(invoice.number, what)
        today = self.clock().date()
        claimed = self.store.claimed(claim)
        if claimed is not None:  # a retry: the number and issue date it already has
            index = self.store.document(str(claimed["number"])) or {}
            today = date.fromisoformat(str(index.get("issued", today.isoformat())))
        number = self.store.assign_number(
            seller.series_prefix("credit_note", today),
            seller.series.digits,
            claim,
            {
                "period": invoice.period,
                "account": invoice.account,
                "kind": "credit_note",
                "credits": invoice.number,
                "issued": today.isoformat(),
            },
        )
        note = books.credit_note(invoice, number, today, reason, **scope)
        keys = self.write_final(note)
        self.publish(
            "CreditNoteIssued",
            {
                "number": number,
                "credits": invoice.number,
                "account": invoice.account,
                "period": invoice.period,
                "currency": note.currency,
                "gross": str(note.totals.gross if note.totals else note.total),
                "reason": reason,
                "keys": keys,
            },
        )
        return note, keys

    def void(self, number: str, reason: str, reissue: bool = False) -> dict[str, Any]:
        """Void a final invoice: a credit note for all of it, the invoice recorded void,
        and with ``reissue`` a corrected invoice with a new number. Repeating it returns
        the same documents."""
        invoice, index = self.read(number)
        if invoice.kind == "credit_note":
            raise ValueError(f"{number} is a credit note; it cannot be voided")
        if invoice.status != "final":
            raise ValueError(f"{number} is not a final invoice with a billing profile")
        note, keys = self._issue_credit_note(invoice, "void", reason)
        assert note.number is not None
        if index.get("status") != "void":
            self.store.mark_void(number, note.number, reason)
            self.publish(
                "InvoiceVoided",
                {
                    "number": number,
                    "account": invoice.account,
                    "period": invoice.period,
                    "credit_note": note.number,
                    "reason": reason,
                },
            )
        out: dict[str, Any] = {"voided": number, "credit_note": note.number, "keys": keys}
        if reissue:
            out["reissued"] = self.reissue(invoice)
        with period_documents(self.store, invoice.period):  # a close's Finish may be writing
            self.write_summary(invoice.period)
        return out

    def reissue(self, voided: Invoice) -> dict[str, Any]:
        """A new final invoice with the voided one's lines and the profile in force now."""
        assert voided.number is not None
        parties = self.parties(voided.account, voided.period)
        if parties is None:
            raise MissingProfile(f"no billing profile for {voided.account} in {voided.period}")
        profile, seller = parties
        claim = self.store.correction_claim(voided.number, "reissue")
        today = self.clock().date()
        claimed = self.store.claimed(claim)
        if claimed is not None:
            index = self.store.document(str(claimed["number"])) or {}
            today = date.fromisoformat(str(index.get("issued", today.isoformat())))
        draft = books.reissue(voided, profile, seller, today)
        number = self.store.assign_number(
            seller.series_prefix("invoice", today),
            seller.series.digits,
            claim,
            {
                "period": voided.period,
                "account": voided.account,
                "kind": "invoice",
                "replaces": voided.number,
                "issued": today.isoformat(),
            },
        )
        final = books.finalize(draft, number)
        keys = self.write_final(final)
        self.announce_final(final, keys)
        return {"number": number, "keys": keys}

    def credit(
        self,
        number: str,
        reason: str,
        metrics: Sequence[str] = (),
        amount: Decimal | None = None,
    ) -> dict[str, Any]:
        """A partial credit note on a final invoice: the lines of ``metrics`` or ``amount``
        (before tax). The same request again returns the same credit note."""
        invoice, index = self.read(number)
        if invoice.status != "final" or invoice.kind == "credit_note":
            raise ValueError(f"{number} is not a final invoice")
        if index.get("status") == "void":
            raise ValueError(f"{number} is void: it has been credited in full")
        request = json.dumps(
            {"metrics": sorted(metrics), "amount": str(amount), "reason": reason}, sort_keys=True
        )
        what = "credit#" + hashlib.sha256(request.encode()).hexdigest()[:16]
        note, keys = self._issue_credit_note(
            invoice, what, reason, metrics=tuple(metrics), amount=amount
        )
        with period_documents(self.store, invoice.period):  # a close's Finish may be writing
            self.write_summary(invoice.period)
        return {"credit_note": note.number, "credits": number, "keys": keys}

    # --- the period's finance summary, events -------------------------------------------------

    def write_summary(self, period: str) -> bytes:
        """``invoices/{period}/finance-summary.csv``: every final invoice and credit note
        of the period, with status and credits, and the usage statements of accounts
        without a billing profile (rewritten after each change)."""
        docs: list[Invoice] = []
        statuses: dict[str, str] = {}
        for key in self.documents.list_keys(f"{INVOICES}{period}/"):
            if not key.endswith(".json") or key.count("/") != 3:
                continue
            body = self.documents.read(key)
            if body is None:
                continue
            doc = Invoice.model_validate_json(body)
            if doc.number is None:
                continue
            docs.append(doc)  # a usage statement too (no billing profile): listed as such
            index = (self.store.document(doc.number) or {}) if doc.totals is not None else {}
            if index.get("status"):
                statuses[doc.number] = str(index["status"])
        body = finance_summary_csv(docs, statuses)
        self.documents.write(f"{INVOICES}{period}/finance-summary.csv", body, CONTENT_TYPES["csv"])
        return body

    def announce_final(self, doc: Invoice, keys: dict[str, str]) -> None:
        assert doc.totals is not None
        self.publish(
            "InvoiceFinalized",
            {
                "number": doc.number,
                "account": doc.account,
                "period": doc.period,
                "currency": doc.currency,
                "net": str(doc.totals.net),
                "tax": str(doc.totals.tax),
                "gross": str(doc.totals.gross),
                "due_date": doc.due_date.isoformat() if doc.due_date else None,
                "keys": keys,
            },
        )

    def publish(
        self,
        detail_type: Literal["InvoiceFinalized", "InvoiceVoided", "CreditNoteIssued"],
        detail: dict[str, Any],
    ) -> None:
        publish_one(self.events, self.bus_name, detail_type, detail)
