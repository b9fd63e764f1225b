"""One router per dialect: its create and task routes as endpoints over the core.

Every endpoint authenticates, reads the body (bounded), parses with the dialect, submits to the
core and renders with the dialect. Errors, including those raised while resolving the caller's
key, leave in the dialect's own envelope: the routes use a route class that hands any
:class:`GatewayError` to ``dialect.render_error``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from imagegate.api.access import note_of
from imagegate.api.body import IDEMPOTENCY_HEADER, idempotency_key, read_body
from imagegate.api.deps import CurrentKey, GatewayDep
from imagegate.api.dialects.base import CreateRoute, Dialect, ParseContext, TaskRoute
from imagegate.api.errors import busy_error
from imagegate.api.validation import check
from imagegate.db.database import BUSY
from imagegate.domain import GatewayError

log = logging.getLogger("imagegate.api")
REPLAYED = "Idempotent-Replayed"
IDEMPOTENCY_TEXT = (
    "1 to 255 printable ASCII characters: the same key with the same request replays the first answer "
    "(Idempotent-Replayed: true), with another request it is a 422, while the first runs a 409; kept 24 h"
)
Handler = Callable[[Request], Coroutine[Any, Any, Response]]
#: an endpoint; FastAPI reads its dependencies off its signature
Endpoint = Callable[..., Awaitable[Response]]


def _error_route(render: Callable[[GatewayError], Response]) -> type[APIRoute]:
    class DialectRoute(APIRoute):
        def get_route_handler(self) -> Handler:
            handler = super().get_route_handler()

            async def run(request: Request) -> Response:
                try:
                    return await handler(request)
                except GatewayError as exc:
                    return render(exc)
                except BUSY as exc:
                    return render(busy_error(request, exc))

            return run

    return DialectRoute


def add_dialect(router: APIRouter, dialect: Dialect) -> None:
    """Add a dialect's routes to ``router`` itself, not as an included router: requests to them are
    the hot path, and FastAPI matches a flat route list with less work than nested routers."""
    route_class = _error_route(dialect.render_error)
    for create in dialect.create_routes:
        endpoint = _create_endpoint(dialect, create)
        doc = replace(create.doc, headers={IDEMPOTENCY_HEADER: IDEMPOTENCY_TEXT, **create.doc.headers})
        router.add_api_route(
            create.path, endpoint, methods=["POST"], route_class_override=route_class, **doc.route_kwargs()
        )
    for task in dialect.task_routes:
        endpoint = _task_endpoint(dialect, task)
        router.add_api_route(
            task.path, endpoint, methods=["GET"], route_class_override=route_class, **task.doc.route_kwargs()
        )
    extra = dialect.extra_routes()
    if extra is not None:
        router.include_router(extra)


def _create_endpoint(dialect: Dialect, route: CreateRoute) -> Endpoint:
    async def create(request: Request, gw: GatewayDep, caller: CurrentKey) -> Response:
        body = await read_body(request, gw.settings.max_request_bytes, max_depth=gw.settings.max_json_depth)
        idem = await idempotency_key(request, body)
        ctx = ParseContext(
            caller=caller,
            base_url=gw.base_url(request),
            catalog=gw.catalog,
            max_image_bytes=gw.settings.max_image_bytes,
        )
        submission = await route.parse(request, body, ctx)
        submission.idempotency = idem
        outcome = await gw.submitter.submit(submission)
        note_of(request).learnt(outcome.task.model, outcome.task.id, outcome.task.cost_usd)
        response = dialect.render(outcome)
        response.headers["x-imagegate-task-id"] = outcome.task.id
        if outcome.replayed:
            response.headers[REPLAYED] = "true"
        return response

    create.__name__ = f"{dialect.name}_create_{route.path.strip('/').replace('/', '_')}"
    return create


def _task_endpoint(dialect: Dialect, route: TaskRoute) -> Endpoint:
    async def get_task(request: Request, gw: GatewayDep, caller: CurrentKey) -> Response:
        task_id = request.path_params.get(route.id_param)
        if task_id is None and route.doc.query is not None:
            task_id = str(getattr(check(route.doc.query, request.query_params), route.id_param))
        if not task_id:
            raise GatewayError.bad(route.id_param, f"'{route.id_param}' is required")
        task = await gw.tasks.get(task_id, caller, param=route.id_param)
        note_of(request).learnt(task.model, task.id)
        return dialect.render_task(await gw.tasks.view(task, gw.base_url(request)))

    get_task.__name__ = f"{dialect.name}_get_{route.path.strip('/').replace('/', '_')}"
    return get_task
