"""The task resource: list the caller's tasks, get one, cancel one, see its webhook deliveries.

Every generation is a task (sync ones too), so the list is the caller's whole history,
newest first, paged with an opaque cursor (the last task id of a page).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import and_, or_, select

from imagegate.api.auth import require_key
from imagegate.api.render import task_view
from imagegate.db.tables import ApiKey, Task
from imagegate.domain import ErrorCode, GatewayError, TaskStatus
from imagegate.webhooks.delivery import deliveries_of

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
STATUSES = [s.value for s in TaskStatus]


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise GatewayError.bad("limit", f"'limit' must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def parse_statuses(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    wanted = [s.strip() for s in raw.split(",") if s.strip()]
    bad = [s for s in wanted if s not in STATUSES]
    if bad or not wanted:
        raise GatewayError.bad("status", f"unknown status {bad[0] if bad else raw!r}; allowed: {', '.join(STATUSES)}")
    return wanted


async def list_tasks(gw: Any, key: ApiKey, *, statuses: list[str] | None, limit: int,
                     after: str | None) -> tuple[list[Task], bool]:
    """A page of the key's tasks, newest first, and whether more follow."""
    q = select(Task).where(Task.key_id == key.id)
    if statuses:
        q = q.where(Task.status.in_(statuses))
    async with gw.db.session() as s:
        if after:
            anchor = (await s.execute(select(Task.seq, Task.id).where(
                Task.id == after, Task.key_id == key.id))).one_or_none()
            if anchor is None:
                raise GatewayError.bad("after", f"'after' must be a task id from a previous page; no task '{after}'")
            q = q.where(or_(Task.seq < anchor.seq, and_(Task.seq == anchor.seq, Task.id < anchor.id)))
        rows = list((await s.execute(q.order_by(Task.seq.desc(), Task.id.desc()).limit(limit + 1))).scalars())
    return rows[:limit], len(rows) > limit


async def owned_task(gw: Any, key: ApiKey, task_id: str) -> Task:
    task = await gw.engine.get(task_id, key.id)
    if task is None:  # another key's task looks exactly like a missing one
        raise GatewayError(ErrorCode.not_found, f"no task '{task_id}'", param="task_id")
    return task


def install(app: FastAPI, gw: Any) -> None:
    @app.get("/v1/tasks")
    async def tasks_list(request: Request) -> JSONResponse:
        key = await require_key(request)
        q = request.query_params
        rows, more = await list_tasks(gw, key, statuses=parse_statuses(q.get("status")),
                                      limit=parse_limit(q.get("limit")), after=q.get("after") or None)
        base = gw.base_url(request)
        data = [await task_view(gw, t, base) for t in rows]
        return JSONResponse({"object": "list", "data": data, "has_more": more,
                             "next_cursor": rows[-1].id if more and rows else None})

    @app.get("/v1/tasks/{task_id}")
    async def tasks_get(task_id: str, request: Request) -> JSONResponse:
        key = await require_key(request)
        return JSONResponse(await task_view(gw, await owned_task(gw, key, task_id), gw.base_url(request)))

    @app.post("/v1/tasks/{task_id}/cancel")
    async def tasks_cancel(task_id: str, request: Request) -> JSONResponse:
        key = await require_key(request)
        task = await owned_task(gw, key, task_id)
        if not await gw.engine.cancel(task):
            fresh = await gw.engine.get(task.id) or task
            raise GatewayError(ErrorCode.conflict, f"task '{task_id}' already finished ({fresh.status}); "
                               "only queued or running tasks can be canceled", param="task_id")
        task = await gw.engine.get(task.id) or task
        return JSONResponse(await task_view(gw, task, gw.base_url(request)))

    @app.get("/v1/tasks/{task_id}/deliveries")
    async def tasks_deliveries(task_id: str, request: Request) -> JSONResponse:
        key = await require_key(request)
        task = await owned_task(gw, key, task_id)
        return JSONResponse({"object": "list", "data": await deliveries_of(gw, task.id)})
