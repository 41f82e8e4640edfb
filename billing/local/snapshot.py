"""Durable local state: snapshots of the runtime's data on disk, restored at start.

moto keeps everything in memory. The runtime takes **snapshots** of the data of its stack
(DynamoDB items, S3 objects, SQS messages, secret values) and restores them after the
stack is deployed again at the next start:

* :class:`MutationGate` sits in front of moto's server (a WSGI middleware). Requests to
  the data services pass through it; it counts those that change something and can
  **quiesce** them (new ones wait, running ones finish) while a snapshot is captured, so a
  snapshot is a consistent point between requests. It also answers the runtime's own
  control requests under ``/_billing_local/`` (``flush``: take a snapshot now if anything
  changed and return its sequence; ``status``).
* :func:`capture` reads moto's backends while quiesced and pickles them;
  :func:`write_snapshot` writes the file atomically (temporary file, ``fsync``, rename,
  ``fsync`` of the directory), so a ``kill -9`` leaves either the previous or the new
  snapshot, never half of one.
* :func:`restore` loads a snapshot into a freshly deployed stack, mapping resources by
  **logical id** (the physical names CloudFormation generates differ between deployments).

What is kept: DynamoDB items of the stack's tables, the current version of every S3
object of its buckets (with its metadata), every SQS message of its queues (visible again
at once on restore, receive counts kept) and the current value of its secrets. Not kept:
Step Functions executions, S3 object versions other than the current one, CloudWatch logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import re
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from billing.local.stack import DeployedStack

LOG = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.pickle"
FORMAT = 1
CONTROL_PREFIX = "/_billing_local/"

#: Services whose data is snapshotted (their requests pass through the gate).
GATED_SERVICES = frozenset({"dynamodb", "s3", "sqs", "secretsmanager", "events"})

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")
_QUERY_SCOPE = re.compile(r"X-Amz-Credential=[^&]*?(?:/|%2F)([a-z0-9-]+)(?:/|%2F)aws4_request")
_READ_ONLY = re.compile(r"^(Get|Describe|List|Query|Scan|BatchGet|Head)")


@dataclass(frozen=True)
class SnapshotInfo:
    """What a snapshot holds (written first in the file, readable without the data)."""

    sequence: int
    taken_at: float
    stack_name: str
    items: int
    objects: int
    messages: int
    secrets: int
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, now: float | None = None) -> str:
        age = max(0.0, (now or time.time()) - self.taken_at)
        return (
            f"{self.items} items, {self.objects} objects, {self.messages} queued messages, "
            f"{self.secrets} secrets (snapshot {self.sequence}, {_age(age)} old)"
        )


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -- the gate --------------------------------------------------------------------------------


class MutationGate:
    """WSGI middleware in front of moto: counts changes to the data services and lets a
    snapshot quiesce them. ``control`` answers ``/_billing_local/<name>`` requests."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.changes = 0
        self.control: dict[str, Callable[[], dict[str, Any]]] = {}
        self._cond = threading.Condition()
        self._active = 0
        self._closed = False

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = str(environ.get("PATH_INFO", ""))
        if path.startswith(CONTROL_PREFIX):
            return self._control(path[len(CONTROL_PREFIX) :], start_response)
        service = _service_of(environ)
        if service not in GATED_SERVICES:
            return self.app(environ, start_response)
        action = _action_of(environ, service)
        if action == "ReceiveMessage":
            # A long poll may wait for seconds: it is not held back by a snapshot (nor
            # waited for). What it changes (receive counts, a move to the dead-letter
            # queue) is counted and lands in the next snapshot.
            body = list(self.app(environ, start_response))
            if any(b"ReceiptHandle" in chunk for chunk in body):
                self.mark_changed()
            return body
        self._enter()
        try:
            return self.app(environ, start_response)
        finally:
            self._leave(action is not None and not _READ_ONLY.match(action))

    def _control(self, name: str, start_response: Any) -> list[bytes]:
        handler = self.control.get(name.strip("/"))
        if handler is None:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "unknown control request"}']
        try:
            document = handler()
            status = "200 OK"
        except Exception as error:  # reported to the caller, logged here
            LOG.exception("control request %s failed", name)
            document, status = {"error": str(error)}, "500 Internal Server Error"
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(document).encode()]

    def _enter(self) -> None:
        with self._cond:
            while self._closed:
                self._cond.wait()
            self._active += 1

    def _leave(self, changed: bool) -> None:
        with self._cond:
            self._active -= 1
            if changed:
                self.changes += 1
            self._cond.notify_all()

    def mark_changed(self) -> None:
        """For changes made outside a gated request (e.g. a restore)."""
        with self._cond:
            self.changes += 1

    @contextlib.contextmanager
    def changing(self) -> Iterator[None]:
        """A change made in this process without a request (the runtime's SQS pollers'
        deletes), held back by a snapshot and counted as a gated request's."""
        self._enter()
        try:
            yield
        finally:
            self._leave(True)

    @contextlib.contextmanager
    def quiesced(self) -> Iterator[int]:
        """Holds new data requests back and waits for the running ones; yields the change
        count the captured state corresponds to."""
        with self._cond:
            while self._closed:
                self._cond.wait()
            self._closed = True
            while self._active:
                self._cond.wait()
            changes = self.changes
        try:
            yield changes
        finally:
            with self._cond:
                self._closed = False
                self._cond.notify_all()


