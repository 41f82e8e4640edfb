"""Rating: a month's usage figures and a price plan in, invoice lines out. Pure.

Money and rounding
------------------
- Prices are Decimals from the plan, kept exact: an invoice shows the contract's unit
  price as written (``0.0125``), never a rounded one.
- Each line's amount is computed exactly (as a fraction: voice is seconds x price per
  minute / 60, tiers add their parts) and rounded **once**, ROUND_HALF_UP (half away
  from zero), to the currency's minor unit: 2 decimals by default, 0 for KRW, VND, IDR,
  JPY..., 3 for BHD, KWD... (``MINOR_UNITS``).
- Subtotal, commitment settlement and total are sums of rounded lines, so the lines of
  an invoice always add up to its total. A commitment's actual spend is the sum of the
  rounded lines of its scope.

Notes: every line whose computation needs saying carries it twice: ``price_detail``, the
computation as data (``invoice.PriceDetail``: tiers and their steps, proration, package,
commitment figures...), and ``price_note``, its English text (``price_note_text``, the
only place that words it). The documents render other languages from ``price_detail``.

Line order: metrics alphabetically, within one a package fee before its usage, usage lines
by dimensions (named users: fee, prorated start-day seats, other seats); then the plan's
fees in plan order; commitment lines in plan order.

Prior-period adjustments: for each prior period with late facts, the close rates that
period's usage twice under the plan in force then, with the late facts and as invoiced
(without them), and passes ``adjustment_lines(prior, rate(with), rate(without))`` to
``build_invoice(..., adjustments=...)``. Commitments are re-settled too, so a late Viber
message under a post-pay minimum nets to zero.

A usage metric that the plan does not price and that is not free unless priced
(``rules.FREE_UNLESS_PRICED``) is a ``RatingError`` naming every such metric and its
dimensions: the close reports the account as failed instead of invoicing a silent zero.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from billing.domain.invoice import (
    CommitmentReport,
    CreditAmountNote,
    FeeNote,
    FreeNote,
    GraduatedNote,
    Invoice,
    InvoiceLine,
    InvoiceNote,
    LineKey,
    PackageNote,
    PeriodDates,
    PerMinuteNote,
    PerUnit,
    PrepaidNote,
    PriceDetail,
    ProratedNote,
    SeatsNote,
    TierStep,
    TopUpNote,
    VolumeNote,
    invoice_number,
    issue_date,
)
from billing.domain.periods import UTC_ZONE, Period
from billing.domain.plan import MAA, MAA_INITIAL, SECONDS_METRICS, Package, PricePlan, PriceRow
from billing.domain.rules import FREE_UNLESS_PRICED, RULES_BY_METRIC
from billing.domain.settings import ContractSettings
from billing.domain.usage import Dims, Usage

#: ISO 4217 minor units that are not 2 (ZERO: amounts in whole units).
MINOR_UNITS: Mapping[str, int] = {
    **dict.fromkeys(("CLP", "IDR", "ISK", "JPY", "KRW", "PYG", "UGX", "VND", "XAF", "XOF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}

#: what a metric's quantity counts, where "unit" would say too little.
UNITS: Mapping[str, str] = {
    "conversations.maa": "seat",
    "conversations.maa.initial": "seat",
    "recording.licence": "licence",
    "recording.storage_minutes": "minute-day",
    "recording.storage_gb": "GB-day",
    "things.data": "MB",
    **{m: "second" for m in SECONDS_METRICS},
}

_ZERO = Decimal(0)


class RatingError(ValueError):
    """Usage the plan does not price: each ``(metric, dims)`` is named."""

    def __init__(self, account: str, period: str, missing: Sequence[tuple[str, Dims]]) -> None:
        self.missing = tuple(missing)
        shown = "; ".join(
            f"{metric} [{', '.join(f'{k}={v}' for k, v in dims) or 'no dimensions'}]"
            for metric, dims in self.missing
        )
        super().__init__(f"{account} {period}: usage not priced by the plan: {shown}")


def minor_unit(currency: str) -> int:
    return MINOR_UNITS.get(currency, 2)


def round_money(value: Fraction | Decimal | int, places: int) -> Decimal:
    """ROUND_HALF_UP (ties away from zero) to ``places`` decimals, computed exactly."""
    scaled = Fraction(value) * 10**places
    units = math.floor(abs(scaled) + Fraction(1, 2))
    signed = -units if scaled < 0 else units
    return Decimal(signed).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def _num(value: Fraction | Decimal) -> str:
    """A quantity for notes: exact when it is a finite decimal, else 6 decimals."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    d = value.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d == 1:  # a finite decimal: exact
        return _num(Decimal(value.numerator) / Decimal(value.denominator))
    return f"{float(value):.6f}"


