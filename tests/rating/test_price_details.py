"""Every line's computation as data (``InvoiceLine.price_detail``): the rating writes it next
to its English ``price_note``, and the documents render it in the invoice's language from
the data, so that a change of the English wording changes no localized document."""

# the expected notes are typographic text (multiplication and minus signs, apostrophes)
# ruff: noqa: RUF001

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import pytest

from billing.documents.localize import LANGUAGES, Localizer
from billing.documents.render import invoice_csv, invoice_json, invoice_pdf
from billing.domain import rating
from billing.domain.finance import credit_note
from billing.domain.invoice import Invoice, InvoiceLine, PriceDetail, canonical_json
from billing.domain.rating import price_note_text, rate
from billing.domain.usage import Usage
from tests.rating.helpers import one, plan, usage
from tests.rating.test_documents import rich_invoice
from tests.rating.test_documents_localized import finance_invoice, page_texts, plain_spaces

ROOT = Path(__file__).resolve().parents[2]
TIERS = [
    {"up_to": 1000, "unit_price": "0.05"},
    {"up_to": 5000, "unit_price": "0.04"},
    {"unit_price": "0.03"},
]
NAMED_USERS: dict[str, Any] = {
    "named_users": {"seat_price": "31", "monthly_fee": "310", "included_seats": 2},
    "settings": {"named_user_service_start": "2026-10-15"},
}
MINIMUM = {"name": "viber.minimum", "metrics": ["viber"], "minimum": "300", "mode": "post_pay"}
FEES = [
    {
        "code": "byoc.setup",
        "description": "BYOC setup",
        "amount": "500",
        "billed": "once",
        "period": "2026-10",
    },
    {"code": "platform", "description": "platform", "amount": "99", "billed": "monthly"},
]


def _pick(lines: Any, kind: str, metric: str) -> InvoiceLine:
    (line,) = [x for x in lines if x.kind == kind and x.metric == metric]
    return line


def _first_month() -> tuple[InvoiceLine, ...]:
    u = usage({("conversations.maa", ()): 6, ("conversations.maa.initial", ()): 3})
    return rate(u, plan(**NAMED_USERS)).lines


def _package() -> InvoiceLine:
    u = Usage("2026-10")
    for i in range(1250):
        u.add_distinct("whatsapp.mau", (), f"u{i}")
    package = {"monthly_fee": "100.00", "included": 1000, "overage_unit_price": "0.05"}
    return _pick(rate(u, plan(packages={"whatsapp.mau": package})).lines, "usage", "whatsapp.mau")


def _credit() -> InvoiceLine:
    note = credit_note(
        finance_invoice("en"), "CN-1", date(2026, 11, 20), "goodwill", amount=Decimal(5)
    )
    return _pick(note.adjustment_lines, "adjustment", "credit")


