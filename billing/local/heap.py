"""Full garbage collections paced to a heap that only grows: moto's state.

The runtime's process keeps everything moto stores (items, messages, objects) as Python
objects: millions of them for a month of 100k events, nearly all alive until the runtime
stops. CPython (3.11) runs a full collection whenever its long-lived objects have grown by
a quarter since the last one, so it rescans the whole of moto's state again and again:
21 full collections and 14.5 s of the runtime's CPU in ``billing demo --events 100000
--accounts 100`` (docs/benchmarks.md, section 4), in the process that answers every
request.

While a :class:`LocalAws` runs, :class:`FullCollections` turns the automatic full
collections off and runs one itself when the oldest generation has doubled since the last
(checked every few seconds on a thread of its own): the same rule with a factor of two
instead of a quarter, so a growing heap is rescanned about twice in all instead of about
five times. The young generations are collected as before, where nearly all of a request's
cyclic garbage ends; what reaches the oldest generation waits at most for the next
doubling. :meth:`FullCollections.stop` restores the thresholds.
"""

from __future__ import annotations

import gc
import threading

NEVER = 2**31 - 1  # a gen-1 collection count the oldest generation's threshold never reaches


class FullCollections:
    """Automatic full collections off; one whenever the oldest generation doubles."""

    def __init__(self, *, growth: float = 2.0, floor: int = 250_000, every: float = 5.0) -> None:
        """``growth``: the factor by which the oldest generation grows between two full
        collections; ``floor``: below this many objects in it, none is run; ``every``:
        seconds between two checks."""
        self.growth = growth
        self.floor = floor
        self.every = every
        self.collections = 0
        self._baseline = 0
        self._saved: tuple[int, int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._saved is not None

    def start(self) -> None:
        if self._saved is not None:
            return
        self._saved = gc.get_threshold()
        gc.set_threshold(self._saved[0], self._saved[1], NEVER)
        self._baseline = len(gc.get_objects(generation=2))
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="full-collections", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._saved is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        gc.set_threshold(*self._saved)
        self._saved = None

    def check(self) -> bool:
        """Run a full collection if the oldest generation has doubled since the last one
        (or since :meth:`start`); returns whether it ran."""
        if len(gc.get_objects(generation=2)) < max(self.floor, self.growth * self._baseline):
            return False
        gc.collect()
        self.collections += 1
        self._baseline = len(gc.get_objects(generation=2))
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.check()


def freeze_loaded() -> None:
    """Move what a worker has loaded so far (modules, service models, schemas) out of the
    collector's reach: it lives as long as the worker, and every full collection rescanned
    it (about a tenth of a function worker's CPU in ``billing demo``). Garbage is collected
    first so none is kept."""
    gc.collect()
    gc.freeze()
