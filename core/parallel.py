"""Running per-file work on every core, with progress, never stopped by one bad file."""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import TypeVar

from core.errors import BadInputError, Reason

_log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` as items finish."""

# Below this many items a process pool costs more than it saves.
MIN_ITEMS_FOR_POOL = 8
# Each worker gets about this many chunks, so progress moves and the load stays balanced.
CHUNKS_PER_WORKER = 8

_pools: dict[int, ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


def default_jobs() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _pool(jobs: int) -> ProcessPoolExecutor:
    """A warm pool of ``jobs`` workers, reused across calls (worker start-up and imports cost seconds).

    "forkserver": workers fork from a clean server process, so they inherit neither the
    caller's threads (Streamlit) nor libraries that dislike fork (TensorFlow).
    """
    with _pools_lock:
        pool = _pools.get(jobs)
        if pool is None:
            pool = ProcessPoolExecutor(
                max_workers=jobs, mp_context=get_context("forkserver"), initializer=_start_worker,
                initargs=(os.getpid(),),
            )  # fmt: skip
            _pools[jobs] = pool
        return pool


PARENT_CHECK_S = 1.0  # how often a worker looks whether the process that started it is still alive


def _start_worker(parent_pid: int) -> None:
    """Set a new worker up: one BLAS thread, and an end when its parent ends.

    A parent killed with SIGKILL (a closed tab's server, ``kill -9``) cannot stop its pool; its workers
    then exit by themselves within ``PARENT_CHECK_S`` instead of lingering as orphans.
    """
    _one_thread_per_worker()
    watch = threading.Thread(target=_exit_with, args=(parent_pid, os.getppid()), daemon=True, name="parent-watch")
    watch.start()


def _exit_with(parent_pid: int, server_pid: int) -> None:
    """Exit once the parent is gone, or the fork server that spawned this worker is (it ends with the parent)."""
    while _alive(parent_pid) and os.getppid() == server_pid:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - alive, but another user's (pid reused): treat as gone
        return False
    return True


def _one_thread_per_worker() -> None:
    """Workers already use every core between them; nested BLAS/OpenMP threads would only fight."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def _discard_pool(jobs: int) -> None:
    with _pools_lock:
        pool = _pools.pop(jobs, None)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def shutdown_pools() -> None:
    """Stop every warm worker pool."""
    for jobs in list(_pools):
        _discard_pool(jobs)


def _guarded(func: Callable[[T], R], item: T) -> R | BadInputError:
    try:
        return func(item)
    except BadInputError as exc:
        return exc
    except Exception as exc:  # a bug met on one item must not stop the batch; it is reported, not blamed on the file
        _log.exception("unexpected error while processing %s", item)
        detail = f"unexpected {type(exc).__name__} while processing it (a bug, not a fault of the file): {exc}"
        return BadInputError(Reason.UNEXPECTED, detail, str(item))


def _guarded_chunk(func: Callable[[T], R], chunk: list[tuple[int, T]]) -> list[tuple[int, R | BadInputError]]:
    return [(index, _guarded(func, item)) for index, item in chunk]


def _chunks(items: Sequence[T], jobs: int) -> list[list[tuple[int, T]]]:
    size = max(1, math.ceil(len(items) / (jobs * CHUNKS_PER_WORKER)))
    indexed = list(enumerate(items))
    return [indexed[start : start + size] for start in range(0, len(indexed), size)]


def map_guarded(
    func: Callable[[T], R],
    items: Sequence[T],
    *,
    n_jobs: int | None = None,
    progress: Progress | None = None,
) -> Iterator[tuple[int, R | BadInputError]]:
    """Apply ``func`` to each item on ``n_jobs`` processes (default: all cores).

    Yields ``(index, result)`` as items finish (not in order); a failing item yields
    the :class:`BadInputError` instead of a result, so one bad file never stops the
    rest.  ``func`` must be picklable (a module-level function or a ``partial`` of one).
    If a worker dies (killed, out of memory), what is left is finished in this process.
    """
    total = len(items)
    jobs = min(n_jobs or default_jobs(), total)
    done = 0
    if progress:
        progress(0, total)
    pending = list(enumerate(items))
    if jobs > 1 and total >= MIN_ITEMS_FOR_POOL:
        finished: set[int] = set()
        try:
            pool = _pool(jobs)
            futures = [pool.submit(_guarded_chunk, func, chunk) for chunk in _chunks(items, jobs)]
            for future in as_completed(futures):
                for index, result in future.result():
                    finished.add(index)
                    yield index, result
                done = len(finished)
                if progress:
                    progress(done, total)
            return
        except BrokenProcessPool:
            _discard_pool(jobs)
            pending = [(index, item) for index, item in pending if index not in finished]
    for index, item in pending:
        yield index, _guarded(func, item)
        done += 1
        if progress:
            progress(done, total)
