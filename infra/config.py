"""Deployment settings of the billing stack, read from CDK context.

Every knob has a default, so ``python app.py`` synthesizes the ``dev`` stage with no
arguments. Values given on the command line (``npx cdk synth -c shards=32``) arrive as
strings, so each one is parsed and checked here rather than where it is used.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from constructs import Node

# The least HOT_MONTHS (billing.domain.retention.HOT_MONTHS_FLOOR): a fact stays in the
# table until the close that bills it has run (then TTL_MARGIN_DAYS more).
HOT_MONTHS_FLOOR = 0
# The least days an item stays after its hot months (billing.domain.retention.
# TTL_MARGIN_DAYS): a deployment with draft invoices adds its grace days (the final close
# runs then).
TTL_MARGIN_DAYS = 14

T = TypeVar("T")

_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)  # fmt: skip  # noqa: E501

# Context key -> (default, one-line meaning). docs/deploy.md lists the same keys.
CONTEXT_KEYS: dict[str, tuple[object, str]] = {
    "stage": ("dev", "stage name: stack Billing-{stage}, bus billing-{stage}"),
    "removal_policy": ("retain", "retain | destroy: what deleting the stack does to data"),
    "intake_max_receives": (5, "receives of an intake message before it goes to IntakeDlq"),
    "ingest_timeout_seconds": (60, "ingest Lambda timeout"),
    "ingest_memory_mb": (1024, "ingest Lambda memory"),
    "ingest_reserved_concurrency": (20, "reserved concurrency of ingest (0 = none)"),
    "ingest_batch_size": (100, "SQS messages per ingest invocation"),
    "ingest_max_batching_window_seconds": (5, "how long SQS gathers a batch"),
    "live_batch_size": (2000, "stream records per live-view invocation (fewer refreshes)"),
    "live_max_batching_window_seconds": (
        5,
        "how long the stream gathers a batch for the live view (freshness vs refreshes)",
    ),
    "close_account_concurrency": (10, "accounts closed in parallel by the month close"),
    "close_shard_concurrency": (16, "shards of one account computed in parallel"),
    "close_grace_hours": (
        6,
        "hours after a local month end before its close (with drafts: its draft close)",
    ),
    "close_timeout_hours": (24, "month-close execution timeout"),
    "invoice_grace_days": (
        0,
        "days invoices stay drafts after the scheduled close (0: final at once); then the "
        "scheduled finalization freezes each time zone's period and numbers them",
    ),
    "require_billing_profile": (False, "fail the close of an account without a billing profile"),
    "shards": (16, "usage shards per account (SHARDS)"),
    "settle_seconds": (120, "wait after the freeze before reading the period (SETTLE_SECONDS)"),
    "event_horizon": ("2020-01", "first period an event may fall in (EVENT_HORIZON)"),
    "max_future_seconds": (300, "how far ahead of the clock an event may be (MAX_FUTURE_SECONDS)"),
    "max_late_periods": (3, "periods of lateness accepted for closed periods (MAX_LATE_PERIODS)"),
    "hot_months": (
        0,
        "months a fact stays in the table after the period whose close bills it (its own, "
        "or a late fact's adjusting one), plus 14 days and the invoice grace days, then only "
        "in the archive (HOT_MONTHS)",
    ),
    "archive_retention_days": (
        400,
        "days after its period an archived fact is locked and kept (ARCHIVE_RETENTION_DAYS)",
    ),
    "log_level": ("INFO", "LOG_LEVEL of every function"),
    "log_retention_days": (365, "retention of Lambda and state-machine log groups"),
    "finance_principal_arn": ("", "who may assume FinanceRole (unset: no role, policy only)"),
    "operator_principal_arn": ("", "who may assume OperatorRole (unset: no role, policy only)"),
    "rejects_retention_days": (30, "days a rejected event is kept (raw end-user data)"),
    "invoice_lock_mode": ("GOVERNANCE", "S3 Object Lock mode of issued invoices"),
    "invoice_retention_years": (10, "years issued invoices are locked against deletion"),
    "alarm_email": ("", "e-mail address subscribed to AlarmTopic (optional)"),
    "bundle_dependencies": (False, "pip-install the runtime dependencies into the asset"),
}


class ConfigError(ValueError):
    """A context value that cannot be used."""


def _as_int(key: str, value: object, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"context {key!r}: expected an integer, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError as exc:
        raise ConfigError(f"context {key!r}: expected an integer, got {value!r}") from exc
    if not minimum <= number <= maximum:
        raise ConfigError(f"context {key!r}: {number} is outside [{minimum}, {maximum}]")
    return number


def _as_bool(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"context {key!r}: expected true/false, got {value!r}")


def _as_str(key: str, value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise ConfigError(f"context {key!r}: expected a string, got {value!r}")
    return str(value).strip()


@dataclass(frozen=True)
class BillingConfig:
    stage: str = "dev"
    retain_data: bool = True
    intake_max_receives: int = 5
    ingest_timeout_seconds: int = 60
    ingest_memory_mb: int = 1024
    ingest_reserved_concurrency: int = 20
    ingest_batch_size: int = 100
    ingest_max_batching_window_seconds: int = 5
    live_batch_size: int = 2000
    live_max_batching_window_seconds: int = 5
    close_account_concurrency: int = 10
    close_shard_concurrency: int = 16
    close_grace_hours: int = 6
    close_timeout_hours: int = 24
    invoice_grace_days: int = 0
    require_billing_profile: bool = False
    shards: int = 16
    settle_seconds: int = 120
    event_horizon: str = "2020-01"
    max_future_seconds: int = 300
    max_late_periods: int = 3
    hot_months: int = 0
    archive_retention_days: int = 400
    log_level: str = "INFO"
    log_retention_days: int = 365
    finance_principal_arn: str = ""
    operator_principal_arn: str = ""
    rejects_retention_days: int = 30
    invoice_lock_mode: str = "GOVERNANCE"
    invoice_retention_years: int = 10
    alarm_email: str = ""
    bundle_dependencies: bool = False

    @property
    def effective_hot_months(self) -> int:
        """HOT_MONTHS: the setting, or its least allowed value (billing.domain.retention)."""
        return max(self.hot_months, HOT_MONTHS_FLOOR)

    @property
    def ttl_margin_days(self) -> int:
        """TTL_MARGIN_DAYS: the least margin, plus the days invoices stay drafts (the final
        close, which archives, runs after them)."""
        return TTL_MARGIN_DAYS + self.invoice_grace_days

    @property
    def intake_visibility_timeout_seconds(self) -> int:
        """AWS guidance for SQS event sources: 6 x the function timeout + the batching window."""
        return 6 * self.ingest_timeout_seconds + self.ingest_max_batching_window_seconds

    @classmethod
    def from_node(cls, node: Node) -> BillingConfig:
        """Read the settings from the construct tree's context (cdk.json, ``-c`` flags)."""
        return cls.from_mapping({key: node.try_get_context(key) for key in CONTEXT_KEYS})

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> BillingConfig:
        def get(key: str, parse: Callable[[str, object], T]) -> T:
            value = values.get(key)
            if value is None:
                value = CONTEXT_KEYS[key][0]
            return parse(key, value)

        def integer(minimum: int, maximum: int) -> Callable[[str, object], int]:
            return lambda key, value: _as_int(key, value, minimum=minimum, maximum=maximum)

        stage = get("stage", _as_str)
        if not _STAGE.match(stage):
            raise ConfigError(
                f"context 'stage': {stage!r} must be lower-case letters, digits and '-' "
                "(at most 20, starting with a letter)"
            )
        removal = get("removal_policy", _as_str).lower()
        if removal not in {"retain", "destroy"}:
            raise ConfigError(f"context 'removal_policy': expected retain|destroy, got {removal!r}")
        log_level = get("log_level", _as_str).upper()
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError(f"context 'log_level': unknown level {log_level!r}")
        principal = get("finance_principal_arn", _as_str)
        if principal and not principal.startswith("arn:"):
            raise ConfigError(f"context 'finance_principal_arn': not an ARN: {principal!r}")
        operator = get("operator_principal_arn", _as_str)
        if operator and not operator.startswith("arn:"):
            raise ConfigError(f"context 'operator_principal_arn': not an ARN: {operator!r}")
        lock_mode = get("invoice_lock_mode", _as_str).upper()
        if lock_mode not in {"GOVERNANCE", "COMPLIANCE"}:
            raise ConfigError(
                f"context 'invoice_lock_mode': expected GOVERNANCE|COMPLIANCE, got {lock_mode!r}"
            )

        horizon = get("event_horizon", _as_str)
        if not re.match(r"^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])$", horizon):
            raise ConfigError(f"context 'event_horizon': expected YYYY-MM, got {horizon!r}")

        config = cls(
            stage=stage,
            retain_data=removal == "retain",
            intake_max_receives=get("intake_max_receives", integer(1, 1000)),
            ingest_timeout_seconds=get("ingest_timeout_seconds", integer(1, 900)),
            ingest_memory_mb=get("ingest_memory_mb", integer(128, 10240)),
            ingest_reserved_concurrency=get("ingest_reserved_concurrency", integer(0, 1000)),
            ingest_batch_size=get("ingest_batch_size", integer(1, 10000)),
            ingest_max_batching_window_seconds=get(
                "ingest_max_batching_window_seconds", integer(0, 300)
            ),
            live_batch_size=get("live_batch_size", integer(1, 10000)),
            live_max_batching_window_seconds=get(
                "live_max_batching_window_seconds", integer(0, 300)
            ),
            close_account_concurrency=get("close_account_concurrency", integer(1, 1000)),
            close_shard_concurrency=get("close_shard_concurrency", integer(1, 1000)),
            close_grace_hours=get("close_grace_hours", integer(0, 23)),
            close_timeout_hours=get("close_timeout_hours", integer(1, 24 * 365)),
            invoice_grace_days=get("invoice_grace_days", integer(0, 27)),
            require_billing_profile=get("require_billing_profile", _as_bool),
            shards=get("shards", integer(1, 256)),
            settle_seconds=get("settle_seconds", integer(0, 86400)),
            event_horizon=horizon,
            max_future_seconds=get("max_future_seconds", integer(0, 86400)),
            max_late_periods=get("max_late_periods", integer(0, 12)),
            hot_months=get("hot_months", integer(0, 13)),
            archive_retention_days=get("archive_retention_days", integer(30, 3653)),
            log_level=log_level,
            log_retention_days=get("log_retention_days", integer(1, 3653)),
            finance_principal_arn=principal,
            operator_principal_arn=operator,
            rejects_retention_days=get("rejects_retention_days", integer(1, 400)),
            invoice_lock_mode=lock_mode,
            invoice_retention_years=get("invoice_retention_years", integer(1, 100)),
            alarm_email=get("alarm_email", _as_str),
            bundle_dependencies=get("bundle_dependencies", _as_bool),
        )
        if config.ingest_batch_size > 10 and config.ingest_max_batching_window_seconds < 1:
            raise ConfigError(
                "an SQS batch size above 10 needs ingest_max_batching_window_seconds >= 1"
            )
        if config.log_retention_days not in LOG_RETENTION_DAYS:
            raise ConfigError(
                f"context 'log_retention_days': {config.log_retention_days} is not one of "
                f"{LOG_RETENTION_DAYS}"
            )
        if config.intake_visibility_timeout_seconds > 43200:
            raise ConfigError("ingest timeout too long for the 12 h SQS visibility timeout limit")
        if config.archive_retention_days < 30 * config.effective_hot_months:
            raise ConfigError("context 'archive_retention_days': shorter than the hot months")
        return config