def _header(environ: dict[str, Any], name: str) -> str:
    return str(environ.get("HTTP_" + name.upper().replace("-", "_"), ""))


def _service_of(environ: dict[str, Any]) -> str | None:
    match = _CREDENTIAL_SCOPE.search(_header(environ, "Authorization"))
    if match is None:
        match = _QUERY_SCOPE.search(str(environ.get("QUERY_STRING", "")))
    return match.group(1) if match else None


def _action_of(environ: dict[str, Any], service: str) -> str | None:
    """The API action for JSON/query protocols; for S3 the method stands for it."""
    if service == "s3":
        method = str(environ.get("REQUEST_METHOD", "GET"))
        return "Get" if method in ("GET", "HEAD", "OPTIONS") else method
    target = _header(environ, "X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    query = str(environ.get("QUERY_STRING", ""))
    found = re.search(r"(?:^|&)Action=([A-Za-z]+)", query)
    # A query-protocol request with its Action in the body: count it as a change.
    return found.group(1) if found else "Unknown"


# -- capture and restore ---------------------------------------------------------------------


def _backends(account_id: str, region: str) -> tuple[Any, Any, Any, Any]:
    from moto.dynamodb.models import dynamodb_backends
    from moto.s3.models import s3_backends
    from moto.secretsmanager.models import secretsmanager_backends
    from moto.sqs.models import sqs_backends

    return (
        dynamodb_backends[account_id][region],
        s3_backends[account_id]["aws"],
        sqs_backends[account_id][region],
        secretsmanager_backends[account_id][region],
    )


def _queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _queue_messages(queue: Any) -> list[Any]:
    with queue._messages_lock:
        return list(queue._messages)


_MESSAGE_TRANSIENT = ("receipt_handle", "_old_receipt_handles", "visible_at")


def _message_stamp(message: Any) -> tuple[Any, ...]:
    """What of a queued message changes after it is sent (the rest is fixed): its receive
    count and first receive time (``mark_received``), its delay (``delay``)."""
    return (
        message.approximate_receive_count,
        message.approximate_first_receive_timestamp,
        message.delayed_until,
    )


def _encode_message(message: Any) -> bytes:
    state = {k: v for k, v in vars(message).items() if k not in _MESSAGE_TRANSIENT}
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


class MessageCache:
    """Encoded queue messages from one capture to the next, as ``ItemCache`` does for
    items: a message is encoded again only when its stamp (``_message_stamp``) changed, so
    a capture of a deep queue costs what changed plus a copy of the encodings. Entries hold
    their message, so an id is not reused while it is cached."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[Any, tuple[Any, ...], bytes]] = {}

    def encode(self, messages: Iterable[Any]) -> list[bytes]:
        previous: dict[int, tuple[Any, tuple[Any, ...], bytes]] = self._entries
        current: dict[int, tuple[Any, tuple[Any, ...], bytes]] = {}
        encoded = []
        for message in messages:
            key, stamp = id(message), _message_stamp(message)
            entry = previous.get(key)
            if entry is None or entry[0] is not message or entry[1] != stamp:
                entry = (message, stamp, _encode_message(message))
            current[key] = entry
            encoded.append(entry[2])
        self._entries = current
        return encoded


class ItemCache:
    """Encoded DynamoDB items from one capture to the next: an item moto replaced (every
    put makes a new ``Item``) or updated in place (``UpdateItem``, reported through
    :func:`item_updated`) is encoded again; the others are reused. Entries hold their item,
    so an id is not reused while it is cached."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[Any, bytes]] = {}

    def seed(self, item: Any, encoded: bytes) -> None:
        self._entries[id(item)] = (item, encoded)

    def encode(self, items: Iterable[Any], updated: set[int]) -> list[bytes]:
        previous, current = self._entries, {}
        encoded = []
        for item in items:
            key = id(item)
            entry = previous.get(key)
            if entry is None or entry[0] is not item or key in updated:
                entry = (item, _encode_item(item))
            current[key] = entry
            encoded.append(entry[1])
        self._entries = current
        return encoded


_updated_lock = threading.Lock()
_updated: dict[int, Any] = {}
_update_hook: list[Any] = []


def install_update_hook() -> None:
    """Makes moto's ``UpdateItem`` (which changes an item in place) report the item."""
    from moto.dynamodb.models import DynamoDBBackend

    if _update_hook:
        return
    original = DynamoDBBackend.update_item

    def update_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = original(self, *args, **kwargs)
        if item is not None:
            with _updated_lock:
                _updated[id(item)] = item
        return item

    _update_hook.append(original)
    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]


