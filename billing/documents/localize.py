"""What a customer reads, in the customer's language: names, labels and number formats.

The texts are data, one JSON per language in ``texts/`` (``en``, ``fr``, ``id``, ``ko``:
the languages of the contract annex, whose service names they follow): labels of the
document, names of the service groups, human names of the metrics of the rules table,
units, dimension names and values, the reported notes (``notes``: what the close
reports without charging it), the legal mentions of the tax treatments (``mentions``), and
the wording of each kind of computation a line carries (``labels``: ``note_*``, ``tier_*``).
``texts/groups.json`` says which service group each metric belongs to. Numbers, amounts,
dates and country names are formatted for the locale by Babel (CLDR data), never by hand.

``named`` gives every line of an invoice its ``service`` and ``service_group`` in the
invoice's language: what the JSON, the CSV and the PDF all show. The rating writes its
notes (tier computations, examples of reported events) in English for ``billing
explain``, and each line's computation as data (``InvoiceLine.price_detail``, a credit
line's invoice number and reason too): the documents show them in the document's language
from that data (``line_note``, ``line_name``), never from the English wording. Only a
document written before ``price_detail`` existed is read from its English text (tier
computations and credit lines; another note is left out of a document in another language).

Amounts keep the invoice's decimals (``minor_unit``), which can differ from CLDR's (IDR
has 0 here); quantities and unit prices are shown with all their digits.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date, format_skeleton
from babel.numbers import format_decimal, format_percent

from billing.domain.invoice import (
    CreditAmountNote,
    FeeNote,
    FreeNote,
    GraduatedNote,
    Invoice,
    InvoiceLine,
    InvoiceNote,
    PackageNote,
    PerMinuteNote,
    PrepaidNote,
    PriceDetail,
    ProratedNote,
    SeatsNote,
    TierStep,
    TopUpNote,
    VolumeNote,
)
from billing.domain.tax import default_table

TEXTS_DIR = Path(__file__).resolve().parent / "texts"
LANGUAGES = ("en", "fr", "id", "ko")
DEFAULT_LANGUAGE = "en"
#: the group of plan fees (setup, recurring) and of metrics the groups file does not name
OTHER_GROUP = "fees"
#: summary rows that are not services
COMMITMENTS = "commitments"
ADJUSTMENTS = "adjustments"
#: a credit note's credit of an amount (``domain.finance.credit_note``): not a prior period
CREDITS = "credits"


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
    notes: Mapping[str, str]
    mentions: Mapping[str, str]


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
    return (*doc["groups"], OTHER_GROUP, COMMITMENTS, ADJUSTMENTS, CREDITS)


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
        return CREDITS if line.metric == "credit" else ADJUSTMENTS
    if line.kind == "fee" and (line.price_row or "").startswith("fees."):
        return OTHER_GROUP
    return metric_groups().get(line.metric, OTHER_GROUP)


#: documents without ``price_detail`` (written before it): the rating's English note of a
#: graduated price: ``graduated (units): 1000 x 0.045 + 234 x 0.04``, and ``; 3 usage
#: lines`` when several lines share the row
_GRADUATED = re.compile(
    r"^graduated \((?:units|minutes)\): (?P<steps>.+?)(?:; (?P<lines>\d+) usage lines)?$"
)
_STEP = re.compile(r"^(?P<quantity>-?[0-9.]+) x (?P<price>-?[0-9.]+)$")
#: an example of a reported event: ``2026-10-03T04:00:00Z <detail>``
_EXAMPLE_AT = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})Z\b")
#: documents without ``price_detail``: the description of a partial credit
#: (``domain.finance.credit_note``)
_CREDIT = re.compile(r"^Credit on invoice (?P<number>\S+): (?P<reason>.*)$", re.S)


def named(inv: Invoice) -> Invoice:
    """``inv`` with every line named in its language: ``service`` (what the PDF calls the
    line) and ``service_group`` (the group it is summed under). Names already given are
    replaced, so a document re-rendered in another language is named in that one."""
    loc = Localizer.of(inv)

    def name(lines: list[InvoiceLine]) -> list[InvoiceLine]:
        return [
            line.model_copy(
                update={
                    "service": loc.line_name(line),
                    "service_group": loc.group(group_of(line)),
                }
            )
            for line in lines
        ]

    return inv.model_copy(
        update={
            "lines": name(inv.lines),
            "commitment_lines": name(inv.commitment_lines),
            "adjustment_lines": name(inv.adjustment_lines),
        }
    )


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

    def __init__(
        self, language: str | None, commitments: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self.texts = texts(language_of(language))
        # a minimum commitment's scope (name -> metrics): its lines are named by the scope
        self.commitments = dict(commitments or {})
        self.language = self.texts.language
        self.locale = Locale.parse(self.texts.locale)

    @classmethod
    def of(cls, inv: Invoice) -> Localizer:
        """The localizer of an invoice: its language and its commitments' scopes."""
        return cls(inv.language, {c.name: c.metrics for c in inv.commitments})

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

    def fixed(self, value: Decimal) -> str:
        """A decimal with exactly its own decimals (``300.00`` -> ``300,00``), grouped."""
        places = max(0, -int(value.as_tuple().exponent))
        pattern = copy.copy(self.locale.decimal_formats[None])
        pattern.frac_prec = (places, places)
        return str(pattern.apply(value, self.locale))

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

    def commitment(self, name: str) -> str:
        """A minimum commitment named by what it covers (``Minimum commitment on Kakao
        notifications, ...``); by its plan name when its scope is not known."""
        scope = self.commitments.get(name)
        if not scope:
            return name
        return self.label("commitment_on", metrics=", ".join(self.metric(m) for m in scope))

    def line_name(self, line: InvoiceLine) -> str:
        """What the line charges, as a customer names it."""
        if line.kind == "adjustment" and isinstance(line.price_detail, CreditAmountNote):
            detail = line.price_detail
            return self.label("credit_line", number=detail.invoice, reason=detail.reason)
        legacy = line.price_detail is None and line.metric == "credit"
        credit = _CREDIT.match(line.description) if legacy else None
        if line.kind == "adjustment" and credit:
            return self.label("credit_line", number=credit["number"], reason=credit["reason"])
        if line.kind == "adjustment":
            base = self._name(line.adjusts or "usage", line)
            when = self.label("adjustment_of", period=self.period(line.period or ""))
            return f"{base} \u2013 {when}"
        return self._name(line.kind, line)

    def line_note(
        self, line: InvoiceLine, currency: str | None = None, places: int | None = None
    ) -> str:
        """How the line was computed, in the document's language, from its
        ``price_detail`` (amounts with ``currency`` and ``places`` when given); a line
        written before ``price_detail`` existed is read from its English ``price_note``."""
        if line.price_detail is None:
            return self.price_note(line.price_note)
        return self.detail(line.price_detail, currency, places)

    def detail(
        self, detail: PriceDetail, currency: str | None = None, places: int | None = None
    ) -> str:
        """A computation (``InvoiceLine.price_detail``) in the document's language."""

        def amount(value: Decimal) -> str:
            if currency is None:  # the amount's own decimals (``300.00``)
                return self.fixed(value)
            return self.money(value, currency, 2 if places is None else places)

        match detail:
            case PerMinuteNote():
                minutes, price = self.number(detail.minutes), self.number(detail.unit_price)
                return self.label("note_per_minute", minutes=minutes, price=price)
            case GraduatedNote():
                shown = " + ".join(self._step(step, detail.per) for step in detail.steps)
                text = self.label("tier_graduated", steps=shown or "0")
                return text + self._usage_lines(detail.usage_lines)
            case VolumeNote():
                quantity = self._quantity(detail.quantity, detail.per)
                price = self.number(detail.unit_price)
                if detail.up_to is None:
                    text = self.label("tier_volume_top", quantity=quantity, price=price)
                else:
                    bound = self._quantity(detail.up_to, detail.per)
                    text = self.label("tier_volume", bound=bound, quantity=quantity, price=price)
                return text + self._usage_lines(detail.usage_lines)
            case PackageNote():
                return self.label("note_package", included=self.number(detail.included))
            case ProratedNote():
                return self.label(
                    "note_prorated",
                    days=self.number(Decimal(detail.days)),
                    of_days=self.number(Decimal(detail.of_days)),
                    date=self.date(detail.start),
                )
            case SeatsNote():
                text = self.label("note_seats")
                if detail.start_day_seats is not None:
                    seats = self.number(detail.start_day_seats)
                    text += "; " + self.label("note_seats_start_day", seats=seats)
                return text
            case FreeNote():
                return self.label("note_free")
            case FeeNote():
                return self.label(f"note_fee_{detail.billed}")
            case TopUpNote():
                return self.label(
                    "note_top_up",
                    minimum=amount(detail.minimum),
                    actual=amount(detail.actual),
                    mode=self.label(f"mode_{detail.mode}"),
                )
            case PrepaidNote():
                return self.label(
                    "note_prepaid", actual=amount(detail.actual), minimum=amount(detail.minimum)
                )
            case CreditAmountNote():
                return self.label("credit_line", number=detail.invoice, reason=detail.reason)
        raise AssertionError(f"unknown note {detail!r}")  # pragma: no cover

    def _quantity(self, value: Decimal, per: str) -> str:
        shown = self.number(value)
        return self.label("tier_minutes", quantity=shown) if per == "minutes" else shown

    def _step(self, step: TierStep, per: str) -> str:
        quantity = self._quantity(step.quantity, per)
        return self.label("tier_step", quantity=quantity, price=self.number(step.unit_price))

    def _usage_lines(self, count: int | None) -> str:
        if not count:
            return ""
        return "; " + self.label("usage_lines", count=self.number(Decimal(count)))

    def price_note(self, note: str | None) -> str:
        """An English tier computation of a document written before ``price_detail``
        existed, in the document's language (``1 000 \u00d7 0,045 + ...``); a note it does
        not know is shown as written in English only."""
        if not note:
            return ""
        graduated = _GRADUATED.match(note)
        steps = [_STEP.match(step) for step in graduated["steps"].split(" + ")] if graduated else []
        if graduated is None or not all(steps):
            return note if self.language == DEFAULT_LANGUAGE else ""
        shown = " + ".join(
            self.label(
                "tier_step", quantity=self.number(m["quantity"]), price=self.number(m["price"])
            )
            for m in steps
            if m is not None
        )
        text = self.label("tier_graduated", steps=shown)
        if graduated["lines"]:
            text += "; " + self.label("usage_lines", count=self.number(graduated["lines"]))
        return text

    def note(self, note: InvoiceNote) -> str:
        """A reported note: its kind named in the document's language, the count, and the
        times of its examples (their details stay in the JSON and ``billing explain``)."""
        text = self.label(
            "note_count", note=self.note_kind(note.kind), count=self.number(Decimal(note.count))
        )
        times = [self.moment(m[1]) for e in note.examples[:3] if (m := _EXAMPLE_AT.match(e))]
        if times:
            text += " \u2013 " + self.label("examples", examples="; ".join(times))
        return text

    def note_kind(self, kind: str) -> str:
        """A note's kind as a customer reads it: the texts' name of that kind
        (``whatsapp.outside_window``), the metric's name when the kind is a metric of its
        own (licence violations, flag conflicts), a name made from the metric's for
        ``<metric>.outside_window`` and ``<metric>.above_limit``, and the kind's id in a
        sentence of the language for a kind the texts do not know."""
        notes = self.texts.notes
        if "." in kind and kind in notes:  # the others are the patterns below
            return notes[kind]
        if kind in self.texts.metrics:  # a metric of its own (licence, flag conflicts)
            return self.texts.metrics[kind]
        head, _, tail = kind.rpartition(".")
        if tail in ("outside_window", "above_limit") and head:
            return notes[tail].format(service=self.metric(head))
        if kind.startswith("prepaid.credit_to_buy."):
            return notes["credit_to_buy"].format(name=kind.removeprefix("prepaid.credit_to_buy."))
        return notes["other"].format(kind=kind)

    def mention(self, text: str | None) -> str:
        """A tax treatment's legal mention in the document's language (the JSON keeps the
        tax table's words)."""
        if not text:
            return ""
        for key, english in default_table().mentions.items():
            if text == english and key in self.texts.mentions:
                return self.texts.mentions[key]
        return text

    def moment(self, value: str) -> str:
        """``2026-10-03T04:00:00`` (UTC) -> ``3 oct. 2026 04:00 UTC`` (24-hour clock)."""
        at = datetime.fromisoformat(value).replace(tzinfo=UTC)
        return f"{format_date(at.date(), format='medium', locale=self.locale)} {at:%H:%M} UTC"

    def _name(self, kind: str, line: InvoiceLine) -> str:
        if kind in ("commitment", "prepaid"):
            label = "commitment_top_up" if kind == "commitment" else "prepaid"
            return self.label(label, name=self.commitment(line.metric))
        if kind == "fee":
            row = line.price_row or ""
            if row.startswith("fees.") or line.metric not in self.texts.metrics:
                return line.description  # the contract's own words
            return self.label("monthly_fee", name=self.metric(line.metric))
        return self.texts.metrics.get(line.metric, line.description)
