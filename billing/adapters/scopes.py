"""Listings kept per thread while a scope is open (``FactArchive`` and ``StateStore``).

A close unit or a live stream batch reads many storage shards of one account; inside its
scope an adapter lists the account's objects once and answers each shard from that
listing. Per thread: the local runtime runs functions as threads of one process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Listings:
    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Listings kept until the outermost scope of this thread ends."""
        outer = self.current()
        if outer is None:
            self._local.listings = {}
        try:
            yield
        finally:
            if outer is None:
                self._local.listings = None

    def current(self) -> dict[Any, Any] | None:
        """This thread's listings, ``None`` outside a scope."""
        listings: dict[Any, Any] | None = getattr(self._local, "listings", None)
        return listings


__all__ = ["Listings"]
