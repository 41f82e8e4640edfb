"""Shared test configuration: Hypothesis profiles (``ci`` is selected when ``CI`` is set)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# No timing checks: the suite runs on loaded 2-core machines, and speed is measured by
# benchmarks, not tests.
settings.register_profile(
    "dev", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
