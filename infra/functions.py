"""How every Lambda function of the stack is made: one code asset, one runtime, own role.

All functions share the code asset and one environment (see ``shared_environment``):
the local runtime runs every handler in a single process with the union of their
environments, so a variable name must mean the same thing in every function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import BillingConfig
from infra.nag import acknowledge, acknowledge_findings

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.X86_64

# The names every function's environment carries (POWERTOOLS_SERVICE_NAME differs by role).
ENVIRONMENT_NAMES = (
    "TABLE_NAME",
    "INVOICE_BUCKET",
    "REJECTS_BUCKET",
    "BUS_NAME",
    "PSEUDONYM_SECRET_ARN",
    "SHARDS",
    "STAGE",
    "SETTLE_SECONDS",
    "EVENT_HORIZON",
    "MAX_FUTURE_SECONDS",
    "MAX_LATE_PERIODS",
    "HOT_MONTHS",
    "TTL_MARGIN_DAYS",
    "ARCHIVE_RETENTION_DAYS",
    "INVOICE_LOCK_MODE",
    "INVOICE_RETENTION_YEARS",
    "REQUIRE_BILLING_PROFILE",
    "LOG_LEVEL",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
)

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}

RUNTIME_PINNED = (
    "Python 3.12 is pinned on purpose: the code and its binary wheels are built and tested "
    "for 3.12; moving to a newer runtime is a deliberate, tested change."
)
XRAY_WILDCARD = (
    "xray:PutTraceSegments and xray:PutTelemetryRecords do not support resource-level "
    "permissions; AWS documents Resource '*' for them."
)


def retention(config: BillingConfig) -> logs.RetentionDays:
    return _RETENTION[config.log_retention_days]


def removal_policy(config: BillingConfig) -> RemovalPolicy:
    return RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY


def shared_environment(
    config: BillingConfig,
    *,
    table_name: str,
    invoice_bucket: str,
    rejects_bucket: str,
    bus_name: str,
    pseudonym_secret_arn: str,
) -> dict[str, str]:
    """The environment common to every function (without POWERTOOLS_SERVICE_NAME)."""
    return {
        "TABLE_NAME": table_name,
        "INVOICE_BUCKET": invoice_bucket,
        "REJECTS_BUCKET": rejects_bucket,
        "BUS_NAME": bus_name,
        "PSEUDONYM_SECRET_ARN": pseudonym_secret_arn,
        "SHARDS": str(config.shards),
        "STAGE": config.stage,
        "SETTLE_SECONDS": str(config.settle_seconds),
        "EVENT_HORIZON": config.event_horizon,
        "MAX_FUTURE_SECONDS": str(config.max_future_seconds),
        "MAX_LATE_PERIODS": str(config.max_late_periods),
        "HOT_MONTHS": str(config.effective_hot_months),
        "TTL_MARGIN_DAYS": str(config.ttl_margin_days),
        "ARCHIVE_RETENTION_DAYS": str(config.archive_retention_days),
        "INVOICE_LOCK_MODE": config.invoice_lock_mode,
        "INVOICE_RETENTION_YEARS": str(config.invoice_retention_years),
        "REQUIRE_BILLING_PROFILE": "true" if config.require_billing_profile else "false",
        "LOG_LEVEL": config.log_level,
        "POWERTOOLS_METRICS_NAMESPACE": "Billing",
    }


def billing_function(
    scope: Construct,
    construct_id: str,
    *,
    config: BillingConfig,
    code: lambda_.Code,
    handler: str,
    name: str,
    description: str,
    service: str,
    environment: Mapping[str, str],
    timeout: Duration,
    memory_mb: int,
    reserved_concurrency: int | None = None,
) -> lambda_.Function:
    """A traced Python 3.12 function with its own role and its own log group.

    The role starts empty: the function may write only to its log group (and X-Ray);
    everything else is granted by the caller for exactly what the handler does.
    """
    role = iam.Role(
        scope,
        f"{construct_id}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"{name}: {description}",
    )
    log_group = logs.LogGroup(
        scope,
        f"{construct_id}Logs",
        retention=retention(config),
        removal_policy=removal_policy(config),
    )
    function = lambda_.Function(
        scope,
        construct_id,
        function_name=name,
        description=description,
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        code=code,
        handler=handler,
        role=role,
        timeout=timeout,
        memory_size=memory_mb,
        reserved_concurrent_executions=reserved_concurrency,
        tracing=lambda_.Tracing.ACTIVE,
        log_group=log_group,
        environment={**environment, "POWERTOOLS_SERVICE_NAME": service},
    )
    log_group.grant_write(role)
    acknowledge(function, "L1", RUNTIME_PINNED)
    acknowledge_findings(role, "IAM5", ["Resource::*"], XRAY_WILDCARD)
    return function


def function_name(config: BillingConfig, suffix: str) -> str:
    return f"billing-{config.stage}-{suffix}"


def table_stream_source(
    table: dynamodb.ITable,
    *,
    dlq: sqs.IQueue,
    batch_size: int,
    max_batching_window: Duration,
    filters: Sequence[Mapping[str, Any]],
) -> sources.DynamoEventSource:
    """A table's stream as a function's event source, with the project's failure policy:
    read from the oldest record; a failing batch is bisected and retried up to 10 times,
    the function reports the records that failed (retried from the first of them), and
    what still fails goes to ``dlq``."""
    return sources.DynamoEventSource(
        table,
        starting_position=lambda_.StartingPosition.TRIM_HORIZON,
        batch_size=batch_size,
        max_batching_window=max_batching_window,
        bisect_batch_on_error=True,
        retry_attempts=10,
        report_batch_item_failures=True,
        on_failure=sources.SqsDlq(dlq),
        filters=filters,
    )
