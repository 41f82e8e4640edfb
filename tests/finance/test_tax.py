"""VAT/GST: the treatment from the seller's and customer's countries, and the rounding
rule (per invoice per rate, ROUND_HALF_UP to the currency's minor unit)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.domain.tax import (
    TaxTable,
    Treatment,
    UnknownTaxRate,
    default_table,
    tax_lines,
    treatment,
)

RC = default_table().mentions["reverse_charge"]
OUT = default_table().mentions["outside_scope"]

TREATMENTS = [
    # seller, customer, customer tax id -> case, rate, mention
    ("FR", "FR", "FR55552081317", "domestic", "20", None),
    ("FR", "FR", None, "domestic", "20", None),
    ("KR", "KR", "129-86-12345", "domestic", "10", None),
    ("DE", "DE", "DE811569869", "domestic", "19", None),
    ("FR", "DE", "DE811569869", "reverse_charge", "0", RC),
    ("FR", "IT", "IT00743110157", "reverse_charge", "0", RC),
    ("FR", "DE", None, "eu_consumer", "19", None),  # telecoms: the customer's country
    ("FR", "US", "12-3456789", "outside_scope", "0", OUT),
    ("FR", "GB", "GB980780684", "outside_scope", "0", OUT),  # not in the EU
    ("KR", "FR", "FR55552081317", "outside_scope", "0", OUT),
    ("FR", "KR", None, "outside_scope", "0", OUT),
]


@pytest.mark.parametrize(
    ("seller", "customer", "tax_id", "case", "rate", "mention"),
    TREATMENTS,
    ids=[f"{s}->{c}{'+id' if t else ''}" for s, c, t, *_ in TREATMENTS],
)
def test_treatment(
    seller: str, customer: str, tax_id: str | None, case: str, rate: str, mention: str | None
) -> None:
    got = treatment(seller, customer, tax_id, "2026-10")
    assert (got.case, got.rate, got.mention) == (case, Decimal(rate), mention)


def test_rates_are_data_effective_from_a_period() -> None:
    table = TaxTable.from_json(
        {
            "eu": ["FR"],
            "rates": {"FR": [{"from": "2014-01", "rate": "20"}, {"from": "2027-01", "rate": "21"}]},
            "mentions": {"reverse_charge": "rc", "outside_scope": "out"},
        }
    )
    assert treatment("FR", "FR", None, "2026-12", table).rate == Decimal(20)
    assert treatment("FR", "FR", None, "2027-01", table).rate == Decimal(21)
    with pytest.raises(UnknownTaxRate):
        treatment("FR", "FR", None, "2013-12", table)
    with pytest.raises(UnknownTaxRate):
        treatment("ZZ", "ZZ", None, "2026-10")


VAT20 = Treatment("domestic", Decimal(20), None)
VAT10 = Treatment("domestic", Decimal(10), None)
RC0 = Treatment("reverse_charge", Decimal(0), RC)

ROUNDING = [
    # (treatment, amount) lines, minor unit -> [(rate, base, tax)], net, tax, gross
    # per invoice per rate: 3 x 0.03 at 20 % is 0.018 -> 0.02, not 3 x 0.01 (per line)
    ([(VAT20, "0.03")] * 3, 2, [("20", "0.09", "0.02")], "0.09", "0.02", "0.11"),
    # ties away from zero: 0.125 -> 0.13; a credit's -0.125 -> -0.13
    ([(VAT20, "0.625")], 3, [("20", "0.625", "0.125")], "0.625", "0.125", "0.750"),
    ([(VAT20, "0.625")], 2, [("20", "0.63", "0.13")], "0.63", "0.13", "0.76"),
    ([(VAT20, "-0.625")], 2, [("20", "-0.63", "-0.13")], "-0.63", "-0.13", "-0.76"),
    # whole units (KRW): 10 % of 12,345 is 1,234.5 -> 1,235
    ([(VAT10, "12000"), (VAT10, "345")], 0, [("10", "12345", "1235")], "12345", "1235", "13580"),
    # reverse charge: no tax, the base still shown with its mention
    ([(RC0, "1500.00")], 2, [("0", "1500.00", "0.00")], "1500.00", "0.00", "1500.00"),
    # two rates on one invoice: one tax line each, highest rate first
    (
        [(RC0, "100.00"), (VAT20, "10.05"), (VAT20, "0.05")],
        2,
        [("20", "10.10", "2.02"), ("0", "100.00", "0.00")],
        "110.10",
        "2.02",
        "112.12",
    ),
]


@pytest.mark.parametrize(("lines", "places", "taxes", "net", "tax", "gross"), ROUNDING)
def test_tax_per_invoice_per_rate_rounded_half_up(
    lines: list[tuple[Treatment, str]],
    places: int,
    taxes: list[tuple[str, str, str]],
    net: str,
    tax: str,
    gross: str,
) -> None:
    got, totals = tax_lines([(how, Decimal(a)) for how, a in lines], places)
    assert [(str(t.rate), str(t.base), str(t.tax)) for t in got] == taxes
    assert (str(totals.net), str(totals.tax), str(totals.gross)) == (net, tax, gross)
    assert totals.gross == totals.net + totals.tax
