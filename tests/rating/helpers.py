"""Small builders for rating tests: plans from dicts, usage from figures."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from billing.domain.plan import PricePlan
from billing.domain.usage import Usage

BASE: dict[str, Any] = {"account": "acme", "currency": "EUR", "effective_from": "2026-10"}


def plan(**fields: Any) -> PricePlan:
    return PricePlan.model_validate({**BASE, **fields})


def usage(
    figures: Mapping[tuple[str, tuple[tuple[str, str], ...]], int | str | Decimal],
    period: str = "2026-10",
) -> Usage:
    """A usage with one charge per line (so each line's evidence is 1)."""
    out = Usage(period)
    for (metric, dims), qty in figures.items():
        out.add(metric, dims, Decimal(qty))
    return out


def one(metric: str, qty: int | str, **dims: str) -> Usage:
    return usage({(metric, tuple(sorted(dims.items()))): qty})
