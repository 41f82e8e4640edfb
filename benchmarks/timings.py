"""Calls and time by name, and moto's server timed per request: the profiles of the
embedded runtime (``local_ingest_profile.py``, ``local_close_profile.py``).

Importing it changes nothing (unlike ``common``, which sets the benchmarks' environment);
``time_moto_requests`` wraps moto's WSGI application, which answers every request of the
runtime, in-process or over HTTP.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any


class Timings:
    """Calls and seconds by key, from any thread, on ``clock`` (wall time by default;
    ``time.thread_time``: the CPU of the thread that made each call)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._lock = threading.Lock()
        self.clock = clock
        self.table: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def count(self, key: str, started: float) -> None:
        """One call of ``key`` that began at ``started`` (a reading of ``clock``)."""
        spent = self.clock() - started
        with self._lock:
            self.table[key][0] += 1
            self.table[key][1] += spent

    def clear(self) -> None:
        with self._lock:
            self.table.clear()

    def print(self, title: str, width: int = 40) -> None:
        """Most time first: key, calls, seconds, milliseconds per call."""
        print(f"{title}:")
        for key, (n, spent) in sorted(self.table.items(), key=lambda kv: -kv[1][1]):
            print(f"  {key:{width}s} {int(n):7,} {spent:9.2f} s {1000 * spent / n:9.2f} ms/call")


def time_moto_requests(
    timings: Timings, key_of: Callable[[dict[str, Any]], str], *more: Timings
) -> None:
    """Count every request moto's server answers under ``key_of(environ)`` in ``timings``
    and ``more`` (each on its own clock), for the rest of the process."""
    from moto.moto_server import werkzeug_app

    serve: Callable[..., Any] = werkzeug_app.DomainDispatcherApplication.__call__
    every = (timings, *more)

    def timed_request(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        started = [t.clock() for t in every]
        try:
            return serve(self, environ, start_response)
        finally:
            key = key_of(environ)
            for t, began in zip(every, started, strict=True):
                t.count(key, began)

    werkzeug_app.DomainDispatcherApplication.__call__ = timed_request  # type: ignore[method-assign]


class MotoCpu:
    """CPU time spent inside moto's in-process answers (``mock_aws``), by thread: on AWS
    that work is DynamoDB's and S3's, not the function's, and Lambda does not bill it.
    ``with MotoCpu() as moto:`` counts every request answered meanwhile;
    ``moto.of_thread()`` is the calling thread's total so far."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_thread: defaultdict[int, float] = defaultdict(float)
        self._original: Callable[..., Any] | None = None

    def of_thread(self, ident: int | None = None) -> float:
        with self._lock:
            return self.by_thread[threading.get_ident() if ident is None else ident]

    def total(self) -> float:
        with self._lock:
            return sum(self.by_thread.values())

    def __enter__(self) -> MotoCpu:
        from moto.core import botocore_stubber

        original: Callable[..., Any] = botocore_stubber.BotocoreStubber.__call__
        self._original = original

        def timed(stub: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return original(stub, event_name, request, **kwargs)
            finally:
                spent = time.thread_time() - started
                with self._lock:
                    self.by_thread[threading.get_ident()] += spent

        setattr(botocore_stubber.BotocoreStubber, "__call__", timed)  # noqa: B010
        return self

    def __exit__(self, *exc: object) -> None:
        from moto.core import botocore_stubber

        if self._original is not None:
            setattr(botocore_stubber.BotocoreStubber, "__call__", self._original)  # noqa: B010
