"""The rejected-events store: every event that could not be accepted, with its reason.

Objects are keyed by the SHA-256 of the body, so a redelivered bad event is stored once.
``billing replay`` sends them back to the intake queue after a fix and then removes them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

PREFIX = "rejected/"

# Raw end-user identifiers a rejected event (or an error message quoting it) may hold.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\+\d[\d ()-]{5,}\d|\b\d{8,}\b")


def mask(text: str) -> str:
    """``text`` with e-mail addresses and phone numbers masked (``***@example.com``,
    ``+33******78``), for listings shown to people."""

    def email(m: re.Match[str]) -> str:
        return "***@" + m.group(0).rsplit("@", 1)[1]

    def phone(m: re.Match[str]) -> str:
        value = m.group(0)
        digits = re.sub(r"\D", "", value)
        lead = "+" if value.startswith("+") else ""
        return f"{lead}{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"

    return _PHONE.sub(phone, _EMAIL.sub(email, text))


class RejectStore:
    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def put(self, body: str, reason: str, errors: Sequence[dict[str, Any]], message_id: str) -> str:
        digest = hashlib.sha256(body.encode("utf-8", "surrogateescape")).hexdigest()
        key = f"{PREFIX}{digest}.json"
        doc = {
            "reason": reason,
            "errors": list(errors),
            "body": body,
            "message_id": message_id,
            "rejected_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(doc, indent=1, default=str).encode(),
            ContentType="application/json",
        )
        return key

    def list_keys(self) -> Iterator[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=PREFIX):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def get(self, key: str) -> dict[str, Any]:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        doc: dict[str, Any] = json.loads(body)
        return doc

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key)
