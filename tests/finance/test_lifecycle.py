"""The invoice lifecycle on the close's tasks (in-process moto): draft -> final -> void,
credit notes, reissue; late events during the grace and after finalization."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from billing.adapters.invoices import DocumentStore
from billing.adapters.store import FinanceStore
from billing.close import MonthClose
from billing.documents.finance import NO_PROFILE
from billing.documents.render import NO_PROFILE_NOTE
from billing.domain.invoice import Invoice
from billing.domain.profile import load_profile, load_seller
from billing.finance import Finance
from tests.pipeline.conftest import Env
from tests.pipeline.test_close_reruns import (
    Bus,
    Clock,
    month_close,
    objects,
    put_plan,
    result,
    send,
)

ACCOUNT = "maison"
PROFILE = load_profile("examples/profiles/retail-eu.yaml")  # DE customer: reverse charge
SELLER = load_seller("examples/sellers/cpaas-fr.yaml")


def put_profile(env: Env, account: str = ACCOUNT, **changes: Any) -> None:
    fin = FinanceStore(env.table)
    fin.put_seller(SELLER.id, SELLER.effective_from, SELLER.model_dump(mode="json"))
    doc = {**PROFILE.model_dump(mode="json"), "account": account, **changes}
    fin.put_profile(account, str(doc["effective_from"]), doc)


def close(mc: MonthClose, period: str, *, draft: bool = False) -> dict[str, Any]:
    """The state machine's tasks in order (one page of accounts)."""
    mc.freeze(period, settle=0, draft=draft)
    for account in mc.list_accounts(period, None).accounts:
        mc.close_account(period, account)
    return mc.finish(period).payload()


def read(env: Env, key: str) -> Invoice:
    body = DocumentStore(env.s3, "invoices").read(key)
    assert body is not None, key
    return Invoice.model_validate_json(body)


def issued_invoice(env: Env, n: int, **profile: Any) -> tuple[MonthClose, Invoice]:
    """October closed for ``ACCOUNT`` (its plan, a profile, ``n`` events on day 3): the
    close, and the final invoice it issued."""
    put_plan(env, ACCOUNT)
    put_profile(env, **profile)
    mc = month_close(env)
    send(env, ACCOUNT, day=3, n=n)
    close(mc, "2026-10")
    return mc, read(env, result(env, "2026-10", ACCOUNT)["keys"]["json"])


def finance(env: Env, mc: MonthClose) -> Finance:
    return Finance(FinanceStore(env.table), mc.documents, mc.events, "bus", clock=mc.clock)


def test_draft_grace_finalize_and_adjust(env: Env) -> None:
    put_plan(env, ACCOUNT)
    put_profile(env)
    mc = month_close(env)
    send(env, ACCOUNT, day=3, n=5)
    drafted = close(mc, "2026-10", draft=True)
    assert (drafted["drafts"], drafted["failed"]) == (1, [])
    first = read(env, "drafts/2026-10/maison/draft.json")
    assert (first.status, first.number, first.language) == ("draft", None, "en")
    assert first.customer is not None
    assert first.customer.country == "DE"
    assert first.taxes
    assert first.taxes[0].rate == 0
    assert first.taxes[0].mention
    assert first.totals is not None
    assert first.totals.gross == first.total
    assert objects(env, "invoices/") == {}  # nothing final, nothing announced
    assert isinstance(mc.events, Bus)
    assert mc.events.entries == []

    send(env, ACCOUNT, day=30, n=3)  # late, during the grace: the draft takes it
    close(mc, "2026-10", draft=True)
    second = read(env, "drafts/2026-10/maison/draft.json")
    assert second.total > first.total
    assert sum(line.evidence for line in second.lines) == 8

    done = close(mc, "2026-10")  # finalize: the period is frozen, the invoice numbered
    assert done["issued"] == 1
    r = result(env, "2026-10", ACCOUNT)
    assert (r["status"], r["invoice"]) == ("issued", "EU-2026-000001")
    final = read(env, r["keys"]["json"])
    assert (final.status, final.number, final.total) == ("final", "EU-2026-000001", second.total)
    assert final.due_date is not None
    assert final.due_date.isoformat() == "2026-12-01"
    kinds = [e["DetailType"] for e in mc.events.entries]
    assert kinds == ["InvoiceFinalized"]
    before = objects(env, "invoices/2026-10/")

    again = close(mc, "2026-10")  # a re-run of a finalized period changes nothing
    assert again["announced"] == 0
    assert objects(env, "invoices/2026-10/") == before

    send(env, ACCOUNT, day=31, n=2)  # after finalization: adjusted on November's invoice
    send(env, ACCOUNT, day=2, n=1, month=11)
    close(mc, "2026-11", draft=True)
    nov_draft = read(env, "drafts/2026-11/maison/draft.json")
    assert [line.period for line in nov_draft.adjustment_lines] == ["2026-10"]
    close(mc, "2026-11")
    nov = result(env, "2026-11", ACCOUNT)
    assert nov["invoice"] == "EU-2026-000002"  # gap-free within the seller's year series
    assert read(env, nov["keys"]["json"]).adjustment_lines == nov_draft.adjustment_lines


