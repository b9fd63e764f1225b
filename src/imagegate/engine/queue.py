"""Who runs queued tasks next: the in-process queue of the embedded default, or the job engine.

The task row is the source of truth; a queue only says who runs a task next. The core needs
the small :class:`TaskQueue` surface; :class:`LocalQueue` implements it with N coroutines in
this process (SQLite), :class:`imagegate.engine.workers.JobQueue` with procrastinate workers
on PostgreSQL, in any number of processes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from imagegate.db.tables import Task
from imagegate.db.tasks import Defer, TaskStore
from imagegate.domain import ImageRequest
from imagegate.engine.liveness import Liveness
from imagegate.engine.runner import Runner

log = logging.getLogger("imagegate.queue")


class TaskQueue(Protocol):
    @property
    def defer(self) -> Defer | None:
        """Queues a task's job in the transaction that creates the task (None: :meth:`enqueue` after commit)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def enqueue(self, task_id: str) -> None:
        """Queue a task whose row is already committed as queued."""

    async def reserve(self) -> bool:
        """Take a free run slot for a task about to be created already claimed (False: queue it)."""
        ...

    def release(self) -> None:
        """Give back a reserved slot that was not used."""

    def run_claimed(self, task: Task, request: ImageRequest) -> None:
        """Run a task created claimed, in a slot taken with :meth:`reserve`."""

    async def position_of(self, task: Task) -> int | None:
        """Tasks ahead of a queued one."""
        ...

    async def abort(self, task: Task) -> None:
        """Stop a canceled task wherever it runs."""


def stopping() -> bool:
    """Whether the current asyncio task itself is being cancelled (the queue stops), not a run it awaited."""
    me = asyncio.current_task()
    return me is not None and me.cancelling() > 0


class LocalQueue:
    """N coroutines in this process take task ids in order.

    On start, queued tasks are queued again in creation order, and every running task whose
    process is gone is taken over (see :meth:`Runner.run`); a sweep repeats the take-over
    while the process lives, so nothing waits for a restart.
    """

    defer = None

    def __init__(
        self, runner: Runner, store: TaskStore, liveness: Liveness, concurrency: int = 16, sweep_every: float = 10.0
    ) -> None:
        self.runner = runner
        self.store = store
        self.liveness = liveness
        self.concurrency = max(1, concurrency)
        self.sweep_every = sweep_every
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._slots = asyncio.Semaphore(self.concurrency)  # tasks running at once, queued or started directly
        self._direct: set[asyncio.Task[None]] = set()
        # FIFO tickets: a waiting task's position is its ticket minus the tickets already taken
        self._tickets: dict[str, int] = {}
        self._issued = 0
        self._taken = 0

    async def start(self) -> None:
        running, queued = await self.store.recoverable(self.liveness.me())
        for task_id in [*running, *queued]:
            self._put(task_id)
        if running or queued:
            log.info("recovered %d running and %d queued tasks", len(running), len(queued))
        self._workers = [
            asyncio.create_task(self._work(), name=f"imagegate-worker-{i}") for i in range(self.concurrency)
        ]
        self._workers.append(asyncio.create_task(self._sweep(), name="imagegate-orphan-sweep"))

    async def enqueue(self, task_id: str) -> None:
        self._put(task_id)

    async def reserve(self) -> bool:
        """Take a run slot now if one is free and nobody waits: the task can then be created
        already claimed (one write fewer) and handed to :meth:`run_claimed`."""
        if self._queue.empty() and not self._slots.locked():
            await self._slots.acquire()  # free: returns without waiting
            return True
        return False

    def release(self) -> None:
        self._slots.release()

    def run_claimed(self, task: Task, request: ImageRequest) -> None:
        job = asyncio.create_task(self._run_direct(task, request), name=f"imagegate-task-{task.id}")
        self._direct.add(job)
        job.add_done_callback(self._direct.discard)

    async def _run_direct(self, task: Task, request: ImageRequest) -> None:
        try:
            await asyncio.create_task(self.runner.run(task.id, claimed=task, request=request))
        except asyncio.CancelledError:
            if stopping():
                raise
        except Exception:
            log.exception("run of task %s failed", task.id)
        finally:
            self._slots.release()

    def _put(self, task_id: str) -> None:
        if task_id in self._tickets:
            return  # already waiting here
        self._tickets[task_id] = self._issued
        self._issued += 1
        self._queue.put_nowait(task_id)

    async def position_of(self, task: Task) -> int | None:
        """This process's queue knows without a COUNT over the task table."""
        ticket = self._tickets.get(task.id)
        if ticket is not None:
            return max(0, ticket - self._taken)
        return await self.store.queued_ahead(task)

    async def abort(self, task: Task) -> None:
        self.runner.abort(task.id)

    async def _work(self) -> None:
        while True:
            task_id = await self._queue.get()
            self._tickets.pop(task_id, None)
            self._taken += 1
            try:
                async with self._slots:
                    await asyncio.create_task(self.runner.run(task_id))
            except asyncio.CancelledError:
                if stopping():
                    raise
            except Exception:
                log.exception("worker failed on task %s", task_id)
            finally:
                self._queue.task_done()

    async def _sweep(self) -> None:
        """Take over, while this process runs, the tasks of processes that stopped meanwhile."""
        while True:
            await asyncio.sleep(self.sweep_every)
            try:
                running, _ = await self.store.recoverable(self.liveness.me())
                for task_id in running:
                    self._put(task_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("orphan sweep failed")

    async def stop(self) -> None:
        jobs = [*self._workers, *self._direct]
        for w in jobs:
            w.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        self._workers = []
