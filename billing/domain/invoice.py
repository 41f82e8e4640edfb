"""Invoices: the rated month of one account, as a document that explains itself.

An invoice is fully determined by its account, period, price plan and usage: the number
is ``INV-<period>-<account>``, the issue date is the first day after the period (never
the wall clock), and ``canonical_json`` gives the same bytes on every run. Every line
carries its evidence: the rule (title and rulebook section) behind it, how many events
or distinct members make it up, and the price row that priced it.

Line kinds:

- ``usage``: a metric's usage, priced (or at 0 when the metric is free unless priced);
- ``fee``: a package or named-user monthly fee, or a fee of the plan (setup, recurring);
- ``commitment``: a top-up to a minimum commitment;
- ``prepaid``: a pre-pay commitment's consumption deducted from prepaid credit (negative);
- ``adjustment``: a difference on a prior period's line (late events), ``period`` says
  which period and ``adjusts`` which kind of line.

``price_note`` says in English how a line was computed (tiers, proration, package,
commitment); ``price_detail`` says the same as data (one model per ``kind`` of note: the
figures as decimal strings), which the documents render in the invoice's language. A credit
note's credit of an amount carries its invoice number and reason there (``kind`` credit).
Documents written before ``price_detail`` existed read back with it null.

``service`` and ``service_group`` name a line as a customer reads it, in the invoice's
language; rating leaves them empty and the documents fill them
(``billing.documents.localize.named``), so that the JSON, the CSV and the PDF name every
line alike.

``total = subtotal + sum(commitment and prepaid lines) + sum(adjustment lines)``, where
``subtotal`` is the sum of the usage and fee lines. All amounts are already rounded.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from billing.domain.periods import Period


def plain(value: Decimal) -> str:
    """A decimal as plain text, never in exponent notation (``0.000000512``, ``1200``)."""
    return format(abs(value) if value.is_zero() else value, "f")


#: a Decimal that serializes to JSON as a plain decimal string.
Dec = Annotated[Decimal, PlainSerializer(plain, return_type=str, when_used="json")]

LineKind = Literal["usage", "fee", "commitment", "prepaid", "adjustment"]
LineKey = tuple[str, str | None, str | None, str, tuple[tuple[str, str], ...]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- how a line was computed, as data (``price_detail``) -------------------------------------
# The rating writes each line's ``price_note`` in English for people and ``billing explain``,
# and the same computation as one of these models: the documents show it in the invoice's
# language from these fields, never by reading the English back. ``kind`` names the note.

PerUnit = Literal["units", "minutes"]


class PerMinuteNote(_Model):
    """A flat price per minute of a metric counted in seconds."""

    kind: Literal["per_minute"] = "per_minute"
    minutes: Dec = Field(description="the seconds in minutes (6 decimals when not exact)")
    unit_price: Dec = Field(description="per minute")


class TierStep(_Model):
    quantity: Dec
    unit_price: Dec


class GraduatedNote(_Model):
    """Graduated tiers: each step's quantity at its tier's price (no step: nothing used)."""

    kind: Literal["graduated"] = "graduated"
    per: PerUnit
    steps: list[TierStep]
    usage_lines: int | None = Field(None, description="usage lines sharing the row, if several")


class VolumeNote(_Model):
    """Volume tiers: the whole quantity at the price of the tier it falls in."""

    kind: Literal["volume"] = "volume"
    per: PerUnit
    up_to: Dec | None = Field(description="the tier's bound; null for the last tier")
    quantity: Dec
    unit_price: Dec
    usage_lines: int | None = Field(None, description="usage lines sharing the row, if several")


class PackageNote(_Model):
    """A package's usage: ``included`` without charge, the overage per unit."""

    kind: Literal["package"] = "package"
    included: Dec


class ProratedNote(_Model):
    """Prorated over ``days`` of the period's ``of_days`` from the service start ``start``."""

    kind: Literal["prorated"] = "prorated"
    days: int
    of_days: int
    start: date


