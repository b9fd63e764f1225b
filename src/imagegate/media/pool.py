"""A bounded pool for full image decodes, so concurrent big images queue instead of multiplying memory.

A decoded picture costs about width x height x 4 bytes however small its file was, and the work
around a decode (convert, resize, composite, encode) holds a few copies. Counting tasks bounds
none of that: ten 40-megapixel edits at once are ten times the memory of one. So work that
decodes holds a share of a *pixel* budget (its pixel count, capped at the whole budget) for as
long as it runs, and work that does not fit waits its turn, first come first served.

It waits on the pool's own threads: the event loop never blocks, and the default executor,
which storage and the database lean on, is never filled with waiters. Synchronous code already
on a worker thread can take a share directly (``DECODES.budget.hold``); nested holds on one
thread count once, so a helper that holds may call another that holds without deadlocking.

One pool per process (``DECODES``): memory is a per-process resource, and two pools would let
twice the budget in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: pixels decoding at once: one and a half images at the default 40-megapixel input limit
DEFAULT_BUDGET = 64_000_000
DEFAULT_WORKERS = 4


class PixelBudget:
    """A weighted, first-come-first-served semaphore counted in pixels (thread-safe, blocking)."""

    def __init__(self, pixels: int) -> None:
        if pixels <= 0:
            raise ValueError("the pixel budget must be positive")
        self.total = pixels
        self._free = pixels
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0  # strict arrival order: a big share is never overtaken forever by small ones
        self._local = threading.local()

    @property
    def in_use(self) -> int:
        with self._cond:
            return self.total - self._free

    @property
    def waiting(self) -> int:
        """Holds queued for their turn: a gauge worth exporting, and what tests wait on."""
        with self._cond:
            return self._next_ticket - self._serving

    def share(self, pixels: int) -> int:
        """What ``pixels`` costs: at least 1 (every decode counts), at most the whole budget (it runs alone)."""
        return max(1, min(int(pixels), self.total))

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Block until ``pixels`` fit, keep them for the ``with`` body; a nested hold on this thread is free."""
        if getattr(self._local, "depth", 0):
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        need = self.share(pixels)
        self._acquire(need)
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            self._release(need)

    def _acquire(self, need: int) -> None:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._cond.wait_for(lambda: self._serving == ticket and self._free >= need)
            self._free -= need
            self._serving += 1
            self._cond.notify_all()

    def _release(self, need: int) -> None:
        with self._cond:
            self._free += need
            self._cond.notify_all()


class DecodePool:
    """Run decoding work on a few threads of its own, each job under its share of a :class:`PixelBudget`."""

    def __init__(self, workers: int = DEFAULT_WORKERS, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = PixelBudget(budget)
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        # created on first use: importing media must not start threads (CLI commands, forked workers)
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="imagegate-decode")
            return self._executor

    async def run(self, pixels: int, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` off the event loop, once ``pixels`` fit in the budget.

        ``pixels`` is what the job decodes at its largest: the inputs' pixels read from their
        headers (``codecs.header_pixels``) plus the pixels it draws.
        """
        job = functools.partial(self._guarded, pixels, functools.partial(fn, *args, **kwargs))
        return await asyncio.get_running_loop().run_in_executor(self._pool(), job)

    def _guarded(self, pixels: int, job: Callable[[], T]) -> T:
        with self.budget.hold(pixels):
            return job()

    def shutdown(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None


DECODES = DecodePool()
