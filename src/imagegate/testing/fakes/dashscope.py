"""A fake of DashScope's image APIs: async text-to-image (Wan 2.x, Qwen-Image), task cancel, and
the synchronous multimodal edit (Qwen-Image-Edit).

Imitates: Bearer auth with ``InvalidApiKey`` 401, the mandatory ``X-DashScope-Async: enable``
header (403 ``AccessDenied`` without it), ``W*H`` sizes (Wan: 512-1440 per side; Qwen-Image: its
five fixed sizes), ``n`` 1-4 (Qwen-Image 1), task states PENDING -> RUNNING -> SUCCEEDED /
FAILED advancing per poll, ``UNKNOWN`` for unknown ids, partial success with per-item
``{code, message}``, 24 h signed result URLs, and the ``{request_id, code, message}`` envelope.
A prompt holding ``[dashscope:fail=I]`` makes result item I fail inspection (partial success).

Cancel, verified in the official dashscope Python SDK (``BaseAsyncApi.cancel``: ``POST
{base}/tasks/{task_id}/cancel``, "only tasks whose status is PENDING can be canceled"): a PENDING
task becomes CANCELED and stays so. Assumed: the success body (``{request_id}``) and the refusal for
a RUNNING / finished / unknown task (400 ``UnsupportedOperation``).

Edit, verified in Alibaba Cloud's Qwen-Image-Edit API reference (Model Studio, qwen-image-edit-api)
and the providers note: ``POST /services/aigc/multimodal-generation/generation``, sync only (an
``X-DashScope-Async`` header gets 403 ``AccessDenied``); ``input.messages`` is exactly one user
message whose content holds 1-3 ``{"image"}`` items (public URL or ``data:image/...;base64,``) and
exactly one ``{"text"}``; ``parameters`` n (qwen-image-edit-plus 1-6), size ``W*H`` (512-2048 per
side; absent: the last input's aspect ratio near 1024x1024), negative_prompt, prompt_extend,
watermark, seed; answer ``output.choices[].message.content[].image`` plus ``usage{width, height,
image_count}``; PNG output. Assumed: several images come back as several content items of one
choice, qwen-image-edit (not plus) allows n = 1 only, and the exact error texts.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import time
import uuid
from typing import Any

from fastapi import FastAPI
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.testing.fakes.server import Endpoint, fake_app
from imagegate.testing.fakes.state import FakeState, Job, trigger

PROVIDER = "dashscope"
TTL = 86400.0
QWEN_SIZES = {"1664*928", "1472*1140", "1328*1328", "1140*1472", "928*1664"}
_FAIL = re.compile(r"\[dashscope:fail=(\d+)\]")
_DATA_URI = re.compile(r"data:image/[a-z0-9.+-]+;base64,(.+)", re.S)
EDIT_MODELS = ("qwen-image-edit",)


def _err(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"request_id": str(uuid.uuid4()), "code": code, "message": message}, status)


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S.000")


def _check_params(model: str, params: dict[str, Any]) -> tuple[int, int, int] | JSONResponse:
    qwen = model.startswith("qwen-image")
    size = str(params.get("size") or ("1328*1328" if qwen else "1024*1024"))
    m = re.fullmatch(r"(\d+)\*(\d+)", size)
    if not m:
        return _err(400, "InvalidParameter", f"The size is not match the allowed size, got {size}")
    w, h = int(m.group(1)), int(m.group(2))
    if qwen and size not in QWEN_SIZES:
        return _err(
            400,
            "InvalidParameter",
            f"The size is not match the allowed size ['1664*928', '1472*1140', "
            f"'1328*1328', '1140*1472', '928*1664'], got {size}",
        )
    if not qwen and not (512 <= w <= 1440 and 512 <= h <= 1440):
        return _err(400, "InvalidParameter", "The width and height of size must be in [512, 1440]")
    n = int(params.get("n", 4 if not qwen else 1))
    if not 1 <= n <= (1 if qwen else 4):
        return _err(400, "InvalidParameter", f"The n is out of range, got {n}")
    return w, h, n


def _input_size(ref: str) -> tuple[int, int] | JSONResponse:
    """The pixel size of one content image: decoded for a data URI, assumed 1024x1024 for a URL."""
    if ref.startswith(("http://", "https://")):
        return 1024, 1024
    m = _DATA_URI.fullmatch(ref)
    if not m:
        return _err(400, "InvalidParameter", "The image must be a public URL or a data:image/...;base64 URI.")
    try:
        with Image.open(io.BytesIO(base64.b64decode(m.group(1), validate=True))) as img:
            return img.size
    except (binascii.Error, ValueError, OSError):
        return _err(400, "InvalidParameter.DataInspection", "Unable to decode the input image.")


def _check_edit(model: str, body: dict[str, Any]) -> tuple[str, tuple[int, int], int, int | None] | JSONResponse:
    """(prompt, output size, n, seed) for a valid multimodal edit body, else DashScope's 400."""
    messages = (body.get("input") or {}).get("messages")
    if not isinstance(messages, list) or len(messages) != 1 or messages[0].get("role") != "user":
        return _err(400, "InvalidParameter", "input.messages must hold exactly one user message")
    content = messages[0].get("content")
    if not isinstance(content, list):
        return _err(400, "InvalidParameter", "input.messages[0].content must be a list")
    images = [c["image"] for c in content if isinstance(c, dict) and isinstance(c.get("image"), str)]
    texts = [c["text"] for c in content if isinstance(c, dict) and isinstance(c.get("text"), str)]
    if len(texts) != 1 or not texts[0]:
        return _err(400, "InvalidParameter", "Exactly one text item is required in content")
    if not 1 <= len(images) <= 3 or len(images) + len(texts) != len(content):
        return _err(400, "InvalidParameter", "content must hold 1 to 3 image items and one text item")
    sizes: list[tuple[int, int]] = []
    for ref in images:
        size = _input_size(ref)
        if isinstance(size, JSONResponse):
            return size
        sizes.append(size)
    params = body.get("parameters") or {}
    n = params.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= (6 if "plus" in model else 1):
        return _err(400, "InvalidParameter", f"The n is out of range, got {n}")
    out = _edit_size(params.get("size"), sizes[-1])
    if isinstance(out, JSONResponse):
        return out
    return texts[0], out, n, params.get("seed")


