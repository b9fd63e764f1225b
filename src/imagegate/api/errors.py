"""Every failure leaves as OpenAI's error object with the right status; nothing leaks as a bare 500.

Dialect routes render their own envelopes (see :mod:`imagegate.api.wiring`); these
handlers cover every other route.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imagegate.api.routes import served
from imagegate.db.database import BUSY, disk_full
from imagegate.domain import TYPE_BY_STATUS, ErrorCode, GatewayError

log = logging.getLogger("imagegate.api")


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": TYPE_BY_STATUS.get(status, "api_error"), "param": param, "code": code}
    }


def gateway_response(exc: GatewayError) -> JSONResponse:
    headers = {}
    if exc.retry_after is not None:
        headers["retry-after"] = str(int(max(1, exc.retry_after)))
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.status, headers=headers)


async def _gateway(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return gateway_response(exc)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path", "header")]
    param = ".".join(loc) or None
    return gateway_response(
        GatewayError.bad(param or "body", f"{param or 'body'}: {first.get('msg', 'invalid value')}")
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    msg = exc.detail if isinstance(exc.detail, str) else "error"
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "allow"}
    if exc.status_code == 404 and msg == "Not Found":
        msg = f"no route for {request.method} {request.url.path}"
    if exc.status_code == 405:
        headers["allow"] = ", ".join(allowed_methods(request))
        msg = f"{request.method} is not allowed on {request.url.path}; allowed: {headers['allow']}"
    return JSONResponse(error_body(exc.status_code, msg, code=code), status_code=exc.status_code, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (RFC 9110: a 405 lists them all in ``Allow``).

    Starlette's own ``Allow`` names the methods of the first route whose path matched, and a path
    can have several routes (apimodels' POST and GET share one)."""
    root, path = request.scope.get("root_path", ""), request.url.path
    path = path[len(root) :] if root and path.startswith(root) else path
    methods: set[str] = set()
    for route in served(request.app.router.routes):
        if route.methods and route.path_regex is not None and route.path_regex.match(path):
            methods |= route.methods
    return sorted(methods)


def busy_error(request: Request, exc: Exception) -> GatewayError:
    """A database error on the request path: a full disk says so (507); anything else is an overload."""
    if disk_full(exc):
        log.error("database disk full on %s %s: %s", request.method, request.url.path, exc)
        return GatewayError(ErrorCode.storage_full, "the gateway's database disk is full; nothing was charged")
    log.warning("database busy on %s %s: %s", request.method, request.url.path, exc)
    return GatewayError(ErrorCode.overloaded, "the gateway is overloaded; retry shortly", retry_after=1)


async def _db_busy(request: Request, exc: Exception) -> JSONResponse:
    return gateway_response(busy_error(request, exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body(500, "internal error", code="internal_error"), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    for busy in BUSY:
        app.add_exception_handler(busy, _db_busy)
    app.add_exception_handler(Exception, _unexpected)
