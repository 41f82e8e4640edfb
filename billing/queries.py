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
from billing.shard import Start, View, Walk, history_start


def contract_settings(store: UsageStore, account: str, period: str) -> ContractSettings:
    doc = store.plan_document(account, period)
    return PricePlan.model_validate(doc).settings if doc else DEFAULT_SETTINGS


@dataclass(frozen=True)
class ShardNow:
    """One storage shard's usage from every fact stored now (``usage``) and without the
    late facts, as the period's own close bills it (``on_time``), and how many items it
    counts (``items``): the period's two partitions and the lifecycle history the carried
    state comes from; from a close's saved state, only the history that close did not
    know (``Start.new_since_close``). Items are only ever added while a period is hot:
    under one ``epoch`` (the close whose state it starts from, 0: none) the count orders
    readings. ``read``: the items it actually read (and the saved state's facts)."""

    usage: Usage
    on_time: Usage
    items: int
    carries: bool = False  # entities (numbers, recordings, seats...) still open at its end
    epoch: int = 0
    read: int = 0


def epoch_of(start: Period | Start) -> int:
    """The order of the close a refresh starts from (months since year 0; 0: none)."""
    if isinstance(start, Period):
        return 0
    known = Period.parse(start.known_at)
    return known.year * 12 + known.month


def shard_now(
    store: UsageStore,
    key: ShardKey,
    settings: ContractSettings,
    start: Period | Start,
    zones: Sequence[tuple[str, str]] | None = None,
) -> ShardNow:
    """Entity state is rebuilt from the stored history from ``start``, or rolled forward
    from the state a close saved (``Start``); either way with everything stored since.
    ``zones``: the account's ``plan_zones`` when the caller has read them already."""
    p = Period.parse(key.period)
    everything, on_time = View(None), View(key.period)
    saved = start if isinstance(start, Start) else None
    if saved is not None:
        everything.state, on_time.state = list(saved.state), list(saved.state)
    first = saved.period if saved is not None else start
    assert isinstance(first, Period)
    # the account's local periods (its zones), as ingest and the close see them
    if zones is None:
        zones = store.plan_zones(key.account)
    walk = Walk(store, key.account, key.shard, zones_from(zones))
    history = 0  # lifecycle items of earlier periods: the carried state depends on them too
    read = len(everything.state)
    for q, lifecycle in walk.periods(first, p, [everything, on_time]):
        read += len(lifecycle)
        if q != p:
            if saved is None:
                history += len(lifecycle)
            else:
                history += sum(1 for s in lifecycle if saved.new_since_close(q, s))
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
        read += len(traffic)
        return ShardNow(usage, on_time_usage, items, carries, epoch_of(start), read)
    raise ValueError(f"history start {first} is after {p}")


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
