"""Invoice documents in S3: immutable objects under keys that list by period and account.

``invoices/{period}/{account}/{invoice number}.{json,csv,pdf}``, plus
``invoices/{period}/manifest.json`` and ``invoices/{period}/summary.csv``. Scratch work of
the close lives under ``work/{period}/`` (expired by a lifecycle rule).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

INVOICES = "invoices/"
WORK = "work/"
CONTENT_TYPES = {"json": "application/json", "csv": "text/csv", "pdf": "application/pdf"}


class InvoiceConflict(Exception):
    """An issued invoice would change: invoices are never overwritten silently."""


def invoice_key(period: str, account: str, number: str, fmt: str) -> str:
    return f"{INVOICES}{period}/{account}/{number}.{fmt}"


def partial_key(period: str, account: str, source_period: str, shard: str) -> str:
    return f"{WORK}{period}/{account}/{source_period}/{shard}.json"


class DocumentStore:
    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

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

    def write_once(self, key: str, body: bytes, content_type: str) -> bool:
        """Write an immutable document. False if the identical bytes are already there;
        ``InvoiceConflict`` if different bytes are."""
        existing = self.read(key)
        if existing is not None:
            if existing == body:
                return False
            raise InvoiceConflict(f"{key} was issued with different content; not overwritten")
        self.write(key, body, content_type)
        return True

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