def _edit_size(size: object, last: tuple[int, int]) -> tuple[int, int] | JSONResponse:
    """The asked ``W*H``, or the last input's aspect ratio near 1024x1024."""
    if size is not None:
        m = re.fullmatch(r"(\d+)\*(\d+)", str(size))
        if not m or not all(512 <= int(v) <= 2048 for v in m.groups()):
            return _err(400, "InvalidParameter", f"The size must be W*H with sides in [512, 2048], got {size}")
        return int(m.group(1)), int(m.group(2))
    w, h = last
    f = math.sqrt(1024 * 1024 / (w * h))
    return max(512, min(2048, round(w * f / 16) * 16)), max(512, min(2048, round(h * f / 16) * 16))


async def bearer(request: Request, state: FakeState) -> Response | None:
    if request.headers.get("authorization") != f"Bearer {state.api_key}":
        return _err(401, "InvalidApiKey", "Invalid API-key provided.")
    return None


def _refused(prompt: str) -> JSONResponse | None:
    t = trigger(prompt)
    if t == "moderated":
        return _err(400, "DataInspectionFailed", "Input data may contain inappropriate content.")
    if t == "rate-limit":
        return _err(429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.")
    return None


async def submit(request: Request, state: FakeState) -> Response:
    if request.headers.get("x-dashscope-async") != "enable":
        return _err(403, "AccessDenied", "current user api does not support synchronous calls")
    try:
        body = await request.json()
    except ValueError:
        return _err(400, "InvalidParameter", "The request body is not valid JSON")
    model = str(body.get("model") or "")
    if not model.startswith(("wan", "wanx", "qwen-image")) or model.startswith(EDIT_MODELS):
        return _err(400, "InvalidParameter", f"Model not exist: {model}")
    prompt = (body.get("input") or {}).get("prompt")
    if not prompt:
        return _err(400, "InvalidParameter", "Field required: input.prompt")
    checked = _check_params(model, body.get("parameters") or {})
    if isinstance(checked, JSONResponse):
        return checked
    if (r := _refused(prompt)) is not None:
        return r
    state.submitted()
    task_id = str(uuid.uuid4())
    state.jobs[task_id] = {
        "model": model,
        "prompt": prompt,
        "dims": checked,
        "status": "PENDING",
        "submit_time": _now(),
        "seed": (body.get("parameters") or {}).get("seed"),
    }
    return JSONResponse({"request_id": str(uuid.uuid4()), "output": {"task_id": task_id, "task_status": "PENDING"}})


async def _finish(state: FakeState, job: Job) -> None:
    w, h, n = job["dims"]
    job["end_time"] = _now()
    if trigger(job["prompt"]) == "error":
        job["status"] = "FAILED"
        job["code"], job["message"] = "InternalError.Algo", "Algorithm process error."
        return
    await state.work(n)
    fail = {int(i) for i in _FAIL.findall(job["prompt"])}
    results: list[dict[str, Any]] = []
    for i in range(n):
        if i in fail:
            results.append(
                {"code": "DataInspectionFailed", "message": "Output data may contain inappropriate content."}
            )
            continue
        data = state.image(job["prompt"], w, h, "png", seed=job["seed"], index=i)
        results.append(
            {
                "orig_prompt": job["prompt"],
                "actual_prompt": job["prompt"],
                "url": state.link(data, "image/png", ttl=TTL),
            }
        )
    ok = sum(1 for r in results if "url" in r)
    job["results"] = results
    job["metrics"] = {"TOTAL": n, "SUCCEEDED": ok, "FAILED": n - ok}
    if ok:
        job["status"] = "SUCCEEDED"
    else:
        job["status"], job["code"], job["message"] = "FAILED", results[0]["code"], results[0]["message"]


async def task(request: Request, state: FakeState) -> Response:
    task_id = request.path_params["task_id"]
    job = state.jobs.get(task_id)
    rid = str(uuid.uuid4())
    if job is None:
        return JSONResponse({"request_id": rid, "output": {"task_id": task_id, "task_status": "UNKNOWN"}})
    if job["status"] in ("PENDING", "RUNNING"):
        if (stage := state.advance(task_id, "PENDING", "RUNNING")) is None:
            await _finish(state, job)
        else:
            job["status"] = stage
    out: dict[str, Any] = {
        "task_id": task_id,
        "task_status": job["status"],
        "submit_time": job["submit_time"],
        "scheduled_time": job["submit_time"],
    }
    body: dict[str, Any] = {"request_id": rid, "output": out}
    if job["status"] in ("SUCCEEDED", "FAILED", "CANCELED"):
        out["end_time"] = job["end_time"]
        if "results" in job:
            out["results"] = job["results"]
            out["task_metrics"] = job["metrics"]
            body["usage"] = {"image_count": job["metrics"]["SUCCEEDED"]}
        if job["status"] == "FAILED":
            out["code"], out["message"] = job["code"], job["message"]
    return JSONResponse(body)


async def edit(request: Request, state: FakeState) -> Response:
    if request.headers.get("x-dashscope-async"):
        return _err(403, "AccessDenied", "current user api does not support asynchronous calls")
    try:
        body = await request.json()
    except ValueError:
        return _err(400, "InvalidParameter", "The request body is not valid JSON")
    model = str(body.get("model") or "")
    if not model.startswith(EDIT_MODELS):
        return _err(400, "InvalidParameter", f"Model not exist: {model}")
    checked = _check_edit(model, body)
    if isinstance(checked, JSONResponse):
        return checked
    prompt, (w, h), n, seed = checked
    if (r := _refused(prompt)) is not None:
        return r
    if trigger(prompt) == "error":
        return _err(500, "InternalError.Algo", "Algorithm process error.")
    state.calls["edit"] += 1
    await state.work(n)
    edits: list[dict[str, Any]] = request.app.state.edits
    edits.append(body)  # sync: no task to look up later; tests read the bodies on ``app.state.edits``
    urls = [state.link(state.image(prompt, w, h, "png", seed=seed, index=i), "image/png", ttl=TTL) for i in range(n)]
    return JSONResponse(
        {
            "request_id": str(uuid.uuid4()),
            "output": {
                "choices": [
                    {"finish_reason": "stop", "message": {"role": "assistant", "content": [{"image": u} for u in urls]}}
                ]
            },
            "usage": {"width": w, "height": h, "image_count": n},
        }
    )


async def cancel(request: Request, state: FakeState) -> Response:
    job = state.jobs.get(request.path_params["task_id"])
    if job is None or job.get("status") != "PENDING":
        return _err(400, "UnsupportedOperation", "Only tasks whose status is PENDING can be canceled.")
    job["status"], job["end_time"] = "CANCELED", _now()
    return JSONResponse({"request_id": str(uuid.uuid4())})


ROUTES = (
    Endpoint("POST", "/api/v1/services/aigc/text2image/image-synthesis", submit),
    Endpoint("POST", "/api/v1/services/aigc/multimodal-generation/generation", edit),
    Endpoint("POST", "/api/v1/tasks/{task_id}/cancel", cancel, count="cancel", count_after_auth=True),
    Endpoint("GET", "/api/v1/tasks/{task_id}", task, count="poll", count_after_auth=True),
)


def create_app(state: FakeState) -> FastAPI:
    app = fake_app(state, ROUTES, auth=bearer)
    app.state.edits = []
    return app
