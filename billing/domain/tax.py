"""VAT/GST on an invoice: which treatment applies, at which rate, rounded how.

The rates are data (``tax_rates.json`` next to this module: a list of rates per country,
each effective from a period, and the EU member states); the rules are these, from the
seller's country S, the customer's country C and the customer's tax id:

============================================  ===============================  ==========
case                                          rate                             mention
============================================  ===============================  ==========
C == S (domestic)                             S's standard rate                none
S and C in the EU, customer has a tax id      0 % (reverse charge, B2B)        reverse_charge
S and C in the EU, no tax id (consumer)       C's standard rate (the place of  none
                                              supply of telecoms services)
anything else (an export)                     0 % (outside the scope)          outside_scope
============================================  ===============================  ==========

**Rounding** (documented, tested): tax is computed **per invoice per rate**: the bases of
the lines taxed at one rate (with one mention) are summed, and the tax of that base is
``base x rate / 100`` rounded once, ROUND_HALF_UP (ties away from zero), to the currency's
minor unit. Never per line. ``net`` is the sum of the bases (the invoice's total before
tax), ``tax`` the sum of the rounded taxes, ``gross = net + tax``. All Decimal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Literal

from billing.domain.periods import Period
from billing.domain.rating import round_money

RATES_PATH = Path(__file__).with_name("tax_rates.json")
Case = Literal["domestic", "reverse_charge", "eu_consumer", "outside_scope"]


class UnknownTaxRate(ValueError):
    """No rate in the table for a country and period: the invoice cannot be taxed."""


@dataclass(frozen=True)
class TaxTable:
    eu: frozenset[str]
    rates: Mapping[str, tuple[tuple[str, Decimal], ...]]  # country -> ((from, rate), ...)
    mentions: Mapping[str, str]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TaxTable:
        rates = {
            country: tuple(
                sorted(((str(r["from"]), Decimal(str(r["rate"]))) for r in rows), reverse=True)
            )
            for country, rows in doc["rates"].items()
        }
        return cls(frozenset(doc["eu"]), rates, dict(doc["mentions"]))

    def rate(self, country: str, period: Period | str) -> Decimal:
        p = str(period)
        for start, rate in self.rates.get(country, ()):
            if start <= p:
                return rate
        raise UnknownTaxRate(
            f"no VAT/GST rate for {country} in {p} (billing/domain/tax_rates.json)"
        )


@cache
def default_table() -> TaxTable:
    return TaxTable.from_json(json.loads(RATES_PATH.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Treatment:
    case: Case
    rate: Decimal  # percent
    mention: str | None


def treatment(
    seller_country: str,
    customer_country: str,
    customer_tax_id: str | None,
    period: Period | str,
    table: TaxTable | None = None,
) -> Treatment:
    """The tax treatment of a supply from ``seller_country`` to the customer (see the table
    in the module docstring)."""
    t = table or default_table()
    if seller_country == customer_country:
        return Treatment("domestic", t.rate(seller_country, period), None)
    if seller_country in t.eu and customer_country in t.eu:
        if customer_tax_id:
            return Treatment("reverse_charge", Decimal(0), t.mentions["reverse_charge"])
        return Treatment("eu_consumer", t.rate(customer_country, period), None)
    return Treatment("outside_scope", Decimal(0), t.mentions["outside_scope"])


@dataclass(frozen=True)
class TaxLine:
    rate: Decimal
    base: Decimal
    tax: Decimal
    mention: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": _plain(self.rate),
            "base": _plain(self.base),
            "tax": _plain(self.tax),
            "mention": self.mention,
        }


@dataclass(frozen=True)
class Totals:
    net: Decimal
    tax: Decimal
    gross: Decimal

    def to_json(self) -> dict[str, str]:
        return {"net": _plain(self.net), "tax": _plain(self.tax), "gross": _plain(self.gross)}

    def negated(self) -> Totals:
        return Totals(-self.net, -self.tax, -self.gross)


def _plain(value: Decimal) -> str:
    return format(abs(value) if value.is_zero() else value, "f")


def tax_lines(
    amounts: Iterable[tuple[Treatment, Decimal]], places: int
) -> tuple[list[TaxLine], Totals]:
    """Tax per rate (and mention) over the invoice's line amounts, each rounded once
    (ROUND_HALF_UP to ``places`` decimals); the lines in descending rate order."""
    bases: dict[tuple[Decimal, str | None], Decimal] = {}
    for how, amount in amounts:
        key = (how.rate, how.mention)
        bases[key] = bases.get(key, Decimal(0)) + amount
    lines = [
        TaxLine(rate, round_money(base, places), round_money(base * rate / 100, places), mention)
        for (rate, mention), base in sorted(
            bases.items(), key=lambda kv: (-kv[0][0], kv[0][1] or "")
        )
    ]
    net = round_money(sum((line.base for line in lines), Decimal(0)), places)
    tax = round_money(sum((line.tax for line in lines), Decimal(0)), places)
    return lines, Totals(net, tax, net + tax)
