"""The contract's bounds, strict types, duplicate keys, account ids and time window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from billing.adapters.store import adjustment_marker, late_change
from billing.domain.events import (
    MAX_PARTS,
    MAX_RECORDING_BYTES,
    MAX_SECONDS,
    MAX_SIM_BYTES,
    parse_event,
    validate_account_id,
)
from billing.domain.facts import Fact
from billing.domain.lateness import TimePolicy, adjustment_period, affected_periods
from billing.domain.periods import Period

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def example(type_name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SCHEMAS / "examples" / f"{type_name}.json").read_text())
    return doc


def schema(type_name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SCHEMAS / "events" / f"{type_name}.schema.json").read_text())
    return doc


def with_data(type_name: str, **data: Any) -> dict[str, Any]:
    doc = example(type_name)
    doc["data"] = {**doc["data"], **data}
    return doc


def accepted(doc: dict[str, Any], type_name: str) -> bool:
    """Accepted by the models; the JSON Schema must agree."""
    try:
        parse_event(json.dumps(doc))
        ok = True
    except ValidationError:
        ok = False
    valid = jsonschema.Draft202012Validator(schema(type_name)).is_valid(doc)
    assert valid == ok, f"JSON Schema and models disagree on {doc['data']}"
    return ok


# --- bounds: each number at its maximum passes, one more fails -----------------------------

BOUNDS = [
    ("message.outbound.v1", "parts", MAX_PARTS),
    ("message.inbound.v1", "parts", MAX_PARTS),
    ("message.inbound.v1", "bot_timeout_minutes", 1440),
    ("call.leg.v1", "answered_seconds", MAX_SECONDS),
    ("recording.stored.v1", "duration_seconds", MAX_SECONDS),
    ("recording.stored.v1", "size_bytes", MAX_RECORDING_BYTES),
    ("sim.data_usage.v1", "bytes", MAX_SIM_BYTES),
]


@pytest.mark.parametrize(("type_name", "field", "maximum"), BOUNDS)
def test_each_number_at_its_maximum_passes_and_one_more_fails(
    type_name: str, field: str, maximum: int
) -> None:
    assert accepted(with_data(type_name, **{field: maximum}), type_name)
    assert not accepted(with_data(type_name, **{field: maximum + 1}), type_name)


def test_the_documented_maxima() -> None:
    assert (MAX_SECONDS, MAX_PARTS) == (86_400, 255)
    assert MAX_RECORDING_BYTES == MAX_SIM_BYTES == 10**12


def test_a_number_beyond_what_storage_holds_is_refused() -> None:
    assert not accepted(with_data("sim.data_usage.v1", bytes=10**40), "sim.data_usage.v1")


# --- strict types --------------------------------------------------------------------------

STRICT = [
    ("message.outbound.v1", "parts", "2", False),
    ("message.outbound.v1", "parts", True, False),
    ("message.outbound.v1", "parts", 2, True),
    ("sim.data_usage.v1", "bytes", "1000", False),
    ("sim.data_usage.v1", "bytes", False, False),
    ("recording.stored.v1", "size_bytes", "10", False),
    ("call.leg.v1", "amd", "true", False),
    ("call.leg.v1", "amd", 1, False),
    ("call.leg.v1", "amd", True, True),
    ("call.leg.v1", "answered_seconds", True, False),
    ("call.leg.v1", "answered_seconds", "1e3", False),
    ("call.leg.v1", "answered_seconds", "NaN", False),
    ("call.leg.v1", "answered_seconds", " 12", False),
    ("call.leg.v1", "answered_seconds", 93.4, True),
    ("call.leg.v1", "answered_seconds", 93, True),
    ("call.leg.v1", "answered_seconds", "93.4", True),
    ("recording.stored.v1", "via_conversations", "false", False),
]


@pytest.mark.parametrize(("type_name", "field", "value", "ok"), STRICT)
def test_strict_types(type_name: str, field: str, value: Any, ok: bool) -> None:
    assert accepted(with_data(type_name, **{field: value}), type_name) is ok


# --- duplicate keys ------------------------------------------------------------------------

GOOD = json.dumps(example("message.outbound.v1"))


@pytest.mark.parametrize(
    "body",
    [
        GOOD[:-1] + ', "subject": "other"}',  # top level
        GOOD.replace('"parts": ', '"parts": 1, "parts": ', 1),  # in data
        GOOD.replace('"data": {', '"data": {"country": "FR", ', 1),  # with a different value
    ],
    ids=["envelope", "data-same-name", "data-country"],
)
def test_duplicate_keys_are_refused(body: str) -> None:
    assert body != GOOD
    with pytest.raises(ValidationError) as err:
        parse_event(body)
    assert err.value.errors()[0]["type"] == "duplicate_key"


def test_without_duplicates_the_example_passes() -> None:
    parse_event(GOOD)


def test_deep_nesting_raises_no_recursion_error_past_the_parser() -> None:
    body = '{"a": ' + "[" * 20_000 + "]" * 20_000 + "}"
    with pytest.raises((ValidationError, RecursionError)):
        parse_event(body)


# --- account ids ---------------------------------------------------------------------------

ACCOUNTS = [
    ("acme", True),
    ("acme-eu_2.prod", True),
    ("0acme", True),
    ("a" * 64, True),
    ("a" * 65, False),
    ("", False),
    (".", False),
    ("..", False),
    ("a..b", False),
    (".acme", False),
    ("-acme", False),
    ("_acme", False),
    ("acme#1", False),
    ("acme/1", False),
    ("ac me", False),
    ("acmé", False),
]


@pytest.mark.parametrize(("account", "ok"), ACCOUNTS)
def test_account_id_pattern(account: str, ok: bool) -> None:
    if ok:
        assert validate_account_id(account) == account
    else:
        with pytest.raises(ValueError, match="account id"):
            validate_account_id(account)
    doc = example("message.outbound.v1")
    doc["subject"] = account
    assert accepted(doc, "message.outbound.v1") is ok


# --- time window and lateness --------------------------------------------------------------

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
POLICY = TimePolicy()


def refusal(when: datetime, frozen: frozenset[str] = frozenset()) -> str | None:
    result = POLICY.check(when, NOW, frozen)
    return result.reason if result else None


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (NOW, None),
        (NOW + timedelta(seconds=300), None),
        (NOW + timedelta(seconds=301), "out_of_window"),
        (datetime(2099, 1, 1, tzinfo=UTC), "out_of_window"),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), "out_of_window"),
        (datetime.fromisoformat("0001-01-01T00:00:00+14:00"), "out_of_window"),
        (datetime(1970, 1, 1, tzinfo=UTC), "out_of_window"),
        (datetime(1969, 12, 31, tzinfo=UTC), "out_of_window"),
        (datetime(2019, 12, 31, 23, 59, 59, tzinfo=UTC), "out_of_window"),
        (datetime(2020, 1, 1, tzinfo=UTC), None),
        (datetime.fromisoformat("2020-01-01T00:30:00+01:00"), "out_of_window"),
    ],
)
def test_time_window(when: datetime, reason: str | None) -> None:
    assert refusal(when) == reason


def months(first: str, last: str) -> frozenset[str]:
    out, p = set(), Period.parse(first)
    while str(p) <= last:
        out.add(str(p))
        p = p.next()
    return frozenset(out)


@pytest.mark.parametrize(
    ("period", "reason"),
    [
        ("2026-10", None),  # adjusted by 2026-11: 1 period later
        ("2026-08", None),  # adjusted by 2026-11: exactly 3 periods later
        ("2026-07", "too_late"),  # 4 periods later
        ("2025-09", "too_late"),  # 14 months back
    ],
)
def test_lateness_is_counted_in_periods_to_the_adjusting_one(
    period: str, reason: str | None
) -> None:
    frozen = months("2025-01", "2026-10")
    assert refusal(Period.parse(period).start + timedelta(days=3), frozen) == reason


def test_an_event_older_than_the_first_close_is_too_late() -> None:
    frozen = months("2026-01", "2026-10")
    assert refusal(datetime(2025, 9, 15, tzinfo=UTC), frozen) == "too_late"
    assert refusal(datetime(2026, 11, 15, tzinfo=UTC), frozen) is None


def test_lateness_does_not_depend_on_the_wall_clock() -> None:
    frozen = months("2026-09", "2026-10")
    later = datetime(2036, 1, 1, tzinfo=UTC)
    assert POLICY.check(datetime(2026, 10, 14, tzinfo=UTC), later, frozen) is None
    assert POLICY.check(datetime(2026, 10, 14, tzinfo=UTC), later, frozenset()) is None


@pytest.mark.parametrize("bad", [-1, 13])
def test_max_late_periods_is_bounded_by_the_stored_history(bad: int) -> None:
    with pytest.raises(ValueError, match="max_late_periods"):
        TimePolicy(max_late_periods=bad)


@pytest.mark.parametrize("account", ["..", ".", "a..b", "acme/eu", "acme#1"])
def test_plans_put_refuses_an_account_id_that_is_not_one(account: str) -> None:
    from typer.testing import CliRunner

    from billing.cli.main import app

    plan = Path(__file__).resolve().parents[2] / "examples" / "plans" / "retail-eu.yaml"
    result = CliRunner().invoke(app, ["plans", "put", str(plan), "--account", account])
    assert result.exit_code == 2
    assert "account id" in result.output


def _fact(when: datetime, entity: str | None = None) -> Fact:
    return Fact(
        id="f1", type="t", at=int(when.timestamp() * 1000), key="k", attrs={}, entity=entity
    )


@pytest.mark.parametrize(
    ("when", "entity", "frozen", "adj", "priors"),
    [
        # a fact of a frozen period: the next open period adjusts that one
        (datetime(2026, 10, 14, tzinfo=UTC), None, ("2026-10",), "2026-11", ["2026-10"]),
        # several frozen periods in a row: the first open one after them adjusts
        (
            datetime(2026, 9, 14, tzinfo=UTC),
            None,
            ("2026-09", "2026-10"),
            "2026-11",
            ["2026-09"],
        ),
        # in the last 24 h of September: October's look-back saw it too
        (
            datetime(2026, 9, 30, 12, tzinfo=UTC),
            None,
            ("2026-09", "2026-10"),
            "2026-11",
            ["2026-09", "2026-10"],
        ),
        # ... but only if October is frozen
        (datetime(2026, 9, 30, 12, tzinfo=UTC), None, ("2026-09",), "2026-10", ["2026-09"]),
        # a lifecycle fact changes every frozen period from its own on
        (
            datetime(2026, 9, 2, tzinfo=UTC),
            "seat:u1",
            ("2026-08", "2026-09", "2026-10"),
            "2026-11",
            ["2026-09", "2026-10"],
        ),
    ],
)
def test_where_a_late_change_is_billed(
    when: datetime, entity: str | None, frozen: tuple[str, ...], adj: str, priors: list[str]
) -> None:
    fact = _fact(when, entity)
    assert adjustment_period(fact.period, frozen) == adj
    assert affected_periods(fact, frozen, lookback_hours=24) == priors
    change = late_change("acme", fact, frozen, lookback_hours=24)
    assert change.adj == adj
    assert change.markers == [adjustment_marker(adj, "acme", p) for p in priors]


def test_the_lateness_bound_counts_to_the_adjusting_period() -> None:
    """check_late and the adjusting period agree: the bound is the distance to it."""
    frozen = months("2026-07", "2026-10")
    for label in ("2026-07", "2026-08", "2026-09", "2026-10"):
        period = Period.parse(label)
        distance = (2026 - period.year) * 12 + 11 - period.month
        assert adjustment_period(period, frozen) == "2026-11"
        assert (POLICY.check_late(period, frozen) is None) == (distance <= 3)
