"""Within one stream batch a shard is refreshed once, even when several of its records
name it (a plan record refreshes every shard of the account, its facts' records again);
the next batch refreshes it again, and the view stays the recomputation."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest

from billing import live as live_module
from billing.adapters.store import shard_of_item
from billing.live import LiveUsage
from billing.local.streams import deliver
from billing.queries import current_usage
from tests.pipeline.conftest import sqs_event
from tests.pipeline.test_live_view import _plan, lambda_of, sms, streamed_env


def test_a_stream_batch_refreshes_each_shard_once(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    refreshed: Counter[tuple[str, str, str]] = Counter()
    original = live_module.shard_now

    def counting(store: Any, key: Any, *args: Any, **kwargs: Any) -> Any:
        refreshed[(key.account, key.period, key.shard)] += 1
        return original(store, key, *args, **kwargs)

    monkeypatch.setattr(live_module, "shard_now", counting)
    with streamed_env() as (env, reader):
        env.store.put_plan("acme", "2026-10", _plan())
        live = LiveUsage(env.store)
        env.ingestor().handle(sqs_event([json.dumps(sms(h)) for h in range(3)]))
        records = reader.read()
        pks = [str(r["dynamodb"]["Keys"]["pk"]["S"]) for r in records]
        assert any(pk.startswith("PLAN#") for pk in pks)
        assert any(pk.startswith("F#") for pk in pks)
        assert not deliver(records, lambda_of(live), batch_size=len(records))
        assert refreshed
        assert set(refreshed.values()) == {1}
        expected = current_usage(env.store, "acme", "2026-10")
        assert live.view("acme", "2026-10").usage.to_json() == expected.to_json()

        # a later batch (here with every record twice) refreshes each shard it names once
        env.ingestor().handle(sqs_event([json.dumps(sms(h)) for h in range(3, 6)]))
        again = reader.read()
        named = {shard_of_item(str(r["dynamodb"]["Keys"]["pk"]["S"])) for r in again} - {None}
        assert named
        before = refreshed.copy()
        assert not deliver(again + again, lambda_of(live), batch_size=2 * len(again))
        assert refreshed - before == Counter({(k.account, k.period, k.shard): 1 for k in named})
        expected = current_usage(env.store, "acme", "2026-10")
        assert live.view("acme", "2026-10").usage.to_json() == expected.to_json()


def test_a_batch_keeps_its_own_caches_while_another_thread_handles_one(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The live function caches its LiveUsage: where invocations run side by side in one
    # process (the embedded runtime), another batch ending must not clear this batch's
    # caches (its shards would then be refreshed twice, its plans read again).
    paused, resume = threading.Event(), threading.Event()
    refreshed: Counter[tuple[str, str, str]] = Counter()
    original = live_module.shard_now

    def pausing(store: Any, key: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "first-batch":
            refreshed[(key.account, key.period, key.shard)] += 1
            if not paused.is_set():  # its first refresh: the other batch runs meanwhile
                paused.set()
                assert resume.wait(30)
        return original(store, key, *args, **kwargs)

    monkeypatch.setattr(live_module, "shard_now", pausing)
    with streamed_env() as (env, reader):
        env.store.put_plan("acme", "2026-10", _plan())
        live = LiveUsage(env.store)
        env.ingestor().handle(sqs_event([json.dumps(sms(h)) for h in range(3)]))
        records = reader.read()  # a plan record and fact records: two refresh calls
        failed: list[int] = []  # the first batch's failed records (deliver's count)

        def first() -> None:
            failed.append(deliver(records, lambda_of(live), batch_size=len(records)))

        thread = threading.Thread(target=first, name="first-batch")
        thread.start()
        assert paused.wait(30)
        other = live.handle_stream(records[-1:])  # a whole batch in this thread, ended
        resume.set()
        thread.join(30)
        assert not thread.is_alive()
        assert other["batchItemFailures"] == []
        assert failed == [0]
        assert refreshed
        assert set(refreshed.values()) == {1}  # the first batch refreshed each shard once
        expected = current_usage(env.store, "acme", "2026-10")
        assert live.view("acme", "2026-10").usage.to_json() == expected.to_json()
