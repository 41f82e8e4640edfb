"""The invoice lifecycle through the real pipeline (CDK template on moto, state machine,
handlers, the ``billing`` command): close -> draft (a late event during the grace updates
it) -> finalize (numbered, locked, InvoiceFinalized) -> void with a credit note and a
reissue (InvoiceVoided, CreditNoteIssued, InvoiceFinalized) -> the finance summary."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from billing.adapters.invoices import DocumentStore
from billing.adapters.store import UsageStore
from billing.cli.main import app
from billing.cli.operations import run_close, send_lines
from billing.cli.stack import Deployed
from billing.domain.invoice import Invoice
from billing.local import LocalAws
from tests.e2e.conftest import announcements, sms, subscribe

pytestmark = pytest.mark.e2e

ACCOUNT = "helios-assurances"  # examples/profiles/contact-centre.yaml: French, domestic VAT
PERIOD = "2026-10"
KINDS = ["InvoiceFinalized", "InvoiceVoided", "CreditNoteIssued"]


def message(n: int) -> str:
    return sms(ACCOUNT, n, tag="fin", numbers="+3361100")


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def read(documents: DocumentStore, key: str) -> Invoice:
    body = documents.read(key)
    assert body is not None, key
    return Invoice.model_validate_json(body)


def test_close_draft_finalize_void_credit_note_reissue(
    aws: LocalAws, stack: Deployed, store: UsageStore, documents: DocumentStore, tmp_path: Path
) -> None:
    url = subscribe(aws, stack, "finance-events", KINDS)
    cli("sellers", "put", "examples/sellers/cpaas-fr.yaml")
    cli("plans", "put", "examples/plans/retail-eu.yaml", "--account", ACCOUNT)  # prices SMS
    cli("accounts", "put", "examples/profiles/contact-centre.yaml")
    assert "Helios Assurances SA" in cli("accounts", "show", "--account", ACCOUNT)

    send_lines(stack.queue_url, [message(n) for n in range(6)])
    aws.drain(timeout=120)
    drafted = run_close(stack, PERIOD, settle=0, draft=True)
    assert (drafted["drafts"], drafted["failed"]) == (1, [])
    first = read(documents, f"drafts/{PERIOD}/{ACCOUNT}/draft.json")
    assert (first.status, first.number, first.language) == ("draft", None, "fr")

    send_lines(stack.queue_url, [message(n) for n in range(6, 9)])  # late, during the grace
    aws.drain(timeout=120)
    run_close(stack, PERIOD, settle=0, draft=True)
    second = read(documents, f"drafts/{PERIOD}/{ACCOUNT}/draft.json")
    assert second.total > first.total
    assert "draft" in cli("invoices", "list", "--period", PERIOD)

    assert "1 invoices final" in cli("invoices", "finalize", "--period", PERIOD, "--settle", "0")
    result = store.result(PERIOD, ACCOUNT)
    assert result is not None
    number = result["invoice"]
    assert number == "EU-2026-000001"
    final = read(documents, result["keys"]["json"])
    assert (final.status, final.total) == ("final", second.total)
    assert final.taxes is not None
    assert final.taxes[0].rate == Decimal(20)  # French seller, French customer
    for fmt in ("csv", "pdf"):
        assert documents.read(result["keys"][fmt])

    out = cli("invoices", "void", "--number", number, "--reason", "wrong address", "--reissue")
    assert "credit note EUC-2026-000001" in out
    assert "reissued as EU-2026-000002" in out
    prefix = f"invoices/{PERIOD}/{ACCOUNT}/"
    note = read(documents, f"{prefix}EUC-2026-000001.json")
    assert note.totals is not None
    assert final.totals is not None
    assert note.totals.gross == -final.totals.gross
    for fmt in ("csv", "pdf"):
        assert documents.read(f"{prefix}EUC-2026-000001.{fmt}")
    assert read(documents, f"{prefix}EU-2026-000002.json").total == final.total
    listing = cli("invoices", "list", "--period", PERIOD)
    assert "void" in listing
    for wanted in ("EUC-2026-000001", "EU-2026-000002", number):  # any document by number
        for fmt in ("json", "pdf"):
            cli("invoices", "download", "--number", wanted, "--format", fmt, "--out", str(tmp_path))
        got = Invoice.model_validate_json((tmp_path / f"{wanted}.json").read_bytes())
        assert (got.number, got.kind) == (wanted, "credit_note" if "C" in wanted else "invoice")
        assert (tmp_path / f"{wanted}.pdf").read_bytes().startswith(b"%PDF-")
    unknown = CliRunner().invoke(app, ["invoices", "download", "--number", "EUC-2026-000999"])
    assert unknown.exit_code != 0

    summary = documents.read(f"invoices/{PERIOD}/finance-summary.csv") or b""
    rows = {r["number"]: r for r in csv.DictReader(io.StringIO(summary.decode()))}
    assert rows[number]["status"] == "void"
    assert rows[number]["credit_notes"] == "EUC-2026-000001"
    assert rows["EU-2026-000002"]["status"] == "final"

    seen = [(e["number"], e.get("credits")) for e in announcements(aws, url)]
    assert sorted(seen, key=str) == sorted(
        [(number, None), ("EUC-2026-000001", number), (number, None), ("EU-2026-000002", None)],
        key=str,
    )
