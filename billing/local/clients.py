"""boto3 clients for the local runtime's own calls."""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_REGION = "us-east-1"

_CONFIG = Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=60)
_CLIENTS: dict[tuple[str, str | None, str, tuple[str, str] | None], Any] = {}
_LOCK = threading.Lock()


def aws_client(
    service: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    credentials: tuple[str, str] | None = None,
) -> Any:
    """A (cached, thread-safe) client for ``service``; endpoint, region and credentials
    default to the process environment (``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``...),
    which :class:`billing.local.LocalAws` sets."""
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    region_name = region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    key = (service, endpoint, region_name, credentials)
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            access_key, secret_key = credentials or (None, None)
            client = boto3.session.Session(
                aws_access_key_id=access_key, aws_secret_access_key=secret_key
            ).client(service, endpoint_url=endpoint, region_name=region_name, config=_CONFIG)
            _CLIENTS[key] = client
        return client
