"""The JSON Schemas in schemas/ are generated from the models and accept the examples."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from billing.domain.events import ENVELOPES, parse_event
from billing.domain.schema import SCHEMAS, rendered

EXAMPLES = sorted((SCHEMAS / "examples").glob("*.json"))


def test_schema_files_are_up_to_date() -> None:
    for path, content in rendered().items():
        assert path.exists(), f"{path} missing: run python -m billing.domain.schema"
        assert path.read_text() == content, f"{path} is stale: run python -m billing.domain.schema"


def test_every_event_type_has_an_example() -> None:
    have = {json.loads(p.read_text())["type"] for p in EXAMPLES}
    assert have == set(ENVELOPES)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_validate_with_the_models_and_the_schema_files(example: Path) -> None:
    raw = example.read_text()
    event = parse_event(raw)
    doc = json.loads(raw)
    schema = json.loads((SCHEMAS / "events" / f"{example.stem}.schema.json").read_text())
    jsonschema.validate(doc, schema)
    jsonschema.validate(doc, json.loads((SCHEMAS / "usage-event.schema.json").read_text()))
    assert event.type == doc["type"]  # type: ignore[attr-defined]


def test_schema_files_reject_what_the_models_reject() -> None:
    doc = json.loads((SCHEMAS / "examples" / "call.leg.v1.json").read_text())
    doc["time"] = "2026-10-14T09:30:00"  # no zone: the schema says date-time with offset
    doc["data"]["answered_seconds"] = -1
    schema = json.loads((SCHEMAS / "events" / "call.leg.v1.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
