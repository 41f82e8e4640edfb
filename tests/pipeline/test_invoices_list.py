"""``billing invoices list``: an account without a billing profile gets a usage statement,
and its row says so (draft and final), through the real store on moto."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from billing.cli import main
from billing.documents.render import NO_PROFILE_NOTE
from billing.domain.periods import UTC_ZONE
from tests.finance.test_lifecycle import close as run  # the state machine's tasks
from tests.pipeline.conftest import SHARDS, Env
from tests.pipeline.test_close_reruns import month_close
from tests.pipeline.test_time_zones import ingest, sms, utc
from tests.pipeline.test_zone_drafts import put_plan, put_profile


def listing(period: str) -> dict[str, list[str]]:
    """account -> the cells of its row of the listing (status, invoice, net, tax, gross,
    detail)."""
    result = CliRunner().invoke(main.app, ["invoices", "list", "--period", period])
    assert result.exit_code == 0, result.output
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in result.output.splitlines()]
    return {r[0]: r[1:] for r in rows if len(r) == 7}


@pytest.fixture
def cli(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main, "deployed", lambda: SimpleNamespace(table="usage", shards=SHARDS))
    monkeypatch.setattr(main, "out", Console(width=250))  # a row on one line


def test_a_usage_statement_is_noted_in_the_listing(env: Env, cli: Any) -> None:
    for account in ("plain", "profiled"):
        put_plan(env, account, UTC_ZONE)
    put_profile(env, "profiled")
    ingest(env, [sms(a, utc(2026, 10, 5), f"{a}-1") for a in ("plain", "profiled")])
    mc = month_close(env)

    assert run(mc, "2026-10", draft=True)["drafts"] == 2
    rows = listing("2026-10")
    assert (rows["plain"][:2], rows["plain"][-1]) == (["draft", ""], NO_PROFILE_NOTE)
    assert (rows["profiled"][:2], rows["profiled"][-1]) == (["draft", ""], "")

    assert run(mc, "2026-10", draft=False)["issued"] == 2
    rows = listing("2026-10")
    assert rows["plain"][:2] == ["issued", "INV-2026-10-plain"]
    assert rows["plain"][-1] == NO_PROFILE_NOTE
    assert rows["profiled"][:2] == ["final", "EU-2026-000001"]
    assert rows["profiled"][-1] == ""
