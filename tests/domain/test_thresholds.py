"""Usage thresholds and the line-by-line comparison of two usages (pure)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from billing.domain.plan import PricePlan
from billing.domain.thresholds import Threshold, differences
from billing.domain.usage import Usage


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({"id": "a"}, id="no-level"),
        pytest.param({"id": "a", "metric": "sms.mt"}, id="metric-without-quantity"),
        pytest.param({"id": "a", "quantity": 3}, id="quantity-without-metric"),
        pytest.param({"id": "a", "metric": "sms.mt", "quantity": 3, "amount": 1}, id="both"),
        pytest.param({"id": "a", "amount": -1}, id="negative"),
        pytest.param({"id": "a", "amount": "NaN"}, id="nan"),
        pytest.param({"id": "a", "amount": True}, id="boolean"),
        pytest.param({"id": "a b", "amount": 1}, id="bad-id"),
        pytest.param({"id": "a", "amount": 1, "extra": 1}, id="unknown-field"),
    ],
)
def test_a_threshold_is_a_metric_quantity_or_an_amount(doc: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Threshold.model_validate(doc)


def usage(**quantities: int) -> Usage:
    out = Usage("2026-10")
    for metric, qty in quantities.items():
        out.add(metric.replace("_", "."), (("country", "FR"),), qty)
        out.add(metric.replace("_", "."), (("country", "DE"),), qty)
    return out


@pytest.mark.parametrize(
    ("doc", "total", "reached"),
    [
        ({"id": "t", "metric": "sms.mt", "quantity": 10}, None, Decimal(10)),  # 5 FR + 5 DE
        ({"id": "t", "metric": "sms.mt", "quantity": "10.01"}, None, None),
        ({"id": "t", "metric": "email", "quantity": 0}, None, Decimal(0)),
        ({"id": "t", "amount": "99.99"}, Decimal("99.99"), Decimal("99.99")),
        ({"id": "t", "amount": "100"}, Decimal("99.99"), None),
        ({"id": "t", "amount": "0"}, None, None),  # no plan: no estimate, never reached
    ],
)
def test_reached_when_the_watched_figure_is_at_or_above_the_level(
    doc: dict[str, Any], total: Decimal | None, reached: Decimal | None
) -> None:
    assert Threshold.model_validate(doc).reached(usage(sms_mt=5), total) == reached


def test_plan_thresholds_name_known_metrics_once() -> None:
    base = {"account": "acme", "currency": "EUR", "effective_from": "2026-10"}
    with pytest.raises(ValidationError, match="unknown metric"):
        PricePlan.model_validate(
            {**base, "thresholds": [{"id": "a", "metric": "x", "quantity": 1}]}
        )
    with pytest.raises(ValidationError, match="appears twice"):
        PricePlan.model_validate(
            {**base, "thresholds": [{"id": "a", "amount": 1}, {"id": "a", "amount": 2}]}
        )


def test_differences_name_each_line_that_differs() -> None:
    a, b = usage(sms_mt=5), usage(sms_mt=5)
    assert differences(a, b) == []
    b.add("sms.mt", (("country", "FR"),), 1)
    b.add("email", (), 2)
    got = [(d.metric, dict(d.dims), d.expected, d.live) for d in differences(a, b)]
    assert got == [("email", {}, 0, 2), ("sms.mt", {"country": "FR"}, 5, 6)]