def _dec(value: Fraction | Decimal) -> Decimal:
    """A quantity of a note as data: exactly the figure its English text shows."""
    return Decimal(_num(value))


def _text(value: Decimal) -> str:
    return format(value, "f") if value else "0"


def price_note_text(detail: PriceDetail) -> str:
    """The English ``price_note`` of a computation (what ``billing explain`` shows); the
    documents in other languages are rendered from ``detail`` itself, not from this text."""
    match detail:
        case PerMinuteNote():
            return f"{_text(detail.minutes)} min x {detail.unit_price} per minute"
        case GraduatedNote():
            steps = [f"{_text(s.quantity)} x {s.unit_price}" for s in detail.steps]
            text = f"graduated ({detail.per}): " + (" + ".join(steps) or "0")
            return text + _usage_lines_text(detail.usage_lines)
        case VolumeNote():
            bound = "above" if detail.up_to is None else f"up to {_text(detail.up_to)}"
            text = f"volume tier {bound}: {_text(detail.quantity)} {detail.per} x "
            return text + f"{detail.unit_price}" + _usage_lines_text(detail.usage_lines)
        case PackageNote():
            return f"{_text(detail.included)} included, overage per unit"
        case ProratedNote():
            return f"prorated {detail.days}/{detail.of_days} days from {detail.start.isoformat()}"
        case SeatsNote():
            text = "full price per seat (peak concurrent seats)"
            if detail.start_day_seats is not None:
                seats = _text(detail.start_day_seats)
                text += f"; the {seats} seats of the start day are billed prorated"
            return text
        case FreeNote():
            return "not charged: free unless priced"
        case FeeNote():
            return "one-time" if detail.billed == "once" else "monthly"
        case TopUpNote():
            return f"minimum {detail.minimum} - actual {detail.actual} ({detail.mode})"
        case PrepaidNote():
            return f"max(actual {detail.actual}, minimum {detail.minimum})"
        case CreditAmountNote():
            return f"Credit on invoice {detail.invoice}: {detail.reason}"
    raise AssertionError(f"unknown note {detail!r}")  # pragma: no cover


def _usage_lines_text(count: int | None) -> str:
    return f"; {count} usage lines" if count else ""


def _note(detail: PriceDetail | None) -> str | None:
    return None if detail is None else price_note_text(detail)


@dataclass(frozen=True)
class Rating:
    """What ``rate`` returns: the usage and fee lines, then the commitment settlement."""

    period: str
    currency: str
    lines: tuple[InvoiceLine, ...]
    commitment_lines: tuple[InvoiceLine, ...] = ()
    commitments: tuple[CommitmentReport, ...] = ()
    notes: tuple[InvoiceNote, ...] = ()

    def all_lines(self) -> list[InvoiceLine]:
        return [*self.lines, *self.commitment_lines]


@dataclass
class _Ctx:
    plan: PricePlan
    period: Period
    usage: Usage
    places: int
    lines: list[InvoiceLine] = field(default_factory=list)
    missing: list[tuple[str, Dims]] = field(default_factory=list)

    def money(self, value: Fraction | Decimal | int) -> Decimal:
        return round_money(value, self.places)


