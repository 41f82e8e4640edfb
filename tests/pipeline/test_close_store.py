"""Store queries the close depends on, on moto."""

from __future__ import annotations

from typing import Any

import pytest

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


@pytest.mark.parametrize("limit", [1, 3, 7])
def test_a_page_of_accounts_reads_about_a_page_whatever_the_number_of_accounts(
    env: Env, limit: int
) -> None:
    """Listing N accounts in pages costs O(N) items in all, not O(N^2): each source is
    read only until it has given a page; every account is listed once, in order."""
    accounts = [f"acct-{n:03d}" for n in range(40)]
    items: list[dict[str, Any]] = []
    for i, account in enumerate(accounts):
        if i % 3 == 0:
            env.store.put_plan(account, "2026-01", {"account": account})
        if i % 3 != 2:
            items.append({"pk": "P#2026-10", "sk": f"A#{account}"})
        if i % 4 == 0:  # two priors adjusted: two markers for one account
            items += [
                {"pk": "P#2026-10", "sk": f"ADJ#{account}#2026-08"},
                {"pk": "P#2026-10", "sk": f"ADJ#{account}#2026-09"},
            ]
    env.store.put_items(items)
    read: list[int] = []
    query = env.table.query

    def counted(**kw: Any) -> Any:
        resp = query(**kw)
        read.append(len(resp.get("Items", [])))
        return resp

    env.table.query = counted
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        read.clear()
        page, cursor = env.store.accounts_page("2026-10", cursor, limit=limit)
        seen.extend(page)
        pages += 1
        assert sum(read) <= 3 * 4 * (limit + 1)  # each source: about one page of items
        if cursor is None:
            break
    listed = {a for i, a in enumerate(accounts) if i % 3 == 0 or i % 3 != 2 or i % 4 == 0}
    assert seen == sorted(listed)
    assert pages <= len(seen) // limit + 2


def test_the_plan_in_force_is_the_latest_effective_on_or_before_the_period(env: Env) -> None:
    env.store.put_plan("a1", "2026-01", {"v": 1})
    env.store.put_plan("a1", "2026-10", {"v": 2})
    assert env.store.plan_document("a1", "2026-09") == {"v": 1}
    assert env.store.plan_document("a1", "2026-10") == {"v": 2}
    assert env.store.plan_document("a1", "2025-12") is None
