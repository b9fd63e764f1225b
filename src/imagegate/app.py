"""Build the ASGI app from Settings: stores, engine, queue, routes."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import httpx
from fastapi import FastAPI, Request

from imagegate.api import errors
from imagegate.catalog import Catalog
from imagegate.db.repo import Database
from imagegate.engine.clients import UpstreamClients
from imagegate.engine.router import Router
from imagegate.engine.runner import Engine
from imagegate.media.fetch import NetworkPolicy
from imagegate.queue.local import LocalQueue
from imagegate.settings import Settings
from imagegate.storage.local import LocalStorage
from imagegate.storage.signing import UrlSigner

log = logging.getLogger("imagegate")


@dataclass
class Gateway:
    """Everything a request handler may need, built once per app."""

    settings: Settings
    db: Database
    catalog: Catalog
    storage: LocalStorage
    signer: UrlSigner
    engine: Engine
    queue: LocalQueue
    clients: UpstreamClients
    fetch_client: httpx.AsyncClient
    policy: NetworkPolicy
    sandbox: Any = None
    background: list[Any] = field(default_factory=list)  # services with start()/stop()

    def base_url(self, request: Request) -> str:
        if self.settings.public_base_url:
            return self.settings.public_base_url.rstrip("/")
        return str(request.base_url).rstrip("/")


def build_gateway(settings: Settings) -> Gateway:
    settings.prepare()
    sandbox = None
    if settings.sandbox:
        from imagegate.testing.sandbox import Sandbox

        sandbox = Sandbox(delay_ms=settings.sandbox_delay_ms)
    catalog = Catalog.load(settings.config, sandbox=settings.sandbox)
    db = Database(settings.database_url or "")
    storage = LocalStorage(settings.files_dir)
    clients = UpstreamClients(sandbox)
    router = Router(clients, poll_interval=0.05 if settings.sandbox else None,
                    backoff=0.05 if settings.sandbox else 0.5)
    engine = Engine(db, catalog, storage, router)
    policy = NetworkPolicy(allow_private=settings.allow_private_networks, max_bytes=settings.max_image_bytes,
                           timeout=settings.fetch_timeout, rewrites=dict(settings.url_rewrites))
    fetch_client = httpx.AsyncClient(trust_env=False, headers={"user-agent": "imagegate/0.1"})
    queue = LocalQueue(engine, settings.workers)
    engine.position_hint = queue.position
    return Gateway(settings=settings, db=db, catalog=catalog, storage=storage,
                   signer=UrlSigner(settings.secret_key or "", settings.url_ttl_seconds), engine=engine,
                   queue=queue, clients=clients, fetch_client=fetch_client,
                   policy=policy, sandbox=sandbox)


#: modules that add routes (and may add background services) to the app
ROUTE_MODULES: list[str] = [
    "imagegate.api.system",
    "imagegate.api.files",
    "imagegate.api.dialects.openai",
    "imagegate.api.dialects.omni",
    "imagegate.api.dialects.apimodels",
    "imagegate.api.tasks",
    "imagegate.api.uploads",
    "imagegate.api.webhooks",
]

Installer = Callable[[FastAPI, Gateway], None]


def create_app(settings: Settings | None = None) -> FastAPI:
    import importlib

    gw = build_gateway(settings or Settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gw.db.migrate()
        await gw.queue.start()
        for svc in gw.background:
            await svc.start()
        try:
            yield
        finally:
            for svc in reversed(gw.background):
                await svc.stop()
            await gw.queue.stop()
            await gw.clients.aclose()
            await gw.fetch_client.aclose()
            await gw.db.close()

    app = FastAPI(title="imagegate", version="0.1.0", lifespan=lifespan)
    app.state.gw = gw
    errors.install(app)
    if gw.sandbox is not None:
        @app.middleware("http")
        async def _sandbox_header(request: Request, call_next):  # type: ignore[no-untyped-def]
            resp = await call_next(request)
            resp.headers["x-imagegate-sandbox"] = "1"
            return resp

    for name in ROUTE_MODULES:
        importlib.import_module(name).install(app, gw)
    return app
