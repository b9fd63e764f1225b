"""Every failure leaves as OpenAI's error object with the right status; nothing leaks as a bare 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from sqlalchemy import exc as sa_exc
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imagegate.domain import TYPE_BY_STATUS, ErrorCode, GatewayError

log = logging.getLogger("imagegate.api")


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None,
               type_: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_ or TYPE_BY_STATUS.get(status, "api_error"),
                      "param": param, "code": code}}


def gateway_response(exc: GatewayError) -> JSONResponse:
    headers = {}
    if exc.retry_after is not None:
        headers["retry-after"] = str(int(max(1, exc.retry_after)))
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway(request: Request, exc: GatewayError) -> JSONResponse:
        render = getattr(request.state, "render_error", None)
        return render(exc) if render else gateway_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path", "header")]
        param = ".".join(loc) or None
        err = GatewayError.bad(param or "body", f"{param or 'body'}: {first.get('msg', 'invalid value')}")
        render = getattr(request.state, "render_error", None)
        return render(err) if render else gateway_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        msg = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and msg == "Not Found":
            msg = f"no route for {request.method} {request.url.path}"
        return JSONResponse(error_body(exc.status_code, msg, code=code), status_code=exc.status_code)

    @app.exception_handler(sa_exc.TimeoutError)
    @app.exception_handler(sa_exc.OperationalError)
    async def _db_busy(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database busy on %s %s: %s", request.method, request.url.path, exc)
        err = GatewayError(ErrorCode.overloaded, "the gateway is overloaded; retry shortly", retry_after=1)
        render = getattr(request.state, "render_error", None)
        return render(err) if render else gateway_response(err)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "internal error", code="internal_error"), status_code=500)