def _rule_of(metric: str, settings: ContractSettings) -> tuple[str | None, str | None]:
    """The title and section of the rule(s) behind a metric under these settings."""
    if metric == MAA_INITIAL:
        return "named-user seats held on the service start day (first month)", "2"
    rules = RULES_BY_METRIC.get(metric, ())
    enabled = [r for r in rules if r.when(settings)] or list(rules)
    if not enabled:
        return None, None
    return "; ".join(r.title for r in enabled), enabled[0].section


def _usage_line(
    ctx: _Ctx,
    metric: str,
    dims: Dims,
    quantity: Decimal,
    evidence: int,
    amount: Fraction | Decimal,
    *,
    included: Decimal = _ZERO,
    billable: Decimal | None = None,
    unit_price: Decimal | None = None,
    detail: PriceDetail | None = None,
    price_row: str | None = None,
) -> InvoiceLine:
    title, section = _rule_of(metric, ctx.plan.settings)
    return InvoiceLine(
        kind="usage",
        metric=metric,
        dims=dict(dims),
        description=title or metric,
        quantity=quantity,
        unit=UNITS.get(metric, "unit"),
        included=included,
        billable=quantity if billable is None else billable,
        unit_price=unit_price,
        price_note=_note(detail),
        price_detail=detail,
        amount=ctx.money(amount),
        evidence=evidence,
        rule=title,
        rule_section=section,
        price_row=price_row,
    )


def _fee_line(
    ctx: _Ctx,
    metric: str,
    description: str,
    quantity: Decimal,
    unit_price: Decimal,
    amount: Fraction | Decimal,
    price_row: str,
    detail: PriceDetail | None = None,
    section: str | None = "5",
) -> InvoiceLine:
    return InvoiceLine(
        kind="fee",
        metric=metric,
        description=description,
        quantity=quantity,
        billable=quantity,
        unit_price=unit_price,
        price_note=_note(detail),
        price_detail=detail,
        amount=ctx.money(amount),
        rule="setup and recurring fees" if section == "5" else "monthly package fee",
        rule_section=section,
        price_row=price_row,
    )


# --- tiers ----------------------------------------------------------------------------------


def _tiered(
    row: PriceRow, units: Fraction, per: PerUnit, usage_lines: int | None
) -> tuple[Fraction, Decimal | None, GraduatedNote | VolumeNote]:
    """Amount of ``units`` under the row's tiers, the single unit price if there is one,
    and the computation (``usage_lines``: how many usage lines share the row, if several)."""
    assert row.tiers is not None
    if row.tier_mode == "volume":
        for tier in row.tiers:
            if tier.up_to is None or units <= Fraction(tier.up_to):
                note = VolumeNote(
                    per=per,
                    up_to=None if tier.up_to is None else _dec(tier.up_to),
                    quantity=_dec(units),
                    unit_price=tier.unit_price,
                    usage_lines=usage_lines,
                )
                return units * Fraction(tier.unit_price), tier.unit_price, note
        raise AssertionError("the last tier is unbounded")  # pragma: no cover
    amount = Fraction(0)
    parts: list[TierStep] = []
    lower = Fraction(0)
    for tier in row.tiers:
        upper = None if tier.up_to is None else Fraction(tier.up_to)
        take = (units if upper is None else min(units, upper)) - lower
        if take <= 0:
            break
        amount += take * Fraction(tier.unit_price)
        parts.append(TierStep(quantity=_dec(take), unit_price=tier.unit_price))
        if upper is None:
            break
        lower = upper
    return amount, None, GraduatedNote(per=per, steps=parts, usage_lines=usage_lines)


# --- the three ways of pricing a metric -------------------------------------------------------