#: every kind of computation the rating writes (and a credit note's credit of an amount):
#: how to get such a line, its English note (as the rating always wrote it) and the note
#: each language shows
CASES: dict[str, tuple[Callable[[], InvoiceLine], str, dict[str, str]]] = {
    "per_minute": (
        lambda: rate(
            one("voice.ivr", 61, country="FR", direction="outbound"),
            plan(prices={"voice.ivr": "0.0120"}),
        ).lines[0],
        "1.016667 min x 0.0120 per minute",
        {
            "en": "1.016667 min × 0.012 per minute",
            "fr": "1,016667 min × 0,012 par minute",
            "id": "1,016667 menit × 0,012 per menit",
            "ko": "1.016667분 × 분당 0.012",
        },
    ),
    "graduated": (
        lambda: rate(
            usage(
                {
                    ("sms.mt", (("country", "FR"), ("network", "orange"))): 800,
                    ("sms.mt", (("country", "FR"), ("network", "sfr"))): 400,
                }
            ),
            plan(prices={"sms.mt": [{"match": {"country": "FR"}, "tiers": TIERS}]}),
        ).lines[0],
        "graduated (units): 1000 x 0.05 + 200 x 0.04; 2 usage lines",
        {
            "en": "graduated tiers: 1,000 × 0.05 + 200 × 0.04; 2 usage lines",
            "fr": "paliers progressifs : 1 000 × 0,05 + 200 × 0,04; 2 lignes de consommation",
            "id": "tarif berjenjang: 1.000 × 0,05 + 200 × 0,04; 2 baris pemakaian",
            "ko": "누진 구간: 1,000 × 0.05 + 200 × 0.04; 사용 내역 2건",
        },
    ),
    "graduated_minutes": (
        lambda: rate(
            one("voice.sip_trunk", 7200, direction="outbound"),
            plan(prices={"voice.sip_trunk": {"tiers": [TIERS[0], TIERS[2]]}}),
        ).lines[0],
        "graduated (minutes): 120 x 0.05",
        {
            "en": "graduated tiers: 120 min × 0.05",
            "fr": "paliers progressifs : 120 min × 0,05",
            "id": "tarif berjenjang: 120 menit × 0,05",
            "ko": "누진 구간: 120분 × 0.05",
        },
    ),
    "volume": (
        lambda: rate(
            one("email", 1001), plan(prices={"email": {"tiers": TIERS, "tier_mode": "volume"}})
        ).lines[0],
        "volume tier up to 5000: 1001 units x 0.04",
        {
            "en": "volume tier up to 5,000: 1,001 × 0.04",
            "fr": "palier de volume jusqu’à 5 000 : 1 001 × 0,04",
            "id": "tingkat volume hingga 5.000: 1.001 × 0,04",
            "ko": "5,000 이하 볼륨 구간: 1,001 × 0.04",
        },
    ),
    "volume_top": (
        lambda: rate(
            one("email", 6000), plan(prices={"email": {"tiers": TIERS, "tier_mode": "volume"}})
        ).lines[0],
        "volume tier above: 6000 units x 0.03",
        {
            "en": "top volume tier: 6,000 × 0.03",
            "fr": "dernier palier de volume : 6 000 × 0,03",
            "id": "tingkat volume teratas: 6.000 × 0,03",
            "ko": "최상위 볼륨 구간: 6,000 × 0.03",
        },
    ),
    "package": (
        _package,
        "1000 included, overage per unit",
        {
            "en": "1,000 included, overage per unit",
            "fr": "1 000 inclus, dépassement à l’unité",
            "id": "1.000 termasuk, kelebihan dihitung per unit",
            "ko": "1,000 포함, 초과분은 단가 적용",
        },
    ),
    "prorated_fee": (
        lambda: _pick(_first_month(), "fee", "conversations.maa"),
        "prorated 17/31 days from 2026-10-15",
        {
            "en": "prorated 17/31 days from October 15, 2026",
            "fr": "au prorata de 17/31 jours à partir du 15 octobre 2026",
            "id": "prorata 17/31 hari sejak 15 Oktober 2026",
            "ko": "2026년 10월 15일부터 17/31일 일할 계산",
        },
    ),
    "prorated_seats": (
        lambda: _pick(_first_month(), "usage", "conversations.maa.initial"),
        "prorated 17/31 days from 2026-10-15",
        {
            "en": "prorated 17/31 days from October 15, 2026",
            "fr": "au prorata de 17/31 jours à partir du 15 octobre 2026",
            "id": "prorata 17/31 hari sejak 15 Oktober 2026",
            "ko": "2026년 10월 15일부터 17/31일 일할 계산",
        },
    ),
    "seats_start_day": (
        lambda: _pick(_first_month(), "usage", "conversations.maa"),
        "full price per seat (peak concurrent seats); the 3 seats of the start day are billed "
        "prorated",
        {
            "en": "full price per seat (peak concurrent seats); the 3 seats of the start day "
            "are billed prorated",
            "fr": "plein tarif par licence (pic de licences simultanées); les 3 licences du jour "
            "de mise en service sont facturées au prorata",
            "id": "harga penuh per kursi (puncak kursi bersamaan); 3 kursi pada hari mulai "
            "layanan ditagih prorata",
            "ko": "석당 정가 (최대 동시 사용 석); 개시일의 3석은 일할 청구",
        },
    ),
    "seats": (
        lambda: _pick(
            rate(usage({("conversations.maa", ()): 4}, "2026-11"), plan(**NAMED_USERS)).lines,
            "usage",
            "conversations.maa",
        ),
        "full price per seat (peak concurrent seats)",
        {
            "en": "full price per seat (peak concurrent seats)",
            "fr": "plein tarif par licence (pic de licences simultanées)",
            "id": "harga penuh per kursi (puncak kursi bersamaan)",
            "ko": "석당 정가 (최대 동시 사용 석)",
        },
    ),
    "free": (
        lambda: rate(one("push", 1200), plan()).lines[0],
        "not charged: free unless priced",
        {
            "en": "not charged: free unless priced",
            "fr": "non facturé : gratuit sauf tarif au contrat",
            "id": "tidak ditagih: gratis kecuali diberi harga",
            "ko": "청구 안 됨: 단가 미지정 시 무료",
        },
    ),
    "fee_once": (
        lambda: _pick(rate(Usage("2026-10"), plan(fees=FEES)).lines, "fee", "byoc.setup"),
        "one-time",
        {"en": "one-time", "fr": "frais unique", "id": "sekali bayar", "ko": "일회성"},
    ),
    "fee_monthly": (
        lambda: _pick(rate(Usage("2026-10"), plan(fees=FEES)).lines, "fee", "platform"),
        "monthly",
        {"en": "monthly", "fr": "mensuel", "id": "bulanan", "ko": "월정액"},
    ),
    "top_up": (
        lambda: rate(
            one("viber", 10_000), plan(prices={"viber": "0.0120"}, commitments=[MINIMUM])
        ).commitment_lines[0],
        "minimum 300.00 - actual 120.00 (post_pay)",
        {
            "en": "minimum 300.00 - actual 120.00 (post-pay)",
            "fr": "minimum 300,00 - consommé 120,00 (post-paiement)",
            "id": "minimum 300,00 - aktual 120,00 (pascabayar)",
            "ko": "최소 300.00 - 실제 120.00 (후불)",
        },
    ),
    "prepaid": (
        lambda: _pick(
            rate(
                one("viber", 10_000),
                plan(prices={"viber": "0.0120"}, commitments=[{**MINIMUM, "mode": "pre_pay"}]),
            ).commitment_lines,
            "prepaid",
            "viber.minimum",
        ),
        "max(actual 120.00, minimum 300.00)",
        {
            "en": "the greater of actual 120.00 and minimum 300.00",
            "fr": "le plus élevé du consommé 120,00 et du minimum 300,00",
            "id": "yang lebih besar antara aktual 120,00 dan minimum 300,00",
            "ko": "실제 120.00, 최소 300.00 중 큰 금액",
        },
    ),
    "credit": (
        _credit,
        "Credit on invoice EU-2026-000042: goodwill",
        {
            "en": "Credit on invoice EU-2026-000042: goodwill",
            "fr": "Avoir sur la facture EU-2026-000042 : goodwill",
            "id": "Kredit atas faktur EU-2026-000042: goodwill",
            "ko": "청구서 EU-2026-000042에 대한 크레딧: goodwill",
        },
    ),
}


