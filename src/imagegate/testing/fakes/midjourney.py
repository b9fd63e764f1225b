"""A fake of a midjourney-proxy server (``/mj`` API, novicezk-compatible).

Imitates: the optional ``mj-api-secret`` header (401 without the right one), ``POST
/mj/submit/imagine`` answering ``{code, description, result, properties}`` with code 1 (submitted),
22 (queued behind a running task), 23 (queue full), 24 (banned prompt) and 4 (validation error);
``GET /mj/task/{id}/fetch`` with status NOT_START -> SUBMITTED -> IN_PROGRESS ("NN%") -> SUCCESS /
FAILURE advancing per fetch (``null`` for unknown ids); and the delivered ``imageUrl``: a 2x2 grid
of four different images, each at the size ``--ar`` asks for (so the grid is twice that size).
"""

from __future__ import annotations

import math
import re
import time
import uuid
from typing import Any

from fastapi import FastAPI
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.media import synth
from imagegate.testing.fakes.server import Endpoint, fake_app
from imagegate.testing.fakes.state import FakeState, Job, trigger

PROVIDER = "midjourney"
_AR = re.compile(r"--(?:ar|aspect)\s+(\d+):(\d+)")
_DATA_URI = re.compile(r"^data:image/[a-z]+;base64,[A-Za-z0-9+/=]+$")


def tile_size(prompt: str) -> tuple[int, int]:
    """One image's pixels: about 1 MP at the ``--ar`` ratio (Midjourney v6: 1:1 -> 1024x1024)."""
    m = _AR.search(prompt)
    r = int(m.group(1)) / int(m.group(2)) if m else 1.0
    return int(round(1024 * math.sqrt(r) / 8) * 8), int(round(1024 / math.sqrt(r) / 8) * 8)


def _answer(code: int, description: str, result: str | None = None, **props: Any) -> JSONResponse:
    return JSONResponse({"code": code, "description": description, "result": result, "properties": props})


async def secret(request: Request, state: FakeState) -> Response | None:
    """The proxy's optional ``mj-api-secret``: checked only when the proxy is configured with one."""
    if state.api_key and request.headers.get("mj-api-secret") != state.api_key:
        return Response("", 401)
    return None


async def imagine(request: Request, state: FakeState) -> Response:
    try:
        body = await request.json()
    except ValueError:
        return _answer(4, "参数错误")
    prompt = str(body.get("prompt") or "").strip()
    if not prompt:
        return _answer(4, "prompt不能为空")
    if not all(isinstance(b, str) and _DATA_URI.match(b) for b in body.get("base64Array") or []):
        return _answer(4, "base64格式错误")
    t = trigger(prompt)
    if t == "moderated":
        return _answer(24, "可能包含敏感词", promptEn=prompt, bannedWord="sandbox")
    if t == "rate-limit":
        return _answer(23, "队列已满，请稍后尝试")
    state.submitted()
    busy = sum(1 for j in state.jobs.values() if j["status"] not in ("SUCCESS", "FAILURE"))
    task_id = str(int(time.time() * 1000)) + uuid.uuid4().hex[:4]
    state.jobs[task_id] = {
        "prompt": prompt,
        "status": "NOT_START",
        "state": body.get("state"),
        "submitTime": int(time.time() * 1000),
        "imageUrl": None,
        "failReason": None,
        "refs": len(body.get("base64Array") or []),
    }
    if busy:
        return _answer(22, f"排队中，前面还有{busy}个任务", task_id, numberOfQueues=busy)
    return _answer(1, "提交成功", task_id)


async def finish(state: FakeState, job: Job) -> None:
    if trigger(job["prompt"]) == "error":
        job["status"], job["failReason"] = "FAILURE", "Internal error: [Midjourney Bot] job crashed"
        return
    await state.work(4)
    w, h = tile_size(job["prompt"])
    grid = Image.new("RGB", (2 * w, 2 * h))
    for i in range(4):
        grid.paste(synth.render(job["prompt"], w, h, index=i), ((i % 2) * w, (i // 2) * h))
    job["imageUrl"] = state.link(synth.encode(grid, "png"), "image/png")
    job["status"], job["finishTime"] = "SUCCESS", int(time.time() * 1000)


async def fetch(request: Request, state: FakeState) -> Response:
    task_id = request.path_params["task_id"]
    job = state.jobs.get(task_id)
    if job is None:
        return Response("", 200, media_type="application/json")  # the proxy answers an empty body
    if job["status"] not in ("SUCCESS", "FAILURE"):
        if (stage := state.advance(task_id, "SUBMITTED", "IN_PROGRESS")) is None:
            await finish(state, job)
        else:
            job["status"] = stage
    done = job["status"] == "SUCCESS"
    pct = (
        100
        if done
        else (
            0
            if job["status"] in ("NOT_START", "SUBMITTED")
            else min(99, 100 * state.polled[task_id] // max(1, state.polls_to_finish))
        )
    )
    return JSONResponse(
        {
            "id": task_id,
            "action": "IMAGINE",
            "status": job["status"],
            "progress": f"{pct}%",
            "prompt": job["prompt"],
            "promptEn": job["prompt"],
            "description": f"/imagine {job['prompt']}",
            "state": job["state"],
            "submitTime": job["submitTime"],
            "startTime": job["submitTime"],
            "finishTime": job.get("finishTime"),
            "imageUrl": job["imageUrl"],
            "failReason": job["failReason"],
            "properties": {"finalPrompt": job["prompt"]},
            "buttons": [
                {"customId": f"MJ::JOB::upsample::{i}::x", "label": f"U{i}", "type": 2, "style": 2} for i in range(1, 5)
            ]
            if done
            else [],
        }
    )


ROUTES = (
    Endpoint("POST", "/mj/submit/imagine", imagine),
    Endpoint("GET", "/mj/task/{task_id}/fetch", fetch, count="poll", count_after_auth=True),
)


def create_app(state: FakeState) -> FastAPI:
    return fake_app(state, ROUTES, auth=secret)