def _priced(
    ctx: _Ctx, metric: str, rows: list[PriceRow], items: list[tuple[Dims, Decimal]]
) -> None:
    per_minute = metric in SECONDS_METRICS
    per: PerUnit = "minutes" if per_minute else "units"
    groups: dict[int, list[tuple[Dims, Decimal]]] = defaultdict(list)
    for dims, qty in items:
        as_map = dict(dims)
        best: int | None = None
        for i, row in enumerate(rows):
            if row.matches(as_map) and (best is None or row.specificity > rows[best].specificity):
                best = i
        if best is None:
            ctx.missing.append((metric, dims))
        else:
            groups[best].append((dims, qty))
    out: list[InvoiceLine] = []
    for i, group in groups.items():
        row = rows[i]
        row_name = row.describe(metric)
        if row.unit_price is not None:
            for dims, qty in group:
                units = Fraction(qty) / 60 if per_minute else Fraction(qty)
                flat = PerMinuteNote(minutes=_dec(units), unit_price=row.unit_price)
                out.append(
                    _usage_line(
                        ctx,
                        metric,
                        dims,
                        qty,
                        ctx.usage.evidence((metric, dims)),
                        units * Fraction(row.unit_price),
                        unit_price=row.unit_price,
                        detail=flat if per_minute else None,
                        price_row=row_name,
                    )
                )
            continue
        total = sum((qty for _, qty in group), _ZERO)
        units = Fraction(total) / 60 if per_minute else Fraction(total)
        shared = len(group) if len(group) > 1 else None
        amount, unit_price, tiers = _tiered(row, units, per, shared)
        evidence = sum(ctx.usage.evidence((metric, dims)) for dims, _ in group)
        dims = tuple(sorted(row.match.items()))
        out.append(
            _usage_line(
                ctx,
                metric,
                dims,
                total,
                evidence,
                amount,
                unit_price=unit_price,
                detail=tiers,
                price_row=row_name,
            )
        )
    ctx.lines.extend(sorted(out, key=lambda line: sorted(line.dims.items())))


def _package(ctx: _Ctx, metric: str, package: Package, items: list[tuple[Dims, Decimal]]) -> None:
    total = sum((qty for _, qty in items), _ZERO)
    if package.monthly_fee == 0 and total == 0:
        return
    row = f"packages.{metric}"
    if package.monthly_fee:
        ctx.lines.append(
            _fee_line(
                ctx,
                metric,
                f"{metric} package: monthly fee, includes {_num(package.included)}",
                Decimal(1),
                package.monthly_fee,
                package.monthly_fee,
                row,
                section="2",
            )
        )
    included = min(total, package.included)
    overage = total - included
    evidence = sum(ctx.usage.evidence((metric, dims)) for dims, _ in items)
    ctx.lines.append(
        _usage_line(
            ctx,
            metric,
            (),
            total,
            evidence,
            Fraction(overage) * Fraction(package.overage_unit_price),
            included=included,
            billable=overage,
            unit_price=package.overage_unit_price,
            detail=PackageNote(included=_dec(package.included)),
            price_row=row,
        )
    )


