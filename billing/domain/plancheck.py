"""Checking a price plan before the close: against itself, and against an account's usage.

``billing plans check --account A --period P`` runs ``check_plan`` on the plan in force
for the period and the account's usage as of now (what ``billing usage`` shows);
``billing plans put`` runs ``plan_warnings`` on the plan alone. Pure functions: no store.

Findings:

- ``unpriced_usage``: a usage line the plan does not price (no price, package or named-user
  term for the metric, or no row matching the line's dimensions). The close would fail the
  account's invoice on it.
- ``impossible_price``: a metric the plan prices that can never occur for the contract, for
  its stated ``products`` (``voice.byoc`` without Conversations, ``moments.mep`` without
  Moments...) or its settings (``whatsapp.conversation`` under the per-template model,
  ``recording.licence`` for a Conversations account...). Dead weight or a mistake.
- ``usage_outside_products``: usage of a metric that belongs to a product the contract
  does not include (it is billed if priced: the check reports, it does not decide).

The estimate is the invoice ``build_invoice`` would produce from the usage so far,
without the unpriced lines (named in ``estimate_excludes``): an estimate, not an invoice
(late events, adjustments of earlier periods and the rest of the month are not in it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from billing.domain.invoice import Invoice
from billing.domain.plan import MAA, PricePlan
from billing.domain.rating import RatingError, build_invoice
from billing.domain.rules import FREE_UNLESS_PRICED, RULES, Rule
from billing.domain.settings import ContractSettings
from billing.domain.usage import Dims, LineKey, Usage

FindingKind = Literal["unpriced_usage", "impossible_price", "usage_outside_products"]


@dataclass(frozen=True, order=True)
class Finding:
    kind: FindingKind
    metric: str
    detail: str
    dims: Dims = ()
    quantity: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "metric": self.metric, "detail": self.detail}
        if self.dims:
            doc["dimensions"] = dict(self.dims)
        if self.quantity is not None:
            doc["quantity"] = f"{self.quantity.normalize():f}"
        return doc


@dataclass(frozen=True)
class PlanCheck:
    account: str
    period: str
    plan_effective_from: str
    findings: tuple[Finding, ...]
    estimate: Invoice | None = None
    estimate_excludes: tuple[LineKey, ...] = field(default=())

    def of_kind(self, kind: FindingKind) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "account": self.account,
            "period": self.period,
            "plan_effective_from": self.plan_effective_from,
            "findings": [f.to_json() for f in self.findings],
        }
        if self.estimate is not None:
            doc["estimate"] = {
                "note": "estimate from the usage so far, not an invoice",
                "excludes_unpriced": [
                    {"metric": m, "dimensions": dict(d)} for m, d in self.estimate_excludes
                ],
                "currency": self.estimate.currency,
                "subtotal": str(self.estimate.subtotal),
                "total": str(self.estimate.total),
                "lines": [
                    {
                        "metric": line.metric,
                        "description": line.description,
                        "quantity": str(line.quantity),
                        "amount": str(line.amount),
                    }
                    for line in [*self.estimate.lines, *self.estimate.commitment_lines]
                ],
            }
        return doc


def _enabled(r: Rule, settings: ContractSettings) -> bool:
    return r.when(settings)


def _for_products(r: Rule, settings: ContractSettings) -> bool:
    return r.product is None or settings.products is None or r.product in settings.products


def _emitted(r: Rule) -> set[str]:
    """The metrics a rule writes: its own, and a second one some strategies write (Viber
    session pricing charges the messages outside sessions as ``viber``; the named-user
    peak of the start day)."""
    extra = (getattr(r.strategy, n, None) for n in ("message_metric", "initial_metric"))
    return {r.metric, *(m for m in extra if isinstance(m, str))}


def _rules_writing(metric: str) -> list[Rule]:
    return [r for r in RULES if metric in _emitted(r)]


def possible_metrics(settings: ContractSettings) -> frozenset[str]:
    """The metrics that can occur for a contract: some rule writing the metric is switched
    on by its settings and belongs to no product, or to one of its stated products."""
    found: set[str] = set()
    for r in RULES:
        if _enabled(r, settings) and _for_products(r, settings):
            found |= _emitted(r)
    return frozenset(found)


def _why_impossible(metric: str, settings: ContractSettings) -> str:
    rules = _rules_writing(metric)
    if not any(_enabled(r, settings) for r in rules):
        return "the contract's settings switch off every rule that counts it (pricing model)"
    products = sorted({r.product.value for r in rules if r.product is not None})
    stated = sorted(p.value for p in settings.products or ())
    return f"belongs to {' / '.join(products)}, not in the contract's products {stated}"


def _priced_metrics(plan: PricePlan) -> list[str]:
    metrics = [*plan.prices, *plan.packages]
    if plan.named_users is not None:
        metrics.append(MAA)
    return sorted(set(metrics))


def plan_warnings(plan: PricePlan) -> list[Finding]:
    """What can be said of a plan alone: the priced metrics that can never occur for it."""
    possible = possible_metrics(plan.settings)
    return [
        Finding("impossible_price", metric, _why_impossible(metric, plan.settings))
        for metric in _priced_metrics(plan)
        if metric not in possible
    ]


def _without(usage: Usage, keys: set[LineKey]) -> Usage:
    def keep(d: Mapping[LineKey, Any]) -> dict[LineKey, Any]:
        return {k: v for k, v in d.items() if k not in keys}

    return dataclasses.replace(
        usage,
        quantities=keep(usage.quantities),
        events=keep(usage.events),
        distinct=keep(usage.distinct),
    )


def check_plan(plan: PricePlan, period: str, usage: Usage) -> PlanCheck:
    """The plan in force for ``period`` checked against the account's ``usage`` of it."""
    usage = usage.resolved()
    findings = plan_warnings(plan)
    figures = usage.figures()
    possible = possible_metrics(plan.settings)
    for metric in sorted({m for (m, _), q in figures.items() if q}):
        if metric not in possible and metric not in FREE_UNLESS_PRICED:
            findings.append(
                Finding("usage_outside_products", metric, _why_impossible(metric, plan.settings))
            )
    excluded: set[LineKey] = set()
    try:
        estimate = build_invoice(plan.account, period, plan, usage)
    except RatingError as err:
        excluded = {(m, d) for m, d in err.missing}
        for metric, dims in err.missing:
            if plan.prices_metric(metric):
                why = "no price row matches these dimensions (and there is no default row)"
            else:
                why = "the plan has no price, package or named-user term for this metric"
            findings.append(
                Finding("unpriced_usage", metric, why, dims, figures.get((metric, dims)))
            )
        estimate = build_invoice(plan.account, period, plan, _without(usage, excluded))
    return PlanCheck(
        account=plan.account,
        period=period,
        plan_effective_from=plan.effective_from,
        findings=tuple(sorted(findings)),
        estimate=estimate,
        estimate_excludes=tuple(sorted(excluded)),
    )
