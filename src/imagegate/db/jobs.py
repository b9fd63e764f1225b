"""Task jobs on PostgreSQL through procrastinate: one job per queued task, in the task's own transaction.

The task row says what to do; the job says who runs it next. Deferring the job on the same
connection and in the same transaction as the task row and its credit reservation means a
task is never queued without its job, nor a job left without its task. Procrastinate's workers
take jobs with ``SELECT ... FOR UPDATE SKIP LOCKED``, heartbeat while they run them, and a job
whose worker stopped heartbeating is retried (see :mod:`imagegate.engine.workers`); a cancel
asks the worker that runs the job to abort it.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
import procrastinate
from psycopg import AsyncConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.database import Database, libpq_url

RUN_TASK = "imagegate.run_task"
RETRY_STALLED = "imagegate.retry_stalled_jobs"
QUEUE = "tasks"


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


class JobStore:
    def __init__(self, db: Database, *, pool_size: int = 4) -> None:
        self.db = db
        connector = procrastinate.PsycopgConnector(
            conninfo=libpq_url(db.url), min_size=1, max_size=pool_size, json_dumps=_dumps, json_loads=orjson.loads
        )
        self.app = procrastinate.App(connector=connector)

    async def open(self) -> None:
        await self.app.open_async()

    async def close(self) -> None:
        await self.app.close_async()

    async def defer(self, s: AsyncSession, task_id: str) -> int:
        """Queue the task's job in the session's transaction; the job id (its place in the queue)."""
        conn = await s.connection()
        raw = await conn.get_raw_connection()
        pg = cast(AsyncConnection[Any], raw.driver_connection)
        deferrer = self.app.configure_task(name=RUN_TASK, queue=QUEUE, queueing_lock=task_id, connection=pg)
        return await deferrer.defer_async(task_id=task_id)

    async def defer_now(self, task_id: str) -> int:
        """Queue a job for a task already committed (raises procrastinate's AlreadyEnqueued if one waits)."""
        deferrer = self.app.configure_task(name=RUN_TASK, queue=QUEUE, queueing_lock=task_id)
        return await deferrer.defer_async(task_id=task_id)

    async def abort(self, job_id: int) -> bool:
        """Cancel a job not started yet, or ask the worker running it to stop."""
        return await self.app.job_manager.cancel_job_by_id_async(job_id, abort=True)

    async def ahead_of(self, job_id: int) -> int:
        """Jobs waiting before this one in the task queue."""
        async with self.db.engine.connect() as conn:
            q = text("SELECT count(*) FROM procrastinate_jobs WHERE queue_name = :q AND status = 'todo' AND id < :id")
            return int((await conn.execute(q, {"q": QUEUE, "id": job_id})).scalar_one())

    async def retry_stalled(self, seconds_since_heartbeat: float) -> int:
        """Put the jobs of workers that stopped heartbeating back in the queue; how many."""
        stalled = list(
            await self.app.job_manager.get_stalled_jobs(
                queue=QUEUE, task_name=RUN_TASK, seconds_since_heartbeat=seconds_since_heartbeat
            )
        )
        for job in stalled:
            await self.app.job_manager.retry_job(job)
        return len(stalled)
