"""A reused event id through the real pipeline on moto: ingest stores every version, the
month-close state machine's id audit (PlanAudit, then its AuditIds Map) marks the
versions no single read holds and lists the id in the period's manifest; the invoice
bills none of them."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from billing.adapters.invoices import DocumentStore
from billing.adapters.store import UsageStore
from billing.cli.operations import run_close, send_lines
from billing.cli.stack import Deployed
from billing.domain.plan import load_plan
from billing.local import LocalAws
from tests.e2e.conftest import repo_path, sms
from tests.factories import at, raw

pytestmark = pytest.mark.e2e

PERIOD = "2026-10"


def reused(n: int, event_id: str = "reused-1", account: str = "acme", month: int = 10) -> str:
    """Version ``n`` of ``event_id``: another message to another end user."""
    return json.dumps(
        raw(
            "message.outbound",
            at(12, 10, month=month),
            account,
            event_id=event_id,
            message_id=f"{event_id}-{n}",
            channel="sms",
            status="submitted",
            end_user=f"+3361000{n:04d}",
            country="FR",
        )
    )


def states_entered(aws: LocalAws, stack: Deployed) -> list[str]:
    """The states the latest close execution entered, in order."""
    sfn = aws.client("stepfunctions")
    (latest, *_) = sorted(
        sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"],
        key=lambda e: e["startDate"],
        reverse=True,
    )
    history = sfn.get_execution_history(executionArn=latest["executionArn"], maxResults=1000)
    return [
        e["stateEnteredEventDetails"]["name"]
        for e in history["events"]
        if "stateEnteredEventDetails" in e
    ]


def test_a_reused_id_across_shards_is_found_by_the_closes_id_audit(
    aws: LocalAws, stack: Deployed, store: UsageStore, documents: DocumentStore
) -> None:
    plan = load_plan(repo_path("examples", "plans", "retail-eu.yaml"))
    plan = plan.model_copy(update={"account": "acme"})
    store.put_plan("acme", plan.effective_from, plan.model_dump(mode="json"))
    base = [sms("acme", n, tag="base", numbers="+3360000") for n in range(3)]
    send_lines(stack.queue_url, [*base, *(reused(n) for n in range(6))])
    aws.drain(timeout=300)
    versions = [
        i
        for i in store.table.scan()["Items"]
        if str(i["pk"]).startswith("F#") and "reused-" in json.dumps(i["a"], default=str)
    ]
    assert len(versions) == 6  # every version stored
    assert len({i["pk"] for i in versions}) > 1  # in more than one storage shard

    summary = run_close(stack, PERIOD, settle=0)
    assert (summary["issued"], summary["failed"]) == (1, []), summary
    body = documents.read(f"invoices/{PERIOD}/manifest.json")
    assert body is not None
    (conflict,) = json.loads(body)["id_conflicts"]
    assert len(conflict["versions"]) == 6
    markers = [i for i in store.table.scan()["Items"] if str(i["sk"]).startswith("X#")]
    assert {i["pk"] for i in markers} == {i["pk"] for i in versions}
    assert {i["adj"] for i in markers} == {"2026-11"}  # October is invoiced: credited next
    invoice = json.loads(
        documents.read(next(r for r in store.results(PERIOD))["keys"]["json"]) or b"{}"
    )
    billed = sum(Decimal(str(line["quantity"])) for line in invoice["lines"])
    assert billed >= 3  # the base messages at least; the audit's credit comes in November
    # a month this small: PlanAudit gives one task, which reads each id file once
    entered = states_entered(aws, stack)
    assert (entered.count("PlanAudit"), entered.count("AuditIdBucket")) == (1, 1)


def test_the_audit_split_in_one_task_per_bucket_finds_the_same(
    aws: LocalAws,
    stack: Deployed,
    store: UsageStore,
    documents: DocumentStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PlanAudit decides the tasks; forced to one bucket each (as for the largest months),
    # the state machine's Map runs 16 of them and still marks every version
    monkeypatch.setattr(
        "billing.close.audit_tasks", lambda buckets, size: [[b] for b in sorted(buckets)]
    )
    plan = load_plan(repo_path("examples", "plans", "retail-eu.yaml"))
    plan = plan.model_copy(update={"account": "globex"})
    store.put_plan("globex", plan.effective_from, plan.model_dump(mode="json"))
    # November, still open: its close is forced (October is closed: its late facts would be
    # November's adjustments)
    second = [reused(n, "reused-2", "globex", month=11) for n in range(5)]
    send_lines(stack.queue_url, second)
    aws.drain(timeout=300)
    versions = [
        i for i in store.table.scan()["Items"] if str(i["pk"]).startswith("F#globex#2026-11#")
    ]
    assert len({i["pk"] for i in versions}) > 1

    summary = run_close(stack, "2026-11", settle=0, force=True)
    assert summary["failed"] == [], summary
    body = documents.read("invoices/2026-11/manifest.json")
    assert body is not None
    # the window also holds October's ids (acme's reused id found again, marked once)
    (conflict,) = [
        c
        for c in json.loads(body)["id_conflicts"]
        if {v["account"] for v in c["versions"]} == {"globex"}
    ]
    assert len(conflict["versions"]) == 5
    markers = [i for i in store.table.scan()["Items"] if str(i["sk"]).startswith("X#")]
    assert {i["pk"] for i in versions} <= {i["pk"] for i in markers}
    entered = states_entered(aws, stack)
    assert entered.count("AuditIdBucket") == 16
    assert entered.count("PlanAudit") == 1
