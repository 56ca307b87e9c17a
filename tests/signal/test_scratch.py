"""core.signal.scratch: one reused work buffer per name and thread, never one that pins a long clip's memory."""

from __future__ import annotations

import threading

import numpy as np

from core.signal.scratch import MAX_KEPT_BYTES, scratch


def test_the_same_name_on_one_thread_reuses_the_memory():
    first = scratch("test.a", (64, 32), np.float32)
    first[:] = 7.0
    again = scratch("test.a", (16, 8), np.float64)
    assert again.shape == (16, 8) and again.dtype == np.float64 and again.flags.c_contiguous
    assert np.shares_memory(first, again)
    assert not np.shares_memory(first, scratch("test.b", (64, 32), np.float32))


def test_a_larger_request_grows_the_buffer():
    small = scratch("test.grow", (10,), np.float32)
    large = scratch("test.grow", (100_000,), np.float32)
    assert large.size == 100_000 and not np.shares_memory(small, large)
    assert np.shares_memory(large, scratch("test.grow", (50,), np.float32))


def test_each_thread_has_its_own_buffer():
    mine = scratch("test.thread", (1024,), np.float32)
    theirs = []
    worker = threading.Thread(target=lambda: theirs.append(scratch("test.thread", (1024,), np.float32)))
    worker.start()
    worker.join()
    assert not np.shares_memory(mine, theirs[0])


def test_a_request_over_the_limit_is_fresh_and_not_kept():
    kept = scratch("test.limit", (1024,), np.uint8)
    huge = scratch("test.limit", (MAX_KEPT_BYTES + 1,), np.uint8)
    assert huge.nbytes == MAX_KEPT_BYTES + 1 and not np.shares_memory(kept, huge)
    assert np.shares_memory(kept, scratch("test.limit", (1024,), np.uint8))
