"""The task service: create a task (credits, inputs, row), get it, page, cancel, wait, run it inline."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from imagegate.catalog import CatalogModel
from imagegate.catalog.validate import price_facts
from imagegate.db.database import aware, new_id, seq_now, to_micros
from imagegate.db.tables import Task, Upload, utcnow
from imagegate.db.tasks import CLAIMED, TaskStore
from imagegate.domain import Caller, ErrorCode, GatewayError, ImageRequest, TaskStatus, TaskView
from imagegate.engine.idempotency import Claim
from imagegate.engine.outputs import OutputWriter
from imagegate.engine.queue import TaskQueue
from imagegate.engine.runner import Finished, Runner
from imagegate.engine.views import Views

UPLOAD_EXPIRED = "upload_expired"


@dataclass(slots=True)
class NewTask:
    caller: Caller
    model: CatalogModel
    request: ImageRequest
    dialect: str
    is_async: bool
    callback_url: str | None = None
    start: bool = False  # created already claimed as running by this process (saves a write)
    upload_deadline: float | None = None  # seconds: the task waits for its uploads this long


def reserve_amount(model: CatalogModel, req: ImageRequest) -> int:
    """The dearest ready deployment's price: what we hold until we know who served it."""
    facts = price_facts(req)
    prices = [model.price_for(d).unit(facts) for d in model.deployments if d.ready] or [model.spec.price.unit(facts)]
    return to_micros(max(prices) * req.n)


class TaskService:
    def __init__(self, store: TaskStore, outputs: OutputWriter, runner: Runner, views: Views, queue: TaskQueue) -> None:
        self.store = store
        self.outputs = outputs
        self.runner = runner
        self.views = views
        self.queue = queue

    async def create(self, new: NewTask, claim: Claim | None = None, uploads: Sequence[Upload] = ()) -> Task:
        """Reserve credits, keep the inputs and commit the task row (with its upload slots and
        the idempotency claim it answers, in the same transaction)."""
        model, req = new.model, new.request
        if not model.ready:
            raise GatewayError(
                ErrorCode.model_not_ready, f"model '{model.id}' is not ready: {model.not_ready_reason}", param="model"
            )
        if req.response_format == "b64_ephemeral" and new.is_async:
            raise GatewayError.bad("response_format", "'b64_ephemeral' is only available on synchronous requests")
        row = self._row(new)
        kept = [await self.outputs.keep_input(new.caller.id, row.id, img, "input") for img in req.images]
        if req.mask is not None:
            kept.append(await self.outputs.keep_input(new.caller.id, row.id, req.mask, "mask"))
        row.inputs = [f.id for f in kept]
        claim_row = claim.row_id if claim is not None else None
        queued = row.status == TaskStatus.queued.value
        defer = self.queue.defer if queued else None
        caller = new.caller
        await self.store.create(
            row, kept, uploads, claim_row, defer, caller.max_concurrent_tasks, caller.monthly_budget_micros
        )
        if claim is not None and claim_row is not None:
            claim.bound = True
        if queued and self.queue.defer is None:
            await self.queue.enqueue(row.id)
        return row

    def _row(self, new: NewTask) -> Task:
        now = utcnow()
        status = (
            TaskStatus.awaiting_upload
            if new.upload_deadline
            else TaskStatus.running
            if new.start
            else TaskStatus.queued
        )
        return Task(
            id=new_id("img"),
            seq=seq_now(),
            key_id=new.caller.id,
            model=new.model.id,
            mode=new.request.mode,
            dialect=new.dialect,
            status=status.value,
            started_at=now if new.start else None,
            owner=self.runner.me() if new.start else None,
            upstream={"stage": CLAIMED} if new.start else None,
            attempts=1 if new.start else 0,
            is_async=new.is_async,
            request=new.request.describe(),
            inputs=[],
            reserved_micros=reserve_amount(new.model, new.request),
            callback_url=new.callback_url,
            created_at=now,
            expires_at=now + timedelta(seconds=new.upload_deadline) if new.upload_deadline else None,
        )

    async def get(self, task_id: str, caller: Caller, param: str = "task_id") -> Task:
        """The caller's task (another key's task looks exactly like a missing one).

        A task still waiting for uploads past its deadline is failed here, so nobody sees it
        waiting on after its deadline, whether or not the sweeper has run.
        """
        task = await self.store.get(task_id, caller.id)
        if task is None:
            raise GatewayError(ErrorCode.not_found, f"no task '{task_id}'", param=param)
        if (
            task.status == TaskStatus.awaiting_upload.value
            and task.expires_at is not None
            and aware(task.expires_at) <= utcnow()
        ):
            await self.expire(task)
        return task

    async def expire(self, task: Task) -> bool:
        return await self.store.fail(
            task,
            UPLOAD_EXPIRED,
            "the inputs were not uploaded before the deadline",
            from_status=TaskStatus.awaiting_upload.value,
        )

    async def cancel(self, task: Task) -> None:
        """Cancel a live task: refund, webhook, stop the local run, and the upstream job where it can."""
        if not await self.store.cancel(task):
            ended = await self.store.get(task.id) or task
            raise GatewayError(
                ErrorCode.conflict,
                f"task '{task.id}' already finished ({ended.status}); only queued or running tasks can be canceled",
                param="task_id",
            )
        await self.queue.abort(task)
        canceled = await self.store.get(task.id)
        if canceled is not None and canceled.upstream:
            await self.runner.cancel_upstream(canceled)

    async def view(
        self, task: Task, base_url: str, fresh: Sequence[bytes] | None = None, *, b64: bool = False
    ) -> TaskView:
        return await self.views.view(task, base_url, fresh, b64=b64)

    async def run_inline(self, task: Task, request: ImageRequest, timeout: float) -> Finished | None:
        """Run a task created claimed, in this request; the run survives the client hanging up.

        None when it is still running after ``timeout`` (the client gets the task to poll).
        """
        job = asyncio.create_task(self.runner.run(task.id, claimed=task, request=request))
        try:
            done = await asyncio.wait_for(asyncio.shield(job), timeout)
        except TimeoutError:
            return None
        if done is not None:
            return done
        now = await self.store.get(task.id)
        return Finished(now) if now is not None else None

    async def wait(self, task_id: str, seconds: float) -> Task | None:
        """Wait until the task is terminal or the time is up (cheap DB polls); the task as it then is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        delay = 0.02
        while True:
            task = await self.store.get(task_id)
            if task is None or TaskStatus(task.status).terminal or loop.time() >= deadline:
                return task
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 1.5, 0.5)
