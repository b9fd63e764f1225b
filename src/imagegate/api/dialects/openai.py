"""OpenAI Images API (and the OmniRouters / OmniaKey / ImageRouter variants riding on it).

Translation only: JSON or multipart -> params + images -> :func:`build_request`; the task
-> OpenAI's response shape. ``/v1/openai/images/*`` are ImageRouter's paths (webp default).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from imagegate.api import idempotency
from imagegate.api.auth import require_key
from imagegate.api.errors import gateway_response
from imagegate.api.render import FastJSON as JSONResponse
from imagegate.api.render import images_response, task_view
from imagegate.catalog.validate import build_request
from imagegate.db.tables import ApiKey
from imagegate.domain import ErrorCode, GatewayError, ImageInput, TaskStatus
from imagegate.media import fetch

MAX_IMAGES = 16
_TRUE = ("1", "true", "yes", "on")
_WAIT = re.compile(r"wait(?:=(\d+(?:\.\d+)?))?")


async def read_body(request: Request, max_bytes: int) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """(scalar fields, multi-valued image fields) from JSON, multipart or urlencoded bodies."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise GatewayError(ErrorCode.payload_too_large, f"request body is larger than {max_bytes // 2**20} MB")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form(max_files=64, max_fields=256)
        except Exception as exc:  # malformed multipart
            raise GatewayError.bad("body", f"malformed form body ({type(exc).__name__})") from exc
        fields: dict[str, Any] = {}
        multi: dict[str, list[Any]] = {}
        for name, value in form.multi_items():
            base = name[:-2] if name.endswith("[]") else name
            if base in ("image", "mask", "images") or isinstance(value, UploadFile):
                multi.setdefault(base, []).append(value)
            else:
                fields[base] = value
        return fields, multi
    raw = await request.body()
    if len(raw) > max_bytes:
        raise GatewayError(ErrorCode.payload_too_large, f"request body is larger than {max_bytes // 2**20} MB")
    if not raw.strip():
        raise GatewayError.bad("body", "request body is empty: send JSON with at least 'model' and 'prompt'")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GatewayError.bad("body", f"request body is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise GatewayError.bad("body", "request body must be a JSON object")
    multi = {}
    for name in ("image", "mask", "images", "image[]", "mask[]"):
        if name in data:
            value = data.pop(name)
            base = name[:-2] if name.endswith("[]") else name
            values = value if isinstance(value, list) else [value]
            if any(not isinstance(v, str) for v in values):
                raise GatewayError.bad(base, f"'{base}' must be a string or an array of strings")
            multi.setdefault(base, []).extend(v for v in values if v != "")
    return data, multi


async def resolve_image(gw: Any, key: ApiKey, value: Any, param: str) -> ImageInput:
    """An upload part or string (URL, data URI, base64, upload://id) -> checked image."""
    if isinstance(value, UploadFile):
        data = await value.read(gw.policy.max_bytes + 1)
        if len(data) > gw.policy.max_bytes:
            raise GatewayError(ErrorCode.payload_too_large,
                               f"'{param}' is larger than the {gw.policy.max_bytes // 2**20} MB limit", param=param)
        return await asyncio.to_thread(fetch.checked, data, param, gw.policy, "upload")
    if isinstance(value, str) and value.startswith("upload://"):
        resolver = getattr(gw, "resolve_upload", None)
        if resolver is None:
            raise GatewayError.bad(param, "upload:// references are not enabled on this server")
        return await resolver(key, value[len("upload://"):], param)
    return await fetch.resolve(gw.fetch_client, value, gw.policy, param)


async def collect_images(gw: Any, key: ApiKey, multi: dict[str, list[Any]]) -> tuple[list[ImageInput], ImageInput | None]:
    sources = [("image", v) for v in multi.get("image", [])] + [("images", v) for v in multi.get("images", [])]
    if len(sources) > MAX_IMAGES:
        raise GatewayError.bad("image", f"at most {MAX_IMAGES} input images")
    images = list(await asyncio.gather(*(resolve_image(gw, key, v, p) for p, v in sources)))
    masks = multi.get("mask", [])
    if len(masks) > 1:
        raise GatewayError.bad("mask", "send one mask")
    mask = await resolve_image(gw, key, masks[0], "mask") if masks else None
    if mask is not None and images and (mask.width, mask.height) != (images[0].width, images[0].height):
        raise GatewayError.bad("mask", f"'mask' must have the same dimensions as the first image "
                               f"({images[0].width}x{images[0].height}), got {mask.width}x{mask.height}")
    return images, mask


def prefer_wait(request: Request) -> float | None:
    for part in request.headers.get("prefer", "").split(","):
        m = _WAIT.fullmatch(part.strip())
        if m:
            return float(m.group(1)) if m.group(1) else 60.0
    return None


async def wait_for(gw: Any, task_id: str, seconds: float) -> None:
    """Wait until the task is terminal or the time is up (cheap DB polls)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    delay = 0.02
    while loop.time() < deadline:
        task = await gw.engine.get(task_id)
        if task is None or TaskStatus(task.status).terminal:
            return
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 1.5, 0.5)


async def run_inline(gw: Any, task: Any, timeout: float) -> Any:
    """Run a task in this request (ideally one created with ``start=True``); it survives a client hang-up.

    Returns the finished task, or None when it is still running after ``timeout``.
    """
    if isinstance(task, str):  # a queued task id: the run claims it
        task_id, claimed = task, None
    else:
        task_id, claimed = task.id, task if task.status == TaskStatus.running.value else None
    job = asyncio.create_task(gw.engine.run(task_id, claimed=claimed))
    try:
        done = await asyncio.wait_for(asyncio.shield(job), timeout)
    except asyncio.TimeoutError:
        return None
    return done or await gw.engine.get(task_id)


def task_error(task: Any) -> GatewayError:
    code = task.error_code
    return GatewayError(ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.upstream_error,
                        task.error_message or "generation failed")


async def replay(gw: Any, task: Any, base: str) -> Response:
    """What the first request with this Idempotency-Key answered, rebuilt from its task."""
    headers = {idempotency.REPLAYED: "true", "x-imagegate-task-id": task.id}
    if task.is_async:
        status = 200 if TaskStatus(task.status).terminal else 202
        return JSONResponse(await task_view(gw, task, base), status_code=status, headers=headers)
    if task.status != TaskStatus.succeeded.value:
        resp = gateway_response(task_error(task))
        resp.headers.update(headers)
        return resp
    if task.request.get("response_format") == "b64_ephemeral":
        raise GatewayError(ErrorCode.conflict, "the images of a 'b64_ephemeral' request are handed back once "
                           "and cannot be replayed", param=idempotency.HEADER)
    return JSONResponse(await images_response(gw, task, base), headers=headers)


def install(app: FastAPI, gw: Any) -> None:
    async def create(request: Request, mode: str, default_format: str) -> Response:
        key = await require_key(request)
        fields, multi = await read_body(request, gw.settings.max_request_bytes)
        async with idempotency.guard(gw, request, key, fields, multi) as claim:
            if claim is not None and claim.replay is not None:
                return await replay(gw, claim.replay, gw.base_url(request))
            return await create_task(request, key, fields, multi, mode, default_format, claim)

    async def create_task(request: Request, key: ApiKey, fields: dict[str, Any], multi: dict[str, list[Any]],
                          mode: str, default_format: str, claim: idempotency.Claim | None) -> Response:
        model_name = fields.get("model")
        if not model_name or not isinstance(model_name, str):
            raise GatewayError.bad("model", "'model' is required")
        model = gw.catalog.get(model_name)
        if model is None:
            raise GatewayError(ErrorCode.model_not_found, f"model '{model_name}' does not exist", param="model")
        q = request.query_params
        is_async = (q.get("async") or str(fields.pop("async", ""))).lower() in _TRUE
        callback_url = fields.pop("callback_url", None) or q.get("callback_url")
        if callback_url is not None:
            if not isinstance(callback_url, str):
                raise GatewayError.bad("callback_url", "'callback_url' must be a string")
            await fetch.check_url(callback_url, gw.policy, "callback_url")
        fields.setdefault("_default_output_format", default_format)
        images, mask = await collect_images(gw, key, multi)
        if mode == "edit" and not images:
            if default_format == "png":
                raise GatewayError.bad("image", "'image' is required on the edits endpoint")
            mode = "generate"  # ImageRouter's two paths are one handler

        req = build_request(model, fields, mode=mode, images=images, mask=mask)
        base = gw.base_url(request)
        req.extra["base_url"] = base  # where webhook payloads point their links
        slot = is_async and await gw.queue.reserve()  # a free worker: start at once, no queue hop
        try:
            task = await idempotency.create_bound(gw, claim, lambda s: gw.engine.create(
                key, model, req, dialect="openai", is_async=is_async, callback_url=callback_url, session=s,
                start=not is_async or slot))
        except BaseException:
            if slot:
                gw.queue.release()
            raise
        if is_async:
            if slot:
                gw.queue.run_claimed(task)
            else:
                await gw.queue.enqueue(task.id)
            wait = prefer_wait(request)
            if wait:
                await wait_for(gw, task.id, min(wait, 60.0))
                task = await gw.engine.get(task.id) or task
            status = 200 if TaskStatus(task.status).terminal else 202
            return JSONResponse(await task_view(gw, task, base), status_code=status)
        finished = await run_inline(gw, task, gw.settings.sync_timeout)
        if finished is None:  # still running after the sync timeout: hand back the task to poll
            return JSONResponse(await task_view(gw, await gw.engine.get(task.id) or task, base), status_code=202)
        if finished.status != TaskStatus.succeeded.value:
            raise task_error(finished)
        body = await images_response(gw, finished, base)
        return JSONResponse(body, headers={"x-imagegate-task-id": task.id})

    for prefix, fmt in (("/v1/images", "png"), ("/v1/openai/images", "webp")):
        app.add_api_route(f"{prefix}/generations", _bind(create, "generate", fmt), methods=["POST"])
        app.add_api_route(f"{prefix}/edits", _bind(create, "edit", fmt), methods=["POST"])

    async def get_task(task_id: str, request: Request) -> Response:
        key = await require_key(request)
        task = await gw.engine.get(task_id, key.id)
        if task is None:
            raise GatewayError(ErrorCode.not_found, f"no task '{task_id}'", param="task_id")
        return JSONResponse(await task_view(gw, task, gw.base_url(request)))

    app.add_api_route("/v1/images/generations/{task_id}", get_task, methods=["GET"])
    app.add_api_route("/v1/openai/images/generations/{task_id}", get_task, methods=["GET"])


def _bind(fn: Any, mode: str, fmt: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return await fn(request, mode, fmt)

    endpoint.__name__ = f"images_{mode}_{fmt}"
    return endpoint