def uninstall_update_hook() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    if _update_hook:
        DynamoDBBackend.update_item = _update_hook.pop()  # type: ignore[method-assign]
    with _updated_lock:
        _updated.clear()


def _take_updated() -> set[int]:
    with _updated_lock:
        taken = set(_updated)
        _updated.clear()
    return taken


def capture(
    stack: DeployedStack,
    changes: int,
    caches: dict[str, ItemCache] | None = None,
    message_caches: dict[str, MessageCache] | None = None,
) -> tuple[SnapshotInfo, bytes]:
    """The stack's data as one pickle (call while quiesced). Returns its description and
    the bytes to write. ``caches`` (per table) and ``message_caches`` (per queue), kept by
    the caller between captures, spare re-encoding the items and messages that did not
    change."""
    dynamodb, s3, sqs, secrets = _backends(stack.account_id, stack.region)
    tables: dict[str, Any] = {}
    items = 0
    updated = _take_updated()
    caches = caches if caches is not None else {}
    for logical_id, name in stack.tables.items():
        table = dynamodb.tables.get(name)
        if table is None:
            continue
        encoded = caches.setdefault(logical_id, ItemCache()).encode(_table_items(table), updated)
        tables[logical_id] = encoded
        items += len(encoded)
    buckets: dict[str, list[tuple[str, bytes, dict[str, Any]]]] = {}
    objects = 0
    for logical_id, name in stack.buckets.items():
        bucket = s3.buckets.get(name)
        if bucket is None:
            continue
        kept = []
        for key_name in list(bucket.keys.keys()):
            key = bucket.keys[key_name]
            if getattr(key, "is_delete_marker", False) or not hasattr(key, "value"):
                continue
            kept.append((key_name, bytes(key.value), dict(key.metadata)))
        buckets[logical_id] = kept
        objects += len(kept)
    queues: dict[str, list[bytes]] = {}
    messages = 0
    message_caches = message_caches if message_caches is not None else {}
    for logical_id, url in stack.queues.items():
        queue = sqs.queues.get(_queue_name(url))
        if queue is None:
            continue
        cache = message_caches.setdefault(logical_id, MessageCache())
        kept_messages = cache.encode(_queue_messages(queue))
        queues[logical_id] = kept_messages
        messages += len(kept_messages)
    secret_values: dict[str, dict[str, Any]] = {}
    for logical_id, arn in stack.secrets.items():
        try:
            value = secrets.get_secret_value(arn, None, "AWSCURRENT")
        except Exception:  # deleted or never set: nothing to keep
            LOG.debug("secret %s has no current value", logical_id)
            continue
        secret_values[logical_id] = {
            k: value[k] for k in ("SecretString", "SecretBinary") if value.get(k) is not None
        }
    info = SnapshotInfo(
        sequence=changes,
        taken_at=time.time(),
        stack_name=stack.stack_name,
        items=items,
        objects=objects,
        messages=messages,
        secrets=len(secret_values),
    )
    payload = {"tables": tables, "buckets": buckets, "queues": queues, "secrets": secret_values}
    return info, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)


