"""Two accounts in different time zones, one month, through the real pipeline on moto: the
intake queue, the ingest handler, DynamoDB, the month-close state machine per close group
and S3, with a late event near a local month end."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.adapters.invoices import DocumentStore
from billing.adapters.store import UsageStore
from billing.cli.operations import run_close, send_lines
from billing.cli.stack import Deployed
from billing.domain.invoice import Invoice, InvoiceLine
from billing.domain.plan import PricePlan
from billing.domain.settings import ContractSettings
from billing.local import LocalAws
from tests.factories import raw

pytestmark = pytest.mark.e2e

SEOUL, NEW_YORK = "tz-seoul", "tz-newyork"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def sms(account: str, when: datetime, message_id: str) -> str:
    return json.dumps(
        raw(
            "message.outbound",
            when,
            account,
            event_id=f"{account}-{message_id}",
            message_id=message_id,
            channel="sms",
            status="submitted",
            end_user="+33600000001",
            country="FR",
        )
    )


def invoice(store: UsageStore, docs: DocumentStore, period: str, account: str) -> Invoice:
    result = store.result(period, account)
    assert result is not None
    assert result["status"] == "issued", result
    return Invoice.model_validate_json(docs.read(result["keys"]["json"]) or b"")


def sms_quantity(lines: list[InvoiceLine]) -> Decimal:
    return sum((line.quantity for line in lines if line.metric == "sms.mt"), Decimal(0))


def test_two_zones_close_their_own_month_with_a_late_event(
    aws: LocalAws, stack: Deployed, store: UsageStore, documents: DocumentStore
) -> None:
    for account, zone in ((SEOUL, "Asia/Seoul"), (NEW_YORK, "America/New_York")):
        plan = PricePlan(
            account=account,
            currency="EUR",
            effective_from="2026-10",
            settings=ContractSettings(time_zone=zone),
            prices={"sms.mt": Decimal("0.05")},
        )
        store.put_plan(account, plan.effective_from, plan.model_dump(mode="json"))
    send_lines(
        stack.queue_url,
        [
            sms(SEOUL, utc(2026, 9, 30, 15), "s1"),  # 10-01 00:00:00 KST: October
            sms(SEOUL, utc(2026, 10, 31, 14, 59, 59), "s2"),  # 10-31 23:59:59 KST
            sms(SEOUL, utc(2026, 10, 31, 15), "s3"),  # 11-01 00:00:00 KST: November
            sms(NEW_YORK, utc(2026, 10, 1, 3, 59, 59), "n0"),  # 09-30 23:59:59 EDT
            sms(NEW_YORK, utc(2026, 10, 1, 4), "n1"),  # 10-01 00:00:00 EDT
            sms(NEW_YORK, utc(2026, 11, 1, 3, 59, 59), "n2"),  # 10-31 23:59:59 EDT
            sms(NEW_YORK, utc(2026, 11, 1, 4), "n3"),  # 11-01 00:00:00 EDT: November
        ],
    )
    aws.drain(timeout=120)
    seoul = run_close(stack, "2026-10@+09:00", settle=0)
    assert seoul["issued"] == 1
    assert seoul["failed"] == []
    october = invoice(store, documents, "2026-10", SEOUL)
    assert sms_quantity(list(october.lines)) == 2
    assert october.period_dates is not None
    assert october.period_dates.time_zone == "Asia/Seoul"
    # a late event near Seoul's month end: its October is closed, New York's is not
    send_lines(stack.queue_url, [sms(SEOUL, utc(2026, 10, 31, 14, 30), "late")])
    aws.drain(timeout=60)
    new_york = run_close(stack, "2026-10@-04:00", settle=0)
    assert new_york["failed"] == []  # the period's manifest lists both groups so far
    assert sms_quantity(list(invoice(store, documents, "2026-10", NEW_YORK).lines)) == 2
    november = run_close(stack, "2026-11@+09:00", settle=0, force=True)
    assert november["failed"] == []
    nov = invoice(store, documents, "2026-11", SEOUL)
    assert sms_quantity(list(nov.lines)) == 1
    assert sms_quantity(list(nov.adjustment_lines)) == 1
    # October's invoice is immutable
    assert invoice(store, documents, "2026-10", SEOUL) == october
