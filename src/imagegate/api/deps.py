"""What routes receive: the gateway (every service, built once in :func:`imagegate.app.build_gateway`)
and the caller's key, as typed FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Request

from imagegate.api.access import note_of
from imagegate.api.dialects.base import Dialect
from imagegate.catalog import Catalog
from imagegate.db.admin import AdminStore
from imagegate.db.database import Database
from imagegate.db.deliveries import DeliveryStore
from imagegate.db.keys import KeyStore, is_expired
from imagegate.db.tables import utcnow
from imagegate.domain import Caller, ErrorCode, GatewayError
from imagegate.engine.limits import BreakerBoard
from imagegate.engine.submit import Submitter
from imagegate.engine.tasks import TaskService
from imagegate.engine.thumbnails import Thumbnails
from imagegate.engine.uploads import UploadService
from imagegate.observe import Metrics
from imagegate.settings import Settings
from imagegate.storage.base import Storage
from imagegate.storage.signing import UrlSigner


class Service(Protocol):
    """Runs beside the HTTP server for the life of the process (workers, sweepers, senders)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Gateway:
    settings: Settings
    db: Database
    catalog: Catalog
    keys: KeyStore
    tasks: TaskService
    submitter: Submitter
    uploads: UploadService
    deliveries: DeliveryStore
    storage: Storage
    signer: UrlSigner
    metrics: Metrics  # this process's counters (``GET /metrics``)
    services: tuple[Service, ...]  # started in this order, stopped in reverse
    closers: tuple[Callable[[], Awaitable[None]], ...]  # HTTP clients and the database, closed last
    dialects: tuple[Dialect, ...]  # each gets a router; the first one's webhook body is the default
    admin: AdminStore  # the operator's reads across keys (usage, every key's tasks)
    breakers: BreakerBoard  # this process's view of every deployment's circuit
    thumbnails: Thumbnails  # outputs' previews, kept in ``storage``
    sandbox: bool = False

    def base_url(self, request: Request) -> str:
        """Where links in answers point: the configured public URL, else the host the request came to."""
        if self.settings.public_base_url:
            return self.settings.public_base_url.rstrip("/")
        return str(request.base_url).rstrip("/")


async def get_gateway(request: Request) -> Gateway:
    """Async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, on every request."""
    gw = request.app.state.gateway
    if not isinstance(gw, Gateway):
        raise TypeError("the app was not built by imagegate.app.create_app")
    return gw


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


#: the Gemini routes' last path segment ends so (a ``?key=`` is read there)
GEMINI_METHODS = (":generateContent", ":streamGenerateContent")


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for header_name in ("x-api-key", "x-goog-api-key"):  # Anthropic's and Google's SDKs
        if request.headers.get(header_name):
            return request.headers[header_name]
    path = request.url.path
    if path.startswith("/v1beta/") or path.endswith(GEMINI_METHODS):  # Google's ``?key=``, on Gemini routes only
        return request.query_params.get("key") or None
    return None


async def current_key(request: Request, gw: GatewayDep) -> Caller:
    """The caller's key, looked up by the hash of its secret; the plaintext is never stored or logged."""
    secret = bearer(request)
    if not secret:
        raise GatewayError(ErrorCode.invalid_api_key, "missing API key: send 'Authorization: Bearer <key>'")
    key = await gw.keys.by_secret(secret)
    if key is None or key.revoked_at is not None:
        raise GatewayError(ErrorCode.invalid_api_key, "invalid or revoked API key")
    if is_expired(key, utcnow()):
        raise GatewayError(ErrorCode.invalid_api_key, "this API key has expired")
    note = note_of(request)
    note.key_id, note.key_name = key.id, key.name
    return Caller(
        id=key.id,
        name=key.name,
        webhook_secret=key.webhook_secret,
        rate_limit_rpm=key.rate_limit_rpm,
        max_concurrent_tasks=key.max_concurrent_tasks,
        is_admin=key.is_admin,
        allowed_models=tuple(key.allowed_models) if key.allowed_models is not None else None,
        monthly_budget_micros=key.monthly_budget_micros,
    )


CurrentKey = Annotated[Caller, Depends(current_key)]


async def admin_key(caller: CurrentKey) -> Caller:
    """An administrator's key (``imagegate keys create --admin``): 401 without a valid key, 403 with another."""
    if not caller.is_admin:
        raise GatewayError(ErrorCode.forbidden, "this route needs an admin key (imagegate keys create --admin)")
    return caller


AdminKey = Annotated[Caller, Depends(admin_key)]


async def base_url(request: Request, gw: GatewayDep) -> str:
    return gw.base_url(request)


BaseUrl = Annotated[str, Depends(base_url)]
