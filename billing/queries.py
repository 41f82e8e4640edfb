"""Read-side queries over the fact store that the CLI and the tests share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from billing.adapters.store import ShardKey, UsageStore, shard_labels
from billing.domain.engine import monthly_usage
from billing.domain.entities import carry_forward
from billing.domain.periods import Period, zones_from
from billing.domain.plan import PricePlan
from billing.domain.settings import DEFAULT_SETTINGS, ContractSettings
from billing.domain.usage import Usage
from billing.shard import View, Walk, history_start


def contract_settings(store: UsageStore, account: str, period: str) -> ContractSettings:
    doc = store.plan_document(account, period)
    return PricePlan.model_validate(doc).settings if doc else DEFAULT_SETTINGS


@dataclass(frozen=True)
class ShardNow:
    """One storage shard's usage from every fact stored now (``usage``) and without the
    late facts, as the period's own close bills it (``on_time``), and how many items it
    read: the period's two partitions and the lifecycle history the carried state comes
    from (items are only ever added while a period is hot: the count orders readings)."""

    usage: Usage
    on_time: Usage
    items: int
    carries: bool = False  # entities (numbers, recordings, seats...) still open at its end


def shard_now(
    store: UsageStore,
    key: ShardKey,
    settings: ContractSettings,
    start: Period,
    zones: Sequence[tuple[str, str]] | None = None,
) -> ShardNow:
    """Entity state is rebuilt from the stored history from ``start`` (the close's saved
    state is what a close knew; this is everything). ``zones``: the account's
    ``plan_zones`` when the caller has read them already."""
    p = Period.parse(key.period)
    everything, on_time = View(None), View(key.period)
    # the account's local periods (its zones), as ingest and the close see them
    if zones is None:
        zones = store.plan_zones(key.account)
    walk = Walk(store, key.account, key.shard, zones_from(zones))
    history = 0  # lifecycle items of earlier periods: the carried state depends on them too
    for q, lifecycle in walk.periods(start, p, [everything, on_time]):
        if q != p:
            history += len(lifecycle)
            continue
        p = q  # zoned
        traffic = store.read_period(key.account, p, key.shard, settings.lookback_hours)
        items = history + len(lifecycle) + sum(1 for s in traffic if s.fact.at >= p.start_ms)
        facts = everything.state + everything.admit(lifecycle) + everything.admit(traffic)
        usage = monthly_usage(facts, p, settings)
        known = on_time.state + on_time.admit(lifecycle) + on_time.admit(traffic)
        same = known == facts
        carries = bool(carry_forward(everything.state + everything.admit(lifecycle), p.end_ms))
        on_time_usage = usage if same else monthly_usage(known, p, settings)
        return ShardNow(usage, on_time_usage, items, carries)
    raise ValueError(f"history start {start} is after {p}")


def current_usage(
    store: UsageStore, account: str, period: str, settings: ContractSettings | None = None
) -> Usage:
    """Usage as of now: every stored fact of the period, late ones included, merged over
    the shards exactly as the close merges them (the recomputation the live view is
    checked against)."""
    settings = settings or contract_settings(store, account, period)
    p = Period.parse(period)
    total = Usage(period)
    start = history_start(store, account, p)
    for shard in shard_labels(store.shards):
        total = total.merge(
            shard_now(store, ShardKey(account, period, shard), settings, start).usage
        )
    return total.resolved()
