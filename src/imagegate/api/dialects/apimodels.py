"""apimodels: ``{code, msg, data}`` envelope on ``/api/v1/images/generations``.

Translation only: ``image_base64`` / ``image_url`` / ``image_urls`` (images 1, 2, ... in that
order) and ``mask_base64`` -> :func:`build_request`; a model the catalog marks ``sync`` runs
inline and answers ``completed`` with ``resultUrls``, any other is queued and answers
``pending``. The HTTP status always equals ``code``. An ``Idempotency-Key`` header replays the
first answer, rebuilt from its task (409 while that request is still running, 422 when the key
came with another body). The ``callback_url`` body is the seed's
(``data.param`` and ``data.resultJson`` are JSON strings), sent by the webhook outbox with its
retry promise and our Standard Webhooks signature headers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from imagegate.api import idempotency
from imagegate.api.auth import require_key
from imagegate.api.dialects.openai import read_body, resolve_image, run_inline
from imagegate.catalog.validate import build_request
from imagegate.db.repo import aware
from imagegate.db.tables import ApiKey, Task
from imagegate.domain import ErrorCode, GatewayError, ImageInput, TaskStatus
from imagegate.engine.runner import Engine
from imagegate.media import fetch
from imagegate.webhooks.delivery import Payload, register_payload

DIALECT = "apimodels"
PATH = "/api/v1/images/generations"
MAX_IMAGES = 16
STATES = {
    TaskStatus.queued.value: "pending", TaskStatus.awaiting_upload.value: "pending",
    TaskStatus.running.value: "processing", TaskStatus.succeeded.value: "completed",
    TaskStatus.failed.value: "failed", TaskStatus.canceled.value: "failed",
}
IMAGE_FIELDS = ("image_base64", "image_url", "image_urls", "mask_base64")
#: body fields that are not build_request parameters
IGNORED = (*IMAGE_FIELDS, "callback_url", "response_format")
#: what build_request calls a parameter -> what an apimodels client sent
PARAM_NAMES = {"image": "image_url", "mask": "mask_base64"}


def envelope_status(exc: GatewayError) -> int:
    """The seed's codes: 400 bad input, 401 bad key, 402 credits, 404 unknown task, 500 ours or upstream;
    and for an ``Idempotency-Key``, 409 (its request is still running) and 422 (another body)."""
    if exc.status in (401, 402, 429):
        return exc.status
    if exc.code == ErrorCode.not_found:
        return 404
    if exc.code in (ErrorCode.conflict, ErrorCode.idempotency_mismatch):
        return exc.status
    return 400 if exc.status < 500 else 500


def envelope_error(exc: GatewayError) -> JSONResponse:
    status = envelope_status(exc)
    body = {"code": status, "msg": exc.message, "data": None, "param": exc.param, "error": exc.code.value}
    headers = {"retry-after": str(int(max(1, exc.retry_after)))} if exc.retry_after is not None else None
    return JSONResponse(body, status_code=status, headers=headers)


def ms(dt: Any) -> int | None:
    return int(aware(dt).timestamp() * 1000) if dt is not None else None  # type: ignore[union-attr]


def _strings(body: dict[str, Any], name: str, many: bool) -> list[str]:
    value = body.get(name)
    if value is None or value == "" or value == []:
        return []
    values = value if isinstance(value, list) else [value]
    if (isinstance(value, list) and not many) or any(not isinstance(v, str) or not v.strip() for v in values):
        kind = "an array of strings" if many else "a string"
        raise GatewayError.bad(name, f"'{name}' must be {kind}")
    return values


async def collect(gw: Any, key: ApiKey, body: dict[str, Any]) -> tuple[list[ImageInput], ImageInput | None]:
    """image_base64 first, then image_url, then image_urls: the order a prompt's 'image 1, 2' refers to."""
    sources = [(name, v) for name, many in (("image_base64", True), ("image_url", False), ("image_urls", True))
               for v in _strings(body, name, many)]
    if len(sources) > MAX_IMAGES:
        raise GatewayError.bad("image_urls", f"at most {MAX_IMAGES} input images")
    images = list(await asyncio.gather(*(resolve_image(gw, key, v, p) for p, v in sources)))
    masks = _strings(body, "mask_base64", False)
    mask = await resolve_image(gw, key, masks[0], "mask_base64") if masks else None
    if mask is not None and images and (mask.width, mask.height) != (images[0].width, images[0].height):
        raise GatewayError.bad("mask_base64", f"'mask_base64' must have the size of image 1 "
                               f"({images[0].width}x{images[0].height}), got {mask.width}x{mask.height}")
    return images, mask


def recorded_param(body: dict[str, Any]) -> dict[str, Any]:
    """The request as the client sent it (for ``data.param``), base64 payloads summarised."""
    out = {}
    for k, v in body.items():
        if k in ("image_base64", "mask_base64") and v:
            n = sum(len(x) for x in v) if isinstance(v, list) else len(str(v))
            out[k] = f"<base64, {n} characters>"
        else:
            out[k] = v
    return out


async def task_data(gw: Any, task: Task, base: str) -> dict[str, Any]:
    """``data`` of a create or query answer."""
    state = STATES.get(task.status, "pending")
    data: dict[str, Any] = {"taskId": task.id, "state": state, "createTime": ms(task.created_at)}
    if state == "completed":
        data["resultUrls"] = result_urls(gw, task, base)
    if state == "failed":
        data["failCode"] = task.error_code
        data["failMsg"] = task.error_message or "generation failed"
    if task.completed_at is not None:
        data["completeTime"] = ms(task.completed_at)
    return data


