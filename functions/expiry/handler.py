"""Lambda: TTL deletions from the usage table's stream -> the expiry guard (billing.expiry)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.adapters.archive import FactArchive
from billing.adapters.store import UsageStore
from billing.config import Config, client, resource
from billing.expiry import ARCHIVED, LATE, RESTORED, ExpiryGuard

logger = Logger(service="billing-expiry")
tracer = Tracer(service="billing-expiry")
metrics = Metrics(namespace="Billing", service="billing-expiry")


@cache
def guard() -> ExpiryGuard:
    cfg = Config.from_env()
    store = UsageStore(resource("dynamodb").Table(cfg.table_name), cfg.shards)
    return ExpiryGuard(store, FactArchive.from_env(client("s3"), cfg.invoice_bucket))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = guard().handle(event.get("Records", []))
    metrics.add_metric("ExpiredArchived", MetricUnit.Count, outcome.counts[ARCHIVED])
    # an item kept because its close had not archived it: the close is overdue (alarm)
    metrics.add_metric("ExpiredUnarchived", MetricUnit.Count, outcome.counts[RESTORED])
    metrics.add_metric("ExpiredMissedByClose", MetricUnit.Count, outcome.counts[LATE])
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in outcome.failed]}
