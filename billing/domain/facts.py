"""Facts: validated usage events reduced to what billing needs, with end users pseudonymized.

A fact is what ingest stores and what the usage engine reads. It is derived from the event
deterministically, so a redelivered event yields a byte-identical fact (which is why an
unconditional put is an idempotent write).

- ``id``: the de-duplication key, a hash of the CloudEvent ``source`` and ``id``.
- ``type``: the event type without prefix and version (``message.outbound``).
- ``at``: epoch milliseconds of the event ``time``.
- ``key``: what per-key state is grouped by (a pseudonymized end user, a named user, a SIM).
  Facts of one key always land in the same storage shard, so windows, sessions and distinct
  counts computed per shard add up exactly.
- ``entity``: for lifecycle events that span months (recordings, numbers, named-user seats,
  SIMs), the entity they belong to; such facts are kept per account, not per period.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any

from billing.domain.events import TYPE_PREFIX, Envelope
from billing.domain.periods import Period, to_ms

Pseudonymize = Callable[[str], str]

#: payload fields that identify an end user: stored only as keyed hashes.
PERSONAL_FIELDS = frozenset({"end_user", "person_id"})

#: lifecycle event types -> the payload field naming their entity (kept across periods).
ENTITY_FIELDS: Mapping[str, tuple[str, str]] = {
    "recording.started": ("rec", "recording_id"),
    "recording.stopped": ("rec", "recording_id"),
    "recording.stored": ("rec", "recording_id"),
    "recording.deleted": ("rec", "recording_id"),
    "number.provisioned": ("num", "number"),
    "number.released": ("num", "number"),
    "named_user.provisioned": ("user", "user_id"),
    "named_user.deprovisioned": ("user", "user_id"),
    "sim.activated": ("sim", "sim_id"),
    "sim.status_changed": ("sim", "sim_id"),
}

#: period event types -> the payload field their per-key state is grouped by.
KEY_FIELDS: Mapping[str, str] = {
    "message.outbound": "end_user",
    "message.inbound": "end_user",
    "bot.session_ended": "end_user",
    "ussd.session": "end_user",
    "lookup": "end_user",
    "call.leg": "end_user",
    "named_user.session_opened": "user_id",
    "named_user.session_closed": "user_id",
    "sim.data_usage": "sim_id",
}


@dataclass(frozen=True, slots=True)
class Fact:
    id: str
    type: str
    at: int
    key: str
    attrs: Mapping[str, Any]
    entity: str | None = None
    #: the period in the account's local calendar, when ingest assigned one (not stored:
    #: the fact's partition names it); ``None``: the UTC month
    local: Period | None = field(default=None, compare=False, repr=False)
    #: the content digest of the stored version the fact was read from (its sort key
    #: holds it): ``digest`` answers it without hashing the content again
    stored_digest: str | None = field(default=None, compare=False, repr=False)

    @property
    def period(self) -> Period:
        return self.local if self.local is not None else Period.of_ms(self.at)

    def get(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def digest(self) -> str:
        """A short digest of the fact's content (48 bits, base64url), the same before and
        after a round trip through the table: it tells two contents sent under one ``id``
        apart (``billing.adapters.store.fact_sk``)."""
        if self.stored_digest is not None:
            return self.stored_digest
        canonical = repr(_canonical(self.to_item())).encode()
        raw = hashlib.blake2b(canonical, digest_size=6).digest()
        return base64.urlsafe_b64encode(raw).decode()

    def to_item(self) -> dict[str, Any]:
        """Compact, deterministic mapping (the stored form)."""
        item: dict[str, Any] = {"id": self.id, "t": self.type, "at": self.at, "k": self.key}
        item["a"] = dict(self.attrs)
        if self.entity is not None:
            item["e"] = self.entity
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any], digest: str | None = None) -> Fact:
        """The fact of its stored form (``to_item``); ``digest``: its content's, when the
        item's key holds it."""
        attrs = {k: _from_store(v) for k, v in item["a"].items()}
        return cls(
            id=str(item["id"]),
            type=str(item["t"]),
            at=int(item["at"]),
            key=str(item["k"]),
            attrs=attrs,
            entity=item.get("e"),
            stored_digest=digest,
        )


def _canonical(value: Any) -> Any:
    """``value`` with its numbers written one way (a stored float comes back a Decimal, an
    integral one an int) and its mappings in key order, each kind tagged."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        number = Decimal(str(value))
        return ("n", format(number.normalize() if number else Decimal(0), "f"))
    if isinstance(value, Mapping):
        return ("m", tuple(sorted((str(k), _canonical(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("l", tuple(_canonical(v) for v in value))
    return ("s", str(value))


def _from_store(value: Any) -> Any:
    # DynamoDB returns every number as Decimal; integers are ints in facts.
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


class HmacPseudonymizer:
    """Keyed hash of an end-user identifier (HMAC-SHA256, 128 bits, base64url)."""

    __slots__ = ("_cache", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonymization key must be at least 16 bytes")
        self._key = key
        self._cache: dict[str, str] = {}

    def __call__(self, identifier: str) -> str:
        hit = self._cache.get(identifier)
        if hit is None:
            normalized = identifier.strip().lower().encode()
            digest = hmac.new(self._key, normalized, hashlib.sha256).digest()[:16]
            hit = base64.urlsafe_b64encode(digest).decode().rstrip("=")
            if len(self._cache) < 1_000_000:
                self._cache[identifier] = hit
        return hit


def event_key(source: str, event_id: str) -> str:
    """The de-duplication key of a CloudEvent: ``id`` is unique per ``source``."""
    digest = hashlib.blake2b(f"{source}\x1f{event_id}".encode(), digest_size=12).digest()
    return base64.urlsafe_b64encode(digest).decode()


@cache
def short_type(full_type: str) -> str:
    """``cpaas.usage.call.leg.v1`` -> ``call.leg``."""
    return full_type.removeprefix(TYPE_PREFIX).rsplit(".", 1)[0]


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    return value


def to_fact(event: Envelope, pseudonymize: Pseudonymize) -> Fact:
    """Reduce a validated event to its fact. Deterministic: same event, same fact."""
    kind = short_type(event.type)  # type: ignore[attr-defined]
    data = event.data  # type: ignore[attr-defined]
    attrs: dict[str, Any] = {}
    for name, value in data.__dict__.items():  # the validated fields, without copying
        if value is None or (name == "parts" and value == 1):
            continue
        if name in PERSONAL_FIELDS:
            value = pseudonymize(value)
        attrs[name] = _plain(value)
    entity = None
    if kind in ENTITY_FIELDS:
        prefix, field = ENTITY_FIELDS[kind]
        entity = f"{prefix}#{attrs[field]}"
        key = entity
    else:
        key = attrs[KEY_FIELDS[kind]]
    return Fact(
        id=event_key(event.source, event.id),
        type=kind,
        at=to_ms(event.time),
        key=key,
        attrs=attrs,
        entity=entity,
    )


def shard_of(key: str, shards: int) -> int:
    """Stable shard of a grouping key (all facts of one key share a shard)."""
    return zlib.crc32(key.encode()) % shards


def identity(value: str) -> str:
    """A pseudonymizer for tests where readable keys help."""
    return value
