"""Admin API, operations: usage (JSON or CSV), every key's tasks, webhook redelivery, the catalog's state.

Usage counts the tasks created in a period, grouped by key, model or day (UTC): tasks, successes,
errors, images delivered and the spend settled. The catalog view says, per model and deployment,
which environment variables are missing and how each deployment's circuit stands in this process.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from imagegate.api.admin_keys import ID, doc, parse_time
from imagegate.api.admin_schemas import (
    AdminModelList,
    AdminTask,
    AdminTaskList,
    AdminTaskQuery,
    UsageEntry,
    UsageQuery,
    UsageReport,
)
from imagegate.api.deps import AdminKey, BaseUrl, GatewayDep
from imagegate.api.dialects.openai import task_object
from imagegate.api.responses import FastJSON
from imagegate.api.schemas import Delivery, DeliveryList
from imagegate.api.tasks import delivery_object, parse_statuses
from imagegate.api.validation import check, given
from imagegate.catalog import CatalogModel
from imagegate.db.admin import TaskFilter, UsageRow
from imagegate.db.database import to_usd
from imagegate.db.tables import Task, utcnow
from imagegate.db.tasks import month_start
from imagegate.domain import ErrorCode, GatewayError, shown

router = APIRouter()
CSV_FIELDS = list(UsageEntry.model_fields)
CSV_ANSWER = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}


def _period(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    now = utcnow()
    lo = parse_time("from", start) if start else month_start(now)
    hi = parse_time("to", end) if end else now + timedelta(seconds=1)
    if hi <= lo:
        raise GatewayError.bad("to", "'to' must be later than 'from'")
    return lo, hi


def _entry(r: UsageRow) -> dict[str, Any]:
    return {
        "group": r.group,
        "key_name": r.key_name,
        "tasks": r.tasks,
        "succeeded": r.succeeded,
        "errors": r.errors,
        "images": r.images,
        "spend_usd": to_usd(r.cost_micros) or 0.0,
    }


def _total(rows: list[UsageRow]) -> dict[str, Any]:
    return _entry(
        UsageRow("total", None, *(sum(getattr(r, f) for r in rows)
                                  for f in ("tasks", "succeeded", "errors", "images", "cost_micros")))
    )  # fmt: skip


def _csv(entries: list[dict[str, Any]], group_by: str) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(entries)
    disposition = f'attachment; filename="imagegate-usage-by-{group_by}.csv"'
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={"content-disposition": disposition})


@router.get(
    "/admin/v1/usage",
    **doc("admin_usage", "spend, images, tasks and errors over a period, by key, model or day",
          {200: (UsageReport, "the rows and their total (format=csv: the rows as CSV)")},
          query=UsageQuery, raw_responses=CSV_ANSWER),
)  # fmt: skip
async def usage(request: Request, gw: GatewayDep, admin: AdminKey) -> Response:
    q = check(UsageQuery, given(request.query_params))
    lo, hi = _period(q.start, q.end)
    rows = await gw.admin.usage(lo, hi, q.group_by, q.key_id)
    entries = [_entry(r) for r in rows]
    if q.format == "csv":
        return _csv(entries, q.group_by)
    return JSONResponse(
        {
            "object": "usage",
            "from": int(lo.timestamp()),
            "to": int(hi.timestamp()),
            "group_by": q.group_by,
            "data": entries,
            "total": _total(rows),
        }
    )


async def admin_task(gw: GatewayDep, t: Task, base: str, names: dict[str, str]) -> dict[str, Any]:
    out = task_object(await gw.tasks.view(t, base))
    out.update(
        key_id=t.key_id,
        key_name=names.get(t.key_id),
        dialect=t.dialect,
        request=t.request,
        deployment=t.deployment_id,
        provider=t.provider,
        attempts=t.attempts,
        cost_usd=to_usd(t.cost_micros) or 0.0,
        reserved_usd=to_usd(t.reserved_micros) or 0.0,
    )
    return out


@router.get(
    "/admin/v1/tasks",
    **doc("admin_list_tasks", "every key's tasks, newest first, with request, upstream, latency, cost and outputs",
          {200: (AdminTaskList, "a page")}, query=AdminTaskQuery),
)  # fmt: skip
async def tasks(request: Request, gw: GatewayDep, admin: AdminKey, base: BaseUrl) -> JSONResponse:
    q = check(AdminTaskQuery, given(request.query_params))
    f = TaskFilter(
        key_id=q.key_id,
        model=q.model,
        statuses=parse_statuses(q.status),
        start=parse_time("from", q.start) if q.start else None,
        end=parse_time("to", q.end) if q.end else None,
    )
    rows, more = await gw.admin.tasks(f, limit=q.limit, after=q.after)
    names = await gw.admin.key_names([t.key_id for t in rows])
    data = [await admin_task(gw, t, base, names) for t in rows]
    cursor = rows[-1].id if more and rows else None
    return FastJSON({"object": "list", "data": data, "has_more": more, "next_cursor": cursor})


async def any_task(gw: GatewayDep, task_id: str) -> Task:
    """Any key's task (for admin keys); an unknown one is a 404 naming ``task_id``."""
    task = await gw.tasks.store.get(task_id) if ID.fullmatch(task_id) else None
    if task is None:
        raise GatewayError(ErrorCode.not_found, f"no task '{shown(task_id)}'", param="task_id")
    return task


