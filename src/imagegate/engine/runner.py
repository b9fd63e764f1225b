"""Run one task to its end: claim -> route (submit, poll) -> download -> store outputs -> settle.

A run that fails with an upstream or caller error fails the task (refunding its credits); a
bug fails it too rather than the process. A run canceled from outside (the client canceled
the task) stops quietly once the cancel has written the terminal state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imagegate.catalog import Catalog, CatalogModel, Deployment
from imagegate.catalog.validate import price_facts
from imagegate.db.database import to_micros
from imagegate.db.tables import Task
from imagegate.db.tasks import CLAIMED, SUBMITTED, SUBMITTING, TaskStore, stage_of
from imagegate.domain import ErrorCode, GatewayError, ImageRequest, UpstreamError
from imagegate.engine.outputs import OutputWriter, Stored
from imagegate.engine.router import RouteOutcome, Router
from imagegate.engine.streams import PartialHub
from imagegate.providers.base import PollResult
from imagegate.providers.registry import provider_class

log = logging.getLogger("imagegate.runner")
PROGRESS_EVERY = 1.0  # seconds between two progress writes of one task


@dataclass(slots=True)
class Finished:
    task: Task
    fresh: list[bytes] | None = None  # the outputs' bytes, for a sync answer in base64


class ProgressWriter:
    """Changes only, at most every PROGRESS_EVERY seconds: progress is a hint, and writes are not free.
    Previews go to this process's followers of the task, never to the database."""

    def __init__(self, store: TaskStore, task: Task, hub: PartialHub | None = None) -> None:
        self.store = store
        self.task = task
        self.hub = hub
        self.last = 0.0

    async def __call__(self, p: PollResult) -> None:
        if p.partial is not None and self.hub is not None:
            self.hub.publish(self.task.id, p.partial)
        if p.progress is None or p.progress == self.task.progress:
            return
        self.task.progress = p.progress
        if time.monotonic() - self.last >= PROGRESS_EVERY:
            self.last = time.monotonic()
            await self.store.save_progress(self.task.id, p.progress)


def reference_of(task: Task) -> str:
    """The client reference every submit of a task carries, so its upstream job can be found again."""
    return f"ig-{task.id}"


