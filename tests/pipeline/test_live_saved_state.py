"""The live view refreshed from the entity state the previous close saved.

A refresh rolls a shard's entity state forward from the state the latest close before the
period saved (``billing.shard.saved_start``), not from the account's whole stored history:
what it reads no longer grows with the account's age. Late lifecycle facts stored after a
close (``ADJ#`` markers) make it start earlier; a draft close's state is not used; live
figures still equal the recomputation from the fact log (``--recompute``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from billing.adapters.invoices import DocumentStore
from billing.adapters.state import StateStore
from billing.adapters.store import ShardKey, UsageStore, shard_labels
from billing.close import MonthClose
from billing.domain.events import Envelope
from billing.domain.plan import PricePlan
from billing.domain.settings import ContractSettings
from billing.live import LiveUsage
from billing.local.streams import StreamReader, deliver
from billing.queries import current_usage
from tests.factories import number, number_released, rec_start, rec_stop, seat, unseat
from tests.pipeline.conftest import SHARDS, Env
from tests.pipeline.test_close_months import (
    ACCOUNT,
    MONTHS,
    PLAN,
    CountingStore,
    at,
    by_month,
    history,
    ingest,
    run_close,
)
from tests.pipeline.test_live_view import Crashing, lagging_delivery, lambda_of, streamed_env
from tests.pipeline.test_time_zones import SEOUL_OCT, run_group, utc

NOW = at("2027-01", 20)  # the current period: January 2027


@pytest.fixture
def world(aws_env: None) -> Iterator[tuple[Env, StreamReader, MonthClose, LiveUsage]]:
    with streamed_env() as (env, reader):
        boto3.client("events").create_event_bus(Name="bus")
        env.store.put_plan(ACCOUNT, PLAN.effective_from, PLAN.model_dump(mode="json"))
        documents = DocumentStore(env.s3, "invoices")
        close = MonthClose(env.store, documents, boto3.client("events"), "bus", 0)
        live = LiveUsage(
            CountingStore(env.table, SHARDS),
            clock=NOW.timestamp,
            states=StateStore(documents),
        )
        yield env, reader, close, live


def own(events: list[Envelope]) -> list[Envelope]:
    return [e.model_copy(update={"subject": ACCOUNT}) for e in events]


def stream(reader: StreamReader, live: LiveUsage) -> None:
    assert not deliver(reader.read(), lambda_of(live))


def assert_live_is_recomputed(env: Env, live: LiveUsage, periods: list[str]) -> None:
    for period in periods:
        expected = current_usage(env.store, ACCOUNT, period)
        view = live.view(ACCOUNT, period)
        assert view.usage.to_json() == expected.to_json(), period
        assert view.usage.figures(), period


def closed_months(
    env: Env,
    close: MonthClose,
    events: list[Envelope],
    months: int,
    streamed: tuple[StreamReader, LiveUsage] | None = None,
) -> None:
    """September's events, then the first ``months`` of ``MONTHS`` ingested and closed
    (each streamed to the live view first when ``streamed`` is a (reader, live) pair)."""
    ingest(env, by_month(events, "2026-09"))
    for month in MONTHS[:months]:
        ingest(env, by_month(events, month))
        if streamed is not None:
            stream(*streamed)
        run_close(close, month)


def refresh_all(live: LiveUsage, period: str) -> None:
    assert isinstance(live.store, CountingStore)
    live.store.lifecycle_reads.clear()
    live.refresh(ShardKey(ACCOUNT, period, s) for s in shard_labels(SHARDS))


def test_a_refresh_reads_no_lifecycle_partition_before_the_saved_state(
    world: tuple[Env, StreamReader, MonthClose, LiveUsage],
) -> None:
    env, reader, close, live = world
    events = history()
    closed_months(env, close, events, 3, (reader, live))  # October to December; January open
    ingest(env, by_month(events, "2027-01"))
    stream(reader, live)
    assert_live_is_recomputed(env, live, ["2027-01"])
    refresh_all(live, "2027-01")
    assert isinstance(live.store, CountingStore)
    # December's close saved the state at the start of January: nothing before is read
    assert set(live.store.lifecycle_reads) == {"2027-01"}
    assert_live_is_recomputed(env, live, ["2027-01"])
    # the recomputation still reads the whole stored history
    live.store.lifecycle_reads.clear()
    current_usage(live.store, ACCOUNT, "2027-01")
    assert set(live.store.lifecycle_reads) == {"2026-09", *MONTHS}


def test_late_lifecycle_facts_after_the_closes_keep_live_equal_to_the_recomputation(
    world: tuple[Env, StreamReader, MonthClose, LiveUsage],
) -> None:
    env, reader, close, live = world
    events = history() + own(
        [
            rec_start(at("2026-11", 28, 22), "r-open", "call-open"),  # stops in December
            number(at("2026-12", 1), "+33100000009", "long", country="FR"),
        ]
    )
    closed_months(env, close, events, 3, (reader, live))
    ingest(env, by_month(events, "2027-01"))
    stream(reader, live)
    before = live.view(ACCOUNT, "2027-01").usage.to_json()
    # after December's close: the long number was released on 15 November, the recording
    # stopped on 1 December, and a seat taken in November, all stored late
    late = own(
        [
            number_released(at("2026-11", 15), "+33100000001"),
            rec_stop(at("2026-12", 1, 1), "r-open", "call-open"),
            seat(at("2026-11", 3), "agent-7"),
        ]
    )
    ingest(env, late)
    stream(reader, live)
    assert live.view(ACCOUNT, "2027-01").usage.to_json() != before
    assert_live_is_recomputed(env, live, ["2026-10", "2026-11", "2026-12", "2027-01"])
    # a refresh of January alone (a January fact) starts where the markers say, from the
    # state October's close saved at the start of November
    refresh_all(live, "2027-01")
    assert isinstance(live.store, CountingStore)
    assert set(live.store.lifecycle_reads) == {"2026-11", "2026-12", "2027-01"}
    assert_live_is_recomputed(env, live, ["2027-01"])


def test_a_late_release_refreshes_the_later_periods_even_when_nothing_carries(
    world: tuple[Env, StreamReader, MonthClose, LiveUsage],
) -> None:
    env, reader, close, live = world
    held = own([number(at("2026-10", 2), "+33100000001", "long", country="FR")])
    ingest(env, held)
    stream(reader, live)
    run_close(close, "2026-10")
    run_close(close, "2026-11")
    live.refresh_account(ACCOUNT, ["2026-11", "2026-12"])  # (the rollovers)
    assert live.view(ACCOUNT, "2026-12").usage.figures()
    ingest(env, own([number_released(at("2026-10", 20), "+33100000001")]))
    stream(reader, live)
    for period in ["2026-10", "2026-11", "2026-12"]:
        expected = current_usage(env.store, ACCOUNT, period)
        assert live.view(ACCOUNT, period).usage.to_json() == expected.to_json(), period


def test_a_draft_close_state_is_not_used_while_the_period_is_open(
    world: tuple[Env, StreamReader, MonthClose, LiveUsage],
) -> None:
    env, reader, close, live = world
    events = history()
    closed_months(env, close, events, 2)
    ingest(env, by_month(events, "2026-12"))
    for unit in close.plan_account("2026-12", ACCOUNT).units:  # a draft: December stays open
        close.compute_unit(unit)
    ingest(env, [*own([seat(at("2026-12", 20), "agent-8")]), *by_month(events, "2027-01")])
    stream(reader, live)
    assert_live_is_recomputed(env, live, ["2026-12", "2027-01"])
    refresh_all(live, "2027-01")
    assert isinstance(live.store, CountingStore)
    assert set(live.store.lifecycle_reads) == {"2026-12", "2027-01"}  # November's state on


def test_a_refresh_after_a_close_replaces_the_one_before_it(
    world: tuple[Env, StreamReader, MonthClose, LiveUsage],
) -> None:
    env, reader, close, live = world
    events = history()
    closed_months(env, close, events, 2)
    ingest(env, by_month(events, "2026-12"))
    ingest(env, by_month(events, "2027-01"))
    stream(reader, live)  # January from November's state: December's items counted
    counted = {str(i["sk"]): int(i["n"]) for i in env.store.live_items(ACCOUNT, "2027-01")}
    run_close(close, "2026-12")
    # one January fact: from December's state, the shard counts fewer items than before
    ingest(env, own([seat(at("2027-01", 21), "agent-9")]))
    stream(reader, live)
    after = {str(i["sk"]): int(i["n"]) for i in env.store.live_items(ACCOUNT, "2027-01")}
    assert any(after[sk] < counted[sk] for sk in after if sk in counted)
    assert_live_is_recomputed(env, live, ["2027-01"])


@pytest.fixture
def seoul(env: Env) -> MonthClose:
    boto3.client("events").create_event_bus(Name="bus")
    plan = PricePlan(
        account="seoul",
        currency="EUR",
        effective_from="2026-09",
        settings=ContractSettings(time_zone="Asia/Seoul"),
        prices={"numbers.setup": Decimal("1"), "numbers.recurring": Decimal("2")},
    )
    env.store.put_plan("seoul", plan.effective_from, plan.model_dump(mode="json"))
    return MonthClose(
        env.store, DocumentStore(env.s3, "invoices"), boto3.client("events"), "bus", 0
    )


def test_an_account_in_another_zone_starts_from_its_own_close_groups_state(
    env: Env, seoul: MonthClose
) -> None:
    """Seoul's October (``2026-10@+09:00``) closes on its own; its November refreshes from
    the state that close saved, with the local month bounds."""
    close = seoul
    ingest(
        env,
        [
            number(utc(2026, 9, 30, 16), "+33600000001", account="seoul", event_id="z1"),
            number(utc(2026, 10, 5), "+33600000002", account="seoul", event_id="z2"),
            # 10-31 23:30 KST: October there; 11-01 00:30 KST: November
            number_released(utc(2026, 10, 31, 14, 30), "+33600000002", account="seoul"),
            number(utc(2026, 10, 31, 15, 30), "+33600000003", account="seoul", event_id="z3"),
        ],
    )
    run_group(close, SEOUL_OCT, utc(2026, 10, 31, 16))
    store = CountingStore(env.table, SHARDS)
    live = LiveUsage(store, clock=utc(2026, 11, 2).timestamp, states=StateStore(close.documents))
    live.refresh(ShardKey("seoul", "2026-11", s) for s in shard_labels(SHARDS))
    assert set(store.lifecycle_reads) == {"2026-11"}
    expected = current_usage(env.store, "seoul", "2026-11")
    assert live.view("seoul", "2026-11").usage.to_json() == expected.to_json()
    assert expected.figures()
    # a late release of October (10-20 KST) is adjusted by November: from October on
    ingest(env, [number_released(utc(2026, 10, 20), "+33600000001", account="seoul")])
    store.lifecycle_reads.clear()
    live.refresh(ShardKey("seoul", "2026-11", s) for s in shard_labels(SHARDS))
    assert min(store.lifecycle_reads) == "2026-10"
    changed = current_usage(env.store, "seoul", "2026-11")
    assert changed.to_json() != expected.to_json()
    assert live.view("seoul", "2026-11").usage.to_json() == changed.to_json()


@settings(
    max_examples=2,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # an example takes seconds
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 10_000),
    stream_batch=st.integers(1, 20),
    crash_at=st.one_of(st.none(), st.integers(1, 12)),
)
def test_after_closes_live_equals_the_recomputation_whatever_the_order_and_the_failures(
    aws_env: None, seed: int, stream_batch: int, crash_at: int | None
) -> None:
    """October and November closed; then January's traffic and late lifecycle facts of
    the closed months arrive in any order, the stream lagging, batches redelivered, a live
    item write crashing: at quiescence every period's live figures are the recomputed
    ones."""
    rng = random.Random(seed)
    events = history()
    late = own(
        [
            number_released(at("2026-10", 15), "+33100000001"),
            number_released(at("2026-11", 22), "+33100000003"),
            rec_start(at("2026-11", 29, 23), "r-late", "call-late"),
            rec_stop(at("2026-12", 1, 1), "r-late", "call-late"),
            seat(at("2026-11", 3), "agent-7"),
            unseat(at("2026-11", 28), "agent-1"),
        ]
    )
    with streamed_env() as (env, reader):
        boto3.client("events").create_event_bus(Name="bus")
        env.store.put_plan(ACCOUNT, PLAN.effective_from, PLAN.model_dump(mode="json"))
        documents = DocumentStore(env.s3, "invoices")
        close = MonthClose(env.store, documents, boto3.client("events"), "bus", 0)
        store = UsageStore(env.table, SHARDS)
        live = LiveUsage(store, clock=NOW.timestamp, states=StateStore(documents))
        crash = Crashing(store, crash_at)
        store.put_live_shard = crash  # type: ignore[method-assign]
        closed_months(env, close, events, 2)
        arrivals = by_month(events, "2026-12") + by_month(events, "2027-01") + late
        rng.shuffle(arrivals)
        for start in range(0, len(arrivals), 4):
            ingest(env, arrivals[start : start + 4])
            lagging_delivery(rng, reader, live, stream_batch)
        assert not deliver(reader.read(), lambda_of(live), batch_size=stream_batch)
        for period in ["2026-10", "2026-11", "2026-12", "2027-01"]:
            expected = current_usage(env.store, ACCOUNT, period)
            assert live.view(ACCOUNT, period).usage.to_json() == expected.to_json(), period


def test_a_refresh_of_every_shard_reads_an_open_periods_status_once(
    world: tuple[Env, StreamReader, MonthClose, LiveUsage],
) -> None:
    """October drafted (states saved, the period open): each November shard asks whether
    October is closed; the answer is read once per refresh, not once per shard."""
    env, _, close, live = world
    events = history()
    ingest(env, by_month(events, "2026-09") + by_month(events, "2026-10"))
    for unit in close.plan_account("2026-10", ACCOUNT).units:  # a draft: October stays open
        close.compute_unit(unit)
    ingest(env, by_month(events, "2026-11"))
    asked: list[str] = []
    status = live.store.period_status

    def counted(period: str) -> dict[str, Any] | None:
        asked.append(period)
        return status(period)

    live.store.period_status = counted  # type: ignore[method-assign]
    refresh_all(live, "2026-11")
    assert asked.count("2026-10") == 1
    assert_live_is_recomputed(env, live, ["2026-11"])


def test_a_stream_batch_lists_an_accounts_saved_states_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside ``listing_scope`` (a live stream batch) the account's saved states are
    listed once for all its shards; outside it, once per shard; the versions are the
    same."""
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="invoices")
        documents = DocumentStore(s3, "invoices")
        states = StateStore(documents)
        shards = shard_labels(4)
        for shard in shards:
            states.put("acme", shard, "2026-11", "2026-10", [])
        states.put("acme", "01", "2026-12", "2026-11", [])
        states.put("globex", "00", "2026-11", "2026-10", [])
        listed: list[str] = []
        list_keys = documents.list_keys

        def counting(prefix: str) -> Iterator[str]:
            listed.append(prefix)
            return list_keys(prefix)

        monkeypatch.setattr(documents, "list_keys", counting)
        outside = {s: states.versions("acme", s) for s in shards}
        assert len(listed) == len(shards)
        listed.clear()
        with states.listing_scope():
            inside = {s: states.versions("acme", s) for s in shards}
            assert states.versions("globex", "00") == [("2026-11", "2026-10")]
        assert inside == outside
        assert outside["01"] == [("2026-11", "2026-10"), ("2026-12", "2026-11")]
        assert listed == ["state/acme/", "state/globex/"]
