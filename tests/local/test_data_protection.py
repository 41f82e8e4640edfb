"""Invoice retention dates and the masking of rejected events shown to operators."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.adapters.invoices import InvoiceLock
from billing.adapters.rejects import mask


def test_invoice_retention_derives_from_the_period_only() -> None:
    lock = InvoiceLock("COMPLIANCE", 10)
    assert lock.retain_until("invoices/2026-10/acme/INV-1.pdf") == datetime(2036, 11, 1, tzinfo=UTC)
    assert lock.retain_until("invoices/2026-12/manifest.json") == datetime(2037, 1, 1, tzinfo=UTC)
    assert lock.retain_until("work/2026-10/acme/2026-10/00.json") is None
    assert lock.retain_until("state/acme/00/2026-11/2026-10.json.gz") is None


def test_invoice_lock_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INVOICE_LOCK_MODE", raising=False)
    assert InvoiceLock.from_env() is None
    monkeypatch.setenv("INVOICE_LOCK_MODE", "compliance")
    monkeypatch.setenv("INVOICE_RETENTION_YEARS", "7")
    assert InvoiceLock.from_env() == InvoiceLock("COMPLIANCE", 7)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("data.end_user: +33612345678", "data.end_user: +33*******78"),
        ("to +33 6 12 34 56 78 now", "to +33*******78 now"),
        ("jane.doe+x@mail.example.com", "***@mail.example.com"),
        ("msisdn 0612345678", "msisdn 06******78"),
        ("time: 2026-10-14T09:30:00 has no zone", "time: 2026-10-14T09:30:00 has no zone"),
        ("parts: 12345 > 10", "parts: 12345 > 10"),
    ],
)
def test_rejects_listing_masks_end_user_identifiers(raw: str, shown: str) -> None:
    assert mask(raw) == shown