def test_void_with_credit_note_and_reissue(env: Env) -> None:
    # domestic VAT
    mc, invoice = issued_invoice(env, 7, country="FR", tax_id="FR55552081317", language="fr")
    assert invoice.taxes
    assert invoice.taxes[0].rate == Decimal(20)
    assert invoice.totals is not None
    assert invoice.totals.tax > 0

    # a corrected purchase order, then void and reissue
    put_profile(env, country="FR", tax_id="FR55552081317", language="fr", purchase_order="PO-9")
    fin = finance(env, mc)
    out = fin.void("EU-2026-000001", "wrong purchase order", reissue=True)
    assert (out["credit_note"], out["reissued"]["number"]) == ("EUC-2026-000001", "EU-2026-000002")
    note = read(env, out["keys"]["json"])
    assert (note.kind, note.credits, note.reason) == (
        "credit_note",
        "EU-2026-000001",
        "wrong purchase order",
    )
    assert note.totals is not None
    assert note.totals.gross == -invoice.totals.gross
    assert note.totals.tax == -invoice.totals.tax
    reissued = read(env, out["reissued"]["keys"]["json"])
    assert reissued.customer is not None
    assert reissued.customer.purchase_order == "PO-9"
    assert (reissued.total, reissued.status) == (invoice.total, "final")
    assert FinanceStore(env.table).document("EU-2026-000001")["status"] == "void"  # type: ignore[index]

    again = fin.void("EU-2026-000001", "wrong purchase order", reissue=True)  # idempotent
    assert (again["credit_note"], again["reissued"]["number"]) == (
        "EUC-2026-000001",
        "EU-2026-000002",
    )
    kinds = [e["DetailType"] for e in mc.events.entries]
    assert kinds.count("InvoiceVoided") == 1
    assert "CreditNoteIssued" in kinds
    assert kinds.count("InvoiceFinalized") >= 2

    partial = fin.credit("EU-2026-000002", "goodwill", amount=Decimal("1.00"))
    part = read(env, partial["keys"]["json"])
    assert part.number == "EUC-2026-000002"
    assert part.totals is not None
    assert (part.totals.net, part.totals.tax, part.totals.gross) == (
        Decimal("-1.00"),
        Decimal("-0.20"),
        Decimal("-1.20"),
    )
    with pytest.raises(ValueError, match="void"):
        fin.credit("EU-2026-000001", "again", amount=Decimal("1"))

    summary = DocumentStore(env.s3, "invoices").read("invoices/2026-10/finance-summary.csv")
    rows = {r["number"]: r for r in csv.DictReader(io.StringIO((summary or b"").decode()))}
    assert rows["EU-2026-000001"]["status"] == "void"
    assert rows["EU-2026-000001"]["credit_notes"] == "EUC-2026-000001"
    assert Decimal(rows["EU-2026-000001"]["due_gross"]) == 0
    assert rows["EU-2026-000002"]["status"] == "final"
    assert rows["EU-2026-000002"]["credit_notes"] == "EUC-2026-000002"
    assert rows["EUC-2026-000001"]["kind"] == "credit_note"
    assert {"net", "tax", "gross"} <= set(rows["EU-2026-000002"])


def test_partial_credit_note_for_a_line(env: Env) -> None:
    mc, invoice = issued_invoice(env, 4)
    metric = invoice.lines[0].metric
    out = finance(env, mc).credit(invoice.number or "", "disputed", metrics=[metric])
    note = read(env, out["keys"]["json"])
    assert [line.metric for line in note.all_lines()] == [
        line.metric for line in invoice.all_lines() if line.metric == metric
    ]
    assert note.total == -sum(
        (line.amount for line in invoice.all_lines() if line.metric == metric), Decimal(0)
    )


def test_an_account_without_a_profile_fails_where_one_is_required(env: Env) -> None:
    put_plan(env, "noprofile")
    put_plan(env, ACCOUNT)
    put_profile(env)
    send(env, "noprofile", day=3, n=2)
    mc = month_close(env)
    mc.require_profile = True
    done = close(mc, "2026-10")
    assert done["failed"] == ["noprofile"]
    assert "MissingProfile" in result(env, "2026-10", "noprofile")["error"]
    assert result(env, "2026-10", ACCOUNT)["status"] == "issued"


def test_without_a_profile_the_usage_statement_is_issued_as_before(env: Env) -> None:
    put_plan(env, "plain")
    send(env, "plain", day=3, n=2)
    mc = month_close(env)
    close(mc, "2026-10")
    r = result(env, "2026-10", "plain")
    assert r["invoice"] == "INV-2026-10-plain"
    body = DocumentStore(env.s3, "invoices").read(r["keys"]["json"]) or b""
    assert b'"status"' not in body
    assert b'"taxes"' not in body
    assert [e["DetailType"] for e in mc.events.entries] == ["InvoiceIssued"]


