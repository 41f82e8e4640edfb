"""Two closes of one period through the real state machine while a producer still sends:
the second execution is refused (the period's close lock), every on-time fact is billed
exactly once, every invoice is announced exactly once, and a re-run changes nothing."""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest

from billing import ingest
from billing.adapters.invoices import DocumentStore
from billing.adapters.store import UsageStore, shard_labels
from billing.cli.operations import CloseRefused, run_close, send_lines
from billing.cli.stack import Deployed
from billing.domain.periods import Period
from billing.domain.plan import load_plan
from billing.local import LocalAws
from tests.e2e.conftest import announcements, sms, subscribe

pytestmark = pytest.mark.e2e

ACCOUNT = "helios-retail"
PERIOD = "2026-10"


def message(n: int) -> str:
    return sms(ACCOUNT, n, tag="conc", numbers="+3361000")


@pytest.fixture(scope="module")
def consumer(aws: LocalAws, stack: Deployed) -> str:
    return subscribe(aws, stack, "close-runs-issued", ["InvoiceIssued"])


def test_two_concurrent_closes_bill_every_on_time_fact_once_and_announce_once(
    aws: LocalAws,
    stack: Deployed,
    store: UsageStore,
    documents: DocumentStore,
    consumer: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the handlers run in this process: a short frozen-set cache lets a short settle
    # (4 s, longer than the cache age plus a batch) stand for the deployed 30 s / 120 s
    monkeypatch.setattr(ingest, "FROZEN_CACHE_SECONDS", 1)
    plan = load_plan("examples/plans/retail-eu.yaml").model_copy(update={"account": ACCOUNT})
    store.put_plan(ACCOUNT, plan.effective_from, plan.model_dump(mode="json"))
    send_lines(stack.queue_url, [message(n) for n in range(40)])
    aws.drain(timeout=120)

    stop = threading.Event()

    def producer() -> None:  # still sending October traffic while the close runs
        n = 40
        while not stop.is_set() and n < 200:
            send_lines(stack.queue_url, [message(n), message(n + 1)])
            n += 2
            time.sleep(0.2)

    sending = threading.Thread(target=producer)
    sending.start()
    sfn = boto3.client("stepfunctions")
    first = sfn.start_execution(
        stateMachineArn=stack.state_machine_arn,
        name="close-2026-10-first",
        input=json.dumps({"period": PERIOD, "settle_seconds": 4}),
    )["executionArn"]
    time.sleep(2)
    # the command refuses while the first execution runs
    with pytest.raises(CloseRefused, match="CloseInProgress: period 2026-10 is being closed"):
        run_close(stack, PERIOD, settle=0)
    # an execution started anyway fails fast on the lock
    second = sfn.start_execution(
        stateMachineArn=stack.state_machine_arn,
        name="close-2026-10-second",
        input=json.dumps({"period": PERIOD, "settle_seconds": 0}),
    )["executionArn"]
    deadline = time.monotonic() + 300
    while sfn.describe_execution(executionArn=second)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    refused = sfn.describe_execution(executionArn=second)
    assert refused["status"] == "FAILED"
    assert "CloseInProgress" in f"{refused.get('error')} {refused.get('cause')}"
    # --wait runs after the first one, and changes nothing
    waited = run_close(stack, PERIOD, settle=0, wait=True)
    assert sfn.describe_execution(executionArn=first)["status"] == "SUCCEEDED"
    stop.set()
    sending.join()
    aws.drain(timeout=120)
    assert waited["failed"] == []

    on_time = sum(
        1
        for shard in shard_labels(store.shards)
        for f in store.read_period(ACCOUNT, Period.parse(PERIOD), shard, 0)
        if f.adj is None
    )
    (result,) = [r for r in store.results(PERIOD) if r["account"] == ACCOUNT]
    invoice = json.loads(documents.read(result["keys"]["json"]) or b"{}")
    (sms,) = [line for line in invoice["lines"] if line["metric"] == "sms.mt"]
    assert int(sms["quantity"]) == on_time
    assert on_time >= 40
    issued = [a for a in announcements(aws, consumer) if a["period"] == PERIOD]
    assert [(a["account"], a["invoice"]) for a in issued] == [(ACCOUNT, result["invoice"])]
    assert store.close_lock(PERIOD) is None
