"""A fake of fal.ai's queue API (queue.fal.run) for FLUX-style endpoints.

Imitates: ``Authorization: Key`` auth, submit on the full model path, status/result/cancel on
``{owner}/{alias}/requests/{id}`` only (the subpath is dropped, as on fal), IN_QUEUE (with
queue_position) -> IN_PROGRESS -> COMPLETED advancing per status poll, errors in
``{"detail": ...}`` with 422 validation/content-policy items, cancel answers 202/400/404, and
expiring CDN-style image URLs.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.testing.fakes.server import Endpoint, fake_app
from imagegate.testing.fakes.state import FakeState, Job, trigger

PROVIDER = "fal"

PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}


def _detail(status: int, loc: list[str], msg: str, typ: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": loc, "msg": msg, "type": typ}]}, status)


async def key_auth(request: Request, state: FakeState) -> Response | None:
    if request.headers.get("authorization") != f"Key {state.api_key}":
        return JSONResponse({"detail": "Invalid Key authentication credentials"}, 401)
    return None


def size_of(inp: dict[str, Any]) -> tuple[int, int] | Response:
    size = inp.get("image_size", "landscape_4_3")
    if isinstance(size, str):
        if size not in PRESETS:
            return _detail(422, ["body", "image_size"], "value is not a valid enumeration member", "type_error.enum")
        return PRESETS[size]
    w, h = int(size.get("width", 0)), int(size.get("height", 0))
    if not (64 <= w <= 14142 and 64 <= h <= 14142):
        return _detail(
            422, ["body", "image_size", "width"], "ensure this value is within range", "value_error.number.not_in_range"
        )
    return w, h


async def submit(request: Request, state: FakeState) -> Response:
    try:
        inp = await request.json()
    except json.JSONDecodeError:
        return JSONResponse({"detail": "Invalid JSON body"}, 400)
    if not inp.get("prompt"):
        return _detail(422, ["body", "prompt"], "field required", "value_error.missing")
    n = int(inp.get("num_images", 1))
    if not 1 <= n <= 4:
        return _detail(
            422, ["body", "num_images"], "ensure this value is less than or equal to 4", "value_error.number.not_le"
        )
    size = size_of(inp)
    if isinstance(size, Response):
        return size
    if trigger(inp["prompt"]) == "rate-limit":
        return JSONResponse({"detail": "Rate limit exceeded"}, 429, headers={"retry-after": "3"})
    state.submitted()
    model = request.path_params["model"]
    app_id = "/".join(model.split("/")[:2])
    rid = state.new_id()
    ahead = sum(1 for j in state.jobs.values() if j["status"] == "IN_QUEUE")
    state.jobs[rid] = {
        "model": model,
        "app": app_id,
        "input": inp,
        "size": size,
        "status": "IN_QUEUE",
        "ahead": ahead,
        "result": None,
    }
    base = f"{state.origin()}/{app_id}/requests/{rid}"
    return JSONResponse(
        {"request_id": rid, "response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}
    )


def job_for(request: Request, state: FakeState) -> Job | None:
    job = state.jobs.get(request.path_params["rid"])
    # fal serves queue URLs on {owner}/{alias} only: the full model path is not found
    return job if job is not None and job["app"] == request.path_params["app"] else None


async def finish(state: FakeState, job: Job) -> None:
    inp, (w, h) = job["input"], job["size"]
    n = int(inp.get("num_images", 1))
    t = trigger(inp["prompt"])
    job["status"] = "COMPLETED"
    if t == "moderated":
        job["result"] = (
            422,
            {
                "detail": [
                    {
                        "loc": ["body", "prompt"],
                        "type": "content_policy_violation",
                        "msg": "The content could not be processed because it contained"
                        " material flagged by a content checker.",
                    }
                ]
            },
        )
        return
    if t == "error":
        job["error"] = "Internal Server Error"
        job["result"] = (500, {"detail": "Internal Server Error"})
        return
    await state.work(n)
    fmt = "png" if inp.get("output_format") == "png" else "jpeg"
    images = []
    for i in range(n):
        url = state.link(state.image(inp["prompt"], w, h, fmt, seed=inp.get("seed"), index=i), f"image/{fmt}")
        images.append({"url": url, "width": w, "height": h, "content_type": f"image/{fmt}"})
    job["result"] = (
        200,
        {
            "images": images,
            "seed": inp.get("seed", 42),
            "prompt": inp["prompt"],
            "has_nsfw_concepts": [False] * n,
            "timings": {"inference": 0.1},
        },
    )


async def status(request: Request, state: FakeState) -> Response:
    job = job_for(request, state)
    if job is None:
        return JSONResponse({"detail": "Request not found"}, 404)
    rid = request.path_params["rid"]
    resp_url = f"{state.origin()}/{job['app']}/requests/{rid}"
    if job["status"] == "CANCELLED":
        return JSONResponse({"status": "COMPLETED", "response_url": resp_url, "error": "Request cancelled"})
    if job["status"] != "COMPLETED":
        stage = state.advance(rid, "IN_QUEUE", "IN_PROGRESS")
        if stage is None:
            await finish(state, job)
        elif stage == "IN_QUEUE":
            return JSONResponse({"status": "IN_QUEUE", "queue_position": job["ahead"], "response_url": resp_url}, 202)
        else:
            job["status"] = stage
            return JSONResponse({"status": "IN_PROGRESS", "response_url": resp_url, "logs": []}, 202)
    out: dict[str, Any] = {
        "status": "COMPLETED",
        "response_url": resp_url,
        "logs": [],
        "metrics": {"inference_time": 0.1},
    }
    if job.get("error"):
        out["error"] = job["error"]
        out["error_type"] = "runner_server_error"
    return JSONResponse(out)


async def result(request: Request, state: FakeState) -> Response:
    job = job_for(request, state)
    if job is None:
        return JSONResponse({"detail": "Request not found"}, 404)
    if job["result"] is None:
        return JSONResponse({"detail": "Request is still in progress"}, 400)
    code, body = job["result"]
    return JSONResponse(body, code)


async def cancel(request: Request, state: FakeState) -> Response:
    job = job_for(request, state)
    if job is None:
        return JSONResponse({"status": "NOT_FOUND"}, 404)
    if job["status"] in ("COMPLETED", "CANCELLED"):
        return JSONResponse({"status": "ALREADY_COMPLETED"}, 400)
    job["status"] = "CANCELLED"
    return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202)


ROUTES = (
    Endpoint("GET", "/{app:path}/requests/{rid}/status", status, count="status", count_after_auth=True),
    Endpoint("PUT", "/{app:path}/requests/{rid}/cancel", cancel, count="cancel", count_after_auth=True, scripted=False),
    Endpoint("GET", "/{app:path}/requests/{rid}", result, count="result", count_after_auth=True),
    Endpoint("POST", "/{model:path}", submit),
)


def create_app(state: FakeState) -> FastAPI:
    return fake_app(state, ROUTES, auth=key_auth)