def result_urls(gw: Any, task: Task, base: str) -> list[str]:
    return [gw.signer.url(base, img["name"]) for img in (task.result or {}).get("images", []) if "name" in img]


def public_model(gw: Any, task: Task) -> str:
    """``<provider>/<model_name>`` as apimodels names models (the catalog's owner)."""
    if "/" in task.model:
        return task.model
    model = gw.catalog.get(task.model)
    return f"{model.spec.owned_by if model else task.provider or 'imagegate'}/{task.model}"


async def callback_body(gw: Any, task: Task, base: str) -> Payload:
    """The seed's callback: ``param`` and ``resultJson`` are JSON strings, times are ms epochs."""
    data = await task_data(gw, task, base)
    done = data["state"] == "completed"
    param = ((task.request or {}).get("extra") or {}).get("param") or {"model": task.model}
    body = {"code": 200, "msg": "success" if done else (task.error_message or "failed"), "data": {
        "taskId": task.id, "model": public_model(gw, task), "state": data["state"],
        "param": json.dumps(param, ensure_ascii=False),
        "resultJson": json.dumps({"resultUrls": data["resultUrls"]}) if done else None,
        "failCode": None if done else task.error_code, "failMsg": None if done else data.get("failMsg"),
        "costTime": Engine.latency_ms(task), "completeTime": data.get("completeTime"),
        "createTime": data["createTime"],
    }}
    return Payload(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


def _ok(data: dict[str, Any], status: int = 200, msg: str = "success") -> JSONResponse:
    return JSONResponse({"code": status, "msg": msg, "data": data}, status_code=status)


async def create(gw: Any, request: Request) -> JSONResponse:
    request.state.render_error = envelope_error
    key = await require_key(request)
    body, multi = await read_body(request, gw.settings.max_request_bytes)
    if multi:
        name = next(iter(multi))
        raise GatewayError.bad(name, f"'{name}' is not a field here: send image_url, image_urls, "
                               "image_base64 or mask_base64")
    async with idempotency.guard(gw, request, key, body, {}) as claim:
        if claim is not None and claim.replay is not None:
            resp = await answer(gw, claim.replay, gw.base_url(request))
            resp.headers[idempotency.REPLAYED] = "true"
            return resp
        return await create_task(gw, request, key, body, claim)


async def create_task(gw: Any, request: Request, key: ApiKey, body: dict[str, Any],
                      claim: idempotency.Claim | None) -> JSONResponse:
    name = body.get("model")
    if not isinstance(name, str) or not name.strip():
        raise GatewayError.bad("model", "'model' is required")
    model = gw.catalog.get(name.strip())
    if model is None:
        raise GatewayError.bad("model", f"model '{name}' does not exist")
    callback_url = body.get("callback_url") or None
    if callback_url is not None:
        if not isinstance(callback_url, str):
            raise GatewayError.bad("callback_url", "'callback_url' must be a string")
        await fetch.check_url(callback_url, gw.policy, "callback_url")
    images, mask = await collect(gw, key, body)
    params = {k: v for k, v in body.items() if k not in IGNORED}  # results are always URLs here
    try:
        req = build_request(model, params, images=images, mask=mask)
    except GatewayError as exc:
        exc.param = PARAM_NAMES.get(exc.param or "", exc.param)
        raise
    base = gw.base_url(request)
    req.extra.update(base_url=base, param=recorded_param(body))
    sync = model.spec.sync
    task = await idempotency.create_bound(gw, claim, lambda s: gw.engine.create(
        key, model, req, dialect=DIALECT, is_async=not sync, callback_url=callback_url, session=s))
    if not sync:
        await gw.queue.enqueue(task.id)
    else:
        await run_inline(gw, task.id, gw.settings.sync_timeout)
        task = await gw.engine.get(task.id) or task
    return await answer(gw, task, base)


async def answer(gw: Any, task: Task, base: str) -> JSONResponse:
    """The create answer for a task: a failed sync one carries its error's code, anything else is 200
    (completed, pending, or still running past the sync timeout: poll it)."""
    data = await task_data(gw, task, base)
    if task.is_async or data["state"] != "failed":
        return _ok(data)
    code = task.error_code
    err = GatewayError(ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.upstream_error,
                       data["failMsg"])
    return _ok(data, envelope_status(err), data["failMsg"])


async def query(gw: Any, request: Request) -> JSONResponse:
    request.state.render_error = envelope_error
    key = await require_key(request)
    task_id = request.query_params.get("task_id", "").strip()
    if not task_id:
        raise GatewayError.bad("task_id", "'task_id' is required: GET ?task_id=<taskId>")
    task = await gw.engine.get(task_id, key.id)
    if task is None:
        raise GatewayError(ErrorCode.not_found, f"task '{task_id}' does not exist", param="task_id")
    return _ok(await task_data(gw, task, gw.base_url(request)))


def install(app: FastAPI, gw: Any) -> None:
    register_payload(DIALECT, callback_body)

    async def create_route(request: Request) -> JSONResponse:
        return await create(gw, request)

    async def query_route(request: Request) -> JSONResponse:
        return await query(gw, request)

    app.add_api_route(PATH, create_route, methods=["POST"])
    app.add_api_route(PATH, query_route, methods=["GET"])
