"""What a dialect is: parsers from its requests to a :class:`Submission`, and renderers of task views.

A dialect never touches the queue, the runner or SQL; :mod:`imagegate.api.wiring`
turns its routes into endpoints that authenticate, read the body, parse, submit to the core
and render, with every error in the dialect's own envelope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from fastapi import APIRouter, Request, Response

from imagegate.api.body import RequestBody
from imagegate.api.openapi import Operation
from imagegate.catalog import Catalog
from imagegate.domain import RETRY_AFTER, Caller, ErrorCode, GatewayError, Outcome, Submission, TaskView


@dataclass(frozen=True, slots=True)
class ParseContext:
    caller: Caller
    base_url: str
    catalog: Catalog  # read-only: to name models or route a model group
    max_image_bytes: int


Parse = Callable[[Request, RequestBody, ParseContext], Awaitable[Submission]]


@dataclass(frozen=True, slots=True)
class CreateRoute:
    """``POST path`` creates a task; ``parse`` reads it, checking the request with the models that
    ``doc`` shows in the OpenAPI document. A submission marked ``stream`` comes back to ``render``
    with ``Outcome.follow``, to answer with a stream that follows the task."""

    path: str
    parse: Parse
    doc: Operation


@dataclass(frozen=True, slots=True)
class TaskRoute:
    """``GET path`` shows a task; its id is the path parameter ``{id_param}`` or, when the path has
    none, the query parameter ``id_param`` (checked with ``doc.query``). ``id_param`` is also the
    client's name for it in errors."""

    path: str
    doc: Operation
    id_param: str = "task_id"


def task_error(view: TaskView) -> GatewayError:
    """A failed task's error, as the error a sync request would have raised (with its Retry-After)."""
    code = view.error.code if view.error else ""
    message = view.error.message if view.error else "generation failed"
    known = ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.upstream_error
    return GatewayError(known, message, retry_after=RETRY_AFTER.get(known))


class Dialect(Protocol):
    @property
    def name(self) -> str:
        """Recorded on the task: its webhooks use this dialect's body."""
        ...

    @property
    def create_routes(self) -> Sequence[CreateRoute]: ...

    @property
    def task_routes(self) -> Sequence[TaskRoute]: ...

    def render(self, outcome: Outcome) -> Response:
        """The answer to a create (may raise :class:`GatewayError`, rendered by ``render_error``)."""
        ...

    def render_task(self, view: TaskView) -> Response: ...

    def render_error(self, exc: GatewayError) -> Response: ...

    def webhook_body(self, view: TaskView) -> bytes: ...

    def extra_routes(self) -> APIRouter | None:
        """Routes beyond create and get (a model list, say)."""
        ...
