"""The reference-mix generator: valid events, planned defects, shares and determinism."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from billing.domain.engine import monthly_usage
from billing.domain.events import parse_event
from billing.domain.facts import identity, to_fact
from billing.domain.periods import Period
from billing.gen import (
    SHARES,
    Line,
    account_shares,
    category_of,
    generate,
    generate_for_account,
    generate_lines,
    write_jsonl,
)
from billing.gen.malformed import KINDS, corrupt
from billing.gen.world import Clock

SIZE = 20_000
PERIOD = Period.parse("2026-10")


@pytest.fixture(scope="module")
def lines() -> list[Line]:
    return list(generate_lines(1, SIZE))


@pytest.fixture(scope="module")
def events(lines: list[Line]) -> list[dict[str, Any]]:
    """Every well-formed line (originals and duplicates), decoded."""
    return [json.loads(x.text) for x in lines if x.kind != "malformed"]


@pytest.fixture(scope="module")
def originals(lines: list[Line]) -> list[dict[str, Any]]:
    return [json.loads(x.text) for x in lines if x.kind == "event"]


def _ms(event: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp() * 1000)


def _share(part: int, whole: int) -> float:
    return part / whole


# --- contract --------------------------------------------------------------------------------


def test_size_and_planned_defects(lines: list[Line]) -> None:
    kinds = Counter(x.kind for x in lines)
    assert len(lines) == SIZE
    assert kinds["malformed"] == round(SIZE * 0.001)
    assert kinds["duplicate"] == round(SIZE * 0.02)


def test_every_well_formed_event_validates(lines: list[Line]) -> None:
    for line in lines:
        if line.kind != "malformed":
            event = parse_event(line.text)
            assert event.subject == line.account


def test_every_malformed_line_is_rejected(lines: list[Line]) -> None:
    malformed = [x for x in lines if x.kind == "malformed"]
    assert 0.0005 <= len(malformed) / len(lines) <= 0.002
    for line in malformed:
        with pytest.raises(ValidationError):
            parse_event(line.text)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_malformed_line_is_rejected(lines: list[Line], kind: str) -> None:
    rng = random.Random(0)
    for line in lines[:300]:  # every event type of the mix, broken this way
        if line.kind == "malformed":
            continue
        event = json.loads(line.text)
        got, text = corrupt(rng, event, _ms(event), Clock(PERIOD), 1, kind)
        assert got == kind
        with pytest.raises(ValidationError):
            parse_event(text)


def test_generation_is_deterministic() -> None:
    first = list(generate(7, 3_000))
    assert first == list(generate(7, 3_000))
    assert first != list(generate(8, 3_000))


def test_one_account_is_its_part_of_the_full_stream() -> None:
    full = [x.text for x in generate_lines(3, 5_000) if x.account == "acct-002"]
    assert list(generate_for_account(3, 5_000, "acct-002")) == full
    with pytest.raises(ValueError, match="unknown account"):
        list(generate_for_account(3, 5_000, "acct-999"))


def test_write_jsonl(tmp_path: Any) -> None:
    path = tmp_path / "mix.jsonl"
    assert write_jsonl(path, 2, 1_000) == 1_000
    assert path.read_text().splitlines() == list(generate(2, 1_000))


def test_event_ids_are_unique_per_source_and_duplicates_are_exact_copies(
    lines: list[Line],
) -> None:
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    for position, line in enumerate(lines):
        if line.kind == "malformed":
            continue
        event = json.loads(line.text)
        key = (event["source"], event["id"])
        if line.kind == "duplicate":
            assert key in seen, "a duplicate follows its original"
            _, text = seen[key]
            assert text == line.text
        else:
            assert key not in seen, f"id reused within a source: {key}"
            seen[key] = (position, line.text)
    # ids overlap across sources: uniqueness is per source only
    assert len({i for _, i in seen}) < len(seen)


def test_duplicates_arrive_within_a_minute_of_their_original(lines: list[Line]) -> None:
    # arrival is stream order; times of lines arriving between the two copies stay close
    first: dict[str, int] = {}
    for position, line in enumerate(lines):
        if line.kind == "event":
            first[line.text] = position
        elif line.kind == "duplicate":
            gap = position - first[line.text]
            assert gap >= 1
            assert gap < 200  # about 2.3 lines per minute in a 20k-line month


def test_about_five_percent_arrive_out_of_order(events: list[dict[str, Any]]) -> None:
    latest = 0
    behind = 0
    for event in events:
        t = _ms(event)
        if t < latest:
            assert latest - t <= 3_600_000 + 60_000
            behind += 1
        latest = max(latest, t)
    assert 0.03 <= _share(behind, len(events)) <= 0.08


def test_times_are_in_the_month_with_a_daily_cycle(events: list[dict[str, Any]]) -> None:
    hours: Counter[int] = Counter()
    for event in events:
        t = _ms(event)
        assert PERIOD.start_ms <= t < PERIOD.end_ms
        hours[(t // 3_600_000) % 24] += 1
    afternoon = sum(hours[h] for h in range(13, 18))
    night = sum(hours[h] for h in range(1, 6))
    assert afternoon > 5 * night


def test_some_times_have_a_non_utc_offset(events: list[dict[str, Any]]) -> None:
    offsets = [e for e in events if not e["time"].endswith("Z")]
    assert 0.01 < _share(len(offsets), len(events)) < 0.06


# --- shares ----------------------------------------------------------------------------------


def test_shares_by_service(events: list[dict[str, Any]]) -> None:
    assert sum(SHARES.values()) == pytest.approx(1.0)
    counts = Counter(category_of(e["source"]) for e in events)
    for category, share in SHARES.items():
        got = _share(counts[category], len(events))
        assert got == pytest.approx(share, abs=max(0.002, share * 0.05)), category


def test_account_sizes_are_zipf_like(events: list[dict[str, Any]]) -> None:
    counts = Counter(e["subject"] for e in events)
    assert len(counts) == 50
    ranked = [n for _, n in counts.most_common()]
    assert _share(counts["acct-001"], len(events)) == pytest.approx(0.40, abs=0.01)
    assert _share(counts["acct-002"], len(events)) == pytest.approx(0.15, abs=0.01)
    assert _share(counts["acct-003"], len(events)) == pytest.approx(0.08, abs=0.01)
    assert ranked[3] < ranked[2]
    assert account_shares(50)[3:] == sorted(account_shares(50)[3:], reverse=True)
    assert sum(account_shares(50)) == pytest.approx(1.0)


def _person(identifier: str) -> int | None:
    phone = re.fullmatch(r"\+\d+7\d{3}(\d{7})", identifier)
    if phone:
        return int(phone.group(1))
    mail = re.fullmatch(r"user(\d{7})\.a\d{3}@.*", identifier)
    return int(mail.group(1)) if mail else None


def test_about_one_end_user_per_five_events_reused_across_channels(
    originals: list[dict[str, Any]],
) -> None:
    mine = [e for e in originals if e["subject"] == "acct-001"]
    people: set[int] = set()
    by_channel: dict[str, set[int]] = {}
    for e in mine:
        person = _person(str(e["data"].get("end_user", "")))
        if person is not None:
            people.add(person)
            by_channel.setdefault(e["data"].get("channel", e["type"]), set()).add(person)
    assert 0.15 <= len(people) / len(mine) <= 0.21
    sms, email, whatsapp = by_channel["sms"], by_channel["email"], by_channel["whatsapp"]
    assert len(sms & email) > 0.3 * len(email)
    assert len(sms & whatsapp) > 0.3 * len(whatsapp)


def _messages(originals: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    return [e for e in originals if e["source"] == source]


def test_sms(originals: list[dict[str, Any]]) -> None:
    sms = _messages(originals, "platform/sms")
    mo = [e for e in sms if e["type"].endswith("inbound.v1")]
    mt = [e for e in sms if e["type"].endswith("outbound.v1")]
    status = Counter(e["data"]["status"] for e in mt)
    submitted = [e for e in mt if e["data"]["status"] == "submitted"]
    messages = status["submitted"] + status["rejected"]
    assert _share(len(mo), len(sms)) == pytest.approx(0.05, abs=0.01)
    assert _share(status["rejected"], messages) == pytest.approx(0.10, abs=0.02)
    reports = status["delivered"] + status["undelivered"]
    assert _share(reports, status["submitted"]) == pytest.approx(0.90, abs=0.02)
    multipart = [e for e in submitted if e["data"].get("parts", 1) > 1]
    assert _share(len(multipart), len(submitted)) == pytest.approx(0.20, abs=0.02)
    assert {e["data"]["parts"] for e in multipart} == {2, 3, 4}
    assert len({e["data"]["country"] for e in sms}) == 30
    # a delivery report carries its submit's message id
    submits = {e["data"]["message_id"] for e in submitted}
    assert all(
        e["data"]["message_id"] in submits
        for e in mt
        if e["data"]["status"] in ("delivered", "undelivered")
    )


def test_whatsapp(originals: list[dict[str, Any]]) -> None:
    wa = _messages(originals, "platform/whatsapp")
    kinds = Counter(e["data"].get("kind", "inbound") for e in wa)
    assert _share(kinds["inbound"], len(wa)) == pytest.approx(0.30, abs=0.03)
    assert _share(kinds["free_form"], len(wa)) == pytest.approx(0.40, abs=0.03)
    assert _share(kinds["template"], len(wa)) == pytest.approx(0.30, abs=0.03)
    assert all("category" in e["data"] for e in wa if e["data"].get("kind") == "template")


def test_email_bounces_then_suppression(originals: list[dict[str, Any]]) -> None:
    email = _messages(originals, "platform/email")
    bounced = {e["data"]["end_user"] for e in email if e["data"]["status"] == "bounced"}
    suppressed = [e for e in email if e["data"]["status"] == "suppressed"]
    assert bounced
    assert suppressed
    assert {e["data"]["end_user"] for e in suppressed} <= bounced
    sends = [e for e in email if e["data"]["status"] != "bounced"]
    assert _share(len(bounced), len(sends)) == pytest.approx(0.01, abs=0.005)


def test_voice(originals: list[dict[str, Any]]) -> None:
    legs = [e["data"] for e in originals if e["type"] == "cpaas.usage.call.leg.v1"]
    answered = [leg for leg in legs if leg["disposition"] == "answered"]
    assert _share(len(answered), len(legs)) == pytest.approx(0.70, abs=0.03)
    durations = sorted(float(leg["answered_seconds"]) for leg in answered)
    assert 70 <= durations[len(durations) // 2] <= 110
    calls: dict[str, list[dict[str, Any]]] = {}
    for leg in legs:
        calls.setdefault(leg["call_id"], []).append(leg)
    for call in calls.values():
        expected = 2 if call[0]["service"] in ("click_to_call", "number_masking", "forward") else 1
        # the last leg of a call may end after the month (or after an account's budget)
        assert 1 <= len(call) <= expected
    two_legs = [c for c in calls.values() if c[0]["service"] == "click_to_call"]
    assert sum(len(c) == 2 for c in two_legs) > 0.95 * len(two_legs)
    services = {"webrtc", "message", "ivr", "click_to_call", "number_masking", "sip_trunk"}
    assert {leg["service"] for leg in legs} == services | {"forward", "missed_call"}
    outbound = [leg for leg in legs if leg["direction"] == "outbound"]
    assert any(leg.get("amd") for leg in outbound)
    assert any(leg.get("byoc") for leg in legs)


def test_viber(originals: list[dict[str, Any]]) -> None:
    service = [e["data"] for e in _messages(originals, "platform/viber")]
    reports = Counter(
        d["status"]
        for d in service
        if d["channel"] == "viber" and d.get("status") in ("delivered", "undelivered")
    )
    assert _share(reports["delivered"], reports.total()) == pytest.approx(0.85, abs=0.04)
    assert any(d["channel"] == "viber_bot" for d in service)


def test_answers_sessions(originals: list[dict[str, Any]]) -> None:
    bot = _messages(originals, "platform/answers")
    inbound = [e["data"] for e in bot if e["type"].endswith("inbound.v1")]
    assert inbound
    assert all(d["bot_timeout_minutes"] == 30 and d["bot_id"] for d in inbound)
    assert any(e["type"] == "cpaas.usage.bot.session_ended.v1" for e in bot)


def test_moments_conversations_and_the_rest(originals: list[dict[str, Any]]) -> None:
    moments = [e["data"] for e in _messages(originals, "platform/moments")]
    assert {d["via"] for d in moments} == {"flow", "broadcast"}
    assert all(d["person_id"] for d in moments)
    conversations = _messages(originals, "platform/conversations")
    types = {e["type"].split(".")[2] + "." + e["type"].split(".")[3] for e in conversations}
    assert {"message.inbound", "message.outbound", "named_user.provisioned"} <= types
    assert {"named_user.session_opened", "named_user.session_closed"} <= types
    channels = {e["data"].get("channel") for e in originals}
    assert {"messenger", "telegram", "google_bm", "apple_bc", "zalo", "push"} <= channels
    assert {"kakao_notification", "kakao_friends", "kakao_consultation"} <= channels
    assert {"live_chat", "social"} <= channels
    all_types = {e["type"] for e in originals}
    for name in ("ussd.session", "lookup", "number.provisioned", "number.released"):
        assert f"cpaas.usage.{name}.v1" in all_types
    numbers = [e["data"] for e in originals if e["type"].endswith("number.provisioned.v1")]
    assert {d["number_type"] for d in numbers} == {"long", "toll_free", "short_code", "voice"}
    lookups = {e["data"]["kind"] for e in originals if e["type"].endswith(".lookup.v1")}
    assert lookups == {"number_lookup", "email_validation"}


def test_recording_concurrency_peaks_near_the_limit(originals: list[dict[str, Any]]) -> None:
    edges: list[tuple[int, int]] = []
    for e in originals:
        if e["subject"] != "acct-001":
            continue
        if e["type"].endswith("recording.started.v1"):
            edges.append((_ms(e), 1))
        elif e["type"].endswith("recording.stopped.v1"):
            edges.append((_ms(e), -1))
    live = peak = 0
    for _, step in sorted(edges):
        live += step
        peak = max(peak, live)
    assert 8 <= peak <= 10


def test_disorder_and_duplicates_do_not_change_usage(lines: list[Line]) -> None:
    mine = [x for x in lines if x.account == "acct-001" and x.kind != "malformed"]
    stream = [to_fact(parse_event(x.text), identity) for x in mine]
    first_copies = [f for f, x in zip(stream, mine, strict=True) if x.kind == "event"]
    clean = sorted(first_copies, key=lambda f: f.at)
    usage = monthly_usage(stream, PERIOD)
    assert usage.figures() == monthly_usage(clean, PERIOD).figures()
    metrics = usage.by_metric()
    for metric in ("sms.mt", "whatsapp", "email", "voice.ivr", "answers.mas", "moments.mep"):
        assert metrics.get(metric, 0) > 0, metric
    assert metrics["recording.licence"] <= 10
