"""core.parallel.map_guarded: every item once, failures reported as BadInputError, serial or on a pool."""

from __future__ import annotations

import os

import pytest

import core.parallel
from core.errors import BadInputError, Reason
from core.parallel import MIN_ITEMS_FOR_POOL, map_guarded

# Module-level helpers: the pool pickles them by name, and its forkserver workers import this module.


def square_or_fail(x: int) -> int:
    """x squared; 3 -> BadInputError(silent), 5 -> an unexpected ZeroDivisionError."""
    if x == 3:
        raise BadInputError(Reason.SILENT, "nothing to hear", f"clip{x}.wav")
    if x == 5:
        return 1 // 0
    return x * x


def worker_pid(_: int) -> int:
    return os.getpid()


def die_in_worker(item: tuple[int, int]) -> tuple[int, int]:
    """Kills the worker process on value 3 (as an out-of-memory kill would); returns (value, pid) otherwise."""
    main_pid, value = item
    if value == 3 and os.getpid() != main_pid:
        os._exit(1)
    return value, os.getpid()


def _run(items, **kwargs) -> tuple[dict, list]:
    calls: list[tuple[int, int]] = []
    results: dict = {}

    def progress(done: int, total: int) -> None:
        assert done <= len(results), "progress counted items not yet yielded"
        calls.append((done, total))

    for index, result in map_guarded(square_or_fail, items, progress=progress, **kwargs):
        assert index not in results, f"index {index} yielded twice"
        results[index] = result
    return results, calls


def _check_square_results(items, results) -> None:
    assert sorted(results) == list(range(len(items)))
    for index, item in enumerate(items):
        result = results[index]
        if item == 3:
            assert isinstance(result, BadInputError)
            assert (result.reason, result.path, result.detail) == (Reason.SILENT, "clip3.wav", "nothing to hear")
        elif item == 5:
            assert isinstance(result, BadInputError)
            assert result.reason is Reason.UNEXPECTED and result.path == "5"  # a bug is not blamed on the file
            assert "ZeroDivisionError" in result.detail and "not a fault of the file" in result.detail
        else:
            assert result == item * item


def _check_progress(calls, total) -> None:
    """Starts at (0, total), never goes back, ends at (total, total) (it may step by more than one)."""
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert all(t == total for _, t in calls)


@pytest.mark.parametrize("n_jobs", [1, 4])
def test_serial_when_one_job_or_few_items(n_jobs):
    items = list(range(MIN_ITEMS_FOR_POOL - 1)) if n_jobs > 1 else list(range(12))
    results, calls = _run(items, n_jobs=n_jobs)
    _check_square_results(items, results)
    _check_progress(calls, len(items))
    assert [done for done, _ in calls] == list(range(len(items) + 1))  # serially: once per item


def test_serial_runs_in_this_process():
    pids = {result for _, result in map_guarded(worker_pid, list(range(12)), n_jobs=1)}
    assert pids == {os.getpid()}


def test_pool_yields_every_index_once_and_converts_failures():
    items = list(range(12))
    results, calls = _run(items, n_jobs=2)
    _check_square_results(items, results)
    _check_progress(calls, len(items))


def test_pool_runs_in_worker_processes():
    pids = {result for _, result in map_guarded(worker_pid, list(range(MIN_ITEMS_FOR_POOL)), n_jobs=2)}
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2


def test_dead_worker_falls_back_to_serial():
    items = [(os.getpid(), value) for value in range(10)]
    calls: list[int] = []
    results: dict = {}
    for index, result in map_guarded(die_in_worker, items, n_jobs=2, progress=lambda d, t: calls.append(d)):
        assert index not in results
        results[index] = result
    assert {index: value for index, (value, _) in results.items()} == {i: i for i in range(10)}
    assert results[3][1] == os.getpid()  # the item that killed its worker was finished here
    assert calls[0] == 0 and calls[-1] == 10 and calls == sorted(calls)


def test_empty_input_yields_nothing():
    calls = []
    assert list(map_guarded(square_or_fail, [], n_jobs=4, progress=lambda d, t: calls.append((d, t)))) == []
    assert calls == [(0, 0)]


def test_default_jobs_is_at_least_one():
    assert core.parallel.default_jobs() >= 1
