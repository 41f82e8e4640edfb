"""Lambda: the usage table's stream -> the live view of usage (see billing.live)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.adapters.archive import FactArchive
from billing.adapters.invoices import DocumentStore
from billing.adapters.state import StateStore
from billing.adapters.store import UsageStore
from billing.config import Config, client, resource
from billing.live import LiveUsage

logger = Logger(service="billing-live")
tracer = Tracer(service="billing-live")
metrics = Metrics(namespace="Billing", service="billing-live")


@cache
def live() -> LiveUsage:
    cfg = Config.from_env()
    # strongly consistent reads: a refresh must see the item that triggered it
    # closed periods' facts whose items expired are read from the close's archive
    archive = FactArchive.from_env(client("s3"), cfg.invoice_bucket) if cfg.invoice_bucket else None
    store = UsageStore(
        resource("dynamodb").Table(cfg.table_name),
        cfg.shards,
        consistent_reads=True,
        archive=archive,
    )
    # a refresh starts from the entity state the previous close saved (``state/``)
    states = (
        StateStore(DocumentStore(client("s3"), cfg.invoice_bucket), cache=4096)
        if cfg.invoice_bucket
        else None
    )
    return LiveUsage(store, events=client("events"), bus_name=cfg.bus_name, states=states)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "rollover" in event:  # the schedule: entities held on into each account's new period
        period = event.get("period")  # None: each account in its own calendar
        refreshed = live().roll_over(period)
        metrics.add_metric("LiveShardsRolledOver", MetricUnit.Count, len(refreshed))
        return {"period": period, "refreshed": len(refreshed)}
    if "sweep" in event:  # the schedule: large shards whose refresh was deferred
        refreshed = live().sweep()
        metrics.add_metric("LiveDeferredRefreshes", MetricUnit.Count, len(refreshed))
        return {"refreshed": len(refreshed)}
    result = live().handle_stream(event.get("Records", []))
    metrics.add_metric("LiveRefreshes", MetricUnit.Count, result["refreshed"])
    metrics.add_metric("UsageThresholdsReached", MetricUnit.Count, result["alerts"])
    metrics.add_metric("LiveRefreshFailures", MetricUnit.Count, len(result["batchItemFailures"]))
    return {"batchItemFailures": result["batchItemFailures"]}
