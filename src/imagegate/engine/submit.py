"""The one lifecycle of a create request, whatever dialect it came in.

``submit`` binds the Idempotency-Key (or replays what it made), finds the model, checks the
callback URL, resolves and checks the input images, validates against the catalog (errors
name the client's own parameters), reserves credits with the task row, and then runs the task
in the request, queues it (starting at once when a worker is free), or leaves it waiting for
its uploads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from imagegate.catalog import Catalog, CatalogModel
from imagegate.catalog.validate import build_request
from imagegate.db.tables import Task
from imagegate.domain import (
    ErrorCode,
    GatewayError,
    ImageInput,
    ImageRequest,
    Outcome,
    StreamEvent,
    Submission,
    TaskView,
    shown,
)
from imagegate.engine.idempotency import Claim, Idempotency
from imagegate.engine.inputs import InputResolver
from imagegate.engine.limits import KeyLimits
from imagegate.engine.queue import TaskQueue
from imagegate.engine.streams import Follower
from imagegate.engine.tasks import NewTask, TaskService
from imagegate.engine.uploads import UploadService
from imagegate.media import fetch

MAX_WAIT = 60.0  # seconds an async create may hold the connection (``Prefer: wait``)
PENDING = "upload-slot"  # source of a stand-in image whose bytes arrive later by PUT


@dataclass(frozen=True, slots=True)
class Limits:
    sync_timeout: float  # a sync request answers 202 with the task once it runs this long
    awaiting_upload_ttl: float  # a task waits this long for its uploads


class Submitter:
    def __init__(
        self,
        catalog: Catalog,
        tasks: TaskService,
        queue: TaskQueue,
        inputs: InputResolver,
        idempotency: Idempotency,
        uploads: UploadService,
        policy: fetch.NetworkPolicy,
        limits: Limits,
        key_limits: KeyLimits,
        follower: Follower,
    ) -> None:
        self.follower = follower
        self.catalog = catalog
        self.tasks = tasks
        self.queue = queue
        self.inputs = inputs
        self.idempotency = idempotency
        self.uploads = uploads
        self.policy = policy
        self.limits = limits
        self.key_limits = key_limits

    async def submit(self, sub: Submission) -> Outcome:
        async with self.idempotency.guard(sub.caller.id, sub.idempotency) as claim:
            if claim is not None and claim.replay is not None:
                replayed = await self._replay(claim.replay, sub.base_url)
                if sub.stream:
                    return Outcome(replayed.task, True, events=await self._follow(replayed.task.id, sub.base_url))
                return replayed
            await self.key_limits.admit(sub.caller)  # before anything else is done or held for it
            model = self.catalog.get(sub.model)
            if model is None:
                raise GatewayError(
                    ErrorCode.model_not_found, f"model '{shown(sub.model)}' does not exist", param="model"
                )
            if not sub.caller.may_use(model.id):  # in memory, from the key row already read
                allowed = ", ".join(sub.caller.allowed_models or ())
                raise GatewayError(
                    ErrorCode.model_not_allowed,
                    f"this key may not use the model '{model.id}': it is outside the key's model allowlist "
                    f"({allowed}); an admin can change the allowlist",
                    param="model",
                )
            if sub.callback_url is not None:
                await fetch.check_url(sub.callback_url, self.policy, "callback_url")
            req = await self._request(sub, model)
            if sub.uploads:
                return await self._await_uploads(sub, model, req, claim)
            run = sub.run if sub.run != "auto" else ("sync" if model.spec.sync else "async")
            if run == "sync":
                return await self._run_inline(sub, model, req, claim)
            return await self._enqueue(sub, model, req, claim)

    async def _replay(self, task: Task, base_url: str) -> Outcome:
        view = await self.tasks.view(task, base_url)
        return Outcome(view, replayed=True, uploads=await self.uploads.slots_of(task.id, base_url))

    async def _request(self, sub: Submission, model: CatalogModel) -> ImageRequest:
        """Resolve the inputs and validate; files still to be uploaded count as stand-ins."""
        images, mask = await self.inputs.resolve(sub.caller, sub.images)
        for up in sub.uploads:
            stand_in = ImageInput(data=b"", mime=up.content_type, width=1, height=1, source=PENDING)
            if up.role == "mask":
                mask = mask or stand_in
            else:
                images.append(stand_in)
        rf = model.spec.default_response_format if sub.default_response_format == "model" else "url"
        try:
            req = build_request(
                model,
                sub.params,
                images=images,
                mask=mask,
                default_format=sub.default_output_format,
                default_response_format=rf,
            )
        except GatewayError as exc:
            exc.param = sub.client_param(exc.param)
            raise
        req.images = [i for i in req.images if i.source != PENDING]
        if req.mask is not None and req.mask.source == PENDING:
            req.mask = None
        if sub.stream and sub.partial_images:
            req.partial_images = sub.partial_images
        req.extra.update(sub.record, base_url=sub.base_url)  # webhook payloads point their links here
        return req

    def _new(
        self,
        sub: Submission,
        model: CatalogModel,
        req: ImageRequest,
        *,
        is_async: bool,
        start: bool = False,
        upload_deadline: float | None = None,
    ) -> NewTask:
        return NewTask(
            caller=sub.caller,
            model=model,
            request=req,
            dialect=sub.dialect,
            is_async=is_async,
            callback_url=sub.callback_url,
            start=start,
            upload_deadline=upload_deadline,
        )

    async def _run_inline(
        self, sub: Submission, model: CatalogModel, req: ImageRequest, claim: Claim | None
    ) -> Outcome:
        task = await self.tasks.create(self._new(sub, model, req, is_async=False, start=True), claim)
        finished = await self.tasks.run_inline(task, req, self.limits.sync_timeout)
        if finished is None:  # still running after the sync timeout: the client polls the task
            return Outcome(await self.tasks.view(await self.tasks.store.get(task.id) or task, sub.base_url))
        return Outcome(await self.tasks.view(finished.task, sub.base_url, finished.fresh))

    async def _enqueue(self, sub: Submission, model: CatalogModel, req: ImageRequest, claim: Claim | None) -> Outcome:
        slot = await self.queue.reserve()  # a free worker: create it claimed and start at once, no queue hop
        try:
            task = await self.tasks.create(self._new(sub, model, req, is_async=True, start=slot), claim)
        except BaseException:
            if slot:
                self.queue.release()
            raise
        events = await self._follow(task.id, sub.base_url) if sub.stream else None
        if slot:
            self.queue.run_claimed(task, req)
        if sub.wait:
            task = await self.tasks.wait(task.id, min(sub.wait, MAX_WAIT)) or task
        return Outcome(await self.tasks.view(task, sub.base_url), events=events)

    async def _follow(self, task_id: str, base_url: str) -> AsyncIterator[StreamEvent]:
        """A streamed task's events, subscribed before the task may start (see :class:`Follower`);
        the images come in base64, whatever ``response_format`` says, and stay stored for ``GET``."""

        async def view(task: Task) -> TaskView:
            return await self.tasks.view(task, base_url, b64=True)

        events = self.follower.follow(task_id, view)
        await anext(events)  # the priming keep-alive: subscribed
        return events

    async def _await_uploads(
        self, sub: Submission, model: CatalogModel, req: ImageRequest, claim: Claim | None
    ) -> Outcome:
        """The task and its upload slots commit together; the last PUT queues the task."""
        ttl = self.limits.awaiting_upload_ttl
        rows = [
            self.uploads.new_row(
                sub.caller.id, filename=u.filename, content_type=u.content_type, field=u.field, ttl=ttl
            )
            for u in sub.uploads
        ]
        task = await self.tasks.create(self._new(sub, model, req, is_async=True, upload_deadline=ttl), claim, rows)
        slots = tuple(self.uploads.slot(r, sub.base_url) for r in rows)
        return Outcome(await self.tasks.view(task, sub.base_url), uploads=slots)
