"""The example price plans: valid, and together they price every metric of the rules, so
that a month with every service rates without a single unpriced line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing.domain.engine import usage_of_events
from billing.domain.plan import PricePlan, load_plan
from billing.domain.rating import build_invoice, rate
from billing.domain.rules import FREE_UNLESS_PRICED, RULES
from billing.domain.usage import Usage
from tests.golden import load_scenario, scenario_paths

ROOT = Path(__file__).resolve().parents[2]
PLANS = sorted((ROOT / "examples" / "plans").glob("*.yaml"))
ODD_VALUES = {
    "country": "ZZ",
    "network": "unknown-net",
    "direction": "inbound",
    "number_type": "toll_free",
    "sender_id": "unknown-sender",
}
CATEGORIES = ("marketing", "utility", "authentication", "service")


def enabled_metrics(plan: PricePlan) -> set[str]:
    return {r.metric for r in RULES if r.when(plan.settings)}


def every_service(plan: PricePlan) -> Usage:
    """One line per metric the plan's settings enable, with unlisted dimension values."""
    u = Usage("2026-10")
    for r in RULES:
        if not r.when(plan.settings):
            continue
        dims = tuple(sorted((d, ODD_VALUES[d]) for d in getattr(r.strategy, "dims", ())))
        if r.metric == "whatsapp.conversation":
            for c in CATEGORIES:
                u.add(r.metric, (("category", c), ("country", "ZZ")), 1)
        else:
            u.add(r.metric, dims, Decimal(7))
    u.add("conversations.maa.initial", (), 2)
    return u


def test_there_are_three_plans_or_more() -> None:
    assert len(PLANS) >= 3


@pytest.mark.parametrize("path", PLANS, ids=[p.stem for p in PLANS])
def test_a_plan_prices_every_service_its_settings_enable(path: Path) -> None:
    plan = load_plan(path)
    unpriced = sorted(
        m
        for m in enabled_metrics(plan)
        if not plan.prices_metric(m) and m not in FREE_UNLESS_PRICED
    )
    assert unpriced == []
    inv = build_invoice(plan.account, "2026-10", plan, every_service(plan))
    assert inv.total > 0


@pytest.mark.parametrize("path", PLANS, ids=[p.stem for p in PLANS])
def test_a_plan_rates_the_events_of_every_golden_scenario(path: Path) -> None:
    plan = load_plan(path)
    events = [e for p in scenario_paths() for e in load_scenario(p).events]
    usage = usage_of_events(events, load_scenario(scenario_paths()[0]).period, plan.settings)
    rating = rate(usage, plan)
    metrics = {line.metric for line in rating.lines}
    recording = "recording.storage_gb" if plan.products else "recording.licence"
    assert {"sms.mt", "voice.ivr", recording, "things.data"} <= metrics


def test_together_the_plans_cover_every_metric_of_the_rules() -> None:
    covered: set[str] = set()
    for path in PLANS:
        plan = load_plan(path)
        covered |= {m for m in enabled_metrics(plan) if plan.prices_metric(m)}
    priced_metrics = {r.metric for r in RULES} - FREE_UNLESS_PRICED
    assert priced_metrics - covered == set()


def test_the_plans_exercise_each_pricing_construct() -> None:
    plans = [load_plan(p) for p in PLANS]
    rows = [row for p in plans for rs in p.prices.values() for row in rs]
    assert any(r.tiers and r.tier_mode == "graduated" for r in rows)
    assert any(r.tiers and r.tier_mode == "volume" for r in rows)
    assert any(len(r.match) == 2 for r in rows)
    assert any(p.packages for p in plans)
    assert any(p.named_users and p.settings.named_user_service_start for p in plans)
    assert {c.mode for p in plans for c in p.commitments} == {"post_pay", "pre_pay"}
    assert {f.billed for p in plans for f in p.fees} == {"once", "monthly"}
    assert {p.currency for p in plans} >= {"EUR", "KRW"}
    assert {p.settings.whatsapp_model for p in plans} == {"template", "conversation"}
    assert {p.settings.viber_model for p in plans} == {"message", "session", "mmc"}


def test_each_plan_rates_a_generated_month_of_the_reference_mix() -> None:
    from billing.domain.events import parse_event
    from billing.domain.periods import Period
    from billing.gen.mix import generate

    by_account: dict[str, list[Any]] = {}
    for line in generate(seed=11, size=4000, period="2026-10", accounts=2):
        try:
            event = parse_event(line)
        except ValueError:  # the mix has 0.1% malformed events on purpose
            continue
        by_account.setdefault(event.subject, []).append(event)
    assert by_account
    for path in PLANS:
        for account, events in sorted(by_account.items()):
            plan = load_plan(path).model_copy(update={"account": account})
            usage = usage_of_events(events, Period(2026, 10), plan.settings)
            inv = build_invoice(account, "2026-10", plan, usage)
            assert inv.total > 0
            assert len({line.key for line in inv.all_lines()}) == len(inv.all_lines())
