"""Task / image rendering shared by the dialects: signed URLs, base64, the task object."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.responses import JSONResponse

from imagegate.api.files import output_path
from imagegate.db.repo import aware, to_usd
from imagegate.db.tables import Task
from imagegate.domain import TaskStatus
from imagegate.media import b64


class FastJSON(JSONResponse):
    """JSON bodies through orjson: several MB of base64 encode ~10x faster than with json.dumps."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ts(dt: Any) -> int | None:
    return int(aware(dt).timestamp()) if dt is not None else None  # type: ignore[union-attr]


async def image_items(gw: Any, task: Task, base: str, response_format: str | None = None) -> list[dict[str, Any]]:
    """``data[]`` of an OpenAI images response for a succeeded task."""
    rf = response_format or task.request.get("response_format", "url")
    images = (task.result or {}).get("images", [])
    if rf in ("b64_json", "b64_ephemeral"):
        fresh = gw.engine.take_handoff(task.id)  # a sync task's bytes, still in memory
        if fresh is not None:
            encoded = await asyncio.to_thread(lambda: [b64.encode(b) for b in fresh])
            return [_item({"b64_json": b64}, img) for b64, img in zip(encoded, images)]
    items = []
    for img in images:
        if "name" not in img:
            continue  # b64_ephemeral: nothing was stored
        if rf != "url":
            data = await gw.storage.get(output_path(img["name"]))
            items.append(_item({"b64_json": await asyncio.to_thread(b64.encode, data or b"")}, img))
        else:
            items.append(_item({"url": gw.signer.url(base, img["name"])}, img))
    return items


def _item(out: dict[str, Any], img: dict[str, Any]) -> dict[str, Any]:
    if img.get("revised_prompt"):
        out["revised_prompt"] = img["revised_prompt"]
    return out


def error_of(task: Task) -> dict[str, Any] | None:
    if task.status in (TaskStatus.failed.value, TaskStatus.canceled.value):
        return {"code": task.error_code, "message": task.error_message}
    return None


async def images_response(gw: Any, task: Task, base: str) -> dict[str, Any]:
    """The synchronous OpenAI-shaped body (also ``data`` etc. of a finished task)."""
    result = task.result or {}
    body: dict[str, Any] = {
        "created": ts(task.created_at),
        "data": await image_items(gw, task, base),
        "model": task.model,
        "size": result.get("size"),
        "output_format": result.get("output_format"),
        "latency": gw.engine.latency_ms(task),
        "cost": to_usd(task.cost_micros),
        "provider": result.get("provider"),
    }
    if task.request.get("quality"):
        body["quality"] = task.request["quality"]
    if task.request.get("background"):
        body["background"] = task.request["background"]
    if result.get("usage"):
        body["usage"] = result["usage"]
    return body


async def task_view(gw: Any, task: Task, base: str) -> dict[str, Any]:
    """The task object: GET /v1/images/generations/{id}, webhooks, the 202 of an async create."""
    view: dict[str, Any] = {
        "id": task.id, "task_id": task.id, "object": "image.task", "status": task.status, "model": task.model,
        "mode": task.mode, "created_at": ts(task.created_at), "started_at": ts(task.started_at),
        "completed_at": ts(task.completed_at),
        "urls": {"get": f"{base}/v1/images/generations/{task.id}", "cancel": f"{base}/v1/tasks/{task.id}/cancel"},
    }
    if task.status == TaskStatus.queued.value:
        view["queue_position"] = await gw.engine.queue_position(task)
    if task.progress is not None:
        view["progress"] = task.progress
    if task.status == TaskStatus.succeeded.value:
        body = await images_response(gw, task, base)
        body.pop("created", None)
        body.pop("model", None)
        view.update(body)
    else:
        view["cost"] = to_usd(task.cost_micros)
    err = error_of(task)
    if err:
        view["error"] = err
    return view
