"""``billing plans put`` warns of prices that can never apply; ``billing plans check`` reads
the account's stored usage (as ``billing usage`` does) and reports what the plan does not
price, with an estimate of the invoice. Through the real store on moto."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from billing.cli import main
from tests.factories import at, raw
from tests.pipeline.conftest import SHARDS, Env, sqs_event

PLAN = """\
account: acme
currency: EUR
effective_from: 2026-10
products: [moments]
prices:
  sms.mt:
    - {match: {country: FR}, unit_price: "0.05"}
  voice.byoc: "0.01"
  recording.licence: "10.00"
"""


@pytest.fixture
def cli(env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(main, "deployed", lambda: SimpleNamespace(table="usage", shards=SHARDS))
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN, encoding="utf-8")
    return plan


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main.app, list(args))


def sms(message_id: str, country: str) -> dict[str, Any]:
    return raw(
        "message.outbound",
        at(3, 10),
        message_id=message_id,
        channel="sms",
        status="submitted",
        end_user="+33600000001",
        country=country,
    )


def test_put_warns_of_prices_the_products_make_impossible(cli: Path) -> None:
    result = invoke("plans", "put", str(cli))
    assert result.exit_code == 0, result.output
    assert "warning voice.byoc: priced, but belongs to conversations" in result.output
    assert "recording.licence" not in result.output  # possible without Conversations


def test_check_reports_unpriced_usage_impossible_prices_and_an_estimate(
    cli: Path, env: Env
) -> None:
    assert invoke("plans", "put", str(cli)).exit_code == 0
    events = [sms("m1", "FR"), sms("m2", "FR"), sms("m3", "DE")]
    events.append(
        raw("recording.started", at(3, 11), recording_id="r1", call_id="c1", via_conversations=True)
    )
    resp = env.ingestor().handle(sqs_event([json.dumps(e) for e in events]))
    assert resp["batchItemFailures"] == []

    result = invoke("plans", "check", "--account", "acme", "--period", "2026-10")
    assert result.exit_code == 1, result.output  # the close would fail on the DE line
    text = " ".join(result.stdout.split())
    assert "unpriced_usage: sms.mt [country=DE] quantity 1" in text
    assert "impossible_price: voice.byoc" in text
    assert "ESTIMATE (not an invoice)" in text
    assert "estimated total 10.10 EUR" in text  # 2 x 0.05 + one recording licence
    assert "without 1 unpriced line(s)" in text
    assert "note recording.conversations_flag: 1" in text  # flagged, contract without it

    result = invoke("plans", "check", "--account", "acme", "--period", "2026-10", "--json")
    doc = json.loads(result.stdout)
    assert [(f["kind"], f["metric"]) for f in doc["findings"]] == [
        ("impossible_price", "voice.byoc"),
        ("unpriced_usage", "sms.mt"),
    ]
    assert doc["estimate"]["total"] == "10.10"
    assert doc["estimate"]["excludes_unpriced"] == [
        {"metric": "sms.mt", "dimensions": {"country": "DE"}}
    ]


def test_check_without_a_plan_in_force_says_so(cli: Path) -> None:
    result = invoke("plans", "check", "--account", "acme", "--period", "2026-10")
    assert result.exit_code == 1
    assert "no plan in force for acme in 2026-10" in result.output


def test_check_on_the_demo_accounts_with_the_example_plans(env: Env, cli: Path) -> None:
    """As ``billing demo`` sets them up: the example plans in turn, the reference mix."""
    from billing.domain.plan import load_plan
    from billing.gen.mix import generate

    examples = sorted((Path(__file__).resolve().parents[2] / "examples" / "plans").glob("*.yaml"))
    accounts = [f"acct-{n:03d}" for n in range(1, len(examples) + 1)]
    for path, account in zip(examples, accounts, strict=True):
        plan = load_plan(path).model_copy(update={"account": account})
        env.store.put_plan(account, plan.effective_from, plan.model_dump(mode="json"))
    lines = list(generate(seed=3, size=600, period="2026-10", accounts=len(accounts)))
    ingestor = env.ingestor()
    for start in range(0, len(lines), 10):
        ingestor.handle(sqs_event(lines[start : start + 10]))
    for account in accounts:
        result = invoke("plans", "check", "--account", account, "--period", "2026-10", "--json")
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert [f for f in doc["findings"] if f["kind"] != "usage_outside_products"] == []
        assert Decimal(doc["estimate"]["total"]) > 0
