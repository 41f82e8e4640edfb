"""Invoice PDFs rendered in a worker process by the local runtime: the same bytes as in
process, from another process; installed into ``billing.finance`` and put back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

import billing.finance
from billing.documents.render import invoice_pdf
from billing.local import offload
from tests.rating.test_documents_localized import finance_invoice


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("BILLING_LOCAL_RENDER_WORKERS", "1")
    offload.shutdown()
    try:
        yield
    finally:
        offload.uninstall()
        offload.shutdown()


def test_a_pdf_rendered_in_the_worker_is_the_pdf_rendered_in_process(worker: None) -> None:
    pids: list[int] = []

    def in_process(inv: Any) -> bytes:
        pids.append(os.getpid())
        return invoice_pdf(inv)

    for language in ("en", "ko"):  # the Korean one embeds the CJK font
        inv = finance_invoice(language)
        assert offload.offloaded(in_process)(inv) == invoice_pdf(inv)
    assert pids == []  # never rendered here: the worker did


def test_a_renderer_error_is_raised_and_a_dead_worker_is_replaced(worker: None) -> None:
    inv = finance_invoice("en")
    render = offload.offloaded(invoice_pdf)
    with pytest.raises(AttributeError):  # what invoice_pdf(None) raises in process
        render(None)
    first = render(inv)
    (alive,) = list(offload._idle.queue)
    alive.process.kill()
    alive.process.wait()
    assert render(inv) == first  # rendered in process, the dead worker dropped
    assert list(offload._idle.queue) == []
    assert render(inv) == first  # by a new worker
    assert len(offload._idle.queue) == 1


def test_install_routes_the_finance_renderer_and_uninstall_puts_it_back(worker: None) -> None:
    original = billing.finance.RENDERERS["pdf"]
    offload.install()
    offload.install()  # idempotent
    routed = billing.finance.RENDERERS["pdf"]
    assert routed is not original
    assert getattr(routed, "offloads", None) is original
    offload.uninstall()
    assert billing.finance.RENDERERS["pdf"] is original


def test_without_workers_nothing_is_routed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_LOCAL_RENDER_WORKERS", "0")
    original = billing.finance.RENDERERS["pdf"]
    offload.install()
    assert billing.finance.RENDERERS["pdf"] is original
    assert offload.offloaded(lambda inv: b"here")(None) == b"here"
