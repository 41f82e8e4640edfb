"""Read-side queries over the fact store that the CLI and the tests share."""

from __future__ import annotations

from billing.adapters.store import UsageStore, shard_labels
from billing.domain.engine import monthly_usage
from billing.domain.periods import Period
from billing.domain.plan import PricePlan
from billing.domain.settings import DEFAULT_SETTINGS, ContractSettings
from billing.domain.usage import Usage
from billing.shard import View, Walk, history_start


def contract_settings(store: UsageStore, account: str, period: str) -> ContractSettings:
    doc = store.plan_document(account, period)
    return PricePlan.model_validate(doc).settings if doc else DEFAULT_SETTINGS


def current_usage(
    store: UsageStore, account: str, period: str, settings: ContractSettings | None = None
) -> Usage:
    """Usage as of now: every stored fact of the period, late ones included, merged over
    the shards exactly as the close merges them. Entity state is rebuilt from the stored
    history (the close's saved state is what a close knew; this is everything)."""
    settings = settings or contract_settings(store, account, period)
    p = Period.parse(period)
    total = Usage(period)
    start = history_start(store, account, p)
    for shard in shard_labels(store.shards):
        everything = View(None)
        for q, lifecycle in Walk(store, account, shard).periods(start, p, [everything]):
            if q == p:
                traffic = store.read_period(account, p, shard, settings.lookback_hours)
                facts = everything.state + everything.admit(lifecycle) + everything.admit(traffic)
                total = total.merge(monthly_usage(facts, p, settings))
    return total.resolved()
