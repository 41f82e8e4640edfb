"""Events in, invoices out, through the real pipeline on moto.

Golden scenarios (hand-computed invoices) go through the intake queue, the ingest handler,
DynamoDB, the month-close state machine and S3; then re-running a close is byte-identical,
a late event after the close becomes an adjustment on the next invoice, and an account
that cannot be invoiced is reported while the others close.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pypdf import PdfReader

from billing.adapters.invoices import DocumentStore, invoice_key
from billing.adapters.store import UsageStore
from billing.cli.operations import run_close, send_lines
from billing.cli.stack import Deployed
from billing.domain.invoice import Invoice
from billing.local import LocalAws
from tests.factories import at, raw
from tests.golden import invoice_view, load_scenario, scenario_paths

pytestmark = pytest.mark.e2e

SCENARIOS = [load_scenario(p) for p in scenario_paths()]
PERIODS = sorted({str(s.period) for s in SCENARIOS})


def issued(store: UsageStore, docs: DocumentStore, period: str, account: str) -> Invoice:
    result = next(r for r in store.results(period) if r["account"] == account)
    assert result["status"] == "issued", f"{account}: {result.get('error', result)}"
    body = docs.read(result["keys"]["json"])
    assert body is not None
    return Invoice.model_validate_json(body)


def everything_under(docs: DocumentStore, prefix: str) -> dict[str, bytes]:
    return {key: docs.read(key) or b"" for key in docs.list_keys(prefix)}


@pytest.fixture(scope="module")
def invoice_events(aws: LocalAws, stack: Deployed) -> str:
    """A consumer of the bus: a queue receiving every InvoiceIssued event."""
    sqs, events = aws.client("sqs"), aws.client("events")
    url = sqs.create_queue(QueueName="invoice-issued-consumer")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    events.put_rule(
        Name="invoice-issued",
        EventBusName=stack.bus,
        EventPattern=json.dumps({"detail-type": ["InvoiceIssued"]}),
    )
    events.put_targets(
        Rule="invoice-issued",
        EventBusName=stack.bus,
        Targets=[{"Id": "consumer", "Arn": arn["QueueArn"]}],
    )
    return str(url)


@pytest.fixture(scope="module")
def closed(
    aws: LocalAws, stack: Deployed, store: UsageStore, invoice_events: str
) -> dict[str, Any]:
    """Every golden scenario ingested and its period closed once."""
    for s in SCENARIOS:
        store.put_plan(s.account, s.plan.effective_from, s.plan.model_dump(mode="json"))
    # An account with usage but no price plan: its close must fail, visibly, alone.
    orphan = raw(
        "message.outbound",
        at(9),
        "no-plan",
        message_id="o1",
        channel="sms",
        status="submitted",
        end_user="+33600000000",
        country="FR",
    )
    lines = [line for s in SCENARIOS for line in s.events_raw] + [json.dumps(orphan)]
    send_lines(stack.queue_url, lines)
    aws.drain(timeout=300)
    return {period: run_close(stack, period, settle=0) for period in PERIODS}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_golden_invoice_through_the_pipeline(
    closed: dict[str, Any], store: UsageStore, documents: DocumentStore, scenario: Any
) -> None:
    invoice = issued(store, documents, str(scenario.period), scenario.account)
    assert invoice_view(invoice) == scenario.expected
    for fmt in ("csv", "pdf"):
        assert documents.read(
            invoice_key(str(scenario.period), scenario.account, invoice.number, fmt)
        )


def test_a_failing_account_is_reported_and_the_others_close(
    closed: dict[str, Any], store: UsageStore, documents: DocumentStore
) -> None:
    result = closed["2026-10"]
    errors = {r["account"]: r.get("error") for r in store.results("2026-10") if "error" in r}
    assert result["failed"] == ["no-plan"], errors  # the recorded cause of any other failure
    failure = next(r for r in store.results("2026-10") if r["account"] == "no-plan")
    assert "no price plan" in failure["error"]
    manifest = json.loads(documents.read("invoices/2026-10/manifest.json") or b"{}")
    assert "no-plan" in json.dumps(manifest)
    assert result["issued"] == sum(1 for s in SCENARIOS if str(s.period) == "2026-10")


def test_the_pdf_renders_with_the_account_period_and_total(
    closed: dict[str, Any], store: UsageStore, documents: DocumentStore, tmp_path: Any
) -> None:
    s = SCENARIOS[0]
    invoice = issued(store, documents, str(s.period), s.account)
    pdf = documents.read(invoice_key(str(s.period), s.account, invoice.number, "pdf"))
    path = tmp_path / "invoice.pdf"
    path.write_bytes(pdf or b"")
    text = "".join(page.extract_text() for page in PdfReader(path).pages)
    assert s.account in text
    assert str(s.period) in text
    assert f"{invoice.total:,.2f}".replace(",", "") in text.replace(",", "")


def test_rerunning_a_close_is_byte_identical(
    closed: dict[str, Any], stack: Deployed, documents: DocumentStore
) -> None:
    before = everything_under(documents, "invoices/2026-10/")
    assert len(before) > 10
    again = run_close(stack, "2026-10", settle=0)
    assert again["failed"] == ["no-plan"]
    assert everything_under(documents, "invoices/2026-10/") == before


def test_a_late_event_is_billed_as_an_adjustment_on_the_next_invoice(
    closed: dict[str, Any],
    aws: LocalAws,
    stack: Deployed,
    store: UsageStore,
    documents: DocumentStore,
) -> None:
    s = next(s for s in SCENARIOS if s.name == "sms_mms_rcs")
    october = issued(store, documents, "2026-10", s.account)
    late = raw(
        "message.outbound",
        at(30, 12),
        s.account,
        message_id="late-1",
        channel="sms",
        status="submitted",
        end_user="+33611111111",
        country="FR",
        parts=2,
    )
    send_lines(stack.queue_url, [json.dumps(late), json.dumps(late)])  # and a duplicate
    aws.drain(timeout=60)
    november = run_close(stack, "2026-11", settle=0, force=True)
    assert s.account not in november["failed"]
    invoice = issued(store, documents, "2026-11", s.account)
    adjustments = [line for line in invoice.adjustment_lines if line.metric == "sms.mt"]
    assert len(adjustments) == 1
    assert adjustments[0].adjusts == "2026-10" or adjustments[0].period == "2026-10"
    assert adjustments[0].quantity == 2
    assert adjustments[0].amount > 0
    # October's invoice is immutable, and a re-run of October does not pick the event up
    run_close(stack, "2026-10", settle=0)
    assert issued(store, documents, "2026-10", s.account) == october


def test_the_cli_shows_usage_invoices_and_explanations(
    closed: dict[str, Any], stack: Deployed, tmp_path: Any
) -> None:
    from typer.testing import CliRunner

    from billing.cli.main import app

    s = next(s for s in SCENARIOS if s.name == "sms_mms_rcs")
    runner = CliRunner()
    usage = runner.invoke(app, ["usage", "--account", s.account, "--period", "2026-10", "--json"])
    assert usage.exit_code == 0, usage.output
    assert "sms.mt" in usage.output
    listing = runner.invoke(app, ["invoices", "list", "--period", "2026-10"])
    assert listing.exit_code == 0
    assert s.account in listing.output
    assert "no-plan" in listing.output
    got = runner.invoke(
        app,
        [
            "invoices",
            "download",
            "-p",
            "2026-10",
            "-a",
            s.account,
            "--format",
            "csv",
            "--out",
            str(tmp_path),
        ],
    )
    assert got.exit_code == 0, got.output
    csv_text = next(tmp_path.glob("*.csv")).read_text()
    assert csv_text.startswith("kind,adjusts,metric")
    assert "sms.mt" in csv_text
    why = runner.invoke(app, ["explain", "-p", "2026-10", "-a", s.account])
    assert why.exit_code == 0
    assert "sms.mt" in why.output


def test_an_invoice_issued_event_is_published_per_account(
    closed: dict[str, Any], aws: LocalAws, invoice_events: str
) -> None:
    sqs = aws.client("sqs")
    seen: list[dict[str, Any]] = []
    while True:
        msgs = sqs.receive_message(QueueUrl=invoice_events, MaxNumberOfMessages=10).get("Messages")
        if not msgs:
            break
        seen.extend(json.loads(m["Body"]) for m in msgs)
        sqs.delete_message_batch(
            QueueUrl=invoice_events,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
            ],
        )
    october = {e["detail"]["account"] for e in seen if e["detail"]["period"] == "2026-10"}
    expected = {s.account for s in SCENARIOS if str(s.period) == "2026-10"}
    assert october == expected
    assert all(e["source"] == "cpaas.billing" for e in seen)


def test_replay_resends_the_dlq_and_fixed_rejected_events(
    closed: dict[str, Any], aws: LocalAws, stack: Deployed, store: UsageStore
) -> None:
    from typer.testing import CliRunner

    from billing import envelope
    from billing.adapters.rejects import RejectStore
    from billing.cli.main import app
    from billing.queries import current_usage

    event = raw(
        "lookup",
        at(12),
        "replayed",
        request_id="r1",
        kind="number_lookup",
        status="submitted",
        end_user="+4915100000000",
        country="DE",
    )
    rejected = dict(event, id="from-rejects", data=dict(event["data"], request_id="r2"))
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=json.dumps(event))
    # a JSON Lines message goes back as one; a pretty-printed event is not split in lines
    lines = [
        json.dumps(dict(event, id=f"from-dlq-{n}", data=dict(event["data"], request_id=f"d{n}")))
        for n in (1, 2)
    ]
    sqs.send_message(
        QueueUrl=stack.dlq_url, MessageBody="\n".join(lines), MessageAttributes=envelope.ATTRIBUTES
    )
    pretty = dict(event, id="pretty", data=dict(event["data"], request_id="p1"))
    sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=json.dumps(pretty, indent=2))
    rejects = RejectStore(aws.client("s3"), stack.rejects_bucket)
    before = set(rejects.list_keys())
    rejects.put(json.dumps(rejected), "invalid", [{"field": "data", "error": "fixed since"}], "m1")
    result = CliRunner().invoke(app, ["replay"])
    assert result.exit_code == 0, result.output
    assert "replayed 4 from the DLQ and 1 rejected events" in result.output
    aws.drain(timeout=60)
    figures = current_usage(store, "replayed", "2026-10").by_metric()
    assert figures == {"number_lookup": 5}
    assert set(rejects.list_keys()) <= before  # the fixed one left the store


def test_the_live_view_equals_the_recomputation_and_the_close_reconciles_to_it(
    closed: dict[str, Any], aws: LocalAws, store: UsageStore, documents: DocumentStore
) -> None:
    """The stream fed the real live function while the scenarios were ingested: every
    account's live figures are the recomputed ones, and each close found no difference."""
    from billing.live import LiveUsage
    from billing.queries import current_usage

    live = LiveUsage(store)
    for s in SCENARIOS:
        period = str(s.period)
        view = live.view(s.account, period)
        assert view.shards > 0, s.name
        assert view.usage.figures() == current_usage(store, s.account, period).figures(), s.name
        result = next(r for r in store.results(period) if r["account"] == s.account)
        assert result["live_differences"] == [], s.name
    for period in PERIODS:
        body = documents.read(f"invoices/{period}/manifest.json")
        assert body is not None
        assert json.loads(body)["live_view_differences"] == {}


