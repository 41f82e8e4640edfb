"""What the runtime's pollers (SQS queues, DynamoDB streams) share: one daemon thread that
runs the poller's loop until stopped, and a busy flag set while a batch is being handled
(``drain`` waits for it to clear)."""

from __future__ import annotations

import threading


class PollingThread:
    """A poller's thread: ``start`` runs ``_run`` (which loops until ``_stop`` is set) in a
    daemon thread named ``thread_name``; ``_busy`` is set while a batch is handled."""

    def __init__(self, thread_name: str) -> None:
        self.thread_name = thread_name
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """True while a batch is being handled."""
        return self._busy.is_set()

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the loop to end (without waiting: several pollers stop at once)."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        """End the loop and wait for the thread (at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
