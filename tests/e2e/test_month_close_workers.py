"""The end-to-end month close of ``test_month_close`` again, with the functions in worker
processes as ``billing demo`` and ``billing local start`` run them: ingest in its workers,
the live view's stream in lanes (``billing.local.streams.partitioned``), the close's tasks
in the shared pool of invoked functions. Every figure, byte and reconciliation is the same.
"""

from __future__ import annotations

from billing.local import LocalAws
from tests.e2e.test_month_close import *  # noqa: F403

FUNCTION_WORKERS = True


def test_the_functions_ran_in_worker_processes(aws: LocalAws) -> None:
    assert aws.workers is not None
    used = {pool: aws.workers.pids(pool) for pool in aws.workers.pools}
    assert all(used.values()), used  # ingest, the live view and the close's tasks
