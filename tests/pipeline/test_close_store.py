"""Store queries the close depends on, on moto."""

from __future__ import annotations

from tests.pipeline.conftest import Env


def test_accounts_are_listed_in_pages_from_plans_usage_and_adjustments(env: Env) -> None:
    for account in ("a1", "a2", "a3"):
        env.store.put_plan(account, "2026-01", {"account": account})
    env.store.put_items(
        [
            {"pk": "P#2026-10", "sk": "A#a4"},
            {"pk": "P#2026-10", "sk": "ADJ#a5#2026-09"},
            {"pk": "P#2026-11", "sk": "A#a6"},
        ]
    )
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page, cursor = env.store.accounts_page("2026-10", cursor, limit=2)
        seen.extend(page)
        if cursor is None:
            break
    assert seen == ["a1", "a2", "a3", "a4", "a5"]
    assert env.store.adjustment_periods("2026-10", "a5") == ["2026-09"]


def test_the_plan_in_force_is_the_latest_effective_on_or_before_the_period(env: Env) -> None:
    env.store.put_plan("a1", "2026-01", {"v": 1})
    env.store.put_plan("a1", "2026-10", {"v": 2})
    assert env.store.plan_document("a1", "2026-09") == {"v": 1}
    assert env.store.plan_document("a1", "2026-10") == {"v": 2}
    assert env.store.plan_document("a1", "2025-12") is None
