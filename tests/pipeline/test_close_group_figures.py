"""What a close group's Finish reports: the figures of the group's own accounts (issued,
drafts, failed), while the period's documents list every group's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from billing.domain.periods import UTC_ZONE
from tests.finance.test_lifecycle import close as run  # the state machine's tasks
from tests.pipeline.conftest import Env
from tests.pipeline.test_close_reruns import month_close, objects
from tests.pipeline.test_time_zones import SEOUL_OCT, ingest, sms, utc
from tests.pipeline.test_zone_drafts import put_plan


def figures(done: dict[str, Any], draft: bool) -> tuple[int, list[str]]:
    return done["drafts" if draft else "issued"], done["failed"]


@pytest.mark.parametrize("draft", [False, True], ids=["final", "drafts"])
def test_each_groups_finish_reports_its_own_accounts(env: Env, draft: bool) -> None:
    put_plan(env, "seoul", "Asia/Seoul")
    put_plan(env, "paris", UTC_ZONE)
    ingest(
        env,
        [
            sms("seoul", utc(2026, 10, 5), "s1"),
            sms("paris", utc(2026, 10, 5), "p1"),
            sms("noplan", utc(2026, 10, 5), "n1"),  # no plan: UTC's group, fails its close
        ],
    )
    mc = month_close(env)
    assert figures(run(mc, SEOUL_OCT, draft=draft), draft) == (1, [])
    assert figures(run(mc, "2026-10", draft=draft), draft) == (1, ["noplan"])
    assert figures(run(mc, SEOUL_OCT, draft=draft), draft) == (1, [])  # a re-run of Seoul's

    # the period's documents still list every group's accounts
    if draft:
        key = "drafts/2026-10/manifest.json"
        listed = json.loads(objects(env, key)[key])
        assert [d["account"] for d in listed["drafts"]] == ["paris", "seoul"]
        assert [f["account"] for f in listed["failed"]] == ["noplan"]
    else:
        key = "invoices/2026-10/manifest.json"
        listed = json.loads(objects(env, key)[key])
        assert sorted(i["account"] for i in listed["invoices"]) == ["paris", "seoul"]
        assert [f["account"] for f in listed["failures"]] == ["noplan"]