class Runner:
    def __init__(
        self,
        store: TaskStore,
        catalog: Catalog,
        router: Router,
        outputs: OutputWriter,
        me: Callable[[], str],
        hub: PartialHub | None = None,
    ) -> None:
        self.hub = hub
        self.me = me  # this process's id (see engine/liveness.py): the owner it writes on the tasks it runs
        self.store = store
        self.catalog = catalog
        self.router = router
        self.outputs = outputs
        self._running: dict[str, asyncio.Task[Any]] = {}

    async def run(
        self, task_id: str, *, claimed: Task | None = None, request: ImageRequest | None = None
    ) -> Finished | None:
        """Run a task to its terminal state; None if a live process holds it, or a cancel ended it.

        ``claimed``: a task this process already holds as running (created claimed); ``request``:
        its validated request still in memory, so its inputs need not be read back from storage.
        A task whose process is gone is taken over (see :meth:`_take_over`).
        """
        current = asyncio.current_task()
        if current is not None:
            self._running[task_id] = current
        try:
            task, took_over = (claimed, False) if claimed else await self.store.claim(task_id, self.me())
            if task is None:
                return None
            if took_over and stage_of(task) == SUBMITTING and self._submit_dep(task) is not None:
                return await self._reconcile(task)
            if took_over and not self._may_continue(task):
                return await self._interrupted(task)
            return await self._run(task, request)
        except asyncio.CancelledError:
            if not await self.store.is_terminal(task_id):
                raise
            return None
        finally:
            self._running.pop(task_id, None)

    def abort(self, task_id: str) -> None:
        """Stop this process's run of a task whose cancel is already written."""
        running = self._running.get(task_id)
        if running is not None:
            running.cancel()

    def _may_continue(self, task: Task) -> bool:
        """A task whose process stopped: poll what was submitted; run again only what cannot cost twice.

        Nothing was sent when the task only got as far as its claim and every deployment records its
        submits (or is free to call again); an async task then runs again. A sync task's client is gone:
        it is not run for nobody (see :meth:`_interrupted`).
        """
        stage = stage_of(task)
        if stage == SUBMITTED:
            return True
        model = self.catalog.get(task.model)
        deployments = model.deployments if model is not None else []
        nothing_sent = stage in (CLAIMED, None) and all(
            provider_class(d.provider).records_submit() for d in deployments
        )
        return nothing_sent and task.is_async

    def _submit_dep(self, task: Task) -> tuple[CatalogModel, Deployment] | None:
        """The model and deployment of a task's interrupted submit, when that upstream can be asked for it."""
        model = self.catalog.get(task.model)
        dep_id = (task.upstream or {}).get("deployment")
        dep = next((d for d in (model.deployments if model else []) if d.id == dep_id), None)
        if model is None or dep is None or provider_class(dep.provider).resubmit() != "lookup":
            return None
        return model, dep

    async def _reconcile(self, task: Task) -> Finished | None:
        """A submit was interrupted before its handle was stored: ask the upstream by the task's reference.

        Found: store the handle and poll it, so the job is paid for once. Not found: it never reached the
        upstream, so an async task is submitted again (a sync task's client is gone: canceled). A lookup
        that still fails after the router's retries ends the task refunded: waiting longer could not
        tell us more than a retry did, and guessing either way may pay twice or drop a paid job.
        """
        found = self._submit_dep(task)
        assert found is not None
        model, dep = found
        try:
            req = await self.outputs.load_request(task)
            handle = await self.router.find(model, dep, reference_of(task), req)
        except (UpstreamError, GatewayError) as exc:
            message = (
                f"interrupted while a request to {dep.id} was in flight, and asking it whether the job exists "
                f"failed ({exc.message}); it was not sent again; nothing was charged"
            )
            return await self._fail(task, ErrorCode.interrupted.value, message)
        if handle is not None:
            log.info("task %s: its interrupted submit reached %s; polling it", task.id, dep.id)
            await self.store.save_handle(task.id, dep.id, dep.provider, handle)
            task.upstream = {"stage": SUBMITTED, "deployment": dep.id, "handle": handle}
            return await self._run(task, req)
        if not task.is_async:
            message = (
                "the request's connection ended with its server before the upstream received it; "
                "it was canceled and nothing was charged"
            )
            return Finished(task) if await self.store.cancel(task, ErrorCode.interrupted.value, message) else None
        log.info("task %s: its interrupted submit never reached %s; submitting it again", task.id, dep.id)
        return await self._run(task, req)

    async def _interrupted(self, task: Task) -> Finished | None:
        """End, refunded, a task that must not run again: canceled when nothing reached the upstream (its
        sync client is gone), failed when a request may have reached it and cannot be looked up there."""
        up = task.upstream or {}
        if stage_of(task) == SUBMITTING:
            where = str(up.get("deployment") or "the upstream")
            message = (
                f"interrupted while a request to {where} was in flight; it offers no way to look the job "
                "up, so it was not sent again; nothing was charged"
            )
        elif task.is_async:
            message = (
                "interrupted during a call to a provider that does not record its calls; it was not sent "
                "again; nothing was charged"
            )
        else:
            message = "the request's connection ended with its server; it was canceled and nothing was charged"
            return Finished(task) if await self.store.cancel(task, ErrorCode.interrupted.value, message) else None
        return Finished(task) if await self.store.fail(task, ErrorCode.interrupted.value, message) else None

    async def _run(self, task: Task, request: ImageRequest | None) -> Finished | None:
        started = time.monotonic()
        try:
            model = self.catalog.get(task.model)
            if model is None:
                raise UpstreamError(ErrorCode.model_not_found, f"model '{task.model}' left the catalog")
            req = request or await self.outputs.load_request(task)
            outcome = await self._route(task, model, req)
            stored = await self.outputs.save(task, req, outcome.result.images)
        except (UpstreamError, GatewayError) as exc:
            return await self._fail(task, exc.code.value, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an undecodable upstream answer: fail the task, keep the process
            log.exception("task %s failed unexpectedly", task.id)
            return await self._fail(
                task, ErrorCode.upstream_error.value, f"could not complete the generation ({type(exc).__name__})"
            )
        return await self._settle(task, model, req, outcome, stored, started)

    async def _route(self, task: Task, model: CatalogModel, req: ImageRequest) -> RouteOutcome:
        async def on_submitting(dep: Deployment) -> None:
            await self.store.save_submitting(task.id, dep.id)

        async def on_submit(dep: Deployment, handle: dict[str, Any]) -> None:
            await self.store.save_handle(task.id, dep.id, dep.provider, handle)

        up = task.upstream or {}
        outcome = await self.router.run(
            model,
            req,
            on_submitting=on_submitting,
            on_submit=on_submit,
            on_progress=ProgressWriter(self.store, task, self.hub),
            resume=(up["deployment"], up["handle"]) if stage_of(task) == SUBMITTED else None,
            reference=reference_of(task),
        )
        if any(i.data is None for i in outcome.result.images):
            provider = self.router.provider(model, outcome.deployment)
            outcome.result.images = await provider.download_all(outcome.result.images)
        return outcome

    async def _settle(
        self, task: Task, model: CatalogModel, req: ImageRequest, outcome: RouteOutcome, stored: Stored, started: float
    ) -> Finished | None:
        """Charge the serving deployment's price for the images delivered, never more than was reserved (a
        model the catalog prices per million tokens is charged the tokens the upstream reported using).

        An upstream may answer with fewer images than ``n`` (safety filters drop some; a fan-out call
        fails part-way). The delivered ones are kept and charged and the missing ones refunded, in the
        transaction that ends the task: failing it would throw away images the upstream made and the
        client can use, and a retry would pay for all ``n`` again. The shortfall is recorded on the
        result, so the client (``len(data)``) and the operator can both see it.
        """
        dep = outcome.deployment
        delivered = len(stored.entries)
        price = model.price_for(dep)
        by_tokens = price.per_million_tokens.cost(outcome.result.tokens) if price.per_million_tokens else None
        cost = to_micros(by_tokens if by_tokens is not None else price.unit(price_facts(req)) * delivered)
        cost = min(cost, task.reserved_micros) if task.reserved_micros else cost
        if delivered < req.n:
            log.warning(
                "task %s: %s delivered %d of %d images; the rest is refunded", task.id, dep.id, delivered, req.n
            )
        first = stored.entries[0]
        result = {
            "images": stored.entries,
            "size": f"{first.get('width')}x{first.get('height')}",
            "output_format": req.output_format,
            "usage": outcome.result.tokens,  # OpenAI's shape, or None
            "provider_usage": outcome.result.usage,
            "provider": dep.provider,
            "deployment": dep.id,
            "upstream_model": dep.model,
            "compute_ms": int((time.monotonic() - started) * 1000),
        }
        if delivered < req.n:
            result["shortfall"] = {"requested": req.n, "delivered": delivered}
        values = {
            "result": result,
            "cost_micros": cost,
            "progress": 100,
            "deployment_id": dep.id,
            "provider": dep.provider,
        }
        if not await self.store.succeed(task, values, stored.rows):
            await self.outputs.discard(stored)  # canceled meanwhile: nobody will fetch these
            return None
        return Finished(task, stored.blobs if not task.is_async and req.response_format != "url" else None)

    async def _fail(self, task: Task, code: str, message: str) -> Finished | None:
        return Finished(task) if await self.store.fail(task, code, message) else None

    async def cancel_upstream(self, task: Task) -> None:
        """Best effort: the task is canceled on our side whatever the upstream says."""
        model = self.catalog.get(task.model)
        up = task.upstream or {}
        dep = next((d for d in (model.deployments if model else []) if d.id == up.get("deployment")), None)
        if model is None or dep is None:
            return
        try:
            await self.router.provider(model, dep).cancel(up["handle"])
        except Exception:
            log.warning("upstream cancel failed for %s", task.id, exc_info=True)