class SeatsNote(_Model):
    """Named users at full price per seat (peak concurrent seats); in the first month the
    ``start_day_seats`` of the start day are billed prorated on their own line."""

    kind: Literal["seats"] = "seats"
    start_day_seats: Dec | None = None


class FreeNote(_Model):
    """Not charged: the metric is free unless the plan prices it."""

    kind: Literal["free"] = "free"


class FeeNote(_Model):
    """A fee of the plan, billed once or monthly."""

    kind: Literal["fee"] = "fee"
    billed: Literal["once", "monthly"]


class TopUpNote(_Model):
    """A top-up to a minimum commitment: ``minimum - actual``."""

    kind: Literal["top_up"] = "top_up"
    minimum: Dec
    actual: Dec
    mode: Literal["post_pay", "pre_pay"]


class PrepaidNote(_Model):
    """A pre-pay commitment's deduction from prepaid credit: ``max(actual, minimum)``."""

    kind: Literal["prepaid"] = "prepaid"
    actual: Dec
    minimum: Dec


class CreditAmountNote(_Model):
    """A credit note's credit of an amount on ``invoice``, for ``reason``."""

    kind: Literal["credit"] = "credit"
    invoice: str
    reason: str


PriceDetail = Annotated[
    PerMinuteNote
    | GraduatedNote
    | VolumeNote
    | PackageNote
    | ProratedNote
    | SeatsNote
    | FreeNote
    | FeeNote
    | TopUpNote
    | PrepaidNote
    | CreditAmountNote,
    Field(discriminator="kind"),
]


class InvoiceLine(_Model):
    kind: LineKind
    metric: str = Field(description="usage metric, fee code or commitment name")
    dims: dict[str, str] = Field(default_factory=dict)
    description: str
    quantity: Dec = Field(description="the measured quantity (voice: seconds)")
    unit: str = "unit"
    included: Dec = Field(Decimal(0), description="of the quantity, covered without charge")
    billable: Dec = Field(description="the quantity charged")
    unit_price: Dec | None = Field(None, description="exact, not rounded (voice: per minute)")
    price_note: str | None = Field(None, description="tiers, proration, package detail")
    price_detail: PriceDetail | None = Field(
        None, description="the computation of price_note (or the credit) as data, by kind"
    )
    amount: Dec = Field(description="rounded to the currency's minor unit")
    evidence: int = Field(0, description="chargeable events (or distinct members) behind it")
    rule: str | None = Field(None, description="the rule title")
    rule_section: str | None = Field(None, description="the rulebook section")
    price_row: str | None = Field(None, description="the plan entry that priced the line")
    period: str | None = Field(None, description="adjustments: the period adjusted")
    adjusts: LineKind | None = Field(None, description="adjustments: the kind adjusted")
    service: str | None = Field(
        None, description="what the line charges, in the invoice's language (the PDF's name)"
    )
    service_group: str | None = Field(
        None, description="the service group the line is summed under, in that language"
    )

    @property
    def key(self) -> LineKey:
        """Identifies the line within an invoice (and across re-ratings of a period)."""
        return (self.kind, self.adjusts, self.period, self.metric, tuple(sorted(self.dims.items())))

    @property
    def dims_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.dims.items()))


class CommitmentReport(_Model):
    """How a minimum commitment was settled this month."""

    name: str
    mode: Literal["post_pay", "pre_pay"]
    metrics: list[str]
    minimum: Dec
    actual: Dec = Field(description="sum of the scope's rated lines")
    charged: Dec = Field(description="max(actual, minimum)")
    top_up: Dec = Field(description="charged - actual")
    credit_balance: Dec | None = Field(None, description="pre-pay: stated credit before")
    credit_after: Dec | None = None
    credit_to_buy: Dec | None = Field(None, description="pre-pay: shortfall of the credit")


