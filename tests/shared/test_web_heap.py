"""The function kit leaves its startup heap out of later garbage collections."""

from __future__ import annotations

import gc

from shared.web import freeze_startup_heap


def test_the_startup_heap_is_frozen_once_started():
    assert gc.get_freeze_count() == 0
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
