"""Lambdas of the month-close state machine: one thin function per task (billing.close)."""

from __future__ import annotations

import os
import threading
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.adapters.archive import FactArchive
from billing.adapters.invoices import DocumentStore, InvoiceLock
from billing.adapters.store import UsageStore
from billing.close import MonthClose, Unit
from billing.config import Config, client, resource

logger = Logger(service="billing-close")
tracer = Tracer(service="billing-close")
metrics = Metrics(namespace="Billing", service="billing-close")
# One task's metric is added and flushed together: the local runtime runs tasks in threads
# of one process, sharing ``metrics`` (on AWS a container runs one task at a time); the
# runtime also silences the empty-flush warning another function's flush can still cause.
_METRICS = threading.Lock()


def publish(name: str, value: int) -> None:
    """Add one count metric and flush it (with the task's cold start, if any)."""
    with _METRICS:
        metrics.add_metric(name, MetricUnit.Count, value)
        metrics.flush_metrics()


@cache
def month_close() -> MonthClose:
    cfg = Config.from_env()
    return MonthClose(
        store=UsageStore(
            resource("dynamodb").Table(cfg.table_name),
            cfg.shards,
            archive=FactArchive.from_env(client("s3"), cfg.invoice_bucket),
        ),
        documents=DocumentStore(client("s3"), cfg.invoice_bucket, InvoiceLock.from_env()),
        events=client("events"),
        bus_name=cfg.bus_name,
        settle_seconds=cfg.settle_seconds,
        require_profile=os.environ.get("REQUIRE_BILLING_PROFILE", "false") == "true",
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def freeze(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The state machine passes its input under ``input`` and its execution id under
    ``execution`` (the close lock's owner); a direct call passes the input itself."""
    given = event.get("input", event)
    frozen = month_close().freeze(
        given.get("period"),
        given.get("settle_seconds"),
        force=bool(given.get("force", False)),
        execution=event.get("execution"),
        lease_seconds=event.get("lease_seconds"),
        draft=bool(given.get("draft", False)),
        grace_hours=given.get("grace_hours"),
    )
    return frozen.payload()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def release(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Failure path of the close: free the period's lock held by this execution."""
    month_close().release(event.get("period"), event["execution"])
    return {"released": True}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def list_accounts(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return month_close().list_accounts(event["period"], event.get("cursor")).payload()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def plan_account(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return month_close().plan_account(event["period"], event["account"]).payload()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def compute_shard(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One unit of ``plan_account``: its storage shards (``shards``; ``shard`` alone for a
    unit planned before units were sized)."""
    month_close().compute_unit(Unit.from_payload(event))
    return {"ok": True}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def rate_account(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = month_close().rate_account(event["period"], event["account"]).payload()
    if result.get("live_differences"):
        logger.warning("live view differs from the close", extra=result)
    publish("LiveViewDifferences", int(result.get("live_differences", 0)))
    return result


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def record_failure(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.warning("account failed to close", extra={"account": event["account"]})
    month_close().record_failure(event["period"], event["account"], event.get("error") or {})
    return {"account": event["account"], "status": "failed"}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def audit_ids(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The close's id audit (``billing.adapters.ids``): with ``plan``, its tasks (PlanAudit:
    the close's ``buckets`` grouped so that each task holds its rows in one pass); else one
    task's ``buckets`` (``bucket``: one, as before), each file read once for all of them."""
    close = month_close()
    if event.get("plan"):
        return {"tasks": close.plan_audit(event["period"], [int(b) for b in event["buckets"]])}
    buckets = event["buckets"] if "buckets" in event else [event["bucket"]]
    audits = close.audit_buckets(event["period"], [int(b) for b in buckets])
    for audit in audits:
        if audit.conflicts:
            logger.warning("event ids stored with two contents", extra=audit.payload())
    publish("IdConflicts", sum(audit.conflicts for audit in audits))
    return {"audits": [audit.payload() for audit in audits]}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def finish(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = month_close().finish(event["period"], execution=event.get("execution"))
    done = summary.payload()
    # the items that expire next must be archived by now (ArchiveMissingAlarm); a draft
    # close archives nothing
    missing = [] if summary.drafts is not None else month_close().unarchived(event["period"])
    if missing:
        logger.error("facts not archived before their items expire", extra={"missing": missing})
    publish("ArchiveMissing", len(missing))
    return {**done, "archive_missing": len(missing)}
