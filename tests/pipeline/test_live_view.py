"""The live view converges to the recomputation: any arrival order, duplicates, stream
redeliveries and crashes at any write (in-process moto with the table's real stream)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from botocore.config import Config
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from billing.adapters.rejects import RejectStore
from billing.adapters.store import ShardKey, UsageStore
from billing.domain.plan import PricePlan
from billing.gen.mix import generate
from billing.live import THRESHOLD_EVENT, LiveUsage, RefreshBudget
from billing.local import fastpaths
from billing.local.streams import StreamReader, deliver
from billing.queries import current_usage, shard_now
from billing.shard import history_start
from tests import factories as f
from tests.pipeline.conftest import SHARDS, Env, create_table, sqs_event

PERIODS = ["2026-09", "2026-10", "2026-11"]
ACCOUNTS = 3
MIX = list(generate(seed=11, size=120, period="2026-10", accounts=ACCOUNTS))


@contextmanager
def streamed_env() -> Iterator[tuple[Env, StreamReader]]:
    fastpaths.install()  # moto queries one partition, not the whole table
    with mock_aws():
        table = create_table()
        table.meta.client.update_table(
            TableName=table.name,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
        )
        s3 = boto3.client("s3")
        for bucket in ("rejects", "invoices"):
            s3.create_bucket(Bucket=bucket)
        env = Env(table, s3, UsageStore(table, SHARDS), RejectStore(s3, "rejects"))
        arn = table.meta.client.describe_table(TableName=table.name)["Table"]["LatestStreamArn"]
        # moto answers on the regional streams endpoint, not the account-based one
        streams = boto3.client(
            "dynamodbstreams", config=Config(account_id_endpoint_mode="disabled")
        )
        try:
            yield env, StreamReader(streams, arn)
        finally:
            fastpaths.uninstall()


def accounts_of(lines: list[str]) -> list[str]:
    return sorted({json.loads(line).get("subject", "") for line in lines if line.startswith("{")})


def assert_converged(env: Env, live: LiveUsage, accounts: list[str]) -> None:
    checked = 0
    for account in accounts:
        for period in env.store.periods_with_facts(account, PERIODS):
            expected = current_usage(env.store, account, period)
            got = live.view(account, period).usage
            assert got.to_json() == expected.to_json(), (account, period)
            checked += 1
    assert checked >= ACCOUNTS


def lambda_of(live: LiveUsage) -> Any:
    """The live function as the stream's event source mapping invokes it."""
    return lambda event: live.handle_stream(event["Records"])


def lagging_delivery(
    rng: random.Random, reader: StreamReader, live: LiveUsage, batch_size: int
) -> None:
    """Half the time, deliver what the stream holds (the stream lags behind ingest by a
    random amount), sometimes with a part of the batch delivered twice."""
    if rng.random() < 0.5:
        records = reader.read()
        if records and rng.random() < 0.3:
            records = records + records[: rng.randrange(len(records)) + 1]
        assert not deliver(records, lambda_of(live), batch_size=batch_size)


class Crashing:
    """Makes the n-th live item write raise (a crash right before it)."""

    def __init__(self, store: UsageStore, at: int | None) -> None:
        self.calls = 0
        self.at = at
        self.original = store.put_live_shard

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        self.calls += 1
        if self.calls == self.at:
            raise ConnectionError("crash before the live item write")
        return self.original(*args, **kwargs)


@settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # an example takes seconds: no shrink
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 10_000),
    ingest_batch=st.integers(5, 60),
    stream_batch=st.integers(5, 60),
    crash_at=st.one_of(st.none(), st.integers(1, 30)),
)
def test_live_view_equals_the_recomputation_whatever_the_order_and_the_failures(
    aws_env: None, seed: int, ingest_batch: int, stream_batch: int, crash_at: int | None
) -> None:
    rng = random.Random(seed)
    lines = list(MIX)
    rng.shuffle(lines)
    lines += rng.sample(lines, len(lines) // 10)  # redelivered events
    with streamed_env() as (env, reader):
        live = LiveUsage(env.store)
        crash = Crashing(env.store, crash_at)
        env.store.put_live_shard = crash  # type: ignore[method-assign]
        for start in range(0, len(lines), ingest_batch):
            env.ingestor().handle(sqs_event(lines[start : start + ingest_batch]))
            lagging_delivery(rng, reader, live, stream_batch)
        assert not deliver(reader.read(), lambda_of(live), batch_size=stream_batch)
        assert crash_at is None or crash.calls >= min(crash_at, 1)
        assert_converged(env, live, accounts_of(MIX))


def test_a_refresh_that_read_less_never_replaces_one_that_read_more(aws_env: None) -> None:
    with streamed_env() as (env, reader):
        live = LiveUsage(env.store)
        events = [sms(h) for h in range(3)]
        env.ingestor().handle(sqs_event([json.dumps(e) for e in events[:1]]))
        deliver(reader.read(), lambda_of(live))
        [item] = env.store.live_items("acme", "2026-10")
        key = ShardKey("acme", "2026-10", str(item["sk"]).removeprefix("S#"))
        settings_ = PricePlan.model_validate(_plan()).settings
        start = history_start(env.store, "acme", f.OCTOBER)
        stale = shard_now(env.store, key, settings_, start)  # a slow refresh reads early
        env.ingestor().handle(sqs_event([json.dumps(e) for e in events[1:]]))
        deliver(reader.read(), lambda_of(live))
        body = {"usage": stale.usage.to_json(), "plan": "none"}
        assert not env.store.put_live_shard(key, body, stale.items, 0)  # ... and writes late
        assert (
            live.view("acme", "2026-10").usage.by_metric()
            == current_usage(env.store, "acme", "2026-10").by_metric()
        )


def sms(hour: int) -> dict[str, Any]:
    return f.raw(
        "message.outbound",
        f.at(2, hour),
        message_id=f"m{hour}",
        channel="sms",
        status="submitted",
        end_user="+33600000001",
    )


def _plan(**extra: Any) -> dict[str, Any]:
    return {
        "account": "acme",
        "currency": "EUR",
        "effective_from": "2026-10",
        "prices": {"sms.mt": "0.05"},
        **extra,
    }


def test_a_late_inbound_message_redecides_the_window_in_the_live_view(aws_env: None) -> None:
    with streamed_env() as (env, reader):
        live = LiveUsage(env.store)
        user = "+33612345678"
        template = f.raw(
            "message.outbound",
            f.at(3, 12),
            message_id="t1",
            channel="whatsapp",
            kind="template",
            status="delivered",
            end_user=user,
        )
        inbound = f.raw(
            "message.inbound", f.at(3, 11), message_id="i1", channel="whatsapp", end_user=user
        )
        env.ingestor().handle(sqs_event([json.dumps(template)]))
        deliver(reader.read(), lambda_of(live))
        before = live.view("acme", "2026-10").usage.to_json()
        env.ingestor().handle(sqs_event([json.dumps(inbound)]))
        deliver(reader.read(), lambda_of(live))
        after = live.view("acme", "2026-10").usage
        assert after.to_json() == current_usage(env.store, "acme", "2026-10").to_json()
        assert after.to_json() != before


def test_thresholds_fire_once_per_period_even_when_the_stream_redelivers(
    aws_env: None,
) -> None:
    with streamed_env() as (env, reader):
        events = boto3.client("events")
        bus = events.create_event_bus(Name="bus")["EventBusArn"]
        sent: list[dict[str, Any]] = []
        real_put = events.put_events

        def put_events(**kw: Any) -> Any:
            sent.extend(kw["Entries"])
            return real_put(**kw)

        events.put_events = put_events  # type: ignore[method-assign]
        live = LiveUsage(env.store, events=events, bus_name=bus)
        plan = _plan(thresholds=[{"id": "sms-3", "metric": "sms.mt", "quantity": 3}])
        env.store.put_plan("acme", "2026-10", plan)
        env.store.put_threshold("acme", "spend", {"id": "spend", "amount": "0.10"})
        msgs = [sms(h) for h in range(5)]
        for e in msgs:
            env.ingestor().handle(sqs_event([json.dumps(e)]))
            records = reader.read()
            deliver(records + records, lambda_of(live))  # every batch delivered twice
        fired = sorted(a["threshold"] for a in live.view("acme", "2026-10").alerts)
        assert fired == ["sms-3", "spend"]
        assert sorted(json.loads(e["Detail"])["threshold"] for e in sent) == ["sms-3", "spend"]
        assert {e["DetailType"] for e in sent} == {THRESHOLD_EVENT}


def test_a_threshold_set_below_the_usage_so_far_fires_at_once(aws_env: None) -> None:
    """``billing alerts set`` after the usage is already above the level: the threshold's
    own stream record has it checked (once, whatever the redeliveries)."""
    with streamed_env() as (env, reader):
        events = boto3.client("events")
        bus = events.create_event_bus(Name="bus")["EventBusArn"]
        october = 1_792_000_000.0  # 2026-10-14: the account's current period
        live = LiveUsage(env.store, events=events, bus_name=bus, clock=lambda: october)
        env.store.put_plan("acme", "2026-10", _plan())
        for h in range(3):
            env.ingestor().handle(sqs_event([json.dumps(sms(h))]))
        deliver(reader.read(), lambda_of(live))
        assert live.view("acme", "2026-10").alerts == []
        env.store.put_threshold("acme", "sms-2", {"id": "sms-2", "metric": "sms.mt", "quantity": 2})
        records = reader.read()
        assert records  # the threshold's own record, no fact
        deliver(records + records, lambda_of(live))
        alerts = live.view("acme", "2026-10").alerts
        assert [(a["threshold"], a["value"]) for a in alerts] == [("sms-2", "3")]


def test_a_refused_announcement_gives_the_threshold_back(aws_env: None) -> None:
    with streamed_env() as (env, reader):

        class Refusing:
            calls = 0

            def put_events(self, **kw: Any) -> Any:
                self.calls += 1
                if self.calls == 1:
                    return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}
                return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}

        bus = Refusing()
        live = LiveUsage(env.store, events=bus, bus_name="bus")
        env.store.put_plan("acme", "2026-10", _plan(thresholds=[{"id": "one", "amount": 0}]))
        msg = sms(0)
        env.ingestor().handle(sqs_event([json.dumps(msg)]))
        deliver(reader.read(), lambda_of(live))
        assert bus.calls == 2  # refused, retried from the failed record, sent
        assert [a["threshold"] for a in live.view("acme", "2026-10").alerts] == ["one"]


