"""Generation state: the scenario buffer, accounts and the share-keeping mixes."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from billing.gen import world

#: one drafted event: time (epoch ms), source, type name (``message.outbound``), payload.
Draft = tuple[int, str, str, dict[str, Any]]


class Mix:
    """Picks what to generate next so that event shares follow ``shares``.

    Each pick is random, weighted by how far each entry lags behind its share of the
    events generated so far, so that the shares hold for small streams too.
    """

    __slots__ = ("_emitted", "_names", "_shares", "_total")

    def __init__(self, shares: Mapping[str, float]) -> None:
        total = sum(shares.values())
        self._names = list(shares)
        self._shares = [v / total for v in shares.values()]
        self._emitted = dict.fromkeys(self._names, 0)
        self._total = 0

    def pick(self, rng: random.Random) -> str:
        n = self._total + 1
        weights = [
            max(share * n - self._emitted[name], 0.0)
            for name, share in zip(self._names, self._shares, strict=True)
        ]
        if sum(weights) <= 0:
            weights = self._shares
        return rng.choices(self._names, weights)[0]

    def record(self, name: str, events: int) -> None:
        self._emitted[name] += events
        self._total += events


class Account:
    """One account of the mix and the state its scenarios keep across the month."""

    def __init__(
        self, index: int, name: str, budget: int, flags: int, mixes: dict[str, Mix]
    ) -> None:
        self.index = index
        self.name = name
        self.budget = budget
        self.emitted = 0
        self.users = max(1, round(budget / 5))
        self.home = world.home_country(index)
        self.signals = flags % 4 == 1  # buys Signals fraud screening
        self.byoc = flags % 4 == 2  # carries part of its calls over its own carrier
        self.conversations_recording = flags % 3 == 0
        self.bots = [f"bot-{index:03d}-{k}" for k in range(1 + flags % 3)]
        self.viber_senders = [f"svc-{index:03d}-{k}" for k in range(1 + flags % 2)]
        # shares are kept over the whole stream (small accounts need not have every service)
        self.mixes = mixes
        self._counters: dict[str, int] = {}
        # state kept across scenarios (generation order is not time order: check times)
        self.suppressed: list[tuple[str, int]] = []  # address, when it bounced
        self.agents: dict[str, list[int]] = {}  # user id -> [provisioned at, busy until, gone]
        self.numbers: dict[str, int] = {}  # number -> provisioned at (held)
        self.sims: dict[str, tuple[str, int]] = {}  # sim id -> (status, since)
        self.recordings: list[tuple[int, int]] = []  # (start, stop) of recent recordings

    def mix(self, name: str, shares: Mapping[str, float]) -> Mix:
        found = self.mixes.get(name)
        if found is None:
            found = self.mixes[name] = Mix(shares)
        return found

    def next_id(self, kind: str) -> str:
        n = self._counters.get(kind, 0) + 1
        self._counters[kind] = n
        return f"{kind}-{self.index:03d}-{n}"

    def person(self, rng: random.Random) -> int:
        return rng.randrange(self.users)


class Drafts:
    """The events a scenario drafts, before the stream keeps, numbers and shuffles them."""

    __slots__ = ("end_ms", "events", "rng")

    def __init__(self, rng: random.Random, end_ms: int) -> None:
        self.rng = rng
        self.end_ms = end_ms
        self.events: list[Draft] = []

    def emit(self, source: str, type_: str, at: int, data: dict[str, Any]) -> None:
        self.events.append((at, source, type_, data))
