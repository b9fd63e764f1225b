"""The composition root: every part built once, in one place, and the ASGI app around them.

Reading :func:`build_gateway` top to bottom shows every wire: stores on the database, the
runner on the router, the queue on the runner, the core on the task service, the dialects'
webhook bodies into the delivery service. Nothing is attached to these objects later.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp

from imagegate.api import admin_keys, admin_ops, errors, files, own_key, system, tasks, thumbnails, uploads, webhooks
from imagegate.api.access import AccessMiddleware, configure_access_log
from imagegate.api.console import install_console
from imagegate.api.deps import Gateway
from imagegate.api.dialects.apimodels import ApimodelsDialect
from imagegate.api.dialects.base import Dialect
from imagegate.api.dialects.chat import ChatDialect
from imagegate.api.dialects.gemini import GeminiDialect
from imagegate.api.dialects.omni import OmniDialect
from imagegate.api.dialects.openai import OpenAIDialect
from imagegate.api.docs import install_docs
from imagegate.api.inflight import InFlightBytes
from imagegate.api.wiring import add_dialect
from imagegate.catalog import Catalog
from imagegate.db.admin import AdminStore
from imagegate.db.database import Database
from imagegate.db.deliveries import DeliveryStore
from imagegate.db.idempotency import IdempotencyStore
from imagegate.db.jobs import JobStore
from imagegate.db.keys import KeyStore
from imagegate.db.limits import LimitStore
from imagegate.db.processes import ProcessStore
from imagegate.db.retention import RetentionStore
from imagegate.db.tasks import TaskStore
from imagegate.db.uploads import UploadStore
from imagegate.engine.clients import UpstreamClients
from imagegate.engine.idempotency import Idempotency
from imagegate.engine.inputs import InputResolver
from imagegate.engine.limits import BreakerBoard, Gates, KeyLimits, LocalGates, SharedGates
from imagegate.engine.liveness import Liveness
from imagegate.engine.outputs import OutputWriter
from imagegate.engine.queue import LocalQueue, TaskQueue
from imagegate.engine.retention import RetentionPolicy, RetentionSweeper
from imagegate.engine.router import Router
from imagegate.engine.runner import Runner
from imagegate.engine.streams import Follower, PartialHub
from imagegate.engine.submit import Limits, Submitter
from imagegate.engine.tasks import TaskService
from imagegate.engine.thumbnails import Thumbnails
from imagegate.engine.uploads import UploadService, UploadSweeper
from imagegate.engine.views import Views
from imagegate.engine.workers import JobQueue
from imagegate.media.fetch import NetworkPolicy
from imagegate.observe import Metrics, Tracing
from imagegate.settings import Settings
from imagegate.storage import open_storage
from imagegate.storage.base import Storage
from imagegate.storage.signing import UrlSigner
from imagegate.testing.sandbox import Sandbox
from imagegate.webhooks.delivery import DeliveryPolicy, DeliveryService


def build_gateway(settings: Settings, role: str = "serve") -> Gateway:
    """``role``: ``serve`` (API and workers, the embedded default), ``api`` (``serve --workers 0``: it
    queues, workers run) or ``worker`` (runs tasks, webhooks and sweeps; no HTTP)."""
    settings.prepare()
    sandbox = Sandbox(delay_ms=settings.sandbox_delay_ms) if settings.sandbox else None
    catalog = Catalog.load(settings.config, sandbox=settings.sandbox, sandbox_url=settings.sandbox_url)
    db = Database(settings.database_url or "", pool_size=settings.db_pool_size)
    storage = open_storage(settings)
    signer = UrlSigner(settings.secret_key or "", settings.url_ttl_seconds)
    policy = network_policy(settings)
    clients = UpstreamClients(sandbox)
    fetch_client = httpx.AsyncClient(trust_env=False, headers={"user-agent": "imagegate/0.1"})
    liveness = Liveness(ProcessStore(db, settings.stale_after), role, settings.heartbeat_interval)
    metrics = Metrics()
    core = build_core(settings, catalog, db, storage, signer, policy, clients, fetch_client, liveness, metrics)
    metrics.watch_circuits(core.board.states)
    dialects = default_dialects(catalog, settings)
    bodies = {d.name: d.webhook_body for d in dialects}
    sender = DeliveryService(
        DeliveryStore(db), core.views, bodies, dialects[0].webhook_body, policy, delivery_policy(settings),
        metrics=metrics,
    )  # fmt: skip
    return Gateway(
        settings=settings,
        db=db,
        catalog=catalog,
        keys=KeyStore(db),
        tasks=core.tasks,
        submitter=core.submitter,
        uploads=core.uploads,
        deliveries=DeliveryStore(db),
        storage=storage,
        signer=signer,
        metrics=metrics,
        services=(
            liveness,
            core.board,
            core.queue,
            UploadSweeper(core.tasks, core.tasks.store),
            RetentionSweeper(RetentionStore(db), storage, RetentionPolicy.from_settings(settings)),
            sender,
        )
        if role != "api"
        else (liveness, core.board, core.queue),
        closers=(clients.aclose, fetch_client.aclose, db.close, storage.aclose),
        dialects=dialects,
        admin=AdminStore(db),
        breakers=core.board,
        thumbnails=Thumbnails(storage, metrics),
        sandbox=sandbox is not None or settings.sandbox_url is not None,
    )


@dataclass(frozen=True, slots=True)
class Core:
    tasks: TaskService
    queue: TaskQueue
    views: Views
    uploads: UploadService
    submitter: Submitter
    board: BreakerBoard


def build_core(
    settings: Settings,
    catalog: Catalog,
    db: Database,
    storage: Storage,
    signer: UrlSigner,
    policy: NetworkPolicy,
    clients: UpstreamClients,
    fetch_client: httpx.AsyncClient,
    liveness: Liveness,
    metrics: Metrics,
) -> Core:
    """The engine: a runner on the router, the queue on the runner, the core on the task service."""
    store = TaskStore(db, liveness.store, metrics)
    outputs = OutputWriter(storage, store, metrics)
    limit_store = LimitStore(db, liveness.store)
    shared = limit_store if db.is_postgres else None  # one process on SQLite: circuits and caps stay in memory
    board = BreakerBoard(store=shared)
    gates: Gates = SharedGates(limit_store, liveness.me) if shared else LocalGates()
    hub = PartialHub()  # previews of the tasks this process runs, for the streams it serves
    router = upstream_router(settings, clients, board, gates, metrics)
    runner = Runner(store, catalog, router, outputs, liveness.me, hub)
    queue = task_queue(settings, db, runner, store, liveness)
    views = Views(signer, storage, queue.position_of)
    tasks = TaskService(store, outputs, runner, views, queue)
    upload_store = UploadStore(db)
    upload_signer = UrlSigner(settings.secret_key or "", 0, namespace="uploads")
    uploads = UploadService(upload_store, tasks, queue, storage, policy, upload_signer, ttl=settings.upload_ttl)
    inputs = InputResolver(fetch_client, policy, upload_store, storage)
    idempotency = Idempotency(IdempotencyStore(db), store, settings.idempotency_ttl)
    limits = Limits(sync_timeout=settings.sync_timeout, awaiting_upload_ttl=settings.awaiting_upload_ttl)
    follower = Follower(hub, store.get, settings.stream_keep_alive)
    submitter = Submitter(
        catalog, tasks, queue, inputs, idempotency, uploads, policy, limits, KeyLimits(limit_store), follower
    )
    return Core(tasks, queue, views, uploads, submitter, board)


def task_queue(settings: Settings, db: Database, runner: Runner, store: TaskStore, liveness: Liveness) -> TaskQueue:
    """The job engine on PostgreSQL (any number of API and worker processes); the in-process queue on
    SQLite (one process: the embedded default)."""
    if db.is_postgres:
        jobs = JobStore(db)
        return JobQueue(
            jobs,
            runner,
            store,
            liveness,
            concurrency=settings.workers,
            stale_after=settings.stale_after,
            sweep_every=settings.sweep_interval,
        )
    if settings.workers <= 0:
        raise ValueError("--workers 0 needs PostgreSQL: on SQLite this process is the only one that runs tasks")
    return LocalQueue(runner, store, liveness, settings.workers, sweep_every=settings.sweep_interval)


def upstream_router(
    settings: Settings, clients: UpstreamClients, board: BreakerBoard, gates: Gates, metrics: Metrics
) -> Router:
    """The sandbox's fakes answer at once: poll and back off fast there."""
    fast = settings.sandbox or bool(settings.sandbox_url)
    return Router(
        clients,
        poll_interval=0.05 if fast else None,
        backoff=0.05 if fast else 0.5,
        board=board,
        gates=gates,
        metrics=metrics,
        tracing=Tracing(),
    )


