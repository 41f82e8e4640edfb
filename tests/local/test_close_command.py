"""``billing close``: no idle settle on a drained local runtime, ``--settle`` on demand,
phases and per-account progress with totals, the summary on stdout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from billing.cli import main, operations

RESULT = {
    "period": "2026-10",
    "issued": 2,
    "announced": 2,
    "failed": ["globex"],
    "phases": {"freeze": 0.1, "settle": 0.0, "accounts": 1.25, "finish": 0.1},
}


@pytest.fixture
def settles(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    calls: list[int | None] = []

    def run_close(
        d: Any, period: str, timeout: float = 1800, settle: int | None = None, **kw: Any
    ) -> dict[str, Any]:
        calls.append(settle)
        return dict(RESULT)

    monkeypatch.setattr(main, "run_close", run_close)
    monkeypatch.setattr(main, "deployed", lambda: object())
    # one close group (every account in UTC): the deployment is not read for its zones
    monkeypatch.setattr(main, "_groups_to_close", lambda d, period, force: [period])
    return calls


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(main.app, ["close", "--period", "2026-10", *args])
    assert result.exit_code == 0, result.output
    return result


def test_a_drained_local_runtime_needs_no_settle(
    settles: list[int | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(main, "local_intake_drained", lambda state_dir: True)
    invoke()
    assert settles == [0]


def test_elsewhere_the_deployment_settle_applies_unless_given(
    settles: list[int | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    drained: list[Path] = []
    monkeypatch.setattr(main, "local_intake_drained", lambda d: drained.append(d) or False)
    invoke()
    invoke("--settle", "30")
    assert settles == [None, 30]
    assert len(drained) == 1  # an explicit --settle is taken as it is


def test_the_summary_with_its_phases_is_on_stdout(
    settles: list[int | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(main, "local_intake_drained", lambda state_dir: True)
    result = invoke()
    assert result.stdout.splitlines() == [
        "2026-10: 2 invoices issued, 1 failed "
        "(freeze 0.1 s, settle 0.0 s, accounts 1.2 s, finish 0.1 s)",
        "failed globex (see: billing invoices list --period 2026-10)",
    ]


class FakeService:
    def __init__(self, endpoint: str, running: bool = True) -> None:
        self.state = type("S", (), {"endpoint_url": endpoint, "running": running})()
        self.drained: list[Path] = []

    def status(self, state_dir: Path) -> Any:
        return self.state

    def drain(self, state_dir: Path, timeout: float) -> None:
        self.drained.append(state_dir)


def test_the_local_runtime_is_drained_only_when_boto3_points_at_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from billing.local import service

    fake = FakeService("http://127.0.0.1:4566")
    monkeypatch.setattr(service, "status", fake.status)
    monkeypatch.setattr(service, "drain", fake.drain)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert not main.local_intake_drained(tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9999")
    assert not main.local_intake_drained(tmp_path)
    assert fake.drained == []
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566/")
    assert main.local_intake_drained(tmp_path)
    assert fake.drained == [tmp_path]
    fake.state.running = False
    assert not main.local_intake_drained(tmp_path)


class FakeStore:
    def __init__(
        self,
        results: list[dict[str, Any]],
        accounts: list[str],
        zones: dict[str, list[tuple[str, str]]] | None = None,
    ) -> None:
        self.current = results
        self.accounts = accounts
        self.zones = zones or {}  # account -> its plans' (effective period, time zone)

    def zones_in_use(self) -> set[str]:
        return {z for versions in self.zones.values() for _, z in versions}

    def plan_zones_of(self, accounts: list[str]) -> dict[str, list[tuple[str, str]]]:
        return {a: self.zones[a] for a in accounts if a in self.zones}

    def results(self, period: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.current]

    def accounts_page(
        self, period: str, cursor: str | None, limit: int = 100
    ) -> tuple[list[str], str | None]:
        start = self.accounts.index(cursor) + 1 if cursor else 0
        page = self.accounts[start : start + 2]
        more = start + 2 < len(self.accounts)
        return page, (page[-1] if more else None)


def test_progress_counts_the_accounts_this_run_settles_out_of_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = FakeStore(
        [
            {"account": "acme", "status": "issued", "invoice": "1"},  # an earlier run's
            {"account": "globex", "status": "failed", "error": "no plan"},  # to retry
        ],
        ["acme", "globex", "initech", "umbrella", "wayne"],
    )
    progress = operations.CloseProgress(store, "2026-10")  # type: ignore[arg-type]
    progress.enter("settle")
    assert progress.accounts is None
    progress.enter("accounts")
    assert progress.accounts == ["acme", "globex", "initech", "umbrella", "wayne"]
    assert progress.done() == 1
    store.current.append({"account": "initech", "status": "issued", "invoice": "2"})
    assert progress.done() == 2
    store.current[1] = {"account": "globex", "status": "issued", "invoice": "3"}
    assert progress.done() == 3
    progress.enter("settle")  # phases only move forward
    assert progress.phase == "accounts"
    progress.enter("finish")
    assert list(progress.durations(1e12)) == list(operations.CLOSE_PHASES)


def test_progress_reads_the_results_once_a_second_or_less_often_when_a_read_is_slow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The progress bar polls 5 times a second; reading every result of the period at each
    poll took a tenth of the local runtime's time during the demo's close."""
    clock = [100.0]
    monkeypatch.setattr(operations.time, "monotonic", lambda: clock[0])
    store = FakeStore([], ["acme", "globex"])
    reads = []
    results = store.results
    cost = {"read": 0.01}  # seconds per read of the results

    def timed_results(period: str) -> list[dict[str, Any]]:
        reads.append(clock[0])
        clock[0] += cost["read"]
        return results(period)

    monkeypatch.setattr(store, "results", timed_results)
    progress = operations.CloseProgress(store, "2026-10")  # type: ignore[arg-type]
    progress.enter("accounts")
    reads.clear()
    seen = []
    for _ in range(15):  # 3 s of polls
        seen.append(progress.settled())
        if len(reads) == 1 and not store.current:
            store.current.append({"account": "acme", "status": "issued", "invoice": "1"})
        clock[0] += 0.2
    assert len(reads) == 3  # at 0, 1 and 2 s
    assert seen.index(1) == 5  # 0 until the read at 1 s, which sees the new result
    assert seen[-1] == 1
    assert progress.done() == 1  # a direct read is never cached

    cost["read"] = 0.5  # a slow read: at most a READ_SHARE of the time
    reads.clear()
    for _ in range(100):
        progress.settled()
        clock[0] += 0.2
    assert len(reads) == pytest.approx(20.0 / (0.5 / operations.CloseProgress.READ_SHARE), abs=1)