def _named_users(ctx: _Ctx, items: Mapping[str, Decimal]) -> None:
    plan = ctx.plan
    assert plan.named_users is not None
    seats = plan.named_users
    peak = items.get(MAA, _ZERO)
    start = plan.settings.named_user_service_start
    first = start is not None and Period(start.year, start.month) == ctx.period
    days = ctx.period.days
    factor = Fraction(1)
    proration: ProratedNote | None = None
    if first and start is not None:
        factor = Fraction(days - start.day + 1, days)
        proration = ProratedNote(days=days - start.day + 1, of_days=days, start=start)
    if seats.monthly_fee:
        ctx.lines.append(
            _fee_line(
                ctx,
                MAA,
                f"named users: monthly fee, includes {seats.included_seats} seats",
                Decimal(1),
                seats.monthly_fee,
                Fraction(seats.monthly_fee) * factor,
                "named_users.monthly_fee",
                proration,
                section="2",
            )
        )
    price = seats.seat_price
    included = Decimal(seats.included_seats)
    row = "named_users.seat_price"
    covered = included
    initial = _ZERO
    if first:
        initial = min(items.get(MAA_INITIAL, _ZERO), peak)
        prorated = max(_ZERO, initial - included)
        if initial:
            ctx.lines.append(
                _usage_line(
                    ctx,
                    MAA_INITIAL,
                    (),
                    initial,
                    ctx.usage.evidence((MAA_INITIAL, ())),
                    Fraction(prorated) * Fraction(price) * factor,
                    included=min(initial, included),
                    billable=prorated,
                    unit_price=price,
                    detail=proration,
                    price_row=row,
                )
            )
        covered = max(initial, included)
    if peak == 0 and not seats.monthly_fee:
        return
    full = max(_ZERO, peak - covered)
    per_seat = SeatsNote(start_day_seats=_dec(min(peak, initial)) if first and initial else None)
    ctx.lines.append(
        _usage_line(
            ctx,
            MAA,
            (),
            peak,
            ctx.usage.evidence((MAA, ())),
            Fraction(full) * Fraction(price),
            included=min(peak, covered),
            billable=full,
            unit_price=price,
            detail=per_seat,
            price_row=row,
        )
    )


def _free(ctx: _Ctx, metric: str, items: list[tuple[Dims, Decimal]]) -> None:
    for dims, qty in items:
        ctx.lines.append(
            _usage_line(
                ctx,
                metric,
                dims,
                qty,
                ctx.usage.evidence((metric, dims)),
                _ZERO,
                included=qty,
                billable=_ZERO,
                detail=FreeNote(),
            )
        )


def _fees(ctx: _Ctx) -> None:
    for fee in ctx.plan.fees:
        if fee.applies(ctx.period, ctx.plan.effective_from):
            note = FeeNote(billed=fee.billed)
            ctx.lines.append(
                _fee_line(
                    ctx,
                    fee.code,
                    fee.description,
                    fee.quantity,
                    fee.amount,
                    Fraction(fee.quantity) * Fraction(fee.amount),
                    f"fees.{fee.code}",
                    note,
                )
            )


def _commitments(
    ctx: _Ctx, lines: Sequence[InvoiceLine]
) -> tuple[list[InvoiceLine], list[CommitmentReport], list[InvoiceNote]]:
    out: list[InvoiceLine] = []
    reports: list[CommitmentReport] = []
    notes: list[InvoiceNote] = []
    for c in ctx.plan.commitments:
        scope = set(c.metrics)
        actual = ctx.money(sum((line.amount for line in lines if line.metric in scope), _ZERO))
        minimum = ctx.money(c.minimum)
        charged = max(actual, minimum)
        top_up = charged - actual
        row = f"commitments.{c.name}"
        scope_text = ", ".join(c.metrics)
        title = c.description or f"minimum commitment on {scope_text}"
        if top_up:
            topped = TopUpNote(minimum=minimum, actual=actual, mode=c.mode)
            out.append(
                InvoiceLine(
                    kind="commitment",
                    metric=c.name,
                    description=f"{title}: top-up to minimum",
                    quantity=Decimal(1),
                    billable=Decimal(1),
                    unit_price=top_up,
                    price_note=price_note_text(topped),
                    price_detail=topped,
                    amount=top_up,
                    rule="minimum commitment",
                    rule_section="5",
                    price_row=row,
                )
            )
        after = to_buy = None
        if c.mode == "pre_pay":
            deducted = PrepaidNote(actual=actual, minimum=minimum)
            out.append(
                InvoiceLine(
                    kind="prepaid",
                    metric=c.name,
                    description=f"{title}: deducted from prepaid credit",
                    quantity=Decimal(1),
                    billable=Decimal(1),
                    unit_price=-charged,
                    price_note=price_note_text(deducted),
                    price_detail=deducted,
                    amount=-charged,
                    rule="minimum commitment (pre-pay)",
                    rule_section="5",
                    price_row=row,
                )
            )
            if c.credit_balance is not None:
                after = c.credit_balance - charged
                to_buy = max(_ZERO, -after)
                if to_buy:
                    notes.append(
                        InvoiceNote(
                            kind=f"prepaid.credit_to_buy.{c.name}",
                            count=1,
                            examples=[
                                f"credit {c.credit_balance} does not cover {charged}: "
                                f"{to_buy} {ctx.plan.currency} of credit to buy"
                            ],
                        )
                    )
        reports.append(
            CommitmentReport(
                name=c.name,
                mode=c.mode,
                metrics=list(c.metrics),
                minimum=minimum,
                actual=actual,
                charged=charged,
                top_up=top_up,
                credit_balance=c.credit_balance,
                credit_after=after,
                credit_to_buy=to_buy,
            )
        )
    return out, reports, notes