def network_policy(settings: Settings) -> NetworkPolicy:
    return NetworkPolicy(
        allow_private=settings.allow_private_networks,
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        max_request_pixels=settings.max_request_pixels,
        timeout=settings.fetch_timeout,
        rewrites=dict(settings.url_rewrites),
    )


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        timeout=settings.webhook_timeout,
        retry_window=settings.webhook_retry_window,
        backoff_scale=settings.webhook_backoff_scale,
        public_base_url=settings.public_base_url,
        secret_grace=settings.webhook_secret_grace,
    )


def default_dialects(catalog: Catalog, settings: Settings) -> tuple[Dialect, ...]:
    """Every dialect served; the first one's webhook body is the default."""
    return (
        OpenAIDialect(),
        OmniDialect(catalog, settings.url_ttl_seconds),
        ApimodelsDialect(catalog),
        ChatDialect(catalog),
        GeminiDialect(catalog),
    )


@contextlib.asynccontextmanager
async def running(gw: Gateway) -> AsyncIterator[Gateway]:
    """The gateway's services from start to stop: migrations (unless left to ``imagegate migrate``), then
    every service in order; on the way out the services in reverse (the queue drains), then the clients."""
    if gw.settings.migrate_on_start:
        await gw.db.migrate()
    started = []
    try:
        for svc in gw.services:
            await svc.start()
            started.append(svc)
        yield gw
    finally:
        for svc in reversed(started):
            await svc.stop()
        for close in gw.closers:
            await close()


class GatewayApp(FastAPI):
    """FastAPI with :class:`AccessMiddleware` outside every other layer, Starlette's error middleware
    included, so even a 500 carries its request id and is counted and logged."""

    def build_middleware_stack(self) -> ASGIApp:
        gw: Gateway = self.state.gateway
        # the sandbox marks every answer, so nobody mistakes a fake's image for a real one
        marks = ((b"x-imagegate-sandbox", b"1"),) if gw.sandbox else ()
        inner = InFlightBytes(super().build_middleware_stack(), gw.settings.max_bytes_in_flight)
        return AccessMiddleware(inner, gw.metrics, gw.settings.log_format, marks)


def create_app(settings: Settings | None = None, role: str = "serve") -> FastAPI:
    gw = build_gateway(settings or Settings(), role)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(gw):
            yield

    app = GatewayApp(title="imagegate", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.gateway = gw
    configure_access_log(gw.settings.log_format)
    errors.install(app)
    for dialect in gw.dialects:  # first: the create routes carry most of the traffic
        add_dialect(app.router, dialect)
    for module in (system, files, tasks, thumbnails, uploads, webhooks, own_key, admin_keys, admin_ops):
        app.include_router(module.router)
    install_console(app)
    install_docs(app)
    return app
