"""The request pipeline every fake shares, so that a fake module holds only its provider's wire format.

A fake declares its route table once, as :class:`Endpoint` rows over plain handler functions
``async (request, state) -> Response``, and one auth check; :func:`fake_app` wraps each handler in
the same steps every provider fake needs, in the order the fault-injection tests rely on:

1. record the request in ``state.received`` and learn the host (and mount path) the fake is served at;
2. count the call (``Endpoint.count``) when it arrives;
3. answer the next scripted fault (``state.script``), if any;
4. run the auth check, and only then count ``count_after_auth`` calls;
5. run the handler.

It also serves the signed blob store on ``/_blobs/{id}`` and marks every answer with
``x-imagegate-sandbox: 1`` so a sandboxed client can tell a fake answered. A fake's shape::

    async def bearer(request: Request, state: FakeState) -> Response | None:
        ok = request.headers.get("authorization") == f"Bearer {state.api_key}"
        return None if ok else JSONResponse({"error": "unauthorized"}, 401)

    async def poll(request: Request, state: FakeState) -> Response:
        job_id = request.path_params["id"]
        if (stage := state.advance(job_id, "queued", "running")) is not None:
            return JSONResponse({"status": stage})
        return JSONResponse({"status": "done", "url": state.link(state.image("p", 64, 64), "image/png")})

    ROUTES = (Endpoint("POST", "/v1/jobs", submit), Endpoint("GET", "/v1/jobs/{id}", poll, count="poll"))

    def create_app(state: FakeState) -> FastAPI:
        return fake_app(state, ROUTES, auth=bearer)
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import URL, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.testing.fakes.state import REQUEST_BASE, FakeState, Received

#: one route's work once the shared steps passed
Handler = Callable[[Request, FakeState], Awaitable[Response]]
#: a provider's credential check: its own error answer, or None to let the request through
Auth = Callable[[Request, FakeState], Awaitable[Response | None]]
_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class Endpoint:
    """One row of a fake's route table.

    ``count`` names the ``state.calls`` counter this route bumps: on arrival (even when a scripted
    fault or the auth check answers), or, with ``count_after_auth``, once the caller is authorised.
    ``scripted=False`` keeps scripted faults for the routes a test scripts (submit, poll) from
    being eaten by a route it does not (cancel). ``auth`` overrides the fake's check for this route.
    """

    method: str
    path: str
    handler: Handler
    count: str | None = None
    count_after_auth: bool = False
    scripted: bool = True
    auth: Auth | None = None


def fake_app(state: FakeState, endpoints: Iterable[Endpoint], *, auth: Auth | None = None) -> FastAPI:
    """A provider fake as an ASGI app: the route table in order, then the blob store."""
    routes: list[BaseRoute] = [
        Route(e.path, _pipeline(state, e, e.auth or auth), methods=[e.method]) for e in endpoints
    ]
    routes.append(Route("/_blobs/{blob_id}", _blob(state), methods=["GET"]))
    app = FastAPI(routes=routes, openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(Recorder, state=state)
    return app


def _pipeline(state: FakeState, endpoint: Endpoint, auth: Auth | None) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        if endpoint.count and not endpoint.count_after_auth:
            state.calls[endpoint.count] += 1
        if endpoint.scripted and (reply := state.scripted(request)) is not None:
            return reply
        if auth is not None and (refused := await auth(request, state)) is not None:
            return refused
        if endpoint.count and endpoint.count_after_auth:
            state.calls[endpoint.count] += 1
        return await endpoint.handler(request, state)

    return run


def _blob(state: FakeState) -> Callable[[Request], Awaitable[Response]]:
    async def blob(request: Request) -> Response:
        q = request.query_params
        return state.fetch(request.path_params["blob_id"], q.get("expires", "0"), q.get("sig", ""))

    return blob


class Recorder:
    """Records each request in ``state.received`` and stamps the sandbox header on each answer.

    Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``: the body is read once here and
    replayed to the fake byte for byte, so recording can never change what a handler sees.
    """

    def __init__(self, app: ASGIApp, state: FakeState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        url = URL(scope=scope)
        self.state.public_base = base = f"{url.scheme}://{url.netloc}{scope.get('root_path', '')}"
        body, receive = await _buffer(receive)
        self.state.received.append(await _parse(scope, body))

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start" and self.state.sandbox_header:
                MutableHeaders(scope=message)["x-imagegate-sandbox"] = "1"
            await send(message)

        token = REQUEST_BASE.set(base)
        try:
            await self.app(scope, receive, stamped)
        finally:
            REQUEST_BASE.reset(token)


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a ``receive`` that hands it on once and then defers to the client's.

    A client that hangs up mid-body is handed on as a disconnect, as the fake would have seen it.
    """
    chunks: list[bytes] = []
    ended: Message | None = None
    while True:
        message = await receive()
        if message["type"] != "http.request":
            ended = message
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    first: Message = ended or {"type": "http.request", "body": body, "more_body": False}
    handed = False

    async def replay() -> Message:
        nonlocal handed
        if handed:
            return await receive()
        handed = True
        return first

    return body, replay


def local_path(scope: Scope) -> str:
    """The path on the provider's host: below the mount the sandbox server serves this fake at.

    What the fake records and what a signature covering the path is checked against, so a fake
    mounted at ``/{provider}`` sees the same paths as one served at the root.
    """
    path, root = str(scope["path"]), str(scope.get("root_path", ""))
    return (path[len(root) :] if root and path.startswith(root) else path) or "/"


async def _parse(scope: Scope, body: bytes) -> Received:
    method, path = str(scope["method"]), local_path(scope)
    kind = Request(scope).headers.get("content-type", "")
    if not kind.startswith(_FORMS):
        return Received(method, path, _json_or_none(body), {}, {})
    form: dict[str, str] = {}
    files: Counter[str] = Counter()

    async def once() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        async with Request(scope, once).form() as parsed:
            for name, value in parsed.multi_items():
                if isinstance(value, str):
                    form[name] = value
                else:
                    files[name] += 1
    except Exception:  # a malformed form is the handler's to refuse; the record just stays empty
        form, files = {}, Counter()
    return Received(method, path, None, form, dict(files))


def _json_or_none(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
