"""Price plans: the customer's contract as data (the rulebook has no prices).

A plan is loaded from YAML or JSON and validated strictly: an unknown field, an unknown
metric or dimension, overlapping price rows or unordered tiers are errors when the plan is
stored, not a silent zero at the month-end close. The JSON Schema in
``schemas/price-plan.schema.json`` is generated from these models
(``python -m billing.domain.plan``; a test fails when it is stale).

What a plan says::

    account: acme                # the customer
    currency: EUR                # ISO 4217; amounts are rounded to its minor unit
    effective_from: 2026-10      # first period the plan applies to
    settings: {...}              # overrides of the rulebook Decisions (ContractSettings)
    prices:                      # metric -> price rows (or one bare unit price)
      sms.mt:
        - match: {country: FR}   # rows are matched on the usage line's dimensions
          tiers: [{up_to: 100000, unit_price: "0.045"}, {unit_price: "0.040"}]
          tier_mode: graduated   # or volume
        - unit_price: "0.080"    # the default row (no match)
      voice.ivr: "0.0120"        # voice metrics are priced per minute (usage is seconds)
    packages:                    # distinct metrics: fee, included quantity, overage
      whatsapp.mau: {monthly_fee: "150.00", included: 2000, overage_unit_price: "0.05"}
    products: [conversations]    # subscribed products (moments, answers, things, signals)
    named_users: {seat_price: "45.00"}   # Conversations seats (conversations.maa)
    fees:                        # one-time or monthly fees not driven by usage
      - {code: byoc.setup, description: BYOC setup, amount: "500.00", billed: once,
         period: 2026-10}
    commitments:                 # minimum spend over a scope of metrics
      - {name: viber.minimum, metrics: [viber], minimum: "300.00", mode: post_pay}

Row matching: a usage line's dimensions (country, network, direction, category,
number_type, sender_id) are compared with each row's ``match``; the most specific row
whose every ``match`` entry equals the line's value wins (ties: the earlier row), and a
row without ``match`` is the default. A row with ``unit_price`` prices each usage line on
its own; a row with ``tiers`` prices the total quantity of all the lines it matched (so
tiers count the whole volume of, say, France across networks) and yields one line.

Named users (``conversations.maa``): ``seat_price`` per seat and month, above
``included_seats``, plus an optional ``monthly_fee``. In the first month (the month of
``settings.named_user_service_start``) the fee and the seats held on the start day
(``conversations.maa.initial``) are prorated by (days from the start day to the month end,
inclusive) / (days in the month); seats above those are billed at full price.

Products: when the plan states them, a recording is a Conversations recording (storage per
GB-day, no licences) exactly when ``conversations`` is among them, whatever the events'
``via_conversations`` flag says; a flag that claims Conversations for an account without it
is reported as an invoice note (``recording.conversations_flag``). ``billing plans check``
(``plancheck.py``) lists the priced metrics the products make impossible. A plan without
``products`` keeps the flag-driven behaviour. Like every term, products change with a new
plan version (``effective_from``).

Commitments: the scope's actual amount is the sum of the scope's rated lines. Post-pay
invoices max(actual, minimum) by adding a top-up line. Pre-pay deducts max(actual,
minimum) from prepaid credit (a negative ``prepaid`` line); when the plan states the
``credit_balance``, a balance that does not cover it is reported as credit to buy.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from billing.domain.counting import CallSeconds
from billing.domain.events import AccountId
from billing.domain.periods import Period, ZoneOf, zoned, zones_from
from billing.domain.rules import FREE_UNLESS_PRICED, RULES, RULES_BY_METRIC
from billing.domain.settings import ContractSettings, ProductSet
from billing.domain.thresholds import Threshold

#: named-user seats: priced only through ``PricePlan.named_users`` (first-month proration).
MAA = "conversations.maa"
MAA_INITIAL = "conversations.maa.initial"

#: every metric a plan may price.
KNOWN_METRICS = frozenset(RULES_BY_METRIC) | FREE_UNLESS_PRICED
#: metrics whose quantity is billable seconds; their prices (and tier bounds) are per minute.
SECONDS_METRICS = frozenset(r.metric for r in RULES if isinstance(r.strategy, CallSeconds))
#: dimensions a usage line can carry, i.e. what a price row may match on.
KNOWN_DIMS = frozenset(
    d for r in RULES for d in getattr(r.strategy, "dims", ()) if isinstance(d, str)
) | {"category", "country"}

PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
PeriodText = Annotated[str, Field(pattern=PERIOD_PATTERN, description="a period, YYYY-MM")]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


def _plain_decimal(value: Any) -> Any:
    """YAML numbers arrive as int or float: read floats by their shortest text (0.045)."""
    if isinstance(value, bool):
        raise ValueError("a price must be a number or a decimal string, not a boolean")
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


Price = Annotated[
    Decimal,
    BeforeValidator(_plain_decimal),
    Field(ge=0, description="a decimal amount; write it as a string to keep it exact"),
]
Quantity = Annotated[Decimal, BeforeValidator(_plain_decimal), Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Model):
    """Units up to ``up_to`` (inclusive, counted from 0) at ``unit_price``; the last tier
    has no ``up_to``. For voice metrics the bounds are minutes."""

    up_to: Quantity | None = None
    unit_price: Price


class PriceRow(_Model):
    """One price of a metric, for the usage lines whose dimensions match ``match``."""

    match: dict[str, str] = Field(
        default_factory=dict, description="dimension -> value; empty for the default row"
    )
    unit_price: Price | None = Field(None, description="per unit (voice: per minute)")
    tiers: list[Tier] | None = Field(None, min_length=1)
    tier_mode: Literal["graduated", "volume"] = Field(
        "graduated",
        description="graduated: each tier prices its own units; volume: the tier the "
        "total falls in prices every unit",
    )

    @model_validator(mode="after")
    def _one_price(self) -> PriceRow:
        if (self.unit_price is None) == (self.tiers is None):
            raise ValueError("a price row has either unit_price or tiers")
        unknown = sorted(set(self.match) - KNOWN_DIMS)
        if unknown:
            raise ValueError(f"unknown dimension(s) {unknown}; known: {sorted(KNOWN_DIMS)}")
        if self.tiers is not None:
            bounds = [t.up_to for t in self.tiers]
            if bounds[-1] is not None:
                raise ValueError("the last tier has no up_to (it takes every remaining unit)")
            finite = [b for b in bounds[:-1] if b is not None]
            if len(finite) != len(bounds) - 1:
                raise ValueError("only the last tier may omit up_to")
            if any(b <= 0 for b in finite) or any(a >= b for a, b in pairwise(finite)):
                raise ValueError("tier bounds must be positive and strictly increasing")
        return self

    @property
    def specificity(self) -> int:
        return len(self.match)

    def matches(self, dims: Mapping[str, str]) -> bool:
        return all(dims.get(name) == value for name, value in self.match.items())

    def describe(self, metric: str) -> str:
        """How the invoice names this row: ``sms.mt[country=FR]`` or ``sms.mt[default]``."""
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.match.items())) or "default"
        return f"{metric}[{inner}]"


def _rows(value: Any) -> Any:
    """Shorthands: a bare price is one default row; a single mapping is one row."""
    if isinstance(value, str | int | float | Decimal) and not isinstance(value, bool):
        return [{"unit_price": value}]
    if isinstance(value, Mapping):
        return [value]
    return value


PriceRows = Annotated[
    list[PriceRow],
    BeforeValidator(_rows, json_schema_input_type=list[PriceRow] | PriceRow | Decimal),
    Field(min_length=1),
]


class Package(_Model):
    """A monthly package of a usage metric: fee, included quantity, per-unit overage."""

    monthly_fee: Price = Decimal(0)
    included: Quantity = Decimal(0)
    overage_unit_price: Price


class NamedUsers(_Model):
    """Conversations named-user pricing (``conversations.maa``: peak concurrent seats)."""

    seat_price: Price = Field(description="per seat and month")
    monthly_fee: Price = Decimal(0)
    included_seats: int = Field(0, ge=0)


class Fee(_Model):
    """A fee not driven by usage: one-time (billed in ``period``) or monthly (from
    ``period``, default the plan's start, until ``until`` inclusive)."""

    code: Code
    description: str = Field(min_length=1, max_length=200)
    amount: Price = Field(description="per unit")
    quantity: Quantity = Decimal(1)
    billed: Literal["once", "monthly"]
    period: PeriodText | None = None
    until: PeriodText | None = None

    @model_validator(mode="after")
    def _when(self) -> Fee:
        if self.billed == "once" and (self.period is None or self.until is not None):
            raise ValueError(f"fee {self.code}: a one-time fee names its period (and no until)")
        if self.period and self.until and self.until < self.period:
            raise ValueError(f"fee {self.code}: until is before period")
        return self

    def applies(self, period: Period, plan_start: str) -> bool:
        p = str(period)
        if self.billed == "once":
            return p == self.period
        return (self.period or plan_start) <= p and (self.until is None or p <= self.until)


class Commitment(_Model):
    """A minimum monthly spend on a scope of metrics (the Viber 300 EUR of the rulebook)."""

    name: Code
    description: str | None = Field(None, max_length=200)
    metrics: list[str] = Field(min_length=1, description="usage metrics or fee codes")
    minimum: Price
    mode: Literal["post_pay", "pre_pay"]
    credit_balance: Decimal | None = Field(
        None, description="pre-pay: the prepaid credit available for the month, if known"
    )

    @model_validator(mode="after")
    def _credit(self) -> Commitment:
        if self.credit_balance is not None and self.mode != "pre_pay":
            raise ValueError(f"commitment {self.name}: credit_balance is for pre_pay only")
        return self


class PricePlan(_Model):
    """The customer's contract: prices, packages, fees, commitments and settings."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="PricePlan",
        json_schema_extra={"$id": "https://schemas.cpaas.example/billing/price-plan.json"},
    )

    account: AccountId
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    effective_from: PeriodText
    name: str | None = Field(None, max_length=200)
    products: ProductSet | None = Field(
        None,
        description="the products the account subscribes to (conversations, moments, "
        "answers, things, signals); the WhatsApp and Viber pricing models are settings. "
        "When stated they decide the rules that depend on a product (recording through "
        "Conversations) and what billing plans check expects; None: not stated",
    )
    settings: ContractSettings = Field(default_factory=ContractSettings)
    prices: dict[str, PriceRows] = Field(default_factory=dict)
    packages: dict[str, Package] = Field(default_factory=dict)
    named_users: NamedUsers | None = None
    fees: list[Fee] = Field(default_factory=list)
    commitments: list[Commitment] = Field(default_factory=list)
    thresholds: list[Threshold] = Field(
        default_factory=list,
        max_length=100,
        description="usage alerts: UsageThresholdReached once per period when a metric's "
        "quantity or the estimated amount reaches the level",
    )

    @model_validator(mode="after")
    def _consistent(self) -> PricePlan:
        errors: list[str] = []
        for metric in [*self.prices, *self.packages]:
            if metric not in KNOWN_METRICS:
                errors.append(f"unknown metric {metric!r}")
            if metric in (MAA, MAA_INITIAL):
                errors.append(f"{metric} is priced by named_users (first-month proration)")
        for metric in sorted(set(self.prices) & set(self.packages)):
            errors.append(f"{metric} is both in prices and in packages")
        for metric in sorted(SECONDS_METRICS & set(self.packages)):
            errors.append(f"{metric} is voice (per minute): price it in prices, with tiers")
        for metric, rows in self.prices.items():
            seen: set[tuple[tuple[str, str], ...]] = set()
            for row in rows:
                key = tuple(sorted(row.match.items()))
                if key in seen:
                    errors.append(f"{row.describe(metric)} appears twice")
                seen.add(key)
        codes = [f.code for f in self.fees]
        for code in sorted({c for c in codes if codes.count(c) > 1}):
            errors.append(f"fee code {code!r} appears twice")
        for code in sorted(set(codes) & KNOWN_METRICS):
            errors.append(f"fee code {code!r} is a usage metric name")
        names = [c.name for c in self.commitments]
        for name in sorted({n for n in names if names.count(n) > 1}):
            errors.append(f"commitment {name!r} appears twice")
        for c in self.commitments:
            for metric in c.metrics:
                if metric not in KNOWN_METRICS and metric not in codes:
                    errors.append(f"commitment {c.name}: {metric!r} is no metric or fee code")
        for fee in self.fees:
            if fee.period is not None and fee.period < self.effective_from:
                errors.append(f"fee {fee.code}: period {fee.period} is before the plan")
        ids = [t.id for t in self.thresholds]
        for tid in sorted({i for i in ids if ids.count(i) > 1}):
            errors.append(f"threshold {tid!r} appears twice")
        for t in self.thresholds:
            if t.metric is not None and t.metric not in KNOWN_METRICS:
                errors.append(f"threshold {t.id}: unknown metric {t.metric!r}")
        stated = self.settings.products
        if stated is not None and self.products is not None and stated != self.products:
            errors.append("products and settings.products differ (state them once)")
        if errors:
            raise ValueError("; ".join(errors))
        products = self.products if self.products is not None else stated
        if products is not None:  # the engine reads the products from the settings
            object.__setattr__(self, "products", products)
            object.__setattr__(
                self, "settings", self.settings.model_copy(update={"products": products})
            )
        return self

    @property
    def start(self) -> Period:
        return Period.parse(self.effective_from)

    def prices_metric(self, metric: str) -> bool:
        """Whether the plan puts a price on ``metric`` (prices, packages or named users)."""
        return (
            metric in self.prices
            or metric in self.packages
            or (metric in (MAA, MAA_INITIAL) and self.named_users is not None)
        )


# --- loading ------------------------------------------------------------------------------


def parse_plan(text: str | bytes, fmt: Literal["yaml", "json"] = "yaml") -> PricePlan:
    """A plan from its YAML or JSON text (JSON is YAML too, but ``json`` is stricter)."""
    doc = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    if not isinstance(doc, Mapping):
        raise ValueError("a price plan is a mapping (YAML or JSON object)")
    return PricePlan.model_validate(doc)


def load_plan(path: Path | str) -> PricePlan:
    """A plan from a ``.yaml``/``.yml`` or ``.json`` file (the one helper of the domain
    that reads a file: for the CLI and the demo)."""
    p = Path(path)
    fmt: Literal["yaml", "json"] = "json" if p.suffix.lower() == ".json" else "yaml"
    return parse_plan(p.read_text(encoding="utf-8"), fmt)


def select_plan(plans: list[PricePlan], period: Period | str) -> PricePlan | None:
    """The plan in force for ``period``: the latest one effective on or before it."""
    p = str(period)
    candidates = [plan for plan in plans if plan.effective_from <= p]
    return max(candidates, key=lambda plan: plan.effective_from) if candidates else None


def zone_of(plans: list[PricePlan]) -> ZoneOf:
    """The account's time zone for a period: its plan's ``settings.time_zone``; before its
    first plan, the first plan's; UTC without a plan (``periods.zones_from``)."""
    return zones_from([(p.effective_from, p.settings.time_zone) for p in plans])


def zoned_period(plans: list[PricePlan], period: Period | str) -> Period:
    """``period`` with the bounds the account's plans give it (``periods.zoned``)."""
    return zoned(Period.parse(period) if isinstance(period, str) else period, zone_of(plans))


ZONE_CHANGE_MARGIN_MS = 3_600_000  # ingest accepts events a few minutes in the future


def zone_change_refusal(
    versions: Sequence[tuple[str, str]], new: PricePlan, now_ms: int
) -> str | None:
    """Why storing ``new`` would be refused for its time zone, given the account's plan
    versions as (effective period, zone): a zone change takes effect only from a period
    that has not started yet (in either zone: its start is the end of the previous period,
    in the previous period's zone, which the change does not move), at least an hour
    ahead, so that no fact already stored changes period. ``None`` when it may be stored."""
    before = zones_from(versions)
    kept = [v for v in versions if v[0] != new.effective_from]
    after = zones_from([*kept, (new.effective_from, new.settings.time_zone)])
    start = new.start
    if before(start) == after(start):
        return None
    begins = start.in_zone(after(start), before(start.prev())).start_ms
    if now_ms + ZONE_CHANGE_MARGIN_MS > begins:
        return (
            f"time zone change to {after(start)} effective {new.effective_from} refused: "
            "that period has started (or starts within the hour); a zone changes from a "
            "period that has not started yet"
        )
    return None


# --- JSON Schema ----------------------------------------------------------------------------

SCHEMA_PATH = Path("schemas") / "price-plan.schema.json"


def plan_json_schema() -> dict[str, Any]:
    schema = PricePlan.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    """The schema file's exact content (stable: sorted keys, trailing newline)."""
    return json.dumps(plan_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schema(root: Path) -> Path:
    target = root / SCHEMA_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(schema_text(), encoding="utf-8")
    return target


if __name__ == "__main__":  # pragma: no cover - regenerates schemas/price-plan.schema.json
    here = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    print(write_schema(here))
