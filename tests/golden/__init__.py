"""Golden scenarios: hand-built usage events, a price plan, and the invoice computed by hand.

Each folder ``tests/golden/<scenario>/`` holds:

- ``events.jsonl``: CloudEvents 1.0, one JSON object per line, written by hand. Some are
  deliberately duplicated, out of order, outside the period or not chargeable.
- ``plan.yaml``: the price plan; its ``account`` is the scenario's account.
- ``expected.json``: the invoice computed by hand from the rulebook::

      {
        "account": "golden-sms",
        "period": "2026-10",
        "currency": "EUR",
        "lines": [
          {"kind": "usage", "metric": "sms.mt", "dims": {"country": "FR"},
           "quantity": "3", "amount": "0.13"},
          ...
        ],
        "total": "1.09",
        "notes": {"whatsapp.outside_window": 1}
      }

  ``lines`` lists every line of the invoice (kinds ``usage``, ``fee``, ``commitment``,
  ``prepaid``), in any order; ``quantity`` and ``amount`` are decimal strings (amounts
  with the currency's decimals: ``0.13`` in EUR, ``263`` in KRW); ``notes`` counts the
  reported violations by kind (optional: absent means none).
- ``README.md``: the hand calculation, rule by rule.

``load_scenario(path)`` reads one folder; ``invoice_view(invoice)`` puts an invoice in the
``expected.json`` shape, so ``invoice_view(inv) == scenario.expected`` is the check
(lines are compared in a canonical order).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from billing.domain.events import Envelope, parse_event
from billing.domain.invoice import Invoice
from billing.domain.periods import Period
from billing.domain.plan import PricePlan, load_plan

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    account: str
    period: Period
    plan: PricePlan
    events_raw: list[str]
    expected: dict[str, Any]

    @property
    def events(self) -> list[Envelope]:
        return [parse_event(line) for line in self.events_raw]


def _line_key(line: dict[str, Any]) -> tuple[str, str, str]:
    return (line["kind"], line["metric"], json.dumps(line["dims"], sort_keys=True))


def _normalized(doc: dict[str, Any]) -> dict[str, Any]:
    lines = [
        {
            "kind": line["kind"],
            "metric": line["metric"],
            "dims": dict(sorted(line.get("dims", {}).items())),
            "quantity": _dec(line["quantity"]),
            "amount": str(line["amount"]),
        }
        for line in doc["lines"]
    ]
    return {
        "account": doc["account"],
        "period": doc["period"],
        "currency": doc["currency"],
        "lines": sorted(lines, key=_line_key),
        "total": str(doc["total"]),
        "notes": dict(sorted(doc.get("notes", {}).items())),
    }


def _dec(value: Any) -> str:
    """Quantities compare by value: "2.50" and "2.5" are the same quantity."""
    d = Decimal(str(value))
    return format(d.normalize(), "f") if d else "0"


def invoice_view(invoice: Invoice) -> dict[str, Any]:
    """An invoice in the ``expected.json`` shape (normalized)."""
    return _normalized(
        {
            "account": invoice.account,
            "period": invoice.period,
            "currency": invoice.currency,
            "lines": [
                {
                    "kind": line.kind,
                    "metric": line.metric,
                    "dims": line.dims,
                    "quantity": str(line.quantity),
                    "amount": str(line.amount),
                }
                for line in [*invoice.lines, *invoice.commitment_lines]
            ],
            "total": str(invoice.total),
            "notes": {note.kind: note.count for note in invoice.notes},
        }
    )


def load_scenario(path: Path | str) -> Scenario:
    folder = Path(path)
    expected = _normalized(json.loads((folder / "expected.json").read_text(encoding="utf-8")))
    plan = load_plan(folder / "plan.yaml")
    raw = [
        line.strip()
        for line in (folder / "events.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return Scenario(
        name=folder.name,
        path=folder,
        account=expected["account"],
        period=Period.parse(expected["period"]),
        plan=plan,
        events_raw=raw,
        expected=expected,
    )


def scenario_paths() -> list[Path]:
    return sorted(p for p in HERE.iterdir() if (p / "expected.json").is_file())
