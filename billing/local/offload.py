"""Invoice PDFs rendered in a worker process, locally.

On AWS every RateAccount of the close's Map runs in its own Lambda sandbox; the embedded
runtime runs them all in one interpreter, where rendering an invoice's PDF (fpdf2's line
breaking, ~0.3-2 s of CPU per invoice of 50-400 lines, about half that since its tables
are drawn line by line) took about half of the close's CPU and held the interpreter that
answers every other request. Rendering is a pure function of the invoice (no I/O, no
clock: ``billing.documents.render.invoice_pdf``), so the runtime hands it to a worker
process on another core and waits for the bytes, which are the same bytes (the same code
on the same invoice; ``tests/local/test_offload.py``).

``install()`` (``LocalAws.deploy``, once the handlers are imported) points the ``pdf``
entry of ``billing.finance.RENDERERS`` at the workers; ``uninstall()`` (``LocalAws.stop``)
puts the original back. Workers: ``BILLING_LOCAL_RENDER_WORKERS`` (default one per core
beyond the first, at most 2; ``0``: render in process). A worker is a plain
``python billing/local/pdf_worker.py`` (it imports the renderer only), started on first
use and kept for the process (not ``multiprocessing``, which would run the caller's
``__main__`` script again in it): it reads pickled invoices on stdin and writes the PDFs
on stdout, and exits when its stdin closes (the runtime's process ended, even by ``kill
-9``). A worker that fails is
dropped and that invoice rendered in process; an error of the renderer itself is raised
as it would have been in process.
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from billing.local.pdf_worker import HEADER as _HEADER

Render = Callable[[Any], bytes]

_WORKER = Path(__file__).with_name("pdf_worker.py")
_ROOT = Path(__file__).resolve().parents[2]  # the directory of the ``billing`` package

_lock = threading.Lock()
_idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
_started = 0  # workers alive (idle or busy)
_saved: list[tuple[dict[str, Render], str, Render]] = []


def workers() -> int:
    """How many worker processes render PDFs (0: none, in process)."""
    given = os.environ.get("BILLING_LOCAL_RENDER_WORKERS")
    if given is not None and given.strip():
        return max(0, int(given))
    return min(2, max(0, (os.cpu_count() or 1) - 1))


class WorkerFailed(Exception):
    """The worker process did not answer (it died or could not start)."""


def _read(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise WorkerFailed("worker closed its output")
    return data


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
            [sys.executable, str(_WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # quiet: a renderer's error comes back with its answer, a crash as a failure
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=str(_ROOT),
        )

    def render(self, invoice: Any) -> bytes:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None
        assert stdout is not None
        request = pickle.dumps(invoice, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            stdin.write(_HEADER.pack(0, len(request)) + request)
            stdin.flush()
            status, size = _HEADER.unpack(_read(stdout, _HEADER.size))
            body = _read(stdout, size)
        except (OSError, ValueError) as err:
            raise WorkerFailed(str(err)) from err
        if status == 0:
            return body
        raise pickle.loads(body)  # noqa: S301 - our own worker's answer

    def close(self) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()


def _take() -> _Worker | None:
    """An idle worker, a new one while fewer than ``workers()`` run, else the next one
    freed (``None``: no workers)."""
    global _started
    try:
        return _idle.get_nowait()
    except queue.Empty:
        pass
    with _lock:
        start = _started < workers()
        if start:
            _started += 1
    if start:
        try:
            return _Worker()
        except OSError:
            with _lock:
                _started -= 1
            return None
    if workers() == 0:
        return None
    return _idle.get()


def _drop(worker: _Worker) -> None:
    global _started
    with _lock:
        _started -= 1
    worker.close()


def offloaded(render: Render) -> Render:
    """``render`` (the in-process renderer) run in a worker when there is one."""

    def pdf(invoice: Any) -> bytes:
        worker = _take()
        if worker is None:
            return render(invoice)
        try:
            body = worker.render(invoice)
        except WorkerFailed:
            _drop(worker)
            return render(invoice)
        except BaseException:
            _idle.put(worker)  # the renderer's own error: the worker is fine
            raise
        _idle.put(worker)
        return body

    pdf.offloads = render  # type: ignore[attr-defined]
    return pdf


def install() -> None:
    """Route ``billing.finance``'s PDF rendering (as imported by the handlers) to the
    workers; idempotent."""
    finance = sys.modules.get("billing.finance")
    renderers: dict[str, Render] | None = getattr(finance, "RENDERERS", None)
    if renderers is None or "pdf" not in renderers or workers() == 0:
        return
    current = renderers["pdf"]
    if hasattr(current, "offloads"):
        return
    _saved.append((renderers, "pdf", current))
    renderers["pdf"] = offloaded(current)


def uninstall() -> None:
    """Put the in-process renderers back (the workers stay for the next runtime)."""
    while _saved:
        renderers, name, original = _saved.pop()
        renderers[name] = original


def shutdown() -> None:
    """Stop the idle workers (tests; the end of the process does it otherwise)."""
    while True:
        try:
            worker = _idle.get_nowait()
        except queue.Empty:
            return
        _drop(worker)
