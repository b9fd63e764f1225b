"""The task resource: list the caller's tasks, get one, cancel one, see its webhook deliveries.

Every generation is a task (sync ones too), so the list is the caller's whole history,
newest first, paged with an opaque cursor (the last task id of a page). Tasks show as
OpenAI-style task objects, whatever dialect created them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from imagegate.api.deps import BaseUrl, CurrentKey, GatewayDep
from imagegate.api.dialects.openai import task_object
from imagegate.api.responses import FastJSON
from imagegate.db.database import aware
from imagegate.domain import GatewayError, TaskStatus

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
STATUSES = [s.value for s in TaskStatus]

router = APIRouter()


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


@router.get("/v1/tasks")
async def tasks_list(request: Request, gw: GatewayDep, caller: CurrentKey, base: BaseUrl) -> JSONResponse:
    q = request.query_params
    rows, more = await gw.tasks.store.page(
        caller.id,
        statuses=parse_statuses(q.get("status")),
        limit=parse_limit(q.get("limit")),
        after=q.get("after") or None,
    )
    data = [task_object(await gw.tasks.view(t, base)) for t in rows]
    return FastJSON(
        {"object": "list", "data": data, "has_more": more, "next_cursor": rows[-1].id if more and rows else None}
    )


@router.get("/v1/tasks/{task_id}")
async def tasks_get(task_id: str, gw: GatewayDep, caller: CurrentKey, base: BaseUrl) -> JSONResponse:
    return FastJSON(task_object(await gw.tasks.view(await gw.tasks.get(task_id, caller), base)))


@router.post("/v1/tasks/{task_id}/cancel")
async def tasks_cancel(task_id: str, gw: GatewayDep, caller: CurrentKey, base: BaseUrl) -> JSONResponse:
    task = await gw.tasks.get(task_id, caller)
    await gw.tasks.cancel(task)
    return FastJSON(task_object(await gw.tasks.view(await gw.tasks.store.get(task.id) or task, base)))


def _ts(dt: datetime | None) -> float | None:
    return round(aware(dt).timestamp(), 3) if dt is not None else None


@router.get("/v1/tasks/{task_id}/deliveries")
async def tasks_deliveries(task_id: str, gw: GatewayDep, caller: CurrentKey) -> JSONResponse:
    task = await gw.tasks.get(task_id, caller)
    out: list[dict[str, Any]] = []
    for d, attempts in await gw.deliveries.of_task(task.id):
        out.append(
            {
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
        )
    return JSONResponse({"object": "list", "data": out})
