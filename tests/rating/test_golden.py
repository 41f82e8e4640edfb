"""Golden scenarios: hand-built events through ``usage_of_events`` + ``build_invoice``
give the invoice computed by hand (``tests/golden/<scenario>/expected.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from billing.documents.render import invoice_json, invoice_pdf
from billing.domain.engine import usage_of_events
from billing.domain.invoice import Invoice
from billing.domain.rating import build_invoice
from tests.golden import Scenario, invoice_view, load_scenario, scenario_paths

PATHS = scenario_paths()


def invoice_of(s: Scenario) -> Invoice:
    usage = usage_of_events(s.events, s.period, s.plan.settings)
    return build_invoice(s.account, s.period, s.plan, usage)


def test_there_are_enough_scenarios() -> None:
    assert len(PATHS) >= 12


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_golden_scenario(path: Path) -> None:
    s = load_scenario(path)
    assert s.plan.account == s.account
    assert all(json.loads(raw)["subject"] == s.account for raw in s.events_raw)
    assert (path / "README.md").is_file()
    inv = invoice_of(s)
    assert invoice_view(inv) == s.expected


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_golden_documents_are_reproducible(path: Path) -> None:
    s = load_scenario(path)
    a, b = invoice_of(s), invoice_of(load_scenario(path))
    assert invoice_json(a) == invoice_json(b)
    assert invoice_pdf(a) == invoice_pdf(b)


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_golden_events_in_reverse_order_give_the_same_invoice(path: Path) -> None:
    s = load_scenario(path)
    usage = usage_of_events(list(reversed(s.events)), s.period, s.plan.settings)
    assert invoice_view(build_invoice(s.account, s.period, s.plan, usage)) == s.expected
