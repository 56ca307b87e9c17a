"""Running per-file work on every core, with progress, never stopped by one bad file."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import TypeVar

from core.errors import BadInputError, Reason

T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each item."""

# Below this many items a process pool costs more (interpreter start-up, imports) than it saves.
MIN_ITEMS_FOR_POOL = 8


def default_jobs() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _guarded(func: Callable[[T], R], item: T) -> R | BadInputError:
    try:
        return func(item)
    except BadInputError as exc:
        return exc
    except Exception as exc:  # a bug or an exotic file must not stop the batch; it is reported instead
        return BadInputError(Reason.CORRUPT, f"unexpected {type(exc).__name__}: {exc}", str(item))


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
    rest.  ``func`` must be a module-level function (it is pickled).
    """
    total = len(items)
    jobs = min(n_jobs or default_jobs(), total)
    if progress:
        progress(0, total)
    if jobs <= 1 or total < MIN_ITEMS_FOR_POOL:
        yield from _serial(func, items, progress)
        return
    finished: set[int] = set()
    try:
        # "forkserver": workers fork from a clean server process, so they inherit neither
        # the caller's threads (Streamlit) nor libraries that dislike fork (TensorFlow).
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("forkserver")) as pool:
            futures = {pool.submit(_guarded, func, item): index for index, item in enumerate(items)}
            for future in as_completed(futures):
                index = futures[future]
                result = future.result()
                finished.add(index)
                yield index, result
                if progress:
                    progress(len(finished), total)
    except BrokenProcessPool:
        # A worker died (killed, out of memory): finish what is left here, one file at a time.
        rest = [index for index in range(total) if index not in finished]
        for position, (index, result) in enumerate(_serial(func, [items[i] for i in rest], None), start=1):
            yield rest[index], result
            if progress:
                progress(len(finished) + position, total)


def _serial(func: Callable[[T], R], items: Iterable[T], progress: Progress | None):
    items = list(items)
    for index, item in enumerate(items):
        yield index, _guarded(func, item)
        if progress:
            progress(index + 1, len(items))
