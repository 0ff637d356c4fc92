"""The function kit leaves its startup heap out of later garbage collections."""

from __future__ import annotations

import gc

from shared.web import YOUNG_GENERATION, prepare_heap_for_serving


def test_the_startup_heap_is_frozen_and_young_objects_collected_less_often():
    assert gc.get_freeze_count() == 0
    thresholds = gc.get_threshold()
    try:
        prepare_heap_for_serving()
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold() == (YOUNG_GENERATION, *thresholds[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
