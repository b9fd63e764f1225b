"""Around every request: a request id, the request metrics, and one access-log line.

A pure ASGI middleware (Starlette's ``BaseHTTPMiddleware`` runs each request through extra tasks
and streams; this costs a few attribute reads and one wrapped ``send``). It is the outermost
layer of the app, outside Starlette's error middleware, so a 500 carries ``X-Request-Id`` and is
logged like any answer.

Handlers add what they learn to the request's :class:`Note` (``note_of(request)``): the key's id
and name (never its secret), the model, the task, the cost. The log line names the route
template (``/v1/tasks/{task_id}``), not the raw path, and neither query string nor headers, so
signed links and keys never reach the log; the metrics use the same template, so their label
values stay bounded whatever paths clients send.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.observe import Metrics
from imagegate.observe.tracing import annotate

LogFormat = Literal["json", "text", "off"]
NOTE = "imagegate.note"
UNMATCHED = "<unmatched>"  # the route label of a path no route took (404s)
HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
access_log = logging.getLogger("imagegate.access")


@dataclass(slots=True)
class Note:
    """What one request's log line says beyond method, route, status and time."""

    request_id: str
    key_id: str | None = None
    key_name: str | None = None
    model: str | None = None
    task_id: str | None = None
    cost: float | None = None  # credits (USD) charged, once known

    def learnt(self, model: str, task_id: str, cost: float | None = None) -> None:
        """The request's model and task (and cost), for its log line and its trace span."""
        self.model, self.task_id, self.cost = model, task_id, cost
        annotate(
            {
                "imagegate.request_id": self.request_id,
                "imagegate.key_id": self.key_id,
                "imagegate.model": model,
                "imagegate.task_id": task_id,
            }
        )


def note_of(request: Request) -> Note:
    """The request's note (a throwaway one when the app runs without :class:`AccessMiddleware`)."""
    note = request.scope.get(NOTE)
    return note if isinstance(note, Note) else Note("")


def request_id(scope: Scope) -> str:
    """The client's ``X-Request-Id`` when it is a short token (so a log line can be joined with the
    client's), else a new one; anything else the client sent there is not echoed."""
    for name, value in scope["headers"]:
        if name == HEADER:
            if _SANE_ID.match(value):
                return bytes(value).decode("ascii")
            break
    return secrets.token_hex(12)


def configure_access_log(fmt: LogFormat) -> None:
    """One line per request on stderr, whatever level the rest of the logging runs at; once per process."""
    if fmt == "off" or access_log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


class AccessMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        log_format: LogFormat = "json",
        extra_headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        """``extra_headers``: sent on every answer too (the sandbox marks its answers)."""
        self.app = app
        self.metrics = metrics
        self.log_format = log_format
        self.extra_headers = extra_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        note = scope[NOTE] = Note(request_id(scope))
        added = ((HEADER, note.request_id.encode("ascii")), *self.extra_headers)
        status = 500  # what the client sees when the app fails before it answers

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.request(scope["method"], route, status, seconds)
            if self.log_format != "off":
                access_log.info(self._line(scope["method"], route, status, seconds, note))

    def _line(self, method: str, route: str, status: int, seconds: float, note: Note) -> str:
        if self.log_format == "text":
            extra = "".join(
                f" {k}={v}"
                for k, v in (("key", note.key_id), ("model", note.model), ("task", note.task_id), ("cost", note.cost))
                if v is not None
            )
            return f"{note.request_id} {method} {route} {status} {seconds * 1000:.1f}ms{extra}"
        line: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": note.request_id,
            "method": method,
            "route": route,
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
            "key_id": note.key_id,
            "key_name": note.key_name,
            "model": note.model,
            "task_id": note.task_id,
            "cost": note.cost,
        }
        return orjson.dumps(line).decode()