# --- the public functions -------------------------------------------------------------------


def rate(usage: Usage, plan: PricePlan) -> Rating:
    """Price one account's usage of one period under ``plan``.

    Raises ``RatingError`` for usage the plan does not price, ``ValueError`` when the plan
    is not yet in force for the usage's period.
    """
    usage = usage.resolved()
    period = Period.parse(usage.period)
    if period < plan.start:
        raise ValueError(f"plan effective from {plan.effective_from} rates no {period} usage")
    ctx = _Ctx(plan, period, usage, minor_unit(plan.currency))
    by_metric: dict[str, list[tuple[Dims, Decimal]]] = defaultdict(list)
    for (metric, dims), qty in usage.figures().items():
        if qty:
            by_metric[metric].append((dims, qty))
    metrics = set(by_metric) | set(plan.packages)
    if plan.named_users is not None:
        metrics.add(MAA)
    for metric in sorted(metrics):
        items = by_metric.get(metric, [])
        if metric in (MAA, MAA_INITIAL) and plan.named_users is not None:
            if metric == MAA:
                _named_users(
                    ctx,
                    {
                        m: sum((q for _, q in by_metric[m]), _ZERO)
                        for m in (MAA, MAA_INITIAL)
                        if m in by_metric
                    },
                )
        elif metric in plan.packages:
            _package(ctx, metric, plan.packages[metric], items)
        elif metric in plan.prices:
            _priced(ctx, metric, plan.prices[metric], items)
        elif metric == MAA_INITIAL:
            continue  # the proration basis, billed only through named_users
        elif metric in FREE_UNLESS_PRICED:
            _free(ctx, metric, items)
        else:
            ctx.missing.extend((metric, dims) for dims, _ in items)
    if ctx.missing:
        raise RatingError(plan.account, str(period), ctx.missing)
    _fees(ctx)
    commitment_lines, reports, notes = _commitments(ctx, ctx.lines)
    return Rating(
        period=str(period),
        currency=plan.currency,
        lines=tuple(ctx.lines),
        commitment_lines=tuple(commitment_lines),
        commitments=tuple(reports),
        notes=tuple(notes),
    )


Rated = Rating | Invoice | Sequence[InvoiceLine]


def _rated_lines(rated: Rated) -> list[InvoiceLine]:
    if isinstance(rated, Rating | Invoice):
        return [*rated.lines, *rated.commitment_lines]
    return list(rated)


