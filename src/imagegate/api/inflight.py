"""A process-wide cap on request bytes held at once.

Each request body is capped on its own (``max_request_bytes``); this caps their sum, so a burst of
large uploads queues at the client instead of multiplying memory. A request whose declared
``Content-Length`` would take the bytes held by unfinished requests past the cap is answered 503
``server_overloaded`` with ``Retry-After`` before its body is read; a request arriving while
nothing is held always goes through (one body never exceeds its own cap). Bytes are held from the
moment a request is let in until its answer is sent, since its body (and what is decoded from it)
lives that long. A body sent without a length is counted as it arrives, under its own cap.

A pure ASGI layer (a few integer operations per request), inside :class:`AccessMiddleware` so a
refusal carries its request id and is counted and logged like any answer.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.api.errors import gateway_response
from imagegate.domain import ErrorCode, GatewayError

_LENGTH = b"content-length"


class InFlightBytes:
    def __init__(self, app: ASGIApp, cap: int) -> None:
        self.app = app
        self.cap = cap
        self.held = 0  # bytes of requests let in and not yet answered (one event loop: no lock needed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared(scope)
        if declared and self.held and self.held + declared > self.cap:
            refusal = GatewayError(
                ErrorCode.overloaded,
                f"the gateway is holding its limit of request bytes ({self.cap // 2**20} MiB) for requests "
                "still running; retry shortly",
                param="body",
                retry_after=1,
            )
            await gateway_response(refusal)(scope, receive, send)
            return
        held = declared
        self.held += declared

        async def counted() -> Message:
            nonlocal held
            message = await receive()
            if message["type"] == "http.request" and not declared:
                size = len(message.get("body", b""))
                held += size
                self.held += size
            return message

        try:
            await self.app(scope, counted, send)
        finally:
            self.held -= held


def _declared(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == _LENGTH:
            return int(value) if value.isdigit() else 0  # a malformed length is the server's to refuse
    return 0
