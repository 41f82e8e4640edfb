"""Rendering cost of the documents a customer reads: PDF, CSV and JSON per language.

Builds one invoice with a billing profile's keys (seller, customer, 20 % tax, due date)
and ``--lines`` usage lines spread over the metrics of the rules table, then renders it
``--repeat`` times per language and prints the best and median time per document and the
PDF's size. A Korean document also loads and embeds the Hangul font.

    .venv/bin/python benchmarks/documents.py                 # 40 lines, 5 repeats
    .venv/bin/python benchmarks/documents.py --lines 400 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import partial

from billing.documents.localize import LANGUAGES
from billing.documents.render import invoice_csv, invoice_json, invoice_pdf
from billing.domain.invoice import Invoice, InvoiceLine
from billing.domain.rules import RULES_BY_METRIC


def sample_invoice(lines: int, language: str) -> Invoice:
    metrics = sorted(RULES_BY_METRIC)
    out = []
    for i in range(lines):
        quantity = Decimal(1000 + 37 * i)
        out.append(
            InvoiceLine(
                kind="usage",
                metric=metrics[i % len(metrics)],
                dims={"country": ("FR", "DE", "KR", "ID")[i % 4], "network": f"n{i}"},
                description="sample",
                quantity=quantity,
                billable=quantity,
                unit_price=Decimal("0.0125"),
                amount=(quantity * Decimal("0.0125")).quantize(Decimal("0.01")),
                evidence=int(quantity),
                rule="sample",
                rule_section="3",
                price_row="sample",
            )
        )
    net = sum((line.amount for line in out), Decimal(0))
    tax = (net * Decimal("0.2")).quantize(Decimal("0.01"))
    return Invoice.model_validate(
        {
            "account": "bench",
            "period": "2026-10",
            "number": "EU-2026-000001",
            "issue_date": date(2026, 11, 1),
            "currency": "EUR",
            "minor_unit": 2,
            "plan_effective_from": "2026-01",
            "lines": out,
            "subtotal": net,
            "total": net,
            "status": "final",
            "kind": "invoice",
            "language": language,
            "due_date": date(2026, 12, 1),
            "seller": {
                "legal_name": "CPaaS Europe SAS",
                "address": ["8 rue de la Bourse", "75002 Paris"],
                "country": "FR",
                "tax_id": "FR32812345678",
                "bank": {
                    "iban": "FR7630006000011234567890189",
                    "bic": "AGRIFRPPXXX",
                    "bank_name": "Banque",
                },
            },
            "customer": {
                "legal_name": "주식회사 한빛통신" if language == "ko" else "Acme Trading Ltd",
                "address": ["1 Main Street"],
                "country": "KR" if language == "ko" else "GB",
            },
            "taxes": [{"rate": "20", "base": net, "tax": tax}],
            "totals": {"net": net, "tax": tax, "gross": net + tax},
        }
    )


def timed(render: Callable[[], bytes], repeat: int) -> tuple[float, float, int]:
    times = []
    size = 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = len(render())
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.lines} lines, best and median of {args.repeat} renders")
    print(f"{'language':8} {'format':6} {'best ms':>9} {'median ms':>10} {'bytes':>9}")
    for language in LANGUAGES:
        inv = sample_invoice(args.lines, language)
        renders: tuple[tuple[str, Callable[[Invoice], bytes]], ...] = (
            ("pdf", invoice_pdf),
            ("csv", invoice_csv),
            ("json", invoice_json),
        )
        for name, renderer in renders:
            render = partial(renderer, inv)
            render()  # warm: texts, Babel's locale data
            best, median, size = timed(render, args.repeat)
            print(f"{language:8} {name:6} {best * 1e3:9.1f} {median * 1e3:10.1f} {size:9}")


if __name__ == "__main__":
    main()
