"""In-process queue: N worker coroutines take task ids in order; the DB row is the source of truth.

Durability comes from the task table, not from this queue: on start, running tasks resume
(polling a recorded upstream submission, or re-running one that never submitted) and queued
tasks are enqueued again in creation order.
"""

from __future__ import annotations

import asyncio
import logging

from imagegate.db.tables import Task
from imagegate.db.tasks import TaskStore
from imagegate.domain import ImageRequest
from imagegate.engine.runner import Runner

log = logging.getLogger("imagegate.queue")


class LocalQueue:
    def __init__(self, runner: Runner, store: TaskStore, concurrency: int = 16) -> None:
        self.runner = runner
        self.store = store
        self.concurrency = max(1, concurrency)
        self._queue: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._slots = asyncio.Semaphore(self.concurrency)  # tasks running at once, queued or started directly
        self._direct: set[asyncio.Task[None]] = set()
        # FIFO tickets: a waiting task's position is its ticket minus the tickets already taken
        self._tickets: dict[str, int] = {}
        self._issued = 0
        self._taken = 0

    async def start(self) -> None:
        running, queued = await self.store.recoverable()
        for task_id in running:
            self._put(task_id, True)
        for task_id in queued:
            self._put(task_id, False)
        if running or queued:
            log.info("recovered %d running and %d queued tasks", len(running), len(queued))
        self._workers = [
            asyncio.create_task(self._work(), name=f"imagegate-worker-{i}") for i in range(self.concurrency)
        ]

    async def enqueue(self, task_id: str) -> None:
        self._put(task_id, False)

    async def reserve(self) -> bool:
        """Take a run slot now if one is free and nobody waits: the task can then be created
        already claimed (one write fewer) and handed to :meth:`run_claimed`."""
        if self._queue.empty() and not self._slots.locked():
            await self._slots.acquire()  # free: returns without waiting
            return True
        return False

    def release(self) -> None:
        """Give back a reserved slot that was not used (the create failed)."""
        self._slots.release()

    def run_claimed(self, task: Task, request: ImageRequest) -> None:
        """Run a task created as running in a slot taken with :meth:`reserve` (its request still in memory)."""
        job = asyncio.create_task(self._run_direct(task, request), name=f"imagegate-task-{task.id}")
        self._direct.add(job)
        job.add_done_callback(self._direct.discard)

    async def _run_direct(self, task: Task, request: ImageRequest) -> None:
        try:
            await asyncio.create_task(self.runner.run(task.id, claimed=task, request=request))
        except asyncio.CancelledError:
            if _stopping():
                raise
        except Exception:
            log.exception("run of task %s failed", task.id)
        finally:
            self._slots.release()

    def _put(self, task_id: str, resume: bool) -> None:
        self._tickets[task_id] = self._issued
        self._issued += 1
        self._queue.put_nowait((task_id, resume))

    async def position_of(self, task: Task) -> int | None:
        """Tasks ahead of a queued one: this process's queue knows without a COUNT over the task table."""
        pos = self.position(task.id)
        return pos if pos is not None else await self.store.queued_ahead(task)

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
                async with self._slots:
                    await asyncio.create_task(self.runner.run(task_id, resume=resume))
            except asyncio.CancelledError:
                if _stopping():
                    raise
            except Exception:
                log.exception("worker failed on task %s", task_id)
            finally:
                self._queue.task_done()

    async def stop(self) -> None:
        jobs = [*self._workers, *self._direct]
        for w in jobs:
            w.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        self._workers = []


def _stopping() -> bool:
    """Whether this worker itself is being cancelled (the queue stops), not just the run it awaited."""
    me = asyncio.current_task()
    return me is not None and me.cancelling() > 0
