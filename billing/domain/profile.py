"""Billing profiles and sellers: who is invoiced, and who invoices.

A **billing profile** is the account's invoicing identity: legal name, postal address,
country, tax id, the language and currency of its invoices, payment terms, a purchase-order
reference, the e-mail the invoices go to, and the **seller** (the issuing legal entity)::

    account: acme
    effective_from: 2026-10        # first period it applies to (versioned like plans)
    legal_name: ACME SAS
    address: [12 rue de la Paix, 75002 Paris]
    country: FR                    # ISO 3166-1 alpha-2
    tax_id: FR40303265045          # VAT / GST registration; none for a consumer
    language: fr                   # en, fr, id, ko
    currency: EUR                  # ISO 4217; the plan's currency must match
    payment_terms_days: 30         # due date = issue date + these days
    purchase_order: PO-2026-118    # printed on the invoice, optional
    invoice_email: billing@acme.example
    seller: cpaas-fr               # a seller id

A **seller** carries its own legal details, bank details and its number series::

    id: cpaas-fr
    effective_from: 2026-01
    legal_name: CPaaS France SAS
    address: [1 place de la Bourse, 75002 Paris]
    country: FR
    tax_id: FR12345678901
    bank: {iban: FR7630006000011234567890189, bic: AGRIFRPP, bank_name: Credit Agricole}
    series: {invoice: "FR-{year}-", credit_note: "FRC-{year}-", digits: 6}

Both are validated strictly (unknown fields are errors) and versioned by
``effective_from``; the JSON Schemas in ``schemas/`` are generated from these models
(``python -m billing.domain.profile``; a test fails when they are stale).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from billing.domain.events import AccountId
from billing.domain.periods import Period

LANGUAGES = ("en", "fr", "id", "ko")
Language = Literal["en", "fr", "id", "ko"]
SELLER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def _period_text(value: Any) -> Any:
    """``2026-10`` as YAML may read it (a date) or as text: a valid period label."""
    if isinstance(value, date):
        value = f"{value.year:04d}-{value.month:02d}"
    return str(Period.parse(str(value)))


PeriodLabel = Annotated[str, BeforeValidator(_period_text)]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BankDetails(_Model):
    iban: str = Field(
        min_length=5,
        max_length=34,
        pattern=r"^[A-Z0-9-]+$",
        description="the IBAN, or the account number where IBANs are not used (KR, ID)",
    )
    bic: str = Field(pattern=r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$")
    bank_name: str = Field(min_length=1, max_length=140)


class NumberSeries(_Model):
    """Prefixes of the seller's two series; ``{year}`` is the issue date's year, and a
    series with ``{year}`` starts again at 1 every year (one counter per prefix)."""

    invoice: str = Field("INV-{year}-", min_length=1, max_length=32)
    credit_note: str = Field("CN-{year}-", min_length=1, max_length=32)
    digits: int = Field(6, ge=1, le=12)

    @field_validator("invoice", "credit_note")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9/_.-]*(\{year\}[A-Za-z0-9/_.-]*)?", value):
            raise ValueError("letters, digits, - _ . / and at most one {year}")
        return value


class Seller(_Model):
    id: str = Field(pattern=SELLER_ID.pattern, description="lower-case id, e.g. cpaas-fr")
    effective_from: PeriodLabel
    legal_name: str = Field(min_length=1, max_length=200)
    address: list[str] = Field(min_length=1, max_length=6)
    country: Country
    tax_id: str = Field(min_length=2, max_length=32)
    bank: BankDetails
    series: NumberSeries = Field(default_factory=NumberSeries)

    def series_prefix(self, kind: Literal["invoice", "credit_note"], issued: date) -> str:
        template = self.series.invoice if kind == "invoice" else self.series.credit_note
        return template.replace("{year}", f"{issued.year:04d}")

    def block(self) -> dict[str, Any]:
        """The seller as the invoice document shows it."""
        return {
            "legal_name": self.legal_name,
            "address": list(self.address),
            "country": self.country,
            "tax_id": self.tax_id,
            "bank": self.bank.model_dump(),
        }


class BillingProfile(_Model):
    account: AccountId
    effective_from: PeriodLabel
    legal_name: str = Field(min_length=1, max_length=200)
    address: list[str] = Field(min_length=1, max_length=6)
    country: Country
    tax_id: str | None = Field(None, min_length=2, max_length=32)
    language: Language = "en"
    currency: Currency
    payment_terms_days: int = Field(30, ge=0, le=365)
    purchase_order: str | None = Field(None, max_length=64)
    invoice_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    seller: str = Field(pattern=SELLER_ID.pattern)

    def block(self) -> dict[str, Any]:
        """The customer as the invoice document shows it."""
        return {
            "legal_name": self.legal_name,
            "address": list(self.address),
            "country": self.country,
            "tax_id": self.tax_id,
            "purchase_order": self.purchase_order,
            "email": self.invoice_email,
        }


def _load(path: Path | str) -> Any:
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    return json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)


def load_profile(path: Path | str) -> BillingProfile:
    """A billing profile from a ``.yaml``/``.yml`` or ``.json`` file (CLI and demo)."""
    return BillingProfile.model_validate(_load(path))


def load_seller(path: Path | str) -> Seller:
    return Seller.model_validate(_load(path))


# --- JSON Schemas -----------------------------------------------------------------------------

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "billing-profile.schema.json": BillingProfile,
    "seller.schema.json": Seller,
}


def rendered() -> dict[Path, str]:
    files = {}
    for name, model in SCHEMA_FILES.items():
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://schemas.cpaas-billing.invalid/finance/{name}",
            **model.model_json_schema(mode="validation"),
        }
        files[SCHEMAS / name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


if __name__ == "__main__":
    for path, content in rendered().items():
        path.write_text(content)
        print(f"wrote {path.relative_to(SCHEMAS.parent)}", file=sys.stderr)