def test_a_large_shard_is_refreshed_within_its_budget_and_the_sweep_converges_it(
    aws_env: None,
) -> None:
    """Above ``inline_items`` a shard is re-read at most once per ``items / read_rate``
    seconds: records in between are deferred, and the sweep refreshes it once due."""
    clock = [1_000_000.0]
    with streamed_env() as (env, reader):
        budget = RefreshBudget(inline_items=2, read_rate=1)  # 3 items: one refresh per 3 s
        live = LiveUsage(env.store, clock=lambda: clock[0], budget=budget)
        ingest = env.ingestor()
        for hour in range(3):
            ingest.handle(sqs_event([json.dumps(sms(hour))]))
            assert not deliver(reader.read(), lambda_of(live))
        first = live.view("acme", "2026-10").items
        ingest.handle(sqs_event([json.dumps(sms(3))]))
        assert not deliver(reader.read(), lambda_of(live))  # 1 s later: deferred
        assert live.view("acme", "2026-10").items == first
        assert [k.shard for k, _ in env.store.deferred_live()]
        live.sweep()  # not due yet
        assert live.view("acme", "2026-10").items == first
        clock[0] += 10
        live.sweep()
        assert live.view("acme", "2026-10").usage.to_json() == (
            current_usage(env.store, "acme", "2026-10").to_json()
        )
        assert env.store.deferred_live() == []


def test_reconciliation_names_every_line_where_a_lagging_live_view_differs(
    aws_env: None,
) -> None:
    with streamed_env() as (env, reader):
        live = LiveUsage(env.store)
        env.ingestor().handle(sqs_event([json.dumps(sms(0))]))
        assert not deliver(reader.read(), lambda_of(live))
        env.ingestor().handle(sqs_event([json.dumps(sms(1))]))  # not yet in the live view
        billed = current_usage(env.store, "acme", "2026-10")
        [diff] = live.reconcile("acme", "2026-10", billed)
        assert (diff.metric, diff.expected, diff.live) == ("sms.mt", 2, 1)
        assert not deliver(reader.read(), lambda_of(live))
        assert live.reconcile("acme", "2026-10", billed) == []


def test_the_refresh_reads_strongly_consistent(aws_env: None) -> None:
    """A refresh must see the item whose stream record triggered it."""
    with streamed_env() as (env, reader):
        asked: list[Any] = []
        query, get = env.table.query, env.table.get_item

        def recording_query(**kw: Any) -> Any:
            asked.append(kw.get("ConsistentRead"))
            return query(**kw)

        def recording_get(**kw: Any) -> Any:
            asked.append(kw.get("ConsistentRead"))
            return get(**kw)

        env.table.query, env.table.get_item = recording_query, recording_get
        store = UsageStore(env.table, SHARDS, consistent_reads=True)
        env.ingestor().handle(sqs_event([json.dumps(sms(0))]))
        asked.clear()
        assert not deliver(reader.read(), lambda_of(LiveUsage(store)))
        assert asked
        assert all(asked), asked


