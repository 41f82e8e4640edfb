"""Gap-free numbering: the series counter moves with a pending record of the claim, which
is completed (claim and index written) by whoever comes next after a crash."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from billing.adapters.store import FinanceStore
from tests.pipeline.conftest import Env


def test_numbers_are_gap_free_and_stable_across_reruns(env: Env) -> None:
    fin = FinanceStore(env.table)
    first = fin.assign_number("EU-2026-", 6, fin.invoice_claim("2026-10", "acme"), {"a": 1})
    second = fin.assign_number("EU-2026-", 6, fin.invoice_claim("2026-10", "beta"), {"a": 2})
    again = fin.assign_number("EU-2026-", 6, fin.invoice_claim("2026-10", "acme"), {"a": 3})
    assert (first, second, again) == ("EU-2026-000001", "EU-2026-000002", "EU-2026-000001")
    assert fin.last_number("EU-2026-") == 2
    other = fin.assign_number("EUC-2026-", 6, fin.correction_claim(first, "void"), {})
    assert other == "EUC-2026-000001"  # a credit note series of its own
    assert fin.document(first) == {"a": 1, "number": first}  # the first request's index


class AtomicCalls:
    """moto's DynamoDB is not thread-safe, while every DynamoDB request is atomic: each
    request goes through one lock, as it would through a server. Between two requests of
    one finalization (read the counter, read the claim, update the counter, put the claim
    and the index, clear the record), the threads interleave freely."""

    def __init__(self, target: Any, lock: threading.Lock) -> None:
        self._target = target
        self._lock = lock
        self.refused = 0  # requests refused (a transaction cancelled by a condition)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                try:
                    return value(*args, **kwargs)
                except ClientError:
                    self.refused += 1
                    raise

        return call


class SerializedTable(AtomicCalls):
    def __init__(self, table: Any) -> None:
        lock = threading.Lock()
        super().__init__(table, lock)
        self.name = table.name
        self.client = AtomicCalls(table.meta.client, lock)
        self.meta = type("Meta", (), {"client": self.client})()


def test_concurrent_finalizations_get_unique_gap_free_numbers(env: Env) -> None:
    table = SerializedTable(env.table)
    fin = FinanceStore(table)
    accounts = [f"acct-{n:03d}" for n in range(40)]

    def finalize(account: str) -> str:
        return fin.assign_number(
            "EU-2026-", 6, fin.invoice_claim("2026-10", account), {"account": account}
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = list(pool.map(finalize, accounts + accounts))  # each one twice, at once
    by_account = dict(zip(accounts + accounts, numbers, strict=True))
    assert numbers[: len(accounts)] == numbers[len(accounts) :]  # stable: same claim, same number
    assert sorted(by_account.values()) == [f"EU-2026-{n:06d}" for n in range(1, 41)]
    assert fin.last_number("EU-2026-") == 40
    assert table.refused > 0  # the finalizations did race for numbers (refused updates)
    for account, number in by_account.items():
        assert fin.document(number) == {"account": account, "number": number}


def test_a_crash_after_taking_a_number_leaves_no_gap(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    fin = FinanceStore(env.table)
    complete = FinanceStore._complete

    def crash(self: FinanceStore, pending: str) -> None:
        raise RuntimeError("crash between the counter and the claim")

    monkeypatch.setattr(FinanceStore, "_complete", crash)
    with pytest.raises(RuntimeError, match="crash"):
        fin.assign_number("EU-2026-", 6, fin.invoice_claim("2026-10", "acme"), {"a": 1})
    assert fin.last_number("EU-2026-") == 1  # taken, its claim not written yet
    monkeypatch.setattr(FinanceStore, "_complete", complete)
    # the next assignment (another account) completes the pending one first
    beta = fin.assign_number("EU-2026-", 6, fin.invoice_claim("2026-10", "beta"), {"a": 2})
    acme = fin.assign_number("EU-2026-", 6, fin.invoice_claim("2026-10", "acme"), {"a": 3})
    assert (acme, beta) == ("EU-2026-000001", "EU-2026-000002")
    assert fin.document(acme) == {"a": 1, "number": acme}
