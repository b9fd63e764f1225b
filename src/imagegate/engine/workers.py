"""Tasks run by procrastinate workers on PostgreSQL, in any number of processes.

A queued task's job is deferred in the task's own create transaction (:attr:`JobQueue.defer`),
so the two commit together. Workers take jobs with row locks and heartbeat; a worker that
dies leaves its jobs stalled, and every worker's maintenance loop puts them back, together
with any running task whose owning process is gone (a sync request whose API process died,
say); the runner then decides what may be done again (:meth:`Runner.run`). A cancel asks the
worker that runs the job to abort it. A process with ``concurrency=0`` (``serve --workers 0``)
only defers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from procrastinate import exceptions as jobs_errors

from imagegate.db.jobs import QUEUE, RUN_TASK, JobStore
from imagegate.db.tables import Task
from imagegate.db.tasks import Defer, TaskStore
from imagegate.domain import ImageRequest
from imagegate.engine.liveness import Liveness
from imagegate.engine.runner import Runner

log = logging.getLogger("imagegate.workers")


class JobQueue:
    def __init__(
        self,
        jobs: JobStore,
        runner: Runner,
        store: TaskStore,
        liveness: Liveness,
        *,
        concurrency: int,
        stale_after: float,
        sweep_every: float = 10.0,
        drain_timeout: float = 30.0,
    ) -> None:
        self.jobs = jobs
        self.runner = runner
        self.store = store
        self.liveness = liveness
        self.concurrency = concurrency
        self.stale_after = stale_after
        self.sweep_every = sweep_every
        self.drain_timeout = drain_timeout
        self._worker: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        if concurrency > 0:
            jobs.app.task(name=RUN_TASK, queue=QUEUE)(self._run_job)

    @property
    def defer(self) -> Defer:
        return self.jobs.defer

    async def _run_job(self, task_id: str) -> None:
        await self.runner.run(task_id)

    async def start(self) -> None:
        await self.jobs.open()
        if self.concurrency <= 0:
            return
        run = self.jobs.app.run_worker_async(
            queues=[QUEUE],
            concurrency=self.concurrency,
            name=self.liveness.me(),
            install_signal_handlers=False,
            delete_jobs="successful",
            update_heartbeat_interval=min(10.0, self.stale_after / 3),
            stalled_worker_timeout=self.stale_after,
        )
        self._worker = asyncio.create_task(run, name="imagegate-job-worker")
        self._sweeper = asyncio.create_task(self._sweep(), name="imagegate-orphan-sweep")

    async def stop(self) -> None:
        """Drain: no new jobs; running ones get ``drain_timeout`` to finish, then are aborted (their
        tasks are taken over by another worker, which polls what they submitted)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self._worker is not None:
            self._worker.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(self._worker), self.drain_timeout)
            except (TimeoutError, asyncio.CancelledError):
                self._worker.cancel()  # a second cancel aborts the jobs still running
                await asyncio.gather(self._worker, return_exceptions=True)
        await self.jobs.close()

    async def enqueue(self, task_id: str) -> None:
        """A task queued outside a create transaction (its last upload arrived, or it was orphaned)."""
        with contextlib.suppress(jobs_errors.AlreadyEnqueued):
            await self.jobs.defer_now(task_id)

    async def reserve(self) -> bool:
        return False  # every queued task goes through a job: the engine, not this process, picks its worker

    def release(self) -> None:
        raise RuntimeError("JobQueue never reserves a slot")

    def run_claimed(self, task: Task, request: ImageRequest) -> None:
        raise RuntimeError("JobQueue never reserves a slot")

    async def position_of(self, task: Task) -> int | None:
        return await self.jobs.ahead_of(task.job_id) if task.job_id is not None else None

    async def abort(self, task: Task) -> None:
        self.runner.abort(task.id)
        if task.job_id is not None:
            await self.jobs.abort(task.job_id)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every)
            try:
                await self.jobs.retry_stalled(self.stale_after)
                running, _ = await self.store.recoverable(self.liveness.me())
                for task_id in running:
                    await self.enqueue(task_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("orphan sweep failed")
