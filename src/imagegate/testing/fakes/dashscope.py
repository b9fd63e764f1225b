"""A fake of DashScope's async text-to-image API (Wan 2.x, Qwen-Image).

Imitates: Bearer auth with ``InvalidApiKey`` 401, the mandatory ``X-DashScope-Async: enable``
header (403 ``AccessDenied`` without it), ``W*H`` sizes (Wan: 512-1440 per side; Qwen-Image: its
five fixed sizes), ``n`` 1-4 (Qwen-Image 1), task states PENDING -> RUNNING -> SUCCEEDED /
FAILED advancing per poll, ``UNKNOWN`` for unknown ids, partial success with per-item
``{code, message}``, 24 h signed result URLs, and the ``{request_id, code, message}`` envelope.
A prompt holding ``[dashscope:fail=I]`` makes result item I fail inspection (partial success).
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imagegate.testing.fakes.common import FakeState, mount_blobs, trigger

PROVIDER = "dashscope"
TTL = 86400.0
QWEN_SIZES = {"1664*928", "1472*1140", "1328*1328", "1140*1472", "928*1664"}
_FAIL = re.compile(r"\[dashscope:fail=(\d+)\]")


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
        return _err(400, "InvalidParameter", f"The size is not match the allowed size ['1664*928', '1472*1140', "
                                             f"'1328*1328', '1140*1472', '928*1664'], got {size}")
    if not qwen and not (512 <= w <= 1440 and 512 <= h <= 1440):
        return _err(400, "InvalidParameter", "The width and height of size must be in [512, 1440]")
    n = int(params.get("n", 4 if not qwen else 1))
    if not 1 <= n <= (1 if qwen else 4):
        return _err(400, "InvalidParameter", f"The n is out of range, got {n}")
    return w, h, n


def create_app(state: FakeState) -> FastAPI:
    def unauthorized(request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {state.api_key}":
            return _err(401, "InvalidApiKey", "Invalid API-key provided.")
        return None

    async def submit(request: Request) -> Response:
        if (r := state.scripted(request)) is not None:
            return r
        if (r := unauthorized(request)) is not None:
            return r
        if request.headers.get("x-dashscope-async") != "enable":
            return _err(403, "AccessDenied", "current user api does not support synchronous calls")
        try:
            body = await request.json()
        except ValueError:
            return _err(400, "InvalidParameter", "The request body is not valid JSON")
        model = str(body.get("model") or "")
        if not model.startswith(("wan", "wanx", "qwen-image")):
            return _err(400, "InvalidParameter", f"Model not exist: {model}")
        prompt = (body.get("input") or {}).get("prompt")
        if not prompt:
            return _err(400, "InvalidParameter", "Field required: input.prompt")
        checked = _check_params(model, body.get("parameters") or {})
        if isinstance(checked, JSONResponse):
            return checked
        t = trigger(prompt)
        if t == "moderated":
            return _err(400, "DataInspectionFailed", "Input data may contain inappropriate content.")
        if t == "rate-limit":
            return _err(429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.")
        state.calls["submit"] += 1
        task_id = str(uuid.uuid4())
        state.jobs[task_id] = {"model": model, "prompt": prompt, "dims": checked, "polls": 0,
                               "status": "PENDING", "submit_time": _now(),
                               "seed": (body.get("parameters") or {}).get("seed")}
        return JSONResponse({"request_id": str(uuid.uuid4()),
                             "output": {"task_id": task_id, "task_status": "PENDING"}})

    async def finish(job: dict[str, Any]) -> None:
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
                results.append({"code": "DataInspectionFailed",
                                "message": "Output data may contain inappropriate content."})
                continue
            data = state.image(job["prompt"], w, h, "png", seed=job["seed"], index=i)
            results.append({"orig_prompt": job["prompt"], "actual_prompt": job["prompt"],
                            "url": state.public_base + state.store(data, "image/png", ttl=TTL)})
        ok = sum(1 for r in results if "url" in r)
        job["results"] = results
        job["metrics"] = {"TOTAL": n, "SUCCEEDED": ok, "FAILED": n - ok}
        if ok:
            job["status"] = "SUCCEEDED"
        else:
            job["status"], job["code"], job["message"] = "FAILED", results[0]["code"], results[0]["message"]

    async def task(request: Request) -> Response:
        if (r := state.scripted(request)) is not None:
            return r
        if (r := unauthorized(request)) is not None:
            return r
        state.calls["poll"] += 1
        task_id = request.path_params["task_id"]
        job = state.jobs.get(task_id)
        rid = str(uuid.uuid4())
        if job is None:
            return JSONResponse({"request_id": rid, "output": {"task_id": task_id, "task_status": "UNKNOWN"}})
        if job["status"] in ("PENDING", "RUNNING"):
            job["polls"] += 1
            if job["polls"] >= state.polls_to_finish:
                await finish(job)
            elif job["polls"] > 1:
                job["status"] = "RUNNING"
        out: dict[str, Any] = {"task_id": task_id, "task_status": job["status"], "submit_time": job["submit_time"],
                               "scheduled_time": job["submit_time"]}
        body: dict[str, Any] = {"request_id": rid, "output": out}
        if job["status"] in ("SUCCEEDED", "FAILED"):
            out["end_time"] = job["end_time"]
            if "results" in job:
                out["results"] = job["results"]
                out["task_metrics"] = job["metrics"]
                body["usage"] = {"image_count": job["metrics"]["SUCCEEDED"]}
            if job["status"] == "FAILED":
                out["code"], out["message"] = job["code"], job["message"]
        return JSONResponse(body)

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, routes=[
        Route("/api/v1/services/aigc/text2image/image-synthesis", submit, methods=["POST"]),
        Route("/api/v1/tasks/{task_id}", task, methods=["GET"]),
    ])
    mount_blobs(app, state)
    return app
