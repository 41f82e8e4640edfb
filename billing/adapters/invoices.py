"""Invoice documents in S3: immutable objects under keys that list by period and account.

``invoices/{period}/{account}/{invoice number}.{json,csv,pdf}``, plus
``invoices/{period}/manifest.json`` and ``invoices/{period}/summary.csv``; credit notes
sit next to the invoice they correct (``{credit note number}.{json,csv,pdf}``). Drafts,
rewritten until the invoice is final, are under ``drafts/{period}/{account}/draft.*``.
Scratch work of the close lives under ``work/{period}/`` (expired by a lifecycle rule).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

INVOICES = "invoices/"
DRAFTS = "drafts/"  # drafts of the period's invoices: rewritten by every draft close, not locked
WORK = "work/"
CONTENT_TYPES = {"json": "application/json", "csv": "text/csv", "pdf": "application/pdf"}


WRITE_ATTEMPTS = 3  # conditional puts of one key racing (409): asked again this often


def put_new(put: Callable[[], object], key: str, conflict: type[Exception]) -> bool:
    """Run ``put``, a conditional put (``If-None-Match: *``) of ``key``: True if it wrote,
    False if an object is there (the caller compares it); asked again while concurrent
    writes of the key race (409), then ``conflict``."""
    for _ in range(WRITE_ATTEMPTS):
        try:
            put()
            return True
        except ClientError as err:
            code = err.response["Error"]["Code"]
            if code == "ConditionalRequestConflict":
                continue
            if code in {"PreconditionFailed", "412"}:
                return False
            raise
    raise conflict(f"{key}: concurrent writes did not settle")


class InvoiceConflict(Exception):
    """An issued invoice would change: invoices are never overwritten silently."""


def invoice_key(period: str, account: str, number: str, fmt: str) -> str:
    return f"{INVOICES}{period}/{account}/{number}.{fmt}"


@dataclass(frozen=True)
class InvoiceLock:
    """S3 Object Lock retention put on every issued invoice document (never on work/ or
    state/ objects, which expire). The retain-until date derives from the period, so a
    re-run asks for exactly the same retention as the first run."""

    mode: str = "GOVERNANCE"  # or COMPLIANCE (prod): not even the root user may shorten it
    years: int = 10

    @classmethod
    def from_env(cls) -> InvoiceLock | None:
        """``INVOICE_LOCK_MODE`` / ``INVOICE_RETENTION_YEARS``; no lock when the mode is unset."""
        mode = os.environ.get("INVOICE_LOCK_MODE", "")
        if not mode:
            return None
        return cls(mode=mode.upper(), years=int(os.environ.get("INVOICE_RETENTION_YEARS", "10")))

    def retain_until(self, key: str) -> datetime | None:
        """Midnight UTC on the first day after the key's period plus ``years``."""
        if not key.startswith(INVOICES):
            return None
        period = key[len(INVOICES) :].split("/", 1)[0]
        year, month = (int(part) for part in period.split("-"))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return datetime(year + self.years, month, 1, tzinfo=UTC)


def draft_key(period: str, account: str, fmt: str) -> str:
    return f"{DRAFTS}{period}/{account}/draft.{fmt}"


def partial_key(period: str, account: str, source_period: str, shard: str) -> str:
    return f"{WORK}{period}/{account}/{source_period}/{shard}.json"


class DocumentStore:
    def __init__(self, s3: Any, bucket: str, lock: InvoiceLock | None = None) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.lock = lock

    def read(self, key: str) -> bytes | None:
        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as err:
            if err.response["Error"]["Code"] in {"NoSuchKey", "404"}:
                return None
            raise
        return body

    def write(self, key: str, body: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def write_once(
        self, key: str, body: bytes, content_type: str, retain_until: datetime | None = None
    ) -> bool:
        """Write an immutable document: one conditional put (``If-None-Match``), refused if
        an object is there. False if the identical bytes are already there (nothing is
        written, so a re-run adds no version); ``InvoiceConflict`` if different bytes are.
        The object is locked until ``retain_until`` (default: the store's ``InvoiceLock``
        for the key's period), so it cannot be deleted before then."""
        if retain_until is None and self.lock is not None:
            retain_until = self.lock.retain_until(key)
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
            "IfNoneMatch": "*",
        }
        if retain_until is not None:
            args["ObjectLockMode"] = self.lock.mode if self.lock else "GOVERNANCE"
            args["ObjectLockRetainUntilDate"] = retain_until
            args["ChecksumAlgorithm"] = "SHA256"
        if put_new(partial(self.s3.put_object, **args), key, InvoiceConflict):
            return True
        if self.read(key) == body:
            return False
        raise InvoiceConflict(f"{key} was issued with different content; not overwritten")

    def write_json(self, key: str, doc: Any) -> None:
        self.write(key, json.dumps(doc, sort_keys=True).encode(), "application/json")

    def list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def presign(self, key: str, expires: int = 3600) -> str:
        url: str = self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
        )
        return url
