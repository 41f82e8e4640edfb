"""Lambda: SQS batch of usage events -> facts in DynamoDB (see billing.ingest)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config as BotoConfig

from billing.adapters.rejects import RejectStore
from billing.adapters.store import UsageStore
from billing.config import Config, client, pseudonymizer
from billing.ingest import Ingestor, logger, metrics

tracer = Tracer(service="billing-ingest")


@cache
def ingestor() -> Ingestor:
    cfg = Config.from_env()
    # Every item is built by this code from a validated fact: botocore's client-side
    # parameter validation would only re-check it, at a third of the handler's CPU.
    dynamodb = boto3.resource("dynamodb", config=BotoConfig(parameter_validation=False))
    store = UsageStore(dynamodb.Table(cfg.table_name), cfg.shards)
    return Ingestor(
        store,
        RejectStore(client("s3"), cfg.rejects_bucket),
        pseudonymizer(),
        time_policy=cfg.time_policy(),
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return ingestor().handle(event)