def _english(line: InvoiceLine) -> str | None:
    """The English words of a line's computation: its price note, a credit's description."""
    return line.description if line.metric == "credit" else line.price_note


def _shown(loc: Localizer, line: InvoiceLine) -> str:
    """What a document shows of the line's computation (a credit: the line's name), with
    the locale's no-break spaces as plain spaces."""
    return plain_spaces(loc.line_name(line) if line.metric == "credit" else loc.line_note(line))


def _reworded(line: InvoiceLine) -> InvoiceLine:
    """The line as if the rating had worded its English note differently."""
    if line.metric == "credit":
        return line.model_copy(update={"description": "Refund against an invoice, see notes"})
    return line.model_copy(update={"price_note": f"computed: {line.price_note}".upper()})


def test_every_kind_of_computation_is_in_the_table() -> None:
    (union, _) = get_args(PriceDetail)
    kinds = {get_args(model.model_fields["kind"].annotation)[0] for model in get_args(union)}
    covered = {
        line.price_detail.kind for line in (c[0]() for c in CASES.values()) if line.price_detail
    }
    assert covered == kinds


def test_the_rating_writes_every_price_note_from_the_computation() -> None:
    """No English-only note: every ``price_note`` the rating (and a credit) sets is the
    English text of the line's ``price_detail``."""
    for path in ("billing/domain/rating.py", "billing/domain/finance.py"):
        source = (ROOT / path).read_text(encoding="utf-8")
        for value in re.findall(r"price_note=([^,\n]+)", source):
            assert value in {"_note(detail)", "price_note_text(topped)"} | {
                "price_note_text(deducted)"
            }, (path, value)
    assert "description=price_note_text(credited)" in (
        ROOT / "billing/domain/finance.py"
    ).read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_line_carries_its_computation_as_data(kind: str) -> None:
    make, english, _ = CASES[kind]
    line = make()
    assert line.price_detail is not None
    assert _english(line) == english == price_note_text(line.price_detail)  # wording kept
    again = InvoiceLine.model_validate_json(line.model_dump_json())
    assert again == line  # the data reads back as it was written


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_note_is_rendered_from_its_data_in_each_language(language: str, kind: str) -> None:
    make, _, shown = CASES[kind]
    line = make()
    loc = Localizer(language)
    assert _shown(loc, line) == shown[language]
    # the same whatever the English says, or without it
    assert _shown(loc, _reworded(line)) == shown[language]
    if line.metric != "credit":
        assert _shown(loc, line.model_copy(update={"price_note": None})) == shown[language]