class InvoiceNote(_Model):
    """Something reported, not charged: a policy or licence violation, credit to buy."""

    kind: str
    count: int
    examples: list[str] = Field(default_factory=list)


class BankBlock(_Model):
    iban: str
    bic: str
    bank_name: str


class SellerBlock(_Model):
    """The issuing legal entity (``billing.domain.profile.Seller``) as the invoice shows it."""

    legal_name: str
    address: list[str]
    country: str
    tax_id: str
    bank: BankBlock


class CustomerBlock(_Model):
    """The account's billing profile as the invoice shows it."""

    legal_name: str
    address: list[str]
    country: str
    tax_id: str | None = None
    purchase_order: str | None = None
    email: str | None = None


class TaxEntry(_Model):
    """Tax of one rate over the invoice (``billing.domain.tax``: per invoice per rate)."""

    rate: Dec = Field(description="percent")
    base: Dec
    tax: Dec
    mention: str | None = None


class Totals(_Model):
    net: Dec
    tax: Dec
    gross: Dec


#: the finance keys of an invoice document, absent (not null) from a usage statement
#: without a billing profile, so that its bytes stay what they were.
FINANCE_KEYS = (
    "status",
    "kind",
    "credits",
    "reason",
    "due_date",
    "language",
    "seller",
    "customer",
    "taxes",
    "totals",
)


class PeriodDates(_Model):
    """The period in the account's calendar, when it is not UTC: its first and last local
    dates and the zone (the invoice of a Seoul account says 2026-10-01 to 2026-10-31,
    Asia/Seoul)."""

    time_zone: str
    first_day: date
    last_day: date


class Invoice(_Model):
    account: str
    period: str
    period_dates: PeriodDates | None = Field(
        None, description="the period's local dates and zone; absent for UTC"
    )
    number: str | None = Field(description="null while the invoice is a draft")
    issue_date: date
    currency: str
    minor_unit: int = Field(description="decimals of the currency's amounts")
    plan_effective_from: str
    lines: list[InvoiceLine]
    subtotal: Dec
    commitment_lines: list[InvoiceLine] = Field(default_factory=list)
    commitments: list[CommitmentReport] = Field(default_factory=list)
    adjustment_lines: list[InvoiceLine] = Field(default_factory=list)
    total: Dec
    notes: list[InvoiceNote] = Field(default_factory=list)
    # --- finance (billing.domain.finance): present once the account has a billing profile
    status: Literal["draft", "final", "void"] | None = None
    kind: Literal["invoice", "credit_note"] | None = None
    credits: str | None = Field(None, description="credit notes: the invoice corrected")
    reason: str | None = Field(None, description="credit notes: why")
    due_date: date | None = None
    language: str | None = None
    seller: SellerBlock | None = None
    customer: CustomerBlock | None = None
    taxes: list[TaxEntry] | None = None
    totals: Totals | None = None

    def all_lines(self) -> list[InvoiceLine]:
        return [*self.lines, *self.commitment_lines, *self.adjustment_lines]

    def canonical_json(self) -> bytes:
        return canonical_json(self)


def invoice_number(account: str, period: Period | str) -> str:
    return f"INV-{period}-{account}"


def issue_date(period: Period | str) -> date:
    """The first day after the period."""
    p = Period.parse(period) if isinstance(period, str) else period
    return p.next().start.date()


def canonical_json(invoice: Invoice) -> bytes:
    """Sorted keys, Decimals as plain strings, two-space indent, UTF-8, final newline. A
    line without ``price_detail`` has no such key (a document written before it keeps its
    bytes)."""
    doc = invoice.model_dump(mode="json")
    for key in (*FINANCE_KEYS, "period_dates"):
        if doc.get(key) is None:
            doc.pop(key, None)
    for section in ("lines", "commitment_lines", "adjustment_lines"):
        for line in doc[section]:
            if line.get("price_detail") is None:
                line.pop("price_detail", None)
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
