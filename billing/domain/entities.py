"""Entity state carried from one month to the next.

Recordings, numbers, named-user seats and SIMs live across months: a recording stored in
March still accrues storage days in October. Rather than reading an entity's whole history
at every close, the close keeps, at each period end, only the lifecycle facts that can still
change a later month (``carry_forward``), and the next close reads that carried state plus
the month's own facts. Each lifecycle strategy says what it needs (``carry``: the facts of
an entity's open holding; a SIM's first activation); an entity nothing needs is dropped.

An entity is carried as a *suffix* of its history: every fact from the earliest one any
rule needs. A suffix is safe for every lifecycle at once: a holding that ended before the
period end contributes nothing later, and once a closing fact is processed the suffix and
the whole history are in the same state. Carrying single facts is not: a SIM's first
activation, kept so that it is never charged twice, would re-open a SIM terminated since.

The reference is ``monthly_usage`` over the full history; the property tests check that,
for every later period, carried state + later facts give exactly the same usage.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from billing.domain.counting import Carries
from billing.domain.facts import ENTITY_FIELDS, Fact
from billing.domain.rules import RULES, Rule
from billing.domain.usage import fact_order, unique_by_id


class NotCarried(TypeError):
    """A rule selects lifecycle facts but its strategy cannot say what to carry."""


def _carriers(rules: Sequence[Rule]) -> Mapping[str, tuple[int, ...]]:
    """Lifecycle fact type -> the positions of the rules that select it."""
    out: dict[str, list[int]] = defaultdict(list)
    for n, r in enumerate(rules):
        types = {m.type for m in r.select} & ENTITY_FIELDS.keys()
        if not types:
            continue
        if not isinstance(r.strategy, Carries):
            raise NotCarried(f"{r.metric}: {type(r.strategy).__name__} has no carry()")
        for t in types:
            out[t].append(n)
    return {t: tuple(rs) for t, rs in out.items()}


def carry_forward(facts: Iterable[Fact], until: int, rules: Sequence[Rule] = RULES) -> list[Fact]:
    """The lifecycle facts before ``until`` (a period end) that later periods still need,
    in processing order. Period facts are not carried (they never matter after their
    period and its look-back)."""
    carriers = _carriers(rules)
    by_entity: dict[str, list[Fact]] = defaultdict(list)
    for f in unique_by_id(f for f in facts if f.entity is not None and f.at < until):
        by_entity[str(f.entity)].append(f)
    kept: list[Fact] = []
    for entity_facts in by_entity.values():
        entity_facts.sort(key=fact_order)
        applicable = sorted({n for f in entity_facts for n in carriers.get(f.type, ())})
        since: int | None = None
        for r in (rules[n] for n in applicable):
            selected = [f for f in entity_facts if any(m(f) for m in r.select)]
            for f in r.strategy.carry(selected):  # type: ignore[attr-defined]
                since = f.at if since is None else min(since, f.at)
        if since is not None:  # the entity's whole history from there on (see above)
            kept.extend(f for f in entity_facts if f.at >= since)
    return sorted(kept, key=fact_order)