def test_progress_of_a_close_group_counts_the_groups_accounts_only() -> None:
    store = FakeStore(
        [{"account": "acme", "status": "issued", "invoice": "1"}],  # UTC's group, closed
        ["acme", "globex", "seoul"],
        {"seoul": [("2026-10", "Asia/Seoul")]},
    )
    progress = operations.CloseProgress(store, "2026-10@+09:00")  # type: ignore[arg-type]
    progress.enter("accounts")
    assert progress.accounts == ["seoul"]
    assert progress.done() == 0  # acme's invoice is another group's
    store.current.append({"account": "seoul", "status": "issued", "invoice": "2"})
    assert progress.done() == 1
    utc = operations.CloseProgress(store, "2026-10")  # type: ignore[arg-type]
    utc.enter("accounts")
    assert utc.accounts == ["acme", "globex"]


def test_each_close_group_has_its_summary_and_failures_point_at_the_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    phases = {"freeze": 0.1, "settle": 0.0, "accounts": 1.0, "finish": 0.1}
    results = {
        "2026-10@+09:00": {"period": "2026-10", "issued": 1, "failed": ["kakao"]},
        "2026-10": {"period": "2026-10", "issued": 2, "failed": []},
    }
    monkeypatch.setattr(
        main, "run_close", lambda d, group, **kw: {**results[group], "phases": phases}
    )
    monkeypatch.setattr(main, "deployed", lambda: object())
    monkeypatch.setattr(main, "_groups_to_close", lambda d, period, force: list(results))
    monkeypatch.setattr(main, "local_intake_drained", lambda state_dir: True)
    timing = "(freeze 0.1 s, settle 0.0 s, accounts 1.0 s, finish 0.1 s)"
    assert invoke().stdout.splitlines() == [
        f"2026-10@+09:00: 1 invoice issued, 1 failed {timing}",
        "failed kakao (see: billing invoices list --period 2026-10)",  # results: the period's
        f"2026-10: 2 invoices issued, 0 failed {timing}",
    ]


@pytest.mark.parametrize("period", ["2026-10", "2026-10@+09:00"])
def test_a_failure_hint_names_the_period_whose_results_list_it(period: str) -> None:
    """`billing close` and `billing invoices finalize` both point at the period's listing."""
    assert main.failure_hint("kakao", period) == (
        "failed kakao (see: billing invoices list --period 2026-10)"
    )