def _pdf_text(inv: Invoice) -> str:
    text = " ".join(page_texts(invoice_pdf(inv)))
    return " ".join(text.split())


def _reworded_invoice(inv: Invoice) -> Invoice:
    return inv.model_copy(
        update={
            section: [_reworded(line) for line in getattr(inv, section)]
            for section in ("lines", "commitment_lines", "adjustment_lines")
        }
    )


@pytest.mark.parametrize("language", [x for x in LANGUAGES if x != "en"])
def test_reworded_english_notes_leave_a_localized_invoice_unchanged(language: str) -> None:
    """The rating's English words changed (tiers, free lines, a credit): the invoice and
    the credit note in another language show the same, tier computation included."""
    inv = finance_invoice(language)
    note = credit_note(inv, "CN-7", date(2026, 11, 20), "goodwill", amount=Decimal(5))
    for doc in (inv, note):
        other = _reworded_invoice(doc)
        assert [_english(x) for x in other.all_lines()] != [_english(x) for x in doc.all_lines()]
        assert _pdf_text(other) == _pdf_text(doc)
        services = [x["service"] for x in json.loads(invoice_json(other))["adjustment_lines"]]
        assert services == [x["service"] for x in json.loads(invoice_json(doc))["adjustment_lines"]]
    loc = Localizer(language)
    tiers = next(x for x in inv.lines if x.metric == "sms.mt" and x.unit_price is None)
    assert " ".join(loc.line_note(tiers).split()) in _pdf_text(_reworded_invoice(inv))
    credit = loc.label("credit_line", number="EU-2026-000042", reason="goodwill")
    assert " ".join(credit.split()) in _pdf_text(_reworded_invoice(note))


