"""The usage-event contract: valid events parse, invalid ones fail with the field named,
and facts are deterministic and pseudonymized."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from billing.domain.events import (
    ENVELOPES,
    PAYLOADS,
    TYPE_PREFIX,
    CallLeg,
    Disposition,
    MessageOutbound,
    parse_event,
    parse_event_obj,
)
from billing.domain.facts import (
    ENTITY_FIELDS,
    KEY_FIELDS,
    Fact,
    HmacPseudonymizer,
    event_key,
    identity,
    short_type,
    to_fact,
)
from billing.domain.periods import Period, to_ms
from tests.factories import at, raw

KEY = b"k" * 32
PHONE = "+33612345678"
EMAIL = "Jane.Doe@Example.com"

#: one valid payload per event type (the contract's single list is ``events.PAYLOADS``).
EXAMPLES: dict[str, dict[str, Any]] = {
    "message.outbound.v1": {
        "message_id": "m1",
        "channel": "sms",
        "status": "submitted",
        "end_user": PHONE,
        "parts": 3,
        "country": "FR",
        "network": "20801",
        "person_id": "p-42",
        "conversation_id": "t1",
        "signals": "passed",
    },
    "message.inbound.v1": {
        "message_id": "m2",
        "channel": "whatsapp",
        "end_user": PHONE,
        "bot_id": "b1",
        "bot_timeout_minutes": 30,
    },
    "bot.session_ended.v1": {"bot_id": "b1", "end_user": PHONE, "reason": "transferred"},
    "ussd.session.v1": {"session_id": "u1", "end_user": PHONE, "initiator": "account"},
    "lookup.v1": {
        "request_id": "r1",
        "kind": "email_validation",
        "status": "submitted",
        "end_user": EMAIL,
        "result": "UNKNOWN",
    },
    "call.leg.v1": {
        "call_id": "c1",
        "leg_id": "l1",
        "service": "click_to_call",
        "direction": "outbound",
        "disposition": "answered",
        "answered_seconds": "61.5",
        "end_user": PHONE,
        "amd": True,
    },
    "recording.started.v1": {"recording_id": "r1", "call_id": "c1"},
    "recording.stopped.v1": {"recording_id": "r1", "call_id": "c1"},
    "recording.stored.v1": {
        "recording_id": "r1",
        "size_bytes": 5_000_000_000,
        "duration_seconds": "300",
        "via_conversations": True,
    },
    "recording.deleted.v1": {"recording_id": "r1"},
    "number.provisioned.v1": {"number": "+33100000000", "number_type": "toll_free"},
    "number.released.v1": {"number": "+33100000000"},
    "named_user.provisioned.v1": {"user_id": "agent-1", "role": "supervisor"},
    "named_user.deprovisioned.v1": {"user_id": "agent-1"},
    "named_user.session_opened.v1": {"user_id": "agent-1", "session_id": "s1"},
    "named_user.session_closed.v1": {"user_id": "agent-1", "session_id": "s1"},
    "sim.activated.v1": {"sim_id": "sim-1"},
    "sim.status_changed.v1": {"sim_id": "sim-1", "status": "suspended"},
    "sim.data_usage.v1": {"sim_id": "sim-1", "bytes": 1_500_000, "country": "DE"},
}


def envelope(type_name: str, data: dict[str, Any], **attrs: Any) -> dict[str, Any]:
    """A CloudEvent dict for ``type_name`` (with version) and ``data``."""
    doc = raw(type_name.rsplit(".", 1)[0], at(5, 12), **attrs)
    doc["data"] = data
    return doc


def dumps(fact: Fact) -> str:
    """The stored form as JSON (decimals as strings, as the store's encoder does)."""
    return json.dumps(fact.to_item(), sort_keys=True, default=str)


def errors(doc: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        parse_event_obj(doc)
    return info.value.errors()  # type: ignore[return-value]


def test_every_event_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(PAYLOADS)
    assert set(ENVELOPES) == {TYPE_PREFIX + name for name in PAYLOADS}


@pytest.mark.parametrize("type_name", sorted(PAYLOADS))
def test_every_event_type_parses_from_a_valid_example(type_name: str) -> None:
    doc = envelope(type_name, EXAMPLES[type_name])
    event = parse_event(json.dumps(doc))
    assert event.type == TYPE_PREFIX + type_name  # type: ignore[attr-defined]
    assert isinstance(event.data, PAYLOADS[type_name])  # type: ignore[attr-defined]
    assert event.subject == "acme"
    assert event == parse_event_obj(doc)


@pytest.mark.parametrize("type_name", sorted(PAYLOADS))
def test_every_event_type_has_a_fact_shape(type_name: str) -> None:
    kind = short_type(TYPE_PREFIX + type_name)
    assert (kind in ENTITY_FIELDS) != (kind in KEY_FIELDS), kind
    fact = to_fact(parse_event_obj(envelope(type_name, EXAMPLES[type_name])), identity)
    assert fact.type == kind
    assert fact.key
    assert (fact.entity is not None) == (kind in ENTITY_FIELDS)


def test_extension_attributes_are_accepted_and_ignored() -> None:
    doc = envelope("lookup.v1", EXAMPLES["lookup.v1"], account="acme-2")
    doc["traceparent"] = "00-abc-def-01"
    event = parse_event_obj(doc)
    assert event.subject == "acme-2"
    assert not hasattr(event, "traceparent")


# --- precise errors ----------------------------------------------------------------------


def test_unknown_type_is_rejected_naming_the_type_discriminator() -> None:
    doc = envelope("message.outbound.v1", EXAMPLES["message.outbound.v1"])
    doc["type"] = TYPE_PREFIX + "message.carrier_pigeon.v1"
    (err,) = errors(doc)
    assert err["type"] == "union_tag_invalid"
    assert "'type'" in err["ctx"]["discriminator"]
    assert err["ctx"]["tag"] == TYPE_PREFIX + "message.carrier_pigeon.v1"


def test_unknown_major_version_is_an_unknown_type() -> None:
    doc = envelope("message.outbound.v1", EXAMPLES["message.outbound.v1"])
    doc["type"] = TYPE_PREFIX + "message.outbound.v2"
    (err,) = errors(doc)
    assert err["type"] == "union_tag_invalid"


@pytest.mark.parametrize("missing", ["message_id", "channel", "status", "end_user"])
def test_missing_payload_field_is_named(missing: str) -> None:
    data = dict(EXAMPLES["message.outbound.v1"])
    del data[missing]
    (err,) = errors(envelope("message.outbound.v1", data))
    assert err["type"] == "missing"
    assert err["loc"] == (TYPE_PREFIX + "message.outbound.v1", "data", missing)


@pytest.mark.parametrize("missing", ["id", "source", "subject", "time", "specversion", "data"])
def test_missing_envelope_attribute_is_named(missing: str) -> None:
    doc = envelope("lookup.v1", EXAMPLES["lookup.v1"])
    del doc[missing]
    (err,) = errors(doc)
    assert err["type"] == "missing"
    assert err["loc"] == (TYPE_PREFIX + "lookup.v1", missing)


@pytest.mark.parametrize(
    ("type_name", "field", "value", "error"),
    [
        pytest.param("message.outbound.v1", "parts", "three", "int_type", id="parts-text"),
        pytest.param("message.outbound.v1", "parts", 0, "greater_than_equal", id="parts-zero"),
        pytest.param("message.outbound.v1", "end_user", 33612345678, "string_type", id="user-int"),
        pytest.param("message.outbound.v1", "status", "sent", "enum", id="status-unknown"),
        pytest.param("message.outbound.v1", "channel", "fax", "enum", id="channel-unknown"),
        pytest.param("call.leg.v1", "answered_seconds", "long", "value_error", id="secs-text"),
        pytest.param("call.leg.v1", "amd", "maybe", "bool_type", id="amd-not-bool"),
        pytest.param("sim.data_usage.v1", "bytes", -1, "greater_than_equal", id="bytes-negative"),
        pytest.param("recording.stored.v1", "size_bytes", 1.5, "int_type", id="size-float"),
        pytest.param(
            "message.inbound.v1",
            "bot_timeout_minutes",
            1441,
            "less_than_equal",
            id="bot-timeout-over-24h",
        ),
    ],
)
def test_wrong_type_is_named(type_name: str, field: str, value: Any, error: str) -> None:
    data = {**EXAMPLES[type_name], field: value}
    (err,) = errors(envelope(type_name, data))
    assert err["type"] == error
    assert err["loc"] == (TYPE_PREFIX + type_name, "data", field)


@pytest.mark.parametrize(
    "when",
    ["2026-10-05T12:00:00", "2026-10-05 12:00:00", "2026-10-05"],
    ids=["naive-iso", "naive-space", "date-only"],
)
def test_time_without_a_zone_is_rejected(when: str) -> None:
    doc = envelope("lookup.v1", EXAMPLES["lookup.v1"])
    doc["time"] = when
    (err,) = errors(doc)
    assert err["loc"] == (TYPE_PREFIX + "lookup.v1", "time")


def test_time_with_an_offset_is_accepted_and_decides_the_period_in_utc() -> None:
    doc = envelope("lookup.v1", EXAMPLES["lookup.v1"])
    doc["time"] = "2026-11-01T00:30:00+01:00"  # 2026-10-31T23:30Z
    event = parse_event_obj(doc)
    fact = to_fact(event, identity)
    assert fact.at == to_ms(datetime(2026, 10, 31, 23, 30, tzinfo=UTC))
    assert fact.period == Period(2026, 10)


def test_negative_duration_is_rejected() -> None:
    data = {**EXAMPLES["call.leg.v1"], "answered_seconds": "-1"}
    (err,) = errors(envelope("call.leg.v1", data))
    assert err["type"] == "greater_than_equal"
    assert err["loc"] == (TYPE_PREFIX + "call.leg.v1", "data", "answered_seconds")


def test_negative_recording_duration_is_rejected() -> None:
    data = {**EXAMPLES["recording.stored.v1"], "duration_seconds": "-0.001"}
    (err,) = errors(envelope("recording.stored.v1", data))
    assert err["loc"] == (TYPE_PREFIX + "recording.stored.v1", "data", "duration_seconds")


@pytest.mark.parametrize(
    "disposition", [d.value for d in Disposition if d is not Disposition.ANSWERED]
)
def test_answered_seconds_on_an_unanswered_call_is_rejected(disposition: str) -> None:
    data = {**EXAMPLES["call.leg.v1"], "disposition": disposition, "answered_seconds": "12"}
    (err,) = errors(envelope("call.leg.v1", data))
    # a cross-field check: located on the payload, naming the field in the message
    assert err["type"] == "value_error"
    assert err["loc"] == (TYPE_PREFIX + "call.leg.v1", "data")
    assert "answered_seconds" in err["msg"]


@pytest.mark.parametrize(
    "disposition", [d.value for d in Disposition if d is not Disposition.ANSWERED]
)
def test_unanswered_call_with_zero_seconds_is_valid(disposition: str) -> None:
    data = {**EXAMPLES["call.leg.v1"], "disposition": disposition, "answered_seconds": "0"}
    event = parse_event_obj(envelope("call.leg.v1", data))
    assert isinstance(event.data, CallLeg)  # type: ignore[attr-defined]


@pytest.mark.parametrize("type_name", sorted(PAYLOADS))
def test_unknown_payload_field_is_rejected_and_named(type_name: str) -> None:
    data = {**EXAMPLES[type_name], "colour": "blue"}
    (err,) = errors(envelope(type_name, data))
    assert err["type"] == "extra_forbidden"
    assert err["loc"] == (TYPE_PREFIX + type_name, "data", "colour")


@pytest.mark.parametrize("country", ["fr", "FRA", "F", "F1", ""])
def test_bad_country_code_is_rejected(country: str) -> None:
    data = {**EXAMPLES["message.outbound.v1"], "country": country}
    (err,) = errors(envelope("message.outbound.v1", data))
    assert err["type"] == "string_pattern_mismatch"
    assert err["loc"] == (TYPE_PREFIX + "message.outbound.v1", "data", "country")


@pytest.mark.parametrize("subject", ["", "acme corp", "acme/eu", "a" * 65])
def test_bad_account_is_rejected(subject: str) -> None:
    doc = envelope("lookup.v1", EXAMPLES["lookup.v1"])
    doc["subject"] = subject
    (err,) = errors(doc)
    assert err["loc"] == (TYPE_PREFIX + "lookup.v1", "subject")


def test_payloads_are_immutable() -> None:
    event = parse_event_obj(envelope("message.outbound.v1", EXAMPLES["message.outbound.v1"]))
    payload = event.data  # type: ignore[attr-defined]
    assert isinstance(payload, MessageOutbound)
    with pytest.raises(ValidationError):
        payload.parts = 1  # type: ignore[misc]


# --- facts -----------------------------------------------------------------------------


def fact_of(type_name: str, data: dict[str, Any] | None = None, **attrs: Any) -> Fact:
    doc = envelope(type_name, EXAMPLES[type_name] if data is None else data, **attrs)
    return to_fact(parse_event_obj(doc), HmacPseudonymizer(KEY))


@pytest.mark.parametrize("type_name", sorted(PAYLOADS))
def test_to_fact_is_deterministic(type_name: str) -> None:
    doc = envelope(type_name, EXAMPLES[type_name])
    first = to_fact(parse_event_obj(doc), HmacPseudonymizer(KEY))
    again = to_fact(parse_event(json.dumps(doc)), HmacPseudonymizer(KEY))
    assert first == again
    assert first.to_item() == again.to_item()
    assert dumps(first) == dumps(again)


@pytest.mark.parametrize("type_name", sorted(PAYLOADS))
def test_fact_round_trips_through_its_stored_form(type_name: str) -> None:
    fact = fact_of(type_name)
    assert Fact.from_item(fact.to_item()) == fact


@pytest.mark.parametrize(
    ("type_name", "identifier"),
    [
        pytest.param("message.outbound.v1", PHONE, id="outbound-phone"),
        pytest.param("message.inbound.v1", PHONE, id="inbound-phone"),
        pytest.param("bot.session_ended.v1", PHONE, id="bot-phone"),
        pytest.param("ussd.session.v1", PHONE, id="ussd-phone"),
        pytest.param("call.leg.v1", PHONE, id="call-phone"),
        pytest.param("lookup.v1", EMAIL, id="validation-email"),
    ],
)
def test_end_user_never_in_clear_in_a_fact(type_name: str, identifier: str) -> None:
    fact = fact_of(type_name)
    stored = dumps(fact)
    for form in (identifier, identifier.lower(), identifier.lstrip("+"), identifier[-8:]):
        assert form not in stored
    assert fact.key == HmacPseudonymizer(KEY)(identifier)


def test_person_id_is_pseudonymized_too() -> None:
    fact = fact_of("message.outbound.v1")
    assert "p-42" not in dumps(fact)
    assert fact.attrs["person_id"] == HmacPseudonymizer(KEY)("p-42")


def test_email_pseudonym_ignores_case_and_surrounding_spaces() -> None:
    pseudonymize = HmacPseudonymizer(KEY)
    assert pseudonymize(EMAIL) == pseudonymize(" jane.doe@example.com ")
    assert pseudonymize(EMAIL) != pseudonymize("john.doe@example.com")


def test_pseudonym_depends_on_the_key() -> None:
    assert HmacPseudonymizer(KEY)(PHONE) != HmacPseudonymizer(b"x" * 32)(PHONE)


def test_short_pseudonymization_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        HmacPseudonymizer(b"short")


def test_event_key_depends_on_source_and_id() -> None:
    base = event_key("billing-sms", "e1")
    assert base == event_key("billing-sms", "e1")
    assert base != event_key("billing-sms", "e2")
    assert base != event_key("billing-voice", "e1")
    # no ambiguity from concatenation
    assert event_key("ab", "c") != event_key("a", "bc")


def test_fact_id_is_the_event_key_and_ignores_the_payload() -> None:
    one = fact_of("lookup.v1", event_id="e-1", source="s-1")
    other = fact_of(
        "lookup.v1", {**EXAMPLES["lookup.v1"], "request_id": "r9"}, event_id="e-1", source="s-1"
    )
    assert one.id == other.id == event_key("s-1", "e-1")
    assert fact_of("lookup.v1", event_id="e-1", source="s-2").id != one.id
    assert fact_of("lookup.v1", event_id="e-2", source="s-1").id != one.id


def test_fact_keeps_only_what_billing_needs() -> None:
    fact = fact_of("message.outbound.v1", {**EXAMPLES["message.outbound.v1"], "parts": 1})
    assert "parts" not in fact.attrs  # the default is implied
    assert fact.type == "message.outbound"
    assert fact.at == to_ms(at(5, 12))
    assert fact.entity is None
    assert fact.attrs["status"] == "submitted"  # enums are plain strings
    assert fact.attrs["signals"] == "passed"


def test_lifecycle_facts_carry_their_entity_as_key() -> None:
    assert fact_of("recording.stopped.v1").entity == "rec#r1"
    assert fact_of("number.released.v1").key == "num#+33100000000"
    assert fact_of("named_user.provisioned.v1").entity == "user#agent-1"
    assert fact_of("sim.status_changed.v1").entity == "sim#sim-1"


def test_named_user_sessions_are_keyed_by_the_user() -> None:
    fact = fact_of("named_user.session_opened.v1")
    assert fact.entity is None
    assert fact.key == "agent-1"


def test_millisecond_precision_of_the_event_time() -> None:
    when = datetime(2026, 10, 5, 12, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=2)))
    doc = envelope("lookup.v1", EXAMPLES["lookup.v1"])
    doc["time"] = when.isoformat()
    fact = to_fact(parse_event_obj(doc), identity)
    assert fact.at == to_ms(when.replace(microsecond=999_000))