def write_snapshot(state_dir: Path, info: SnapshotInfo, payload: bytes) -> SnapshotInfo:
    """Writes ``snapshot.pickle`` atomically and durably; returns ``info`` with its size."""
    state_dir.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, **info.to_dict()}
    header_bytes = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)
    size = len(header_bytes) + len(payload)
    header["bytes"] = size
    header_bytes = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)
    target = state_dir / SNAPSHOT_FILE
    temporary = state_dir / f".{SNAPSHOT_FILE}.{os.getpid()}.{threading.get_ident()}"
    with temporary.open("wb") as stream:
        stream.write(header_bytes)
        stream.write(payload)
        stream.flush()
        os.fsync(stream.fileno())
    temporary.replace(target)
    directory = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return SnapshotInfo(**{**info.to_dict(), "bytes": size})


def read_info(state_dir: Path) -> SnapshotInfo | None:
    """The description of the snapshot in ``state_dir`` (without loading its data)."""
    try:
        with (state_dir / SNAPSHOT_FILE).open("rb") as stream:
            header = pickle.load(stream)  # noqa: S301 - the runtime's own file
    except (FileNotFoundError, EOFError, pickle.UnpicklingError):
        return None
    return _info(header)


def _info(header: dict[str, Any]) -> SnapshotInfo:
    fields = SnapshotInfo.__dataclass_fields__
    return SnapshotInfo(**{k: v for k, v in header.items() if k in fields})


def remove(state_dir: Path) -> bool:
    """Deletes the snapshot; returns whether there was one."""
    path = state_dir / SNAPSHOT_FILE
    existed = path.exists()
    path.unlink(missing_ok=True)
    for leftover in state_dir.glob(f".{SNAPSHOT_FILE}.*"):
        leftover.unlink(missing_ok=True)
    return existed


def restore(
    state_dir: Path,
    stack: DeployedStack,
    client: Callable[[str], Any],
    caches: dict[str, ItemCache] | None = None,
) -> SnapshotInfo:
    """Loads the snapshot of ``state_dir`` into ``stack`` (deployed, pollers not yet
    started); returns what was restored. Raises ``FileNotFoundError`` without one.
    ``caches`` is filled with the restored items' encodings (for the next capture)."""
    with (state_dir / SNAPSHOT_FILE).open("rb") as stream:
        header = pickle.load(stream)  # noqa: S301 - the runtime's own file
        if header.get("format") != FORMAT:
            raise ValueError(f"snapshot format {header.get('format')} (expected {FORMAT})")
        payload = pickle.load(stream)  # noqa: S301
    info = _info(header)
    dynamodb, _, sqs, _ = _backends(stack.account_id, stack.region)
    _restore_tables(dynamodb, stack, payload["tables"], caches if caches is not None else {})
    _restore_queues(sqs, stack, payload["queues"])
    s3 = client("s3")
    for logical_id, objects in payload["buckets"].items():
        bucket = _physical(stack.buckets, logical_id, "bucket")
        for key_name, body, metadata in objects if bucket else ():
            extra: dict[str, Any] = {}
            if "content-type" in {k.lower() for k in metadata}:
                extra["ContentType"] = next(
                    v for k, v in metadata.items() if k.lower() == "content-type"
                )
            user = {
                k[len("x-amz-meta-") :]: str(v)
                for k, v in metadata.items()
                if k.lower().startswith("x-amz-meta-")
            }
            s3.put_object(Bucket=bucket, Key=key_name, Body=body, Metadata=user, **extra)
    manager = client("secretsmanager")
    for logical_id, value in payload["secrets"].items():
        arn = _physical(stack.secrets, logical_id, "secret")
        if arn:
            manager.put_secret_value(SecretId=arn, **value)
    return info


def _physical(mapping: dict[str, str], logical_id: str, kind: str) -> str | None:
    physical = mapping.get(logical_id)
    if physical is None:
        LOG.warning("snapshot has %s %s, which the stack no longer has: skipped", kind, logical_id)
    return physical


