"""Full collections paced to the runtime's growing heap (billing.local.heap)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from billing.local.heap import NEVER, FullCollections


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture
def full_collections() -> Iterator[list[int]]:
    """The generations of the collections run while the test runs."""
    seen: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(count)
    yield seen
    gc.callbacks.remove(count)


def long_lived(n: int) -> list[list[int]]:
    """``n`` tracked objects that survive into the oldest generation."""
    kept = [[i] for i in range(n)]
    gc.collect()
    return kept


def test_no_automatic_full_collection_while_it_runs_and_the_thresholds_restored(
    full_collections: list[int],
) -> None:
    before = gc.get_threshold()
    collections = FullCollections(every=3600)  # checked by hand below
    collections.start()
    try:
        assert gc.get_threshold() == (before[0], before[1], NEVER)
        full_collections.clear()
        kept = [[i] for i in range(300_000)]  # many young collections, none full
        assert 2 not in full_collections
        assert full_collections.count(0) > 10
    finally:
        collections.stop()
    assert gc.get_threshold() == before
    del kept


def test_a_full_collection_once_the_oldest_generation_has_doubled(
    full_collections: list[int],
) -> None:
    gc.collect()  # what earlier tests left is not counted as growth, nor freed below
    collections = FullCollections(floor=0, every=3600)
    collections.start()
    try:
        baseline = len(gc.get_objects(generation=2))
        kept = long_lived(baseline // 2)  # grown by half: not yet
        full_collections.clear()
        assert not collections.check()
        assert full_collections == []
        garbage = Node()
        kept += long_lived(baseline // 2 + 10_000)
        del garbage  # a cycle in the oldest generation: left until the next full collection
        assert any(type(o) is Node for o in gc.get_objects(generation=2))
        full_collections.clear()
        assert collections.check()
        assert full_collections == [2]
        assert not any(type(o) is Node for o in gc.get_objects())
        assert collections.collections == 1
        assert not collections.check()  # the baseline is now the doubled heap
    finally:
        collections.stop()
    del kept


def test_the_floor_spares_small_heaps() -> None:
    collections = FullCollections(floor=10**9, every=3600)
    collections.start()
    try:
        kept = long_lived(len(gc.get_objects(generation=2)) * 2)
        assert not collections.check()
    finally:
        collections.stop()
    del kept


def test_the_runtime_paces_full_collections_while_it_runs() -> None:
    from billing.local.runtime import LocalAws

    before = gc.get_threshold()
    with LocalAws() as aws:
        assert aws.full_collections.running
        assert gc.get_threshold()[2] == NEVER
    assert not aws.full_collections.running
    assert gc.get_threshold() == before
