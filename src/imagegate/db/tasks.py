"""Every SQL statement about tasks: insert, claim, handle and progress, terminal writes, pages, recovery.

Each task reaches exactly one terminal state: every terminal write is a conditional UPDATE from
a live state, and whatever must happen with it (the credit settlement, the output rows, the
webhook outbox row) rides in the same transaction as the write that won.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.database import Database, changed, lock, new_id
from imagegate.db.idempotency import IdempotencyStore
from imagegate.db.keys import refund, reserve
from imagegate.db.processes import ProcessStore
from imagegate.db.tables import Delivery, StoredFile, Task, Upload, utcnow
from imagegate.domain import ErrorCode, GatewayError, TaskStatus
from imagegate.observe import Metrics

LIVE = (TaskStatus.queued.value, TaskStatus.running.value, TaskStatus.awaiting_upload.value)
RUNNING = TaskStatus.running.value

# How far a running task got upstream (``Task.upstream["stage"]``), so a process taking it over knows
# what it may do again: a claimed task sent nothing to a poll-kind upstream (those record the
# submit first); a submitting one may have been accepted; a submitted one has a handle to poll.
CLAIMED, SUBMITTING, SUBMITTED = "claimed", "submitting", "submitted"


def stage_of(task: Task) -> str | None:
    up = task.upstream or {}
    if up.get("handle") is not None:
        return SUBMITTED
    return up.get("stage")


#: queues a task's job in the transaction that creates it (the job id comes back)
Defer = Callable[[AsyncSession, str], Awaitable[int]]


def _apply(task: Task, values: dict[str, Any]) -> None:
    """Mirror a committed UPDATE on the in-memory row, so callers need not read it back."""
    for k, v in values.items():
        setattr(task, k, v)


def outbox(s: AsyncSession, task: Task) -> None:
    """Schedule the task's webhook in the transaction that gives it its terminal state."""
    if task.callback_url:
        now = utcnow()
        s.add(
            Delivery(
                id=new_id("msg"),
                task_id=task.id,
                key_id=task.key_id,
                url=task.callback_url,
                payload="",
                status="pending",
                attempts=0,
                next_at=now,
                created_at=now,
            )
        )


