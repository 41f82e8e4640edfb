"""JSON Schemas of the usage-event contract, generated from the pydantic models.

``python -m billing.domain.schema`` rewrites ``schemas/events/*.schema.json`` (one per
event type) and ``schemas/usage-event.schema.json`` (any of them); a test fails when the
committed files are stale. Valid examples of every type live in ``schemas/examples/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from billing.domain.events import ENVELOPES, event_adapter

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
ID_BASE = "https://schemas.cpaas-billing.invalid/usage/"


def _file_name(event_type: str) -> str:
    return event_type.removeprefix("cpaas.usage.") + ".schema.json"


def rendered() -> dict[Path, str]:
    """Every schema file, path -> content."""
    files: dict[Path, str] = {}
    for event_type, model in ENVELOPES.items():
        schema: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": ID_BASE + _file_name(event_type),
            **model.model_json_schema(),
        }
        files[SCHEMAS / "events" / _file_name(event_type)] = _dump(schema)
    union = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": ID_BASE + "usage-event.schema.json",
        "title": "UsageEvent",
        "description": "A CloudEvents 1.0 usage event of any type (discriminated by `type`).",
        **event_adapter().json_schema(),
    }
    files[SCHEMAS / "usage-event.schema.json"] = _dump(union)
    return files


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def write() -> list[Path]:
    written = []
    for path, content in rendered().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
            written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(f"wrote {path.relative_to(SCHEMAS.parent)}", file=sys.stderr)