def test_the_cli_reads_the_live_view_recomputes_and_sets_thresholds(
    closed: dict[str, Any], aws: LocalAws
) -> None:
    from typer.testing import CliRunner

    from billing.cli.main import app

    s = next(s for s in SCENARIOS if s.name == "sms_mms_rcs")
    runner = CliRunner()
    base = ["--account", s.account, "--period", str(s.period)]
    shown = runner.invoke(app, ["usage", *base])
    assert shown.exit_code == 0, shown.output
    assert "live view" in shown.output
    assert "estimated charges so far" in shown.output
    checked = runner.invoke(app, ["usage", *base, "--recompute"])
    assert checked.exit_code == 0, checked.output
    assert "the live view equals the recomputation" in checked.output
    added = runner.invoke(
        app, ["alerts", "set", "--account", s.account, "--id", "big", "--amount", "1000000"]
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["alerts", "list", *base])
    assert listed.exit_code == 0, listed.output
    assert "big" in listed.output
    assert "estimated amount" in listed.output


def test_after_a_close_the_live_function_refreshes_from_the_saved_state(
    closed: dict[str, Any], aws: LocalAws, stack: Deployed, store: UsageStore
) -> None:
    """The deployed live function reads the state October's close saved (its role may,
    and it is told the bucket): a November release and a late October one refresh the
    live view, which still equals the recomputation."""
    from billing.adapters.store import LIVE_EPOCH
    from billing.live import LiveUsage
    from billing.queries import current_usage

    s = next(s for s in SCENARIOS if s.name == "numbers_setup_recurring")
    released = [
        ("live-rel-1", "2026-11-10T09:00:00Z", "+33700000001"),
        ("live-rel-2", "2026-10-25T09:00:00Z", "+33100000005"),  # late: October is closed
    ]
    lines = [
        json.dumps(
            {
                "specversion": "1.0",
                "id": event_id,
                "source": "golden/num",
                "type": "cpaas.usage.number.released.v1",
                "subject": s.account,
                "time": when,
                "data": {"number": number},
            }
        )
        for event_id, when, number in released
    ]
    send_lines(stack.queue_url, lines)
    aws.drain(timeout=60)
    live = LiveUsage(store)
    for period in ["2026-10", "2026-11"]:
        expected = current_usage(store, s.account, period)
        assert live.view(s.account, period).usage.to_json() == expected.to_json(), period
    items = [i for i in store.live_items(s.account, "2026-11") if str(i["sk"]).startswith("S#")]
    assert items
    assert any(int(i["v"]) >= LIVE_EPOCH for i in items)  # from October's saved state
