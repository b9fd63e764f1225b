"""In-process queue: N worker coroutines take task ids in order; the DB row is the source of truth.

Durability comes from the task table, not from this queue: on start, running tasks resume
(polling a recorded upstream submission, or re-running one that never submitted) and queued
tasks are enqueued again in creation order.
"""

from __future__ import annotations

import asyncio
import logging

from imagegate.engine.runner import Engine

log = logging.getLogger("imagegate.queue")


class LocalQueue:
    def __init__(self, engine: Engine, concurrency: int = 16) -> None:
        self.engine = engine
        self.concurrency = max(1, concurrency)
        self._queue: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        # FIFO tickets: a waiting task's position is its ticket minus the tickets already taken
        self._tickets: dict[str, int] = {}
        self._issued = 0
        self._taken = 0

    async def start(self) -> None:
        running, queued = await self.engine.recoverable()
        for task_id in running:
            self._put(task_id, True)
        for task_id in queued:
            self._put(task_id, False)
        if running or queued:
            log.info("recovered %d running and %d queued tasks", len(running), len(queued))
        self._workers = [asyncio.create_task(self._work(), name=f"imagegate-worker-{i}")
                         for i in range(self.concurrency)]

    async def enqueue(self, task_id: str) -> None:
        self._put(task_id, False)

    def _put(self, task_id: str, resume: bool) -> None:
        self._tickets[task_id] = self._issued
        self._issued += 1
        self._queue.put_nowait((task_id, resume))

    def position(self, task_id: str) -> int | None:
        """Tasks ahead of this one in this process's queue (None: not waiting here)."""
        ticket = self._tickets.get(task_id)
        return None if ticket is None else max(0, ticket - self._taken)

    async def _work(self) -> None:
        while True:
            task_id, resume = await self._queue.get()
            self._tickets.pop(task_id, None)
            self._taken += 1
            try:
                await asyncio.create_task(self.engine.run(task_id, resume=resume))
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise  # we are being stopped
            except Exception:
                log.exception("worker failed on task %s", task_id)
            finally:
                self._queue.task_done()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def stop(self) -> None:
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
