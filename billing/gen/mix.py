"""The reference traffic mix (``/work/shared/spec/reference-mix.md``) as a stream of lines.

``generate(seed, size)`` yields ``size`` JSON lines, one CloudEvent each (compact JSON),
the same lines for the same arguments: one ``random.Random(seed)`` drives everything and
no wall clock is read. The stream is in *arrival* order, which is not time order:

- one month (``period``) of traffic of ``accounts`` accounts with Zipf-like sizes (the
  largest 40% of the events, the next 15%, the next 8%, the rest share what is left);
- about one distinct end user per 5 events of an account; person ``p`` of an account has
  one phone number (also their WhatsApp and Viber number), one email address and one id
  per chat app, so the same people show up on several channels;
- event times follow a daily cycle in UTC (quiet nights, busy afternoons, quieter
  weekends); a few events carry a non-UTC offset for the same instant;
- 2% of the lines are duplicates (same ``source``, ``id`` and content) arriving up to a
  minute after the original; 5% of the events arrive late by up to an hour; 0.1% of the
  lines are malformed (bad JSON, missing fields, no time zone, unknown type, negative
  duration...) and must be rejected by the pipeline;
- event ids are unique per ``source`` (``platform/<service>``) and the status events of
  one message share ``data.message_id``.

The shares by service are the table of ``billing.gen.scenarios.CATEGORIES``.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterator, Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal, NamedTuple

from billing.domain.events import TYPE_PREFIX
from billing.domain.periods import Period
from billing.gen import world
from billing.gen.malformed import corrupt
from billing.gen.scenarios import CATEGORIES, SOURCES
from billing.gen.state import Account, Drafts, Mix

DUPLICATE_SHARE = 0.02
LATE_SHARE = 0.05
MALFORMED_SHARE = 0.001
MAX_DUPLICATE_DELAY_MS = 60_000
MAX_LATENESS_MS = 3_600_000
#: events whose time is written with a non-UTC offset (the same instant).
OFFSET_SHARE = 0.03

#: shares of events of the three largest accounts; the others share the rest, Zipf-like.
TOP_ACCOUNT_SHARES = (0.40, 0.15, 0.08)

#: category -> share of all events.
SHARES: dict[str, float] = {name: share for name, (share, _) in CATEGORIES.items()}

LineKind = Literal["event", "duplicate", "malformed"]


class Line(NamedTuple):
    """One line of the stream, with what the generator knows about it."""

    text: str
    account: str
    kind: LineKind


def category_of(source: str) -> str:
    """The share-table category of an event ``source`` (``platform/sms`` -> ``sms``)."""
    return SOURCES[source]


def account_names(accounts: int) -> list[str]:
    width = max(3, len(str(accounts)))
    return [f"acct-{i:0{width}d}" for i in range(1, accounts + 1)]


def account_shares(accounts: int) -> list[float]:
    """Share of the events of each account, largest first."""
    if accounts < 1:
        raise ValueError("at least one account")
    head = list(TOP_ACCOUNT_SHARES[:accounts])
    if accounts <= len(TOP_ACCOUNT_SHARES):
        return [s / sum(head) for s in head]
    rest = 1.0 - sum(head)
    tail = [1.0 / rank for rank in range(len(head) + 1, accounts + 1)]
    return head + [rest * w / sum(tail) for w in tail]


def _allocate(total: int, shares: Sequence[float]) -> list[int]:
    """Split ``total`` by ``shares`` exactly (largest remainder)."""
    raw = [total * s for s in shares]
    out = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (out[i] - raw[i], i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


class _Stream:
    """Keeps drafted events, shuffles them into arrival order and writes the lines."""

    def __init__(
        self,
        rng: random.Random,
        clock: world.Clock,
        size: int,
        clean: int,
        duplicates: int,
        malformed: int,
        only: int | None,
    ) -> None:
        self.rng = rng
        self.clock = clock
        self.size = size
        self.only = only
        self._clean_left = clean
        self._dups_left = duplicates
        self._malformed_left = malformed
        self._heap: list[tuple[int, int, int, int, dict[str, Any], LineKind]] = []
        self._seq = 0
        self._ids: dict[str, int] = {}
        # ids are unique per source across months too: a reused id is a conflict
        self._id_prefix = clock.iso(clock.start_ms)[:7]
        self._written = 0
        self._last: tuple[int, int, dict[str, Any]] | None = None

    def keep(self, drafts: Drafts, account: Account, cap: int) -> int:
        """Number, envelope and schedule the drafted events (at most ``cap``)."""
        rng = self.rng
        kept = 0
        for at, source, type_, data in drafts.events:
            if kept >= cap:
                break
            if at >= drafts.end_ms:
                continue  # belongs to the next period: not part of this month's stream
            n = self._ids.get(source, 0) + 1
            self._ids[source] = n
            offset = 0
            if rng.random() < OFFSET_SHARE:
                offset = rng.choice(world.OFFSET_MINUTES)
            env = {
                "specversion": "1.0",
                "id": f"{self._id_prefix}-e{n}",
                "source": source,
                "type": f"{TYPE_PREFIX}{type_}.v1",
                "subject": account.name,
                "time": self.clock.iso(at, offset),
                "datacontenttype": "application/json",
                "data": data,
            }
            arrival = at
            if rng.random() < LATE_SHARE:
                arrival += rng.randint(1000, MAX_LATENESS_MS)
            self._push(arrival, account.index, at, env, "event")
            # selection sampling: exactly the planned number of duplicates
            if rng.random() * self._clean_left < self._dups_left:
                self._dups_left -= 1
                self._push(
                    arrival + rng.randint(1, MAX_DUPLICATE_DELAY_MS),
                    account.index,
                    at,
                    env,
                    "duplicate",
                )
            self._clean_left -= 1
            kept += 1
        drafts.events.clear()
        return kept

    def _push(
        self, arrival: int, account: int, at: int, env: dict[str, Any], kind: LineKind
    ) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (arrival, self._seq, account, at, env, kind))

    def flush(self, until: int | None = None) -> Iterator[Line]:
        """Write every scheduled line arriving before ``until`` (all when ``None``)."""
        heap = self._heap
        while heap and (until is None or heap[0][0] < until):
            _, _, account, at, env, kind = heapq.heappop(heap)
            self._last = (account, at, env)
            yield from self._malformed_before()
            self._written += 1
            if self.only is None or self.only == account:
                yield Line(json.dumps(env, separators=(",", ":")), env["subject"], kind)
        if until is None:
            while self._malformed_left > 0 and self._last is not None:
                yield from self._malformed(*self._last)

    def _malformed_before(self) -> Iterator[Line]:
        # uniformly spread over the stream: exactly the planned number of malformed lines
        while self._malformed_left and (
            self.rng.random() * (self.size - self._written) < self._malformed_left
        ):
            assert self._last is not None
            yield from self._malformed(*self._last)

    def _malformed(self, account: int, at: int, env: dict[str, Any]) -> Iterator[Line]:
        self._malformed_left -= 1
        self._written += 1
        _, text = corrupt(self.rng, env, at, self.clock, self._written)
        if self.only is None or self.only == account:
            yield Line(text, str(env["subject"]), "malformed")


def generate_lines(
    seed: int,
    size: int,
    period: str = "2026-10",
    accounts: int = 50,
    only: str | None = None,
) -> Iterator[Line]:
    """The reference mix as ``Line``s (text, account, kind), in arrival order.

    ``only`` keeps the lines of one account, exactly as they appear in the full stream.
    """
    if size <= 0:
        return
    month = Period.parse(period)
    rng = random.Random(seed)  # noqa: S311  (a reproducible simulation, not secrets)
    malformed = round(size * MALFORMED_SHARE)
    duplicates = round(size * DUPLICATE_SHARE)
    clean = size - malformed - duplicates
    names = account_names(accounts)
    budgets = _allocate(clean, account_shares(accounts))
    mixes: dict[str, Mix] = {}
    accts = [Account(i + 1, names[i], budgets[i], i + 1, mixes) for i in range(accounts)]
    only_index = None
    if only is not None:
        if only not in names:
            raise ValueError(f"unknown account {only!r}: one of {names[0]}..{names[-1]}")
        only_index = names.index(only) + 1
    stream = _Stream(rng, world.Clock(month), size, clean, duplicates, malformed, only_index)
    drafts = Drafts(rng, month.end_ms)
    weights = world.hour_weights(month)
    cumulative = [w / sum(weights) for w in accumulate(weights)]
    top = {name: share for name, (share, _) in CATEGORIES.items()}
    last_hour = len(weights) - 1
    for hour, reached in enumerate(cumulative):
        hour_start = month.start_ms + hour * world.MS_PER_HOUR
        for a in accts:
            target = a.budget if hour == last_hour else min(a.budget, round(a.budget * reached))
            mix = a.mix("top", top)
            idle = 0
            while a.emitted < target and idle < 10_000:
                t = hour_start + rng.randrange(world.MS_PER_HOUR)
                category = mix.pick(rng)
                CATEGORIES[category][1](drafts, a, t)
                kept = stream.keep(drafts, a, a.budget - a.emitted)
                mix.record(category, kept)
                a.emitted += kept
                idle = 0 if kept else idle + 1
        yield from stream.flush(hour_start + world.MS_PER_HOUR)
    yield from stream.flush()


def generate(seed: int, size: int, period: str = "2026-10", accounts: int = 50) -> Iterator[str]:
    """``size`` JSON lines of the reference mix, deterministic for a seed."""
    for line in generate_lines(seed, size, period, accounts):
        yield line.text


def generate_for_account(
    seed: int, size: int, account: str, period: str = "2026-10", accounts: int = 50
) -> Iterator[str]:
    """The lines of one account in ``generate(seed, size, period, accounts)``, in order."""
    for line in generate_lines(seed, size, period, accounts, only=account):
        yield line.text


def write_jsonl(
    path: str | Path, seed: int, size: int, period: str = "2026-10", accounts: int = 50
) -> int:
    """Write the stream as JSON Lines; returns the number of lines written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for text in generate(seed, size, period, accounts):
            out.write(text)
            out.write("\n")
            count += 1
    return count