def test_an_account_without_a_profile_is_reported_to_finance(env: Env) -> None:
    """By default (no ``require_billing_profile``) the close issues the usage statement and
    reports, for that account, that it is not an invoice: result, manifest, summary."""
    put_plan(env, "plain")
    put_plan(env, ACCOUNT)
    put_profile(env)
    send(env, "plain", day=3, n=2)
    send(env, ACCOUNT, day=3, n=2)
    mc = month_close(env)
    docs = DocumentStore(env.s3, "invoices")
    close(mc, "2026-10", draft=True)  # drafts first: the drafts manifest reports it too
    drafts = json.loads(docs.read("drafts/2026-10/manifest.json") or b"{}")
    assert drafts["without_billing_profile"] == [{"account": "plain", "note": NO_PROFILE_NOTE}]
    done = close(mc, "2026-10")
    assert (done["issued"], done["failed"]) == (2, [])
    plain = result(env, "2026-10", "plain")
    assert (plain["status"], plain["note"]) == ("issued", NO_PROFILE_NOTE)
    assert "note" not in result(env, "2026-10", ACCOUNT)
    manifest = json.loads(docs.read("invoices/2026-10/manifest.json") or b"{}")
    assert manifest["without_billing_profile"] == [
        {"account": "plain", "invoice": "INV-2026-10-plain", "note": NO_PROFILE_NOTE}
    ]
    summary = docs.read("invoices/2026-10/finance-summary.csv") or b""
    rows = {r["account"]: r for r in csv.DictReader(io.StringIO(summary.decode()))}
    assert (rows["plain"]["kind"], rows["plain"]["status"]) == ("usage_statement", NO_PROFILE)
    assert rows["plain"]["number"] == "INV-2026-10-plain"
    assert (rows["plain"]["tax"], rows["plain"]["gross"], rows["plain"]["note"]) == (
        "",
        "",
        NO_PROFILE_NOTE,
    )
    assert (rows[ACCOUNT]["kind"], rows[ACCOUNT]["status"]) == ("invoice", "final")


def test_a_draft_close_after_finalization_changes_nothing(env: Env) -> None:
    mc, _ = issued_invoice(env, 2)
    before = objects(env, "invoices/2026-10/")
    out = close(mc, "2026-10", draft=True)  # the period is frozen: this is a final re-run
    assert "drafts" not in out
    assert objects(env, "invoices/2026-10/") == before
    assert result(env, "2026-10", ACCOUNT)["invoice"] == "EU-2026-000001"


def test_scheduled_runs_draft_each_group_once_then_finalize(env: Env) -> None:
    put_plan(env, ACCOUNT)
    put_profile(env)
    send(env, ACCOUNT, day=3, n=2)
    mc = month_close(env, Clock(datetime(2026, 11, 1, 7, tzinfo=UTC)))
    drafting = mc.freeze(None, settle=0, draft=True, grace_hours=6)  # the 15-minute schedule
    assert drafting.payload() == {
        "period": "2026-10",
        "settle_seconds": 0,
        "draft": True,
        "buckets": [],  # a draft close audits no id
    }
    close(mc, "2026-10", draft=True)
    again = mc.freeze(None, settle=0, draft=True, grace_hours=6)
    assert again.period is None  # drafted once: the next run has nothing due
    assert result(env, "2026-10", ACCOUNT)["status"] == "draft"
    mc.clock = Clock(datetime(2026, 11, 4, 7, tzinfo=UTC))
    final = mc.freeze(None, settle=0, grace_hours=6 + 72)  # InvoiceFinalizeSchedule
    assert final.period == "2026-10"
    assert not mc.drafting("2026-10")


def test_a_credit_note_waits_for_a_close_writing_the_period_documents(env: Env) -> None:
    """A correction rewrites the period's finance summary under the documents lock a close's
    Finish holds: made while a Finish writes, it waits and then lists the credit note (two
    writers at once could each write what they read and lose the other's change)."""
    mc, invoice = issued_invoice(env, 4)
    fin = finance(env, mc)
    assert mc.store.acquire_documents_lock("2026-10", "a-finish", int(time.time()), 120)
    refused = threading.Event()
    acquire = fin.store.acquire_documents_lock

    def acquire_or_signal(period: str, owner: str, now: int, lease: int) -> bool:
        got = acquire(period, owner, now, lease)
        if not got:
            refused.set()
        return got

    fin.store.acquire_documents_lock = acquire_or_signal  # type: ignore[method-assign]
    out: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: out.update(fin.credit(invoice.number or "", "disputed", amount=Decimal(1)))
    )
    worker.start()
    assert refused.wait(10), "the credit note did not ask for the documents lock"
    assert worker.is_alive()  # waiting for the Finish
    mc.store.release_documents_lock("2026-10", "a-finish")
    worker.join(30)
    assert not worker.is_alive()
    summary = DocumentStore(env.s3, "invoices").read("invoices/2026-10/finance-summary.csv")
    assert summary is not None
    assert out["credit_note"] in summary.decode()
