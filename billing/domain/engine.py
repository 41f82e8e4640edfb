"""The usage engine: facts of one account in, monthly usage figures out.

``monthly_usage(facts, period)`` is the reference: given every fact of one account that
can matter for a period (the period itself, a look-back before it from which window and
session state is rebuilt, and the lifecycle facts of entities), in any order and with
duplicates, it returns the same figures as the clean, in-order stream. Ingest stores facts;
the month-end close runs exactly this function per storage shard and merges the results
with ``Usage.merge`` (shards partition the end users, so the merge is exact).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from billing.domain.events import Envelope
from billing.domain.facts import Fact, Pseudonymize, identity, to_fact
from billing.domain.periods import UTC_ZONE, Period
from billing.domain.rules import RULES, Rule, run_rules
from billing.domain.settings import DEFAULT_SETTINGS, ContractSettings
from billing.domain.usage import Sink, Usage, unique_facts


def monthly_usage(
    facts: Iterable[Fact],
    period: Period,
    settings: ContractSettings = DEFAULT_SETTINGS,
    rules: Sequence[Rule] = RULES,
) -> Usage:
    """The usage of one account (or one shard of its end users) for ``period``.

    The period's bounds are those of its zone; a period given without one (UTC, no
    ``start_zone``) takes the contract's ``time_zone``. Callers that know the zone of the
    previous period (a zone change) pass the period zoned (``plan.zoned_period``)."""
    if period.zone == UTC_ZONE and period.start_zone is None:
        period = period.in_zone(settings.time_zone)
    usage = Usage(str(period))
    ordered = unique_facts(facts, period, settings.lookback_hours)
    run_rules(ordered, Sink(usage, period, settings), rules)
    return usage.compact()


def usage_of_events(
    events: Iterable[Envelope],
    period: Period,
    settings: ContractSettings = DEFAULT_SETTINGS,
    pseudonymize: Pseudonymize = identity,
) -> Usage:
    """Convenience for tests and the CLI: validated events straight to usage."""
    return monthly_usage((to_fact(e, pseudonymize) for e in events), period, settings)
