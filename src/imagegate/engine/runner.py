"""A task from start to end: create (reserve credits, keep inputs), run (route, store, settle), cancel.

Each task reaches exactly one terminal state: every terminal write is a conditional UPDATE
from a live state, and the credit settlement rides in the same transaction as the write
that won.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import timedelta
from typing import Any, Awaitable, Callable

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.catalog import Catalog, CatalogModel
from imagegate.catalog.validate import price_facts
from imagegate.db.repo import Database, aware, new_id, seq_now, to_micros
from imagegate.db.tables import ApiKey, StoredFile, Task, utcnow
from imagegate.domain import (
    ErrorCode, GatewayError, ImageInput, ImageRequest, TaskStatus, UpstreamError,
)
from imagegate.engine.router import Router
from imagegate.media import codecs
from imagegate.providers.base import Deployment, PollResult
from imagegate.storage.base import Storage

log = logging.getLogger("imagegate.runner")
EXT = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp", "image/gif": "gif"}
LIVE = (TaskStatus.queued.value, TaskStatus.running.value, TaskStatus.awaiting_upload.value)

#: called inside the terminal transaction (webhook outbox rows are written here)
TerminalHook = Callable[[AsyncSession, Task], Awaitable[None]]


HANDOFF_LIMIT = 256
PROGRESS_EVERY = 1.0  # seconds between two progress writes of one task


def _apply(task: Task, values: dict[str, Any]) -> None:
    """Mirror a committed UPDATE on the in-memory row, so callers need not read it back."""
    for k, v in values.items():
        setattr(task, k, v)


class Engine:
    def __init__(self, db: Database, catalog: Catalog, storage: Storage, router: Router) -> None:
        self.db = db
        self.catalog = catalog
        self.storage = storage
        self.router = router
        self.terminal_hooks: list[TerminalHook] = []
        #: task id -> tasks ahead of it, from the queue when it knows (see LocalQueue.position)
        self.position_hint: Callable[[str], int | None] | None = None
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._handoff: OrderedDict[str, list[bytes]] = OrderedDict()

    # -- create ----------------------------------------------------------------------------
    def reserve_amount(self, model: CatalogModel, req: ImageRequest) -> int:
        """The dearest ready deployment's price: what we hold until we know who served it."""
        facts = price_facts(req)
        prices = [model.price_for(d).unit(facts) for d in model.deployments if d.ready] or [
            model.spec.price.unit(facts)]
        return to_micros(max(prices) * req.n)

    async def create(self, key: ApiKey, model: CatalogModel, req: ImageRequest, *, dialect: str = "openai",
                     is_async: bool = False, callback_url: str | None = None, awaiting_upload: bool = False,
                     upload_deadline: float | None = None, session: AsyncSession | None = None,
                     start: bool = False) -> Task:
        """Reserve credits, keep the inputs and commit the task row.

        ``start=True`` (the sync path) writes it already claimed as running, saving a round trip;
        a crash before it ends leaves a running task without a handle, which a restart re-runs.
        """
        if not model.ready:
            raise GatewayError(ErrorCode.model_not_ready, f"model '{model.id}' is not ready: "
                               f"{model.not_ready_reason}", param="model")
        if req.response_format == "b64_ephemeral" and is_async:
            raise GatewayError.bad("response_format", "'b64_ephemeral' is only available on synchronous requests")
        task_id = new_id("img")
        kept = [await self._keep_input(key.id, task_id, img, "input") for img in req.images]
        if req.mask is not None:
            kept.append(await self._keep_input(key.id, task_id, req.mask, "mask"))
        inputs = [f.id for f in kept]
        reserved = self.reserve_amount(model, req)
        row = Task(
            id=task_id, seq=seq_now(), key_id=key.id, model=model.id, mode=req.mode, dialect=dialect,
            status=(TaskStatus.awaiting_upload.value if awaiting_upload
                    else TaskStatus.running.value if start else TaskStatus.queued.value),
            started_at=utcnow() if start else None, attempts=1 if start else 0,
            is_async=is_async, request=req.describe(), inputs=inputs, reserved_micros=reserved,
            callback_url=callback_url, created_at=utcnow(),
            expires_at=utcnow() + timedelta(seconds=upload_deadline) if upload_deadline else None,
        )

        async def write(s: AsyncSession) -> None:
            if not await self.db.reserve(s, key.id, reserved):
                raise GatewayError(ErrorCode.insufficient_credits,
                                   f"insufficient credits: this request costs ${reserved / 1e6:.4f}")
            s.add_all(kept)
            s.add(row)

        if session is not None:
            await write(session)
        else:
            async with self.db.session.begin() as s:
                await write(s)
        return row

    async def _keep_input(self, key_id: str, task_id: str, img: ImageInput, role: str) -> StoredFile:
        """Write an input's bytes to storage; its row is committed with the task."""
        file_id = new_id("in")
        ext = EXT.get(img.mime, "bin")
        path = f"inputs/{file_id[3:5]}/{file_id}.{ext}"
        await self.storage.put(path, img.data, img.mime)
        return StoredFile(id=file_id, key_id=key_id, task_id=task_id, role=role, path=path, mime=img.mime,
                          bytes=len(img.data), width=img.width, height=img.height)

    # -- run -------------------------------------------------------------------------------
    async def run(self, task_id: str, *, resume: bool = False, claimed: Task | None = None) -> Task | None:
        """Run a task to its terminal state; the finished row, or None if someone else held it.

        ``claimed`` is a task this process already holds as running (see ``create(start=True)``).
        """
        current = asyncio.current_task()
        if current is not None:
            self._running[task_id] = current
        try:
            return await self._run(task_id, resume, claimed)
        except asyncio.CancelledError:
            if not await self._is_terminal(task_id):
                raise
            return None
        finally:
            self._running.pop(task_id, None)

    async def _claim(self, task_id: str, resume: bool) -> Task | None:
        async with self.db.session.begin() as s:
            allowed = [TaskStatus.queued.value] + ([TaskStatus.running.value] if resume else [])
            res = await s.execute(
                update(Task).where(Task.id == task_id, Task.status.in_(allowed))
                .values(status=TaskStatus.running.value, started_at=func.coalesce(Task.started_at, utcnow()),
                        attempts=Task.attempts + 1)
                .returning(Task))
            return res.scalar_one_or_none()

    async def _run(self, task_id: str, resume: bool, claimed: Task | None) -> Task | None:
        task = claimed or await self._claim(task_id, resume)
        if task is None:
            return None
        started = time.monotonic()
        model = self.catalog.get(task.model)
        try:
            if model is None:
                raise UpstreamError(ErrorCode.model_not_found, f"model '{task.model}' left the catalog")
            req = await self._load_request(task)

            async def on_submit(dep: Deployment, handle: dict[str, Any]) -> None:
                async with self.db.session.begin() as s:
                    await s.execute(update(Task).where(Task.id == task_id).values(
                        upstream={"deployment": dep.id, "handle": handle}, deployment_id=dep.id,
                        provider=dep.provider))

            last_write = [0.0]

            async def on_progress(p: PollResult) -> None:
                # changes only, at most every PROGRESS_EVERY seconds: progress is a hint, writes are not free
                if p.progress is None or p.progress == task.progress:
                    return
                task.progress = p.progress
                if time.monotonic() - last_write[0] >= PROGRESS_EVERY:
                    last_write[0] = time.monotonic()
                    async with self.db.session.begin() as s:
                        await s.execute(update(Task).where(Task.id == task_id).values(progress=p.progress))

            up = task.upstream or None
            outcome = await self.router.run(
                model, req, on_submit=on_submit, on_progress=on_progress,
                resume=(up["deployment"], up["handle"]) if up else None)
            if any(i.data is None for i in outcome.result.images):
                outcome.result.images = await self.router.provider(model, outcome.deployment).download_all(
                    outcome.result.images)
            images, rows = await self._store_outputs(task, req, outcome.result)
        except (UpstreamError, GatewayError) as exc:
            return await self._fail(task, exc.code.value, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an undecodable upstream answer: fail the task, keep the process
            log.exception("task %s failed unexpectedly", task_id)
            return await self._fail(task, ErrorCode.upstream_error.value,
                                    f"could not complete the generation ({type(exc).__name__})")
        dep = outcome.deployment
        cost = to_micros(model.price_for(dep).unit(price_facts(req)) * len(images))
        cost = min(cost, task.reserved_micros) if task.reserved_micros else cost
        first = images[0] if images else {}
        result = {
            "images": images, "size": f"{first.get('width')}x{first.get('height')}" if first else None,
            "output_format": req.output_format, "usage": outcome.result.usage,
            "provider": dep.provider, "deployment": dep.id, "upstream_model": dep.model,
            "compute_ms": int((time.monotonic() - started) * 1000),
        }
        done = dict(status=TaskStatus.succeeded.value, result=result, cost_micros=cost, completed_at=utcnow(),
                    progress=100, deployment_id=dep.id, provider=dep.provider)
        async with self.db.session.begin() as s:  # outputs, state, settlement and outbox: one commit
            res = await s.execute(update(Task).where(Task.id == task_id, Task.status == TaskStatus.running.value)
                                  .values(**done))
            if res.rowcount != 1:
                self._handoff.pop(task_id, None)
                return None  # canceled meanwhile: the cancel refunded the reservation
            s.add_all(rows)
            await self.db.refund(s, task.key_id, task.reserved_micros - cost)
            _apply(task, done)
            await self._after_terminal(s, task_id, task)
        return task

    async def _fail(self, task: Task, code: str, message: str) -> Task | None:
        done = dict(status=TaskStatus.failed.value, error_code=code, error_message=message, completed_at=utcnow())
        async with self.db.session.begin() as s:
            res = await s.execute(update(Task).where(Task.id == task.id, Task.status == TaskStatus.running.value)
                                  .values(**done))
            if res.rowcount != 1:
                return None
            await self.db.refund(s, task.key_id, task.reserved_micros)
            _apply(task, done)
            await self._after_terminal(s, task.id, task)
        return task

    async def expire_waiting(self, task_id: str, code: str, message: str) -> bool:
        """Fail a task still awaiting its uploads (its deadline passed): refund, run the terminal hooks."""
        async with self.db.session.begin() as s:
            res = await s.execute(update(Task).where(Task.id == task_id,
                                                     Task.status == TaskStatus.awaiting_upload.value)
                                  .values(status=TaskStatus.failed.value, error_code=code, error_message=message,
                                          completed_at=utcnow()))
            if res.rowcount != 1:
                return False
            reserved = (await s.execute(select(Task.reserved_micros, Task.key_id).where(Task.id == task_id))).one()
            await self.db.refund(s, reserved.key_id, reserved.reserved_micros)
            await self._after_terminal(s, task_id)
        return True

    async def _after_terminal(self, s: AsyncSession, task_id: str, task: Task | None = None) -> None:
        if not self.terminal_hooks:
            return
        if task is None:
            task = (await s.execute(select(Task).where(Task.id == task_id))).scalar_one()
        for hook in self.terminal_hooks:
            await hook(s, task)

    async def _is_terminal(self, task_id: str) -> bool:
        async with self.db.session() as s:
            st = (await s.execute(select(Task.status).where(Task.id == task_id))).scalar_one_or_none()
        return st is None or TaskStatus(st).terminal

    async def _load_request(self, task: Task) -> ImageRequest:
        d = dict(task.request)
        images: list[ImageInput] = []
        mask: ImageInput | None = None
        if task.inputs:
            async with self.db.session() as s:
                rows = {f.id: f for f in (await s.execute(
                    select(StoredFile).where(StoredFile.id.in_(task.inputs)))).scalars()}
            described = d.get("images", [])
            for i, fid in enumerate(task.inputs):
                f = rows[fid]
                data = await self.storage.get(f.path)
                if data is None:
                    raise UpstreamError(ErrorCode.internal, f"input file {fid} is missing from storage")
                info = described[i] if i < len(described) else {}
                img = ImageInput(data=data, mime=f.mime, width=f.width, height=f.height,
                                 source=info.get("source", f.role), url=info.get("url"))
                if f.role == "mask":
                    mask = img
                else:
                    images.append(img)
        fields = {k: v for k, v in d.items() if k not in ("images", "mask")}
        return ImageRequest(**fields, images=images, mask=mask)

    async def _store_outputs(self, task: Task, req: ImageRequest,
                             result: Any) -> tuple[list[dict[str, Any]], list[StoredFile]]:
        """Convert each image to the asked format and store it (``b64_ephemeral``: memory only).

        Returns the result entries and the file rows to commit with the terminal state. A sync
        request that asked for base64 gets its bytes handed straight to the renderer.
        """
        transparent = None if req.background in (None, "auto") else req.background == "transparent"
        store = req.response_format != "b64_ephemeral"
        out: list[dict[str, Any]] = []
        rows: list[StoredFile] = []
        blobs: list[bytes] = []
        for img in result.images[: req.n]:
            if img.data is None:
                raise UpstreamError(ErrorCode.upstream_error, "provider returned an image without bytes")
            data = await asyncio.to_thread(codecs.convert, img.data, req.output_format, req.output_compression,
                                           transparent=transparent)
            w, h = await asyncio.to_thread(codecs.size_of, data)
            entry: dict[str, Any] = {"width": w, "height": h, "bytes": len(data),
                                     "revised_prompt": img.revised_prompt or None}
            if store:
                file_id = new_id("file")
                ext = req.output_format
                path = f"outputs/{file_id[5:7]}/{file_id}.{ext}"
                await self.storage.put(path, data, codecs.PIL_FORMAT[ext])
                rows.append(StoredFile(id=file_id, key_id=task.key_id, task_id=task.id, role="output", path=path,
                                       mime=f"image/{ext}", bytes=len(data), width=w, height=h))
                entry.update(file_id=file_id, name=f"{file_id}.{ext}")
            out.append(entry)
            blobs.append(data)
        if not out:
            raise UpstreamError(ErrorCode.upstream_error, "provider returned no images")
        if not task.is_async and req.response_format != "url":
            self._handoff[task.id] = blobs
            while len(self._handoff) > HANDOFF_LIMIT:  # a client that hung up never collects its images
                self._handoff.popitem(last=False)
        return out, rows

    def take_handoff(self, task_id: str) -> list[bytes] | None:
        """The image bytes of a just-finished sync task, once (the renderer base64-encodes them)."""
        return self._handoff.pop(task_id, None)

    # -- cancel ----------------------------------------------------------------------------
    async def cancel(self, task: Task) -> bool:
        """Cancel a live task; False when it already finished."""
        async with self.db.session.begin() as s:
            res = await s.execute(update(Task).where(Task.id == task.id, Task.status.in_(LIVE))
                                  .values(status=TaskStatus.canceled.value, completed_at=utcnow(),
                                          error_code=ErrorCode.canceled.value, error_message="canceled by the client"))
            if res.rowcount != 1:
                return False
            await self.db.refund(s, task.key_id, task.reserved_micros)
            await self._after_terminal(s, task.id)
        running = self._running.get(task.id)
        if running is not None:
            running.cancel()
        fresh = await self.get(task.id)
        if fresh is not None and fresh.upstream:
            await self._cancel_upstream(fresh)
        return True

    async def _cancel_upstream(self, task: Task) -> None:
        model = self.catalog.get(task.model)
        dep = next((d for d in (model.deployments if model else []) if d.id == task.upstream["deployment"]), None)
        if dep is None:
            return
        try:
            await self.router.provider(model, dep).cancel(task.upstream["handle"])
        except Exception:  # best effort: the task is canceled on our side whatever the upstream says
            log.warning("upstream cancel failed for %s", task.id, exc_info=True)

    # -- queries ---------------------------------------------------------------------------
    async def get(self, task_id: str, key_id: str | None = None) -> Task | None:
        async with self.db.session() as s:
            q = select(Task).where(Task.id == task_id)
            if key_id is not None:
                q = q.where(Task.key_id == key_id)
            return (await s.execute(q)).scalar_one_or_none()

    async def queue_position(self, task: Task) -> int | None:
        if task.status != TaskStatus.queued.value:
            return None
        if self.position_hint is not None and (pos := self.position_hint(task.id)) is not None:
            return pos  # the in-process queue knows without a COUNT over the task table
        async with self.db.session() as s:
            ahead = await s.execute(select(func.count()).select_from(Task).where(
                Task.status == TaskStatus.queued.value, Task.seq < task.seq))
            return int(ahead.scalar_one())

    async def recoverable(self) -> tuple[list[str], list[str]]:
        """(running task ids to resume, queued task ids in order) after a restart."""
        async with self.db.session() as s:
            running = list((await s.execute(select(Task.id).where(Task.status == TaskStatus.running.value)
                                            .order_by(Task.seq))).scalars())
            queued = list((await s.execute(select(Task.id).where(Task.status == TaskStatus.queued.value)
                                           .order_by(Task.seq))).scalars())
        return running, queued

    @staticmethod
    def latency_ms(task: Task) -> int | None:
        if task.completed_at is None:
            return None
        return int((aware(task.completed_at) - aware(task.created_at)).total_seconds() * 1000)  # type: ignore[operator]