def test_a_change_of_the_ratings_wording_changes_only_the_english_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = finance_invoice("fr")
    monkeypatch.setattr(rating, "price_note_text", lambda detail: f"<{detail.kind}>")
    after = finance_invoice("fr")
    noted = [x for x in after.all_lines() if x.price_detail is not None]
    assert noted
    assert all(x.price_note == f"<{x.price_detail.kind}>" for x in noted if x.price_detail)
    loc = Localizer("fr")
    assert [loc.line_note(x) for x in after.all_lines()] == [
        loc.line_note(x) for x in before.all_lines()
    ]
    assert _pdf_text(after) == _pdf_text(before)


def test_the_json_with_computations_is_deterministic_and_reads_back_byte_identical() -> None:
    a, b = finance_invoice("ko"), finance_invoice("ko")
    body = invoice_json(a)
    assert body == invoice_json(b)
    assert invoice_json(Invoice.model_validate_json(body)) == body
    doc = json.loads(body)
    tiers = next(x for x in doc["lines"] if x.get("price_detail", {}).get("kind") == "graduated")
    assert tiers["price_detail"] == {
        "kind": "graduated",
        "per": "units",
        "steps": [
            {"quantity": "1000", "unit_price": "0.045"},
            {"quantity": "234", "unit_price": "0.04"},
        ],
        "usage_lines": None,
    }
    assert "price_detail" not in next(
        x for x in doc["lines"] if x["metric"] == "sms.mt" and x["dims"] == {"country": "DE"}
    )
    rows = invoice_csv(a).decode()
    compact = json.dumps(tiers["price_detail"], sort_keys=True, separators=(",", ":"))
    assert compact.replace('"', '""') in rows  # the CSV cell: the same data, quoted


def test_a_document_written_before_price_detail_keeps_its_bytes_and_its_tier_notes() -> None:
    """An invoice stored without ``price_detail`` reads back to the same bytes, and its
    graduated tiers are still read from the English note for the other languages."""
    new = finance_invoice("fr")
    old = new.model_copy(
        update={
            section: [x.model_copy(update={"price_detail": None}) for x in getattr(new, section)]
            for section in ("lines", "commitment_lines", "adjustment_lines")
        }
    )
    body = canonical_json(old)
    assert b"price_detail" not in body
    assert canonical_json(Invoice.model_validate_json(body)) == body
    loc = Localizer("fr")
    tiers = next(x for x in new.lines if x.metric == "sms.mt" and x.unit_price is None)
    (legacy,) = [x for x in old.lines if x.key == tiers.key]
    assert loc.line_note(legacy) == loc.line_note(tiers) != ""
    assert _pdf_text(old) == _pdf_text(new)


def test_every_line_with_an_english_note_has_its_data() -> None:
    inv = rich_invoice()
    assert {x.kind for x in inv.all_lines()} >= {"usage", "fee", "commitment", "adjustment"}
    for line in inv.all_lines():
        assert (line.price_note is None) == (line.price_detail is None), line.metric
        if line.price_detail is not None:
            assert line.price_note == price_note_text(line.price_detail)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_line_its_columns_do_not_add_up_to_shows_its_computation_in_the_pdf(
    language: str,
) -> None:
    """A prorated line prints its unit price and billable quantity, whose product is not
    its amount: the PDF says why under the line's name; a line that adds up says nothing."""
    u = usage({("conversations.maa", ()): 6, ("conversations.maa.initial", ()): 3})
    rated = [line for line in rate(u, plan(**NAMED_USERS)).lines if line.kind == "usage"]
    inv = finance_invoice(language).model_copy(update={"lines": rated})
    lines = {line.metric: line for line in rated}
    prorated, full = lines["conversations.maa.initial"], lines["conversations.maa"]
    assert prorated.unit_price is not None
    assert prorated.billable * prorated.unit_price != prorated.amount
    assert full.unit_price is not None
    assert full.billable * full.unit_price == full.amount
    loc = Localizer(language)
    text = _pdf_text(inv)
    assert " ".join(loc.line_note(prorated).split()) in text
    assert " ".join(loc.line_note(full).split()) not in text