def test_a_shard_too_large_for_one_item_is_stored_in_parts(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard's document larger than an item (distinct members of millions of facts) is
    stored in parts next to its item: shown exactly, and a newer version removes the
    parts of the older ones."""
    from billing.adapters import store as store_module

    def parts() -> list[str]:
        items = env.table.query(KeyConditionExpression=Key("pk").eq("L#acme#2026-10"))["Items"]
        return sorted(str(i["sk"]) for i in items if str(i["sk"]).startswith("P#"))

    with streamed_env() as (env, reader):
        monkeypatch.setattr(store_module, "LIVE_ITEM_BYTES", 40)
        live = LiveUsage(env.store)
        env.ingestor().handle(sqs_event([json.dumps(sms(0))]))
        assert not deliver(reader.read(), lambda_of(live))
        first = parts()
        assert len(first) > 1
        env.ingestor().handle(sqs_event([json.dumps(sms(1))]))  # same end user: same shard
        assert not deliver(reader.read(), lambda_of(live))
        view = live.view("acme", "2026-10")
        assert (view.oversized, view.shards) == ([], 1)
        billed = current_usage(env.store, "acme", "2026-10")
        assert live.reconcile("acme", "2026-10", billed) == []
        assert view.usage.quantities == billed.quantities
        assert not set(first) & set(parts())  # the first version's parts are gone


def test_parts_are_looked_for_only_when_the_version_replaced_had_some(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard that fits one item (almost all) is refreshed without a query for parts; a
    refresh that loses to a newer version removes the parts it wrote, named by none."""
    from billing.adapters import store as store_module

    with streamed_env() as (env, reader):
        live = LiveUsage(env.store)
        looked: list[ShardKey] = []
        drop = env.store._drop_live_parts

        def counted(key: ShardKey, below: int) -> None:
            looked.append(key)
            drop(key, below)

        env.store._drop_live_parts = counted  # type: ignore[method-assign]
        for h in range(3):  # the same end user: one shard, refreshed three times
            env.ingestor().handle(sqs_event([json.dumps(sms(h))]))
            assert not deliver(reader.read(), lambda_of(live))
        assert looked == []

        monkeypatch.setattr(store_module, "LIVE_ITEM_BYTES", 40)
        key = ShardKey("acme", "2026-10", "99")
        body = {"usage": {"metric": "x" * 400}, "plan": "p"}
        assert env.store.put_live_shard(key, body, 10, 1)
        assert not env.store.put_live_shard(key, body, 5, 2)  # read fewer items: refused
        items = env.table.query(KeyConditionExpression=Key("pk").eq("L#acme#2026-10"))["Items"]
        versions = {int(str(i["sk"]).split("#")[2]) for i in items if str(i["sk"]).startswith("P#")}
        assert versions == {10}  # the refused version's parts are gone


def test_a_stream_batch_reads_the_plan_once_per_account_and_period(aws_env: None) -> None:
    """Refresh, thresholds and the estimate all need the plan: one read per batch."""
    with streamed_env() as (env, reader):
        env.store.put_plan("acme", "2026-10", _plan(thresholds=[{"id": "t", "amount": 0}]))
        reads: list[tuple[str, str]] = []
        original = env.store.plan_document

        def counting(account: str, period: str) -> Any:
            reads.append((account, period))
            return original(account, period)

        env.store.plan_document = counting  # type: ignore[method-assign]
        live = LiveUsage(env.store)
        env.ingestor().handle(sqs_event([json.dumps(sms(h)) for h in range(3)]))
        assert not deliver(reader.read(), lambda_of(live))
        assert [a["threshold"] for a in live.view("acme", "2026-10").alerts] == ["t"]
        assert reads.count(("acme", "2026-10")) == 1


def test_a_stream_batch_reads_the_accounts_zones_once_not_per_shard(aws_env: None) -> None:
    with streamed_env() as (env, reader):
        env.store.put_plan("acme", "2026-10", _plan())
        reads: list[str] = []
        original = env.store.plan_zones

        def counting(account: str) -> Any:
            reads.append(account)
            return original(account)

        env.store.plan_zones = counting  # type: ignore[method-assign]
        live = LiveUsage(env.store)
        lines = [
            json.dumps(
                f.raw(
                    "message.outbound",
                    f.at(2, n % 24),
                    message_id=f"z{n}",
                    channel="sms",
                    status="submitted",
                    end_user=f"+3360000{n:04d}",  # shards follow the end user
                )
            )
            for n in range(40)
        ]
        env.ingestor().handle(sqs_event(lines))
        assert not deliver(reader.read(), lambda_of(live))
        assert live.view("acme", "2026-10").shards == SHARDS
        # one read for the batch (and at most one for the account's current period),
        # not one per shard refreshed
        assert reads.count("acme") <= 2
