"""protos.heap.settle: collect, freeze the survivors, raise the young threshold."""

from __future__ import annotations

import gc
import weakref

import pytest

from protos import heap


@pytest.fixture
def restore_gc():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.mark.usefixtures("restore_gc")
def test_settle_freezes_survivors_and_sets_thresholds():
    kept = [_Cycle() for _ in range(10)]
    frozen = heap.settle()
    # not `frozen == gc.get_freeze_count()`: a settle elsewhere (a thread an earlier test
    # left running) may have frozen again in between; both counts hold the survivors
    assert frozen > len(kept)
    assert gc.get_freeze_count() > len(kept)
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, *heap.OLDER_THRESHOLDS)
    assert all(gc.is_tracked(obj) for obj in kept)


@pytest.mark.usefixtures("restore_gc")
def test_a_later_settle_frees_cycles_made_unreachable_after_the_first():
    kept = _Cycle()
    alive = weakref.ref(kept)
    heap.settle()
    del kept  # a frozen cycle: reference counting cannot free it, no collection walks it
    gc.collect()
    assert alive() is not None
    heap.settle()
    assert alive() is None


@pytest.mark.usefixtures("restore_gc")
def test_settle_takes_the_young_threshold_of_the_process():
    heap.settle(heap.GATEWAY_YOUNG_THRESHOLD)
    assert gc.get_threshold() == (heap.GATEWAY_YOUNG_THRESHOLD, *heap.OLDER_THRESHOLDS)
