"""Usage thresholds and the comparison of two usages, line by line (pure).

A threshold watches either one metric's quantity (summed over its dimensions, as the
invoice shows it) or the estimated amount of the period so far. It is reached when the
watched figure is at or above its level; ``billing.live`` announces each threshold once
per period.

``differences`` compares the figures of two usages of the same account and period: the
close's reconciliation with the live view, and ``billing usage --recompute``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from billing.domain.usage import Dims, Usage


def _exact(value: Any) -> Any:
    """A level is a number or a decimal string; YAML floats are read by their text."""
    if isinstance(value, bool):
        raise ValueError("a level must be a number or a decimal string, not a boolean")
    return Decimal(repr(value)) if isinstance(value, float) else value


Level = Annotated[
    Decimal, BeforeValidator(_exact), Field(ge=0, le=Decimal("1e15"), allow_inf_nan=False)
]


class Threshold(BaseModel):
    """One alert level of an account: ``metric`` + ``quantity``, or ``amount``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="unique per account")
    metric: str | None = Field(None, max_length=100, description="a metric id of the rules")
    quantity: Level | None = None
    amount: Level | None = Field(None, description="estimated total, in the plan's currency")

    @model_validator(mode="after")
    def _one_level(self) -> Threshold:
        by_metric = self.metric is not None and self.quantity is not None
        by_amount = self.amount is not None and self.metric is None and self.quantity is None
        if by_metric == by_amount or (by_metric and self.amount is not None):
            raise ValueError("a threshold is either metric + quantity, or amount")
        return self

    @property
    def level(self) -> Decimal:
        level = self.quantity if self.amount is None else self.amount
        assert level is not None
        return level

    def watched(self, usage: Usage, estimated_total: Decimal | None) -> Decimal | None:
        """The figure this threshold watches (``None``: no estimate without a plan)."""
        if self.amount is not None:
            return estimated_total
        return usage.by_metric().get(str(self.metric), Decimal(0))

    def reached(self, usage: Usage, estimated_total: Decimal | None) -> Decimal | None:
        """The watched figure when it is at or above the level, else ``None``."""
        value = self.watched(usage, estimated_total)
        return value if value is not None and value >= self.level else None


@dataclass(frozen=True)
class Difference:
    metric: str
    dims: Dims
    expected: Decimal  # the reference (the close, or the recomputation)
    live: Decimal

    def to_json(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "dims": dict(self.dims),
            "expected": str(self.expected),
            "live": str(self.live),
        }


def differences(expected: Usage, live: Usage) -> list[Difference]:
    """Every line whose billable quantity differs between the two usages."""
    a, b = expected.figures(), live.figures()
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key, Decimal(0)), b.get(key, Decimal(0))
        if x != y:
            out.append(Difference(key[0], key[1], x, y))
    return out