def _restore_tables(
    dynamodb: Any, stack: DeployedStack, tables: dict[str, Any], caches: dict[str, ItemCache]
) -> None:
    for logical_id, encoded in tables.items():
        name = _physical(stack.tables, logical_id, "table")
        if name is None:
            continue
        table = dynamodb.tables[name]
        hash_attr, range_attr = table.hash_key_attr, table.range_key_attr
        items: Any = defaultdict(dict)
        cache = caches.setdefault(logical_id, ItemCache())
        for blob in encoded:
            item = _decode_item(pickle.loads(blob), hash_attr, range_attr)  # noqa: S301
            cache.seed(item, blob)
            if range_attr:
                items[item.hash_key][item.range_key] = item
            else:
                items[item.hash_key] = item
        table.items = items


# moto's DynamoDB items, pickled as they are, take seconds per 10,000 (every attribute
# re-validates the item's size on unpickling). Each is kept as a pickle of plain tuples
# instead, (name, (type, value)) per attribute, maps and lists nested the same way, and
# encoded again only when it changed (ItemCache).


def _table_items(table: Any) -> Iterator[Any]:
    for value in table.items.values():
        if isinstance(value, dict):
            yield from value.values()
        else:
            yield value


def _encode_value(value: Any) -> tuple[str, Any]:
    kind = value.type
    if kind == "M":
        return kind, {k: _encode_value(v) for k, v in value.value.items()}
    if kind == "L":
        return kind, [_encode_value(v) for v in value.value]
    if isinstance(value.value, list):  # SS, NS, BS
        return kind, list(value.value)
    return kind, value.value


def _encode_item(item: Any) -> bytes:
    attributes = [(name, _encode_value(value)) for name, value in item.attrs.items()]
    return pickle.dumps(attributes, protocol=pickle.HIGHEST_PROTOCOL)


def _decode_value(encoded: tuple[str, Any]) -> Any:
    from moto.dynamodb.models.dynamo_type import DynamoType

    kind, raw = encoded
    value: Any = DynamoType.__new__(DynamoType)
    value.type = kind
    if kind == "M":
        value.value = {k: _decode_value(v) for k, v in raw.items()}
    elif kind == "L":
        value.value = [_decode_value(v) for v in raw]
    else:
        value.value = raw
    return value


def _decode_item(
    attributes: list[tuple[str, tuple[str, Any]]], hash_attr: str, range_attr: str | None
) -> Any:
    """An ``Item`` as moto builds it, without re-checking its size (it was checked when
    it was written)."""
    from moto.dynamodb.models.dynamo_type import Item, LimitedSizeDict

    attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    for name, encoded in attributes:
        dict.__setitem__(attrs, name, _decode_value(encoded))
    item: Any = Item.__new__(Item)
    item.hash_key = attrs[hash_attr]
    item.range_key = attrs[range_attr] if range_attr else None
    item.attrs = attrs
    return item


def _restore_queues(sqs: Any, stack: DeployedStack, queues: dict[str, list[Any]]) -> None:
    from moto.sqs.models import Message

    for logical_id, messages in queues.items():
        url = _physical(stack.queues, logical_id, "queue")
        if url is None:
            continue
        queue = sqs.queues[_queue_name(url)]
        for kept in messages:
            # each message pickled on its own (``MessageCache``); older snapshots: a dict
            state = pickle.loads(kept) if isinstance(kept, bytes) else kept  # noqa: S301
            message: Any = Message.__new__(Message)
            message.__dict__.update(state)
            # Nobody holds it any more: visible now, as after a consumer's crash once
            # its visibility timeout has passed.
            message.receipt_handle = None
            message._old_receipt_handles = []
            message.visible_at = 0.0
            queue.add_message(message)


def control(endpoint_url: str, name: str, *, timeout: float = 300.0) -> dict[str, Any] | None:
    """Sends a control request (``flush``, ``status``) to the runtime at ``endpoint_url``;
    ``None`` if the endpoint is not a local runtime (e.g. plain moto)."""
    request = urllib.request.Request(  # noqa: S310 - loopback endpoint of the runtime
        endpoint_url.rstrip("/") + CONTROL_PREFIX + name, data=b"", method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            document: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise
    return document


def checkpoint(endpoint_url: str | None = None, *, timeout: float = 300.0) -> dict[str, Any] | None:
    """Asks the local runtime for a snapshot of everything accepted so far and returns its
    answer (``snapshot``: the snapshot's description, ``None`` if the runtime keeps no
    state); ``None`` when not talking to a local runtime (no ``AWS_ENDPOINT_URL``: AWS)."""
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return None
    return control(endpoint, "flush", timeout=timeout)
