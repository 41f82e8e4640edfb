"""Runtime configuration of the handlers and the CLI, from the environment.

The same names are set on every Lambda function by the CDK app (``infra/``) and, locally,
by the embedded runtime; boto3 resolves the endpoint itself (``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3

from billing.domain.facts import HmacPseudonymizer
from billing.domain.lateness import TimePolicy
from billing.domain.periods import Period


@dataclass(frozen=True)
class Config:
    table_name: str
    invoice_bucket: str
    rejects_bucket: str
    bus_name: str
    shards: int
    settle_seconds: int
    stage: str
    event_horizon: str = "2020-01"
    max_future_seconds: int = 300
    max_late_periods: int = 3

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ
        return cls(
            table_name=env["TABLE_NAME"],
            invoice_bucket=env.get("INVOICE_BUCKET", ""),
            rejects_bucket=env.get("REJECTS_BUCKET", ""),
            bus_name=env.get("BUS_NAME", ""),
            shards=int(env.get("SHARDS", "16")),
            settle_seconds=int(env.get("SETTLE_SECONDS", "120")),
            stage=env.get("STAGE", "dev"),
            event_horizon=env.get("EVENT_HORIZON", "2020-01"),
            max_future_seconds=int(env.get("MAX_FUTURE_SECONDS", "300")),
            max_late_periods=int(env.get("MAX_LATE_PERIODS", "3")),
        )

    def time_policy(self) -> TimePolicy:
        """The contract's time window and late-event policy of this stage."""
        return TimePolicy(
            horizon=Period.parse(self.event_horizon),
            max_future_seconds=self.max_future_seconds,
            max_late_periods=self.max_late_periods,
        )


@cache
def resource(name: str) -> Any:
    return boto3.resource(name)


@cache
def client(name: str) -> Any:
    return boto3.client(name)


def pseudonymizer() -> HmacPseudonymizer:
    """The keyed hash for end-user identifiers: ``PSEUDONYM_KEY`` (tests, local runs) or the
    Secrets Manager secret named by ``PSEUDONYM_SECRET_ARN`` (read once per container)."""
    return _pseudonymizer(os.environ.get("PSEUDONYM_KEY"), os.environ.get("PSEUDONYM_SECRET_ARN"))


@cache
def _pseudonymizer(key: str | None, secret_arn: str | None) -> HmacPseudonymizer:
    if not key:
        if not secret_arn:
            raise RuntimeError("set PSEUDONYM_SECRET_ARN (or PSEUDONYM_KEY) for end-user hashing")
        key = client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    assert key is not None
    return HmacPseudonymizer(key.encode())