class TaskStore:
    def __init__(self, db: Database, processes: ProcessStore, metrics: Metrics | None = None) -> None:
        """``metrics`` counts each terminal write that wins (here, the one place every task ends)."""
        self.db = db
        self.processes = processes
        self.metrics = metrics or Metrics()

    async def create(
        self,
        task: Task,
        inputs: Sequence[StoredFile],
        uploads: Sequence[Upload] = (),
        claim: int | None = None,
        defer: Defer | None = None,
        max_live: int | None = None,
        budget: int | None = None,
    ) -> None:
        """One transaction: reserve the task's credits, add it with its stored inputs and upload slots,
        bind the Idempotency-Key claim it answers (a replay then finds the task, never a half), and,
        with ``defer``, queue its job on the same connection (a job never outlives or misses its task).
        ``max_live`` and ``budget`` (micro-dollars a month) are the key's limits, checked under its lock."""
        async with self.db.session.begin() as s:
            if max_live is not None:
                await _admit_live(s, task.key_id, max_live)
            if budget is not None:  # keys without a budget pay no query for it
                await _within_budget(s, task.key_id, budget, task.reserved_micros)
            if not await reserve(s, task.key_id, task.reserved_micros):
                cost = task.reserved_micros / 1e6
                raise GatewayError(
                    ErrorCode.insufficient_credits, f"insufficient credits: this request costs ${cost:.4f}"
                )
            s.add_all(inputs)
            s.add(task)
            for up in uploads:
                up.task_id = task.id
                s.add(up)
            if claim is not None:
                await IdempotencyStore.bind(s, claim, task.id)
            if defer is not None:
                await s.flush()
                task.job_id = await defer(s, task.id)

    # -- reads ------------------------------------------------------------------------------
    async def get(self, task_id: str, key_id: str | None = None) -> Task | None:
        q = select(Task).where(Task.id == task_id)
        if key_id is not None:
            q = q.where(Task.key_id == key_id)
        async with self.db.session() as s:
            return (await s.execute(q)).scalar_one_or_none()

    async def is_terminal(self, task_id: str) -> bool:
        async with self.db.session() as s:
            st = (await s.execute(select(Task.status).where(Task.id == task_id))).scalar_one_or_none()
        return st is None or TaskStatus(st).terminal

    async def page(
        self, key_id: str, *, statuses: Sequence[str] | None, limit: int, after: str | None, model: str | None = None
    ) -> tuple[list[Task], bool]:
        """A page of the key's tasks (of one model when given), newest first, and whether more follow."""
        q = select(Task).where(Task.key_id == key_id)
        if statuses:
            q = q.where(Task.status.in_(statuses))
        if model:
            q = q.where(Task.model == model)
        async with self.db.session() as s:
            if after:
                anchor_q = select(Task.seq, Task.id).where(Task.id == after, Task.key_id == key_id)
                anchor = (await s.execute(anchor_q)).one_or_none()
                if anchor is None:
                    raise GatewayError.bad(
                        "after", f"'after' must be a task id from a previous page; no task '{after}'"
                    )
                q = q.where(or_(Task.seq < anchor.seq, and_(Task.seq == anchor.seq, Task.id < anchor.id)))
            rows = list((await s.execute(q.order_by(Task.seq.desc(), Task.id.desc()).limit(limit + 1))).scalars())
        return rows[:limit], len(rows) > limit

    async def queued_ahead(self, task: Task) -> int:
        async with self.db.session() as s:
            q = (
                select(func.count())
                .select_from(Task)
                .where(Task.status == TaskStatus.queued.value, Task.seq < task.seq)
            )
            return int((await s.execute(q)).scalar_one())

    async def count_live(self) -> dict[str, int]:
        """Tasks per live state, all processes' (the metrics' queue depth; ``status`` is indexed)."""
        async with self.db.session() as s:
            q = select(Task.status, func.count()).where(Task.status.in_(LIVE)).group_by(Task.status)
            return {status: int(n) for status, n in (await s.execute(q)).all()}

    async def recoverable(self, me: str) -> tuple[list[str], list[str]]:
        """(running task ids whose process is gone, queued task ids in order)."""
        async with self.db.session() as s:
            running = select(Task.id).where(Task.status == RUNNING, self.processes.takeable(me)).order_by(Task.seq)
            queued = select(Task.id).where(Task.status == TaskStatus.queued.value).order_by(Task.seq)
            return list((await s.execute(running)).scalars()), list((await s.execute(queued)).scalars())

    async def files(self, ids: Sequence[str]) -> dict[str, StoredFile]:
        async with self.db.session() as s:
            rows = (await s.execute(select(StoredFile).where(StoredFile.id.in_(ids)))).scalars()
            return {f.id: f for f in rows}

    async def awaiting_due(self, now: datetime) -> list[str]:
        """Tasks still waiting for uploads past their deadline."""
        async with self.db.session() as s:
            q = select(Task.id).where(Task.status == TaskStatus.awaiting_upload.value, Task.expires_at <= now)
            return list((await s.execute(q)).scalars())

    # -- progress --------------------------------------------------------------------------
    async def claim(self, task_id: str, me: str) -> tuple[Task | None, bool]:
        """Take a queued task for process ``me``, or a running one whose process is gone (then True: a
        take-over); None when the task is done, or a live process runs it."""
        queued = (
            update(Task)
            .where(Task.id == task_id, Task.status == TaskStatus.queued.value)
            .values(
                status=RUNNING,
                owner=me,
                upstream={"stage": CLAIMED},
                attempts=Task.attempts + 1,
                started_at=func.coalesce(Task.started_at, utcnow()),
            )
            .returning(Task)
        )
        orphan = (
            update(Task)
            .where(Task.id == task_id, Task.status == RUNNING, self.processes.takeable(me))
            .values(owner=me, attempts=Task.attempts + 1)
            .returning(Task)
        )
        async with self.db.session.begin() as s:
            task = (await s.execute(queued)).scalar_one_or_none()
            if task is not None:
                return task, False
            return (await s.execute(orphan)).scalar_one_or_none(), True

    async def save_submitting(self, task_id: str, deployment: str) -> None:
        """About to send a submit: from now on a process taking the task over must not send it blindly again."""
        async with self.db.session.begin() as s:
            stmt = (
                update(Task).where(Task.id == task_id).values(upstream={"stage": SUBMITTING, "deployment": deployment})
            )
            await s.execute(stmt)

    async def save_handle(self, task_id: str, deployment: str, provider: str, handle: dict[str, Any]) -> None:
        """Where the upstream job is: written before the first poll, so a restart polls instead of paying again."""
        values = {
            "upstream": {"stage": SUBMITTED, "deployment": deployment, "handle": handle},
            "deployment_id": deployment,
            "provider": provider,
        }
        async with self.db.session.begin() as s:
            await s.execute(update(Task).where(Task.id == task_id).values(**values))

    async def save_progress(self, task_id: str, progress: int) -> None:
        async with self.db.session.begin() as s:
            await s.execute(update(Task).where(Task.id == task_id).values(progress=progress))

    # -- terminal writes -------------------------------------------------------------------
    async def succeed(self, task: Task, values: dict[str, Any], outputs: list[StoredFile]) -> bool:
        """Outputs, state, settlement (refund what was reserved over the cost) and outbox: one commit."""
        values = {**values, "status": TaskStatus.succeeded.value, "completed_at": utcnow()}
        async with self.db.session.begin() as s:
            stmt = update(Task).where(Task.id == task.id, Task.status == RUNNING).values(**values)
            if await changed(s, stmt) != 1:
                return False  # canceled meanwhile: the cancel refunded the reservation
            s.add_all(outputs)
            await refund(s, task.key_id, task.reserved_micros - int(values.get("cost_micros", 0)))
            _apply(task, values)
            outbox(s, task)
        self.metrics.task_finished(task.model, TaskStatus.succeeded.value, int(values.get("cost_micros", 0)))
        return True

    async def fail(self, task: Task, code: str, message: str, *, from_status: str = RUNNING) -> bool:
        """Fail a task still in ``from_status``: refund its reservation, schedule its webhook."""
        values = {
            "status": TaskStatus.failed.value,
            "error_code": code,
            "error_message": message,
            "completed_at": utcnow(),
        }
        async with self.db.session.begin() as s:
            stmt = update(Task).where(Task.id == task.id, Task.status == from_status).values(**values)
            if await changed(s, stmt) != 1:
                return False
            await refund(s, task.key_id, task.reserved_micros)
            _apply(task, values)
            outbox(s, task)
        self.metrics.task_finished(task.model, TaskStatus.failed.value)
        return True

    async def cancel(
        self, task: Task, code: str = ErrorCode.canceled.value, message: str = "canceled by the client"
    ) -> bool:
        """Cancel a live task; False when it already finished."""
        values = {
            "status": TaskStatus.canceled.value,
            "completed_at": utcnow(),
            "error_code": code,
            "error_message": message,
        }
        async with self.db.session.begin() as s:
            stmt = update(Task).where(Task.id == task.id, Task.status.in_(LIVE)).values(**values)
            if await changed(s, stmt) != 1:
                return False
            await refund(s, task.key_id, task.reserved_micros)
            _apply(task, values)
            outbox(s, task)
        self.metrics.task_finished(task.model, TaskStatus.canceled.value)
        return True

    # -- awaiting uploads ------------------------------------------------------------------
    async def queue_when_uploaded(self, task_id: str, defer: Defer | None = None) -> tuple[Task, str | None] | None:
        """Queue an ``awaiting_upload`` task whose every slot is filled; its inputs follow slot order.

        Returns the task and None once it is queued, or the task still awaiting and why its mask
        does not fit (the caller fails it); None when slots are missing or the task left
        ``awaiting_upload``.
        """
        async with self.db.session.begin() as s:
            q = select(Upload).where(Upload.task_id == task_id).order_by(Upload.created_at, Upload.id)
            slots = list((await s.execute(q)).scalars())
            if not slots or any(u.file_id is None for u in slots):
                return None
            task = (await s.execute(select(Task).where(Task.id == task_id))).scalar_one_or_none()
            if task is None or task.status != TaskStatus.awaiting_upload.value:
                return None
            inputs = list(task.inputs or []) + [u.file_id for u in slots if u.file_id not in (task.inputs or [])]
            task.inputs = inputs
            problem = await _mask_mismatch(s, inputs)
            if problem is not None:
                return task, problem
            stmt = (
                update(Task)
                .where(Task.id == task_id, Task.status == TaskStatus.awaiting_upload.value)
                .values(status=TaskStatus.queued.value, inputs=inputs, expires_at=None)
            )
            if await changed(s, stmt) != 1:
                return None
            task.status = TaskStatus.queued.value
            if defer is not None:
                task.job_id = await defer(s, task_id)
        return task, None