@router.post(
    "/admin/v1/tasks/{task_id}/cancel",
    **doc("admin_cancel_task", "cancel any key's queued or running task (refunded; 409 once it has finished)",
          {200: (AdminTask, "the task, canceled")}),
)  # fmt: skip
async def cancel(task_id: str, gw: GatewayDep, admin: AdminKey, base: BaseUrl) -> JSONResponse:
    task = await any_task(gw, task_id)
    await gw.tasks.cancel(task)
    canceled = await gw.tasks.store.get(task.id) or task
    return FastJSON(await admin_task(gw, canceled, base, await gw.admin.key_names([canceled.key_id])))


@router.get(
    "/admin/v1/tasks/{task_id}/deliveries",
    **doc("admin_list_task_deliveries", "any key's task: its webhook deliveries and their attempts",
          {200: (DeliveryList, "the deliveries")}),
)  # fmt: skip
async def deliveries(task_id: str, gw: GatewayDep, admin: AdminKey) -> JSONResponse:
    task = await any_task(gw, task_id)
    out = [delivery_object(d, attempts) for d, attempts in await gw.deliveries.of_task(task.id)]
    return JSONResponse({"object": "list", "data": out})


@router.post(
    "/admin/v1/tasks/{task_id}/deliveries/{delivery_id}/redeliver",
    **doc("admin_redeliver", "send a finished webhook delivery again (409 while it is still pending)",
          {200: (Delivery, "the delivery, pending again: it is sent within a second")}),
)  # fmt: skip
async def redeliver(task_id: str, delivery_id: str, gw: GatewayDep, admin: AdminKey) -> JSONResponse:
    task = await any_task(gw, task_id)
    before = {d.id: d.status for d, _ in await gw.deliveries.of_task(task.id)}
    if delivery_id not in before:
        raise GatewayError(
            ErrorCode.not_found, f"task '{task.id}' has no delivery '{shown(delivery_id)}'", param="delivery_id"
        )
    if before[delivery_id] == "pending":
        raise GatewayError(ErrorCode.conflict, "this delivery is still pending: it is sent (or retried) already",
                           param="delivery_id")  # fmt: skip
    await gw.deliveries.redeliver(task.id, delivery_id, utcnow())
    found = [delivery_object(d, a) for d, a in await gw.deliveries.of_task(task.id) if d.id == delivery_id]
    return JSONResponse(found[0])


def admin_model(gw: GatewayDep, m: CatalogModel) -> dict[str, Any]:
    deps = []
    for d in m.deployments:
        state, failures = gw.breakers.state_of(d.id)
        deps.append(
            {
                "id": d.id,
                "provider": d.provider,
                "upstream_model": d.model,
                "ready": d.ready,
                "missing_env": list(d.missing),
                "region": d.region,
                "weight": d.weight,
                "max_concurrency": d.max_concurrency,
                "breaker": state,
                "consecutive_failures": failures,
            }
        )
    return {
        "id": m.id,
        "object": "model",
        "ready": m.ready,
        "not_ready_reason": m.not_ready_reason,
        "missing_env": sorted({v for d in m.deployments for v in d.missing}),
        "deployments": deps,
    }


@router.get(
    "/admin/v1/models",
    **doc("admin_list_models", "every catalog model: readiness, deployments, circuits",
          {200: (AdminModelList, "the models")}),
)  # fmt: skip
async def models(gw: GatewayDep, admin: AdminKey) -> JSONResponse:
    return JSONResponse({"object": "list", "data": [admin_model(gw, m) for m in gw.catalog.all()]})