def adjustment_lines(
    prior_period: Period | str, rated_with: Rated, rated_without: Rated
) -> list[InvoiceLine]:
    """Prior-period adjustments: per line, the prior period re-rated with the late facts
    (``rated_with``) minus the prior period as invoiced (``rated_without``).

    Lines are matched on kind, metric and dimensions; a line only on one side counts
    against zero. Lines whose quantity and amount are unchanged give nothing. Each
    adjustment line keeps the original's description, rule and price row, is labelled
    with ``prior_period`` and carries the differences (quantity, billable, amount,
    evidence). Adjustment lines of the inputs are ignored: they belong to other periods.
    """
    prior = str(prior_period)
    currencies = {
        r.currency for r in (rated_with, rated_without) if isinstance(r, Rating | Invoice)
    }
    if len(currencies) > 1:
        raise ValueError(f"cannot adjust {prior} across currencies {sorted(currencies)}")
    new = {line.key: line for line in _rated_lines(rated_with) if line.kind != "adjustment"}
    old = {line.key: line for line in _rated_lines(rated_without) if line.kind != "adjustment"}
    keys: list[LineKey] = list(new) + [k for k in old if k not in new]
    out: list[InvoiceLine] = []
    for key in keys:
        a, b = new.get(key), old.get(key)
        ref = a or b
        assert ref is not None

        def diff(attr: str, a: InvoiceLine | None = a, b: InvoiceLine | None = b) -> Decimal:
            return Decimal(getattr(a, attr) if a else 0) - Decimal(getattr(b, attr) if b else 0)

        amount, quantity = diff("amount"), diff("quantity")
        if not amount and not quantity:
            continue
        out.append(
            ref.model_copy(
                update={
                    "kind": "adjustment",
                    "adjusts": ref.kind,
                    "period": prior,
                    "description": f"adjustment for {prior}: {ref.description}",
                    "quantity": quantity,
                    "included": diff("included"),
                    "billable": diff("billable"),
                    "amount": amount,
                    "evidence": int(diff("evidence")),
                }
            )
        )
    return out


def _usage_notes(usage: Usage) -> list[InvoiceNote]:
    examples: dict[str, list[str]] = defaultdict(list)
    for note in usage.notes():
        when = datetime.fromtimestamp(note.at / 1000, tz=UTC).isoformat(timespec="seconds")
        examples[note.kind].append(f"{when.replace('+00:00', 'Z')} {note.detail}")
    return [
        InvoiceNote(kind=kind, count=count, examples=examples.get(kind, []))
        for kind, count in sorted(usage.note_counts.items())
    ]


def build_invoice(
    account: str,
    period: Period | str,
    plan: PricePlan,
    usage: Usage,
    adjustments: Iterable[InvoiceLine] = (),
) -> Invoice:
    """The invoice of ``account`` for ``period``: the rated usage, fees and commitments,
    plus ``adjustments`` (from ``adjustment_lines``) for prior periods."""
    p = Period.parse(period) if isinstance(period, str) else period
    if usage.period != str(p):
        raise ValueError(f"usage of {usage.period} cannot be invoiced for {p}")
    if plan.account != account:
        raise ValueError(f"the plan of {plan.account} cannot invoice {account}")
    usage = usage.resolved()  # peaks resolved once, for the lines and the notes
    rating = rate(usage, plan)
    adjusted = list(adjustments)
    if any(line.kind != "adjustment" for line in adjusted):
        raise ValueError("adjustments must come from adjustment_lines")
    places = minor_unit(plan.currency)
    subtotal = round_money(sum((line.amount for line in rating.lines), _ZERO), places)
    settled = sum((line.amount for line in rating.commitment_lines), _ZERO)
    adjusted_total = sum((line.amount for line in adjusted), _ZERO)
    zone = plan.settings.time_zone
    first_day, last_day = p.local_dates()
    dates = (
        None
        if zone == UTC_ZONE
        else PeriodDates(time_zone=zone, first_day=first_day, last_day=last_day)
    )
    return Invoice(
        account=account,
        period=str(p),
        period_dates=dates,
        number=invoice_number(account, p),
        issue_date=issue_date(p),
        currency=plan.currency,
        minor_unit=places,
        plan_effective_from=plan.effective_from,
        lines=list(rating.lines),
        subtotal=subtotal,
        commitment_lines=list(rating.commitment_lines),
        commitments=list(rating.commitments),
        adjustment_lines=adjusted,
        total=round_money(subtotal + settled + adjusted_total, places),
        notes=[*_usage_notes(usage), *rating.notes],
    )