async def _admit_live(s: AsyncSession, key_id: str, max_live: int) -> None:
    """Refuse a task over the key's limit of live tasks, counted under a per-key lock: exact across processes."""
    await lock(s, f"live:{key_id}")
    q = select(func.count()).select_from(Task).where(Task.key_id == key_id, Task.status.in_(LIVE))
    if int((await s.execute(q)).scalar_one()) >= max_live:
        raise GatewayError(
            ErrorCode.rate_limited,
            f"this key may have {max_live} tasks queued or running at once; retry when one ends",
            retry_after=1,
        )


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_spend() -> ColumnElement[int]:
    """What a task counts against its key's monthly budget: the cost once it succeeded, what it holds
    while it is live, nothing once it failed or was canceled (refunded)."""
    held = case(
        (Task.status == TaskStatus.succeeded.value, Task.cost_micros),
        (Task.status.in_(LIVE), Task.reserved_micros),
        else_=0,
    )
    return func.coalesce(func.sum(held), 0)


async def _within_budget(s: AsyncSession, key_id: str, budget: int, micros: int) -> None:
    """Refuse a task that would take the key's spend this calendar month (UTC) past its budget: counted
    under the key's lock, in the transaction that reserves the credits, so racing requests cannot pass it."""
    await lock(s, f"live:{key_id}")
    q = select(month_spend()).where(Task.key_id == key_id, Task.created_at >= month_start(utcnow()))
    spent = int((await s.execute(q)).scalar_one())
    if spent + micros > budget:
        raise GatewayError(
            ErrorCode.budget_exceeded,
            f"this request would go over this key's monthly budget of ${budget / 1e6:.2f}: ${spent / 1e6:.4f} is "
            f"already spent or held this month (UTC) and this request costs ${micros / 1e6:.4f}. The budget starts "
            f"again on the 1st of next month (UTC); an admin can raise it",
        )


async def _mask_mismatch(s: AsyncSession, inputs: Sequence[str]) -> str | None:
    """Why the mask does not fit the first image (the order the runner reads them in), or None."""
    rows = {f.id: f for f in (await s.execute(select(StoredFile).where(StoredFile.id.in_(inputs)))).scalars()}
    files = [rows[i] for i in inputs if i in rows]
    mask = next((f for f in files if f.role == "mask"), None)
    first = next((f for f in files if f.role != "mask"), None)
    if mask is None or first is None or (mask.width, mask.height) == (first.width, first.height):
        return None
    return (
        f"'mask' must have the same dimensions as the first image ({first.width}x{first.height}), "
        f"got {mask.width}x{mask.height}"
    )
