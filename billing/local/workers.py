"""Lambda functions run in worker processes, locally.

On AWS every function runs in sandboxes of its own, beside the services it calls. The
embedded runtime runs every handler in its interpreter, which also answers every request
(moto): ingest kept one core busy with the handler's own work (validation,
classification, botocore's serializing and parsing) and moto's answers together, while
the other core idled; the close's units did the same. With function workers the SQS
pollers hand their batches, and Lambda's Invoke API (Step Functions' tasks: the close's)
its invocations, to worker processes (``billing/local/function_worker.py``: the same
handler, context and error payloads); a worker's AWS requests come back over its pipe and
are answered here by the runtime's own application, as an in-process call is (no HTTP, no
signing: over the socket, answering a worker cost the runtime more than the worker saved
it). The handlers' own work then runs on another core: two pollers per SQS mapping keep
both busy (while one worker computes a batch, the runtime answers the other's requests),
and the invoked functions share one pool (``Pool``) of ``INVOKED_WORKERS`` workers (a
Map's other iterations wait for one).

The SQS and stream mappings' workers start when the stack is deployed, their handlers
imported (a cold start takes about a second: not in the first batches, whose visibility
timeout runs); the invoked functions' pool starts in the background meanwhile
(``warm_later``: not in the close's first tasks). Workers are kept for
the runtime; a worker exits when its stdin closes (the runtime ended, even by
``kill -9``). A worker that cannot import its handler at the start stops the runtime's start
(``WorkerStartError``). A worker found ended while idle is replaced; one that dies during
an invocation makes it a function error, as a crashed sandbox does (the batch comes back
after its visibility timeout; a task fails, and its Retry and Catch apply). The function
of a stream the runtime reads (the live view) runs in ``STREAM_LANES`` workers, its
records split by key owner, as AWS splits a stream into shards: while one computes, the
runtime answers the other's requests. ``LocalAws.invoke`` stays in the runtime's process.
``billing demo`` and ``billing local start`` use workers; ``LocalAws`` does not unless
asked (tests patch handlers in process); ``BILLING_LOCAL_FUNCTION_WORKERS`` (``1``/``0``)
overrides both.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from billing.local.dispatch import RegisteredFunction, function_name_of
from billing.local.function_worker import read_message, serve, write_message

_SCRIPT = Path(__file__).with_name("function_worker.py")

#: SQS pollers per mapping when its function runs in workers (one worker each)
POLLERS_PER_MAPPING = 2
#: invocations at once (lanes, one worker each) of the function of a stream the runtime reads:
#: each key owner's records in one lane (``billing.local.streams.partitioned``)
STREAM_LANES = 2
#: the pool of the functions invoked through Lambda's API (the close's tasks: one asset),
#: and its workers: at most that many of their invocations at once run, the others wait
INVOKED = "invoked"
INVOKED_WORKERS = 3


class Invoker(Protocol):
    """What the pollers invoke functions through (``LambdaDispatcher``,
    ``FunctionWorkers``)."""

    def lookup(self, name_or_arn: str) -> RegisteredFunction | None: ...

    def invoke_payload(
        self, name_or_arn: str, payload: bytes | str | None
    ) -> tuple[bytes, bool]: ...


def enabled(default: bool) -> bool:
    """Whether SQS-triggered functions run in workers: ``BILLING_LOCAL_FUNCTION_WORKERS``
    (``1`` or ``0``) when set, else ``default``."""
    value = os.environ.get("BILLING_LOCAL_FUNCTION_WORKERS")
    return default if value is None else value != "0"


class WorkerEnded(Exception):
    pass


class WorkerStartError(RuntimeError):
    """A function's worker could not import its handler: the runtime does not start (its
    batches would only fail until they reached the dead-letter queue)."""


class _Worker:
    def __init__(
        self, pool: str, code_root: Path, endpoint_url: str, log_file: Path | None
    ) -> None:
        self.pool = pool
        # -: the runtime's stderr; a path resolved here, as the worker runs in code_root
        log = "-" if log_file is None else str(Path(log_file).resolve())
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
            [sys.executable, str(_SCRIPT), str(code_root), endpoint_url, log],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=str(code_root),
        )

    def invoke(
        self, app: Any, function: Any, payload: bytes | str | None, kind: str = "invoke"
    ) -> tuple[bytes, bool]:
        """Invokes ``function`` in the worker (``register``: imports it only), answering
        its requests with ``app``."""
        to_worker, from_worker = self.process.stdin, self.process.stdout
        assert to_worker is not None
        assert from_worker is not None
        try:
            write_message(to_worker, (kind, function, payload))
            while (message := read_message(from_worker)) is not None:
                if message[0] == "result":
                    return bytes(message[1]), bool(message[2])
                _, environ, body = message
                status, headers, content = serve(app, environ, body)
                write_message(to_worker, ("response", status, headers, content))
        except (OSError, ValueError) as error:
            raise WorkerEnded(str(error)) from error
        raise WorkerEnded(f"exit code {self.process.poll()}")

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True)
class Pool:
    """Worker processes shared by ``functions`` (their handlers' code is one asset: a
    worker imports each handler at its first invocation, the shared modules once), at most
    ``workers`` of them, so at most that many of their invocations at once."""

    functions: frozenset[str]
    workers: int


class FunctionWorkers:
    """Invokes the functions of ``pools`` in worker processes whose requests ``app``
    answers (a function's invocations wait for a worker of its pool), and every other
    function through ``dispatcher``."""

    def __init__(
        self,
        dispatcher: Invoker,
        pools: dict[str, Pool],
        *,
        app: Any,
        code_root: Path,
        endpoint_url: str,
        log_file: Path | None,
    ) -> None:
        self.dispatcher = dispatcher
        self.pools = pools
        self._pool_of = {name: key for key, pool in pools.items() for name in pool.functions}
        self.names = set(self._pool_of)
        self.app = app
        self.code_root = code_root
        self.endpoint_url = endpoint_url
        self.log_file = log_file
        self._idle: dict[str, queue.LifoQueue[_Worker]] = {k: queue.LifoQueue() for k in pools}
        self._slots = {k: threading.BoundedSemaphore(p.workers) for k, p in pools.items()}
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self.started = 0  # workers started (a replaced one counts again)
        self.warming: threading.Thread | None = None  # warm_later's
        self._closed = False

    def warm(self, pools: Iterable[str] | None = None) -> None:
        """Starts the workers of ``pools`` (every pool's by default) and imports a handler
        of theirs in each (a cold start takes about a second: not in the first batches,
        whose visibility timeout runs); raises ``WorkerStartError`` if one cannot start.
        The others start at their first invocation."""
        started = []
        for key in self.pools if pools is None else pools:
            function = self._a_function_of(key)
            if function is None:
                continue
            for _ in range(self.pools[key].workers):
                started.append((key, self._start(key), function))

        # the workers import their handlers side by side (each answered in its own thread)
        with concurrent.futures.ThreadPoolExecutor(max(1, len(started))) as pool:
            outcomes = list(pool.map(lambda s: self._register(s[1], s[2]), started))
        for (key, worker, _), error in zip(started, outcomes, strict=True):
            if error is not None:
                self.close()
                raise WorkerStartError(
                    f"{key}: its worker process could not start ({error}); its traceback "
                    "is on the runtime's standard error or in its log file"
                ) from error
            self._idle[key].put(worker)

    def warm_later(self, pools: Iterable[str]) -> threading.Thread:
        """Starts the workers of ``pools`` in a thread, one after the other, each with a
        slot of its pool (an invocation that comes first takes a free one or starts its
        own): the first invocations then find them warm. A worker that cannot start is
        left to the invocation that needs one (which then fails as a sandbox would)."""

        def run() -> None:
            for key in pools:
                function = self._a_function_of(key)
                while function is not None and self._count(key) < self.pools[key].workers:
                    with self._slots[key]:
                        if self._count(key) >= self.pools[key].workers:
                            break
                        try:
                            worker = self._start(key)
                        except WorkerEnded:
                            return  # the pool is closing
                        if self._register(worker, function) is not None:
                            self._drop(worker)
                            break
                        self._idle[key].put(worker)

        self.warming = threading.Thread(target=run, name="warm-workers", daemon=True)
        self.warming.start()
        return self.warming

    def _register(self, worker: _Worker, function: Any) -> WorkerEnded | None:
        """Has ``worker`` import ``function``'s handler: why it could not, if it could not."""
        try:
            worker.invoke(self.app, function, None, kind="register")
        except WorkerEnded as error:
            return error
        return None

    def pids(self, pool: str) -> set[int]:
        """The process ids of pool ``pool``'s workers."""
        with self._lock:
            return {worker.process.pid for worker in self._all if worker.pool == pool}

    def _count(self, key: str) -> int:
        return len(self.pids(key))

    def _a_function_of(self, key: str) -> Any:
        for name in sorted(self.pools[key].functions):
            entry = self.dispatcher.lookup(name)
            if entry is not None:
                return entry.function
        return None

    def lookup(self, name_or_arn: str) -> RegisteredFunction | None:
        return self.dispatcher.lookup(name_or_arn)

    def invoke_payload(self, name_or_arn: str, payload: bytes | str | None) -> tuple[bytes, bool]:
        name = function_name_of(name_or_arn)
        entry = self.dispatcher.lookup(name_or_arn)
        if entry is None or name not in self.names:
            return self.dispatcher.invoke_payload(name_or_arn, payload)
        key = self._pool_of[name]
        with self._slots[key]:
            try:
                worker = self._take(key)
            except WorkerEnded as error:  # the runtime is stopping
                return _exit_error(name, error), True
            try:
                result = worker.invoke(self.app, entry.function, payload)
            except Exception as error:
                self._drop(worker)  # its exchange is broken off: never reused
                if not isinstance(error, WorkerEnded):
                    raise
                return _exit_error(name, error), True
            self._idle[key].put(worker)
            return result

    def _take(self, key: str) -> _Worker:
        """An idle worker of pool ``key`` that is still alive, or a new one."""
        while True:
            try:
                worker = self._idle[key].get_nowait()
            except queue.Empty:
                break
            if worker.process.poll() is None:
                return worker
            self._drop(worker)  # ended while idle: no invocation lost
        return self._start(key)

    def _start(self, pool: str) -> _Worker:
        worker = _Worker(pool, self.code_root, self.endpoint_url, self.log_file)
        with self._lock:
            closed = self._closed
            if not closed:
                self._all.append(worker)
                self.started += 1
        if closed:  # closed meanwhile: a worker started now would outlive the pool
            worker.close()
            raise WorkerEnded("the runtime is stopping")
        return worker

    def _drop(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        worker.close()

    def close(self) -> None:
        """Ends every worker; none starts after (a warm-up under way stops)."""
        with self._lock:
            self._closed = True
            workers, self._all = self._all, []
        for worker in workers:
            worker.close()
        if self.warming is not None and self.warming is not threading.current_thread():
            self.warming.join(timeout=30)


def _exit_error(name: str, error: WorkerEnded) -> bytes:
    """The error payload of an invocation whose worker process ended, as Lambda's."""
    document = {
        "errorMessage": f"{name}: its worker process ended ({error})",
        "errorType": "Runtime.ExitError",
        "requestId": str(uuid.uuid4()),
        "stackTrace": [],
    }
    return json.dumps(document).encode()
