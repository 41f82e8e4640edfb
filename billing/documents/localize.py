"""What a customer reads, in the customer's language: names, labels and number formats.

The texts are data, one JSON per language in ``texts/`` (``en``, ``fr``, ``id``, ``ko``:
the languages of the contract annex, whose service names they follow): labels of the
document, names of the service groups, human names of the metrics of the rules table,
units, dimension names and values. ``texts/groups.json`` says which service group each
metric belongs to. Numbers, amounts, dates and country names are formatted for the locale
by Babel (CLDR data), never by hand.

Amounts keep the invoice's decimals (``minor_unit``), which can differ from CLDR's (IDR
has 0 here); quantities and unit prices are shown with all their digits.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date, format_skeleton
from babel.numbers import format_decimal, format_percent

from billing.domain.invoice import InvoiceLine

TEXTS_DIR = Path(__file__).resolve().parent / "texts"
LANGUAGES = ("en", "fr", "id", "ko")
DEFAULT_LANGUAGE = "en"
#: the group of plan fees (setup, recurring) and of metrics the groups file does not name
OTHER_GROUP = "fees"
#: summary rows that are not services
COMMITMENTS = "commitments"
ADJUSTMENTS = "adjustments"


@dataclass(frozen=True)
class Texts:
    language: str
    locale: str
    labels: Mapping[str, str]
    groups: Mapping[str, str]
    metrics: Mapping[str, str]
    units: Mapping[str, str]
    dimensions: Mapping[str, str]
    values: Mapping[str, str]


@cache
def texts(language: str) -> Texts:
    """The texts of a language (one of ``LANGUAGES``)."""
    if language not in LANGUAGES:
        raise ValueError(f"no texts for language {language!r}: one of {', '.join(LANGUAGES)}")
    doc = json.loads((TEXTS_DIR / f"{language}.json").read_text(encoding="utf-8"))
    return Texts(**doc)


@cache
def metric_groups() -> Mapping[str, str]:
    """metric -> the key of its service group."""
    doc = json.loads((TEXTS_DIR / "groups.json").read_text(encoding="utf-8"))
    return {metric: group for group, metrics in doc["groups"].items() for metric in metrics}


@cache
def group_order() -> tuple[str, ...]:
    doc = json.loads((TEXTS_DIR / "groups.json").read_text(encoding="utf-8"))
    return (*doc["groups"], OTHER_GROUP, COMMITMENTS, ADJUSTMENTS)


def language_of(value: Any) -> str:
    """A document's language: ``fr-FR`` or ``fr_FR`` reads as ``fr``; unknown -> English."""
    if not isinstance(value, str):
        return DEFAULT_LANGUAGE
    short = value.replace("_", "-").split("-")[0].lower()
    return short if short in LANGUAGES else DEFAULT_LANGUAGE


def group_of(line: InvoiceLine) -> str:
    """The service group a line is summed under on the first page."""
    if line.kind in ("commitment", "prepaid"):
        return COMMITMENTS
    if line.kind == "adjustment":
        return ADJUSTMENTS
    if line.kind == "fee" and (line.price_row or "").startswith("fees."):
        return OTHER_GROUP
    return metric_groups().get(line.metric, OTHER_GROUP)


def allocate(total: Decimal, weights: Sequence[Decimal], places: int) -> list[Decimal]:
    """Share ``total`` out in proportion to ``weights``, in units of the minor unit, so that
    the shares add up to ``total`` exactly (largest remainder, ties to the first)."""
    quantum = Decimal(1).scaleb(-places)
    whole = sum(weights, Decimal(0))
    if not weights or whole == 0:
        return [Decimal(0).quantize(quantum) for _ in weights]
    units = int((total / quantum).to_integral_value(rounding=ROUND_FLOOR))
    exact = [Fraction(units) * Fraction(w) / Fraction(whole) for w in weights]
    floors = [x.numerator // x.denominator for x in exact]
    left = units - sum(floors)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[: max(left, 0)]:
        floors[i] += 1
    return [(Decimal(n) * quantum).quantize(quantum) for n in floors]


class Localizer:
    """Formats an invoice's figures and names for one language."""

    def __init__(self, language: str | None) -> None:
        self.texts = texts(language_of(language))
        self.language = self.texts.language
        self.locale = Locale.parse(self.texts.locale)

    def label(self, key: str, **values: str) -> str:
        text = self.texts.labels[key]
        return text.format(**values) if values else text

    # --- figures ----------------------------------------------------------------------------

    def money(self, value: Decimal | str, currency: str, places: int) -> str:
        """An amount with its currency, with exactly ``places`` decimals."""
        pattern = copy.copy(self.locale.currency_formats["standard"])
        pattern.frac_prec = (places, places)
        return str(
            pattern.apply(Decimal(value), self.locale, currency=currency, currency_digits=False)
        )

    def number(self, value: Decimal | str) -> str:
        """A quantity or a unit price: grouped, every digit kept, never an exponent."""
        return format_decimal(Decimal(value), locale=self.locale, decimal_quantization=False)

    def percent(self, rate: Decimal | str) -> str:
        """A tax rate in percent, as the invoice's ``taxes`` give it (``20``, ``5.5``)."""
        value = Decimal(rate) / 100
        return format_percent(value, locale=self.locale, decimal_quantization=False)

    def date(self, value: date | str | None) -> str:
        if value is None or value == "":
            return ""
        day = value if isinstance(value, date) else date.fromisoformat(value)
        return format_date(day, format="long", locale=self.locale)

    def period(self, period: str) -> str:
        """``2026-10`` -> ``October 2026`` / ``octobre 2026`` / ``2026년 10월``."""
        try:
            year, month = (int(part) for part in period.split("-")[:2])
            first = date(year, month, 1)
        except ValueError:
            return period
        return format_skeleton("yMMMM", first, locale=self.locale)

    def country(self, code: str | None) -> str:
        if not code:
            return ""
        return str(self.locale.territories.get(code.upper(), code))

    # --- names ------------------------------------------------------------------------------

    def group(self, key: str) -> str:
        return self.texts.groups.get(key, key)

    def metric(self, metric: str) -> str:
        return self.texts.metrics.get(metric, metric)

    def unit(self, unit: str) -> str:
        return self.texts.units.get(unit, unit)

    def dims(self, dims: Mapping[str, str]) -> str:
        """``country=FR, direction=outbound`` -> ``Country: France, Direction: outbound``."""
        parts = []
        for key, value in sorted(dims.items()):
            shown = self.country(value) if key == "country" else self.texts.values.get(value, value)
            parts.append(f"{self.texts.dimensions.get(key, key)}: {shown}")
        return ", ".join(parts)

    def line_name(self, line: InvoiceLine) -> str:
        """What the line charges, as a customer names it."""
        if line.kind == "adjustment":
            base = self._name(line.adjusts or "usage", line)
            when = self.label("adjustment_of", period=self.period(line.period or ""))
            return f"{base} \u2013 {when}"
        return self._name(line.kind, line)

    def _name(self, kind: str, line: InvoiceLine) -> str:
        if kind == "commitment":
            return self.label("commitment_top_up", name=line.metric)
        if kind == "prepaid":
            return self.label("prepaid", name=line.metric)
        if kind == "fee":
            row = line.price_row or ""
            if row.startswith("fees.") or line.metric not in self.texts.metrics:
                return line.description  # the contract's own words
            return self.label("monthly_fee", name=self.metric(line.metric))
        return self.texts.metrics.get(line.metric, line.description)
