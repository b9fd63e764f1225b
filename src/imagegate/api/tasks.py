"""The task resource: list the caller's tasks, get one, cancel one, see its webhook deliveries.

Every generation is a task (sync ones too), so the list is the caller's whole history,
newest first, paged with an opaque cursor (the last task id of a page). Tasks show as
OpenAI-style task objects, whatever dialect created them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from imagegate.api.deps import BaseUrl, CurrentKey, GatewayDep
from imagegate.api.dialects.openai import task_object
from imagegate.api.openapi import Operation
from imagegate.api.responses import FastJSON
from imagegate.api.schemas import DeliveryList, TaskList, TaskObject
from imagegate.api.validation import check, given
from imagegate.db.database import aware
from imagegate.db.tables import Delivery, DeliveryAttempt
from imagegate.domain import GatewayError, TaskStatus, shown

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
STATUSES = [s.value for s in TaskStatus]

router = APIRouter()


class TaskListQuery(BaseModel):
    status: str | None = Field(
        None, description=f"only tasks in these states, comma-separated: {', '.join(STATUSES)}", examples=["failed"]
    )
    model: str | None = Field(None, max_length=200, description="only this model's tasks (catalog id)")
    after: str | None = Field(None, description="the next_cursor of the previous page")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="tasks per page")


def parse_statuses(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    wanted = [s.strip() for s in raw.split(",") if s.strip()]
    bad = [s for s in wanted if s not in STATUSES]
    if bad or not wanted:
        shown_bad = shown(bad[0] if bad else raw)
        raise GatewayError.bad("status", f"unknown status {shown_bad!r}; allowed: {', '.join(STATUSES)}")
    return wanted


def _doc(id: str, summary: str, model: type[BaseModel], text: str, **kw: Any) -> dict[str, Any]:
    return Operation(id=id, summary=summary, tag="Tasks", responses={200: (model, text)}, **kw).route_kwargs()


@router.get(
    "/v1/tasks", **_doc("list_tasks", "the caller's tasks, newest first", TaskList, "a page", query=TaskListQuery)
)
async def tasks_list(request: Request, gw: GatewayDep, caller: CurrentKey, base: BaseUrl) -> JSONResponse:
    q = check(TaskListQuery, given(request.query_params))
    rows, more = await gw.tasks.store.page(
        caller.id,
        statuses=parse_statuses(q.status),
        model=q.model,
        limit=q.limit,
        after=q.after,
    )
    data = [task_object(await gw.tasks.view(t, base)) for t in rows]
    return FastJSON(
        {"object": "list", "data": data, "has_more": more, "next_cursor": rows[-1].id if more and rows else None}
    )


@router.get("/v1/tasks/{task_id}", **_doc("get_task", "a task (any dialect's)", TaskObject, "the task"))
async def tasks_get(task_id: str, gw: GatewayDep, caller: CurrentKey, base: BaseUrl) -> JSONResponse:
    return FastJSON(task_object(await gw.tasks.view(await gw.tasks.get(task_id, caller), base)))


@router.post(
    "/v1/tasks/{task_id}/cancel",
    **_doc("cancel_task", "cancel a task", TaskObject, "the task, canceled (409 once it has finished)"),
)
async def tasks_cancel(task_id: str, gw: GatewayDep, caller: CurrentKey, base: BaseUrl) -> JSONResponse:
    task = await gw.tasks.get(task_id, caller)
    await gw.tasks.cancel(task)
    return FastJSON(task_object(await gw.tasks.view(await gw.tasks.store.get(task.id) or task, base)))


def _ts(dt: datetime | None) -> float | None:
    return round(aware(dt).timestamp(), 3) if dt is not None else None


@router.get(
    "/v1/tasks/{task_id}/deliveries",
    **_doc("list_task_deliveries", "a task's webhook deliveries and their attempts", DeliveryList, "the deliveries"),
)
async def tasks_deliveries(task_id: str, gw: GatewayDep, caller: CurrentKey) -> JSONResponse:
    task = await gw.tasks.get(task_id, caller)
    out = [delivery_object(d, attempts) for d, attempts in await gw.deliveries.of_task(task.id)]
    return JSONResponse({"object": "list", "data": out})


def delivery_object(d: Delivery, attempts: Sequence[DeliveryAttempt]) -> dict[str, Any]:
    return {
        "id": d.id,
        "object": "webhook.delivery",
        "url": d.url,
        "status": d.status,
        "attempt_count": d.attempts,
        "created_at": _ts(d.created_at),
        "delivered_at": _ts(d.delivered_at),
        "next_attempt_at": _ts(d.next_at) if d.status == "pending" else None,
        "attempts": [
            {"at": _ts(a.at), "status_code": a.status_code, "error": a.error, "duration_ms": a.duration_ms}
            for a in attempts
        ],
    }
