"""Fake Black Forest Labs FLUX API: submit, then poll the returned ``polling_url``.

Imitates: ``x-key`` auth; ``POST /v1/{model}`` answering ``{id, polling_url, cost, input_mp,
output_mp}`` where ``polling_url`` names another host (``api.eu2.bfl.ai``); per-family bodies
(FLUX.2 width/height multiples of 16 up to 4 MP, FLUX1.1 [pro] multiples of 32 in 256-1440,
Kontext/Ultra ``aspect_ratio`` within 3:7..7:3, Fill ``image`` + ``mask``, ``input_image`` ...);
FastAPI-style 422 ``{"detail": [{loc, msg, type}]}``; 402 out of credits; 429 beyond 24 active
tasks (6 for kontext-max); ``GET /v1/get_result?id=`` advancing Pending -> Ready over
``polls_to_finish`` polls with ``progress``, ``Request Moderated``/``Error`` outcomes and
``Task not found``; ``result.sample`` a signed URL on ``delivery-eu1.bfl.ai`` that expires
after ``url_ttl`` (ten minutes by default).
"""

from __future__ import annotations

import base64
import io
import math
import time
from typing import Any

from fastapi import FastAPI
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.catalog import sizing
from imagegate.testing.fakes.server import Endpoint, fake_app
from imagegate.testing.fakes.state import FakeState, trigger

PROVIDER = "bfl"

MODELS = {
    "flux-2-pro": 3.0,
    "flux-2-max": 7.0,
    "flux-2-flex": 6.0,
    "flux-2-klein-4b": 1.4,
    "flux-2-klein-9b": 1.5,
    "flux-pro-1.1": 4.0,
    "flux-pro-1.1-ultra": 6.0,
    "flux-pro": 5.0,
    "flux-dev": 2.5,
    "flux-kontext-pro": 4.0,
    "flux-kontext-max": 8.0,
    "flux-pro-1.0-fill": 5.0,
}
POLL_HOST = "https://api.eu2.bfl.ai"
DELIVERY_HOST = "https://delivery-eu1.bfl.ai"


def detail(status: int, msg: str | list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"detail": msg}, status)


def invalid(field: str, msg: str) -> JSONResponse:
    return detail(422, [{"loc": ["body", field], "msg": msg, "type": "value_error"}])


def ratio_dims(ratio: str, megapixels: float) -> tuple[int, int] | None:
    r = sizing.parse_ratio(ratio)
    if r is None or not 3 / 7 - 1e-6 <= r <= 7 / 3 + 1e-6:
        return None
    h = math.sqrt(megapixels * 1_000_000 / r)
    return sizing.round_to(h * r, 32), sizing.round_to(h, 32)


async def x_key(request: Request, state: FakeState) -> Response | None:
    return None if request.headers.get("x-key") == state.api_key else detail(403, "Invalid or missing API key")


def active(state: FakeState) -> int:
    return sum(1 for j in state.jobs.values() if j.get("status") == "Pending")


def sized(model: str, body: dict[str, Any]) -> tuple[int, int] | Response:
    """Output pixels for FLUX.2 / FLUX1.1 [pro] bodies (explicit width and height), else a 422."""
    mult, lo, hi = (16, 64, 4096) if model.startswith("flux-2") else (32, 256, 1440)
    w, h = int(body.get("width", 1024)), int(body.get("height", 1024 if mult == 16 else 768))
    for name, v in (("width", w), ("height", h)):
        if v % mult or not lo <= v <= hi:
            return invalid(name, f"{name} must be a multiple of {mult} between {lo} and {hi}")
    if model.startswith("flux-2") and w * h > 4_194_304:
        return invalid("width", "width*height must be at most 4 megapixels")
    if model.startswith("flux-2") and body.get("input_image") and "width" not in body:
        w, h = Image.open(io.BytesIO(base64.b64decode(body["input_image"]))).size
    return w, h


def filled(state: FakeState, body: dict[str, Any]) -> tuple[int, int] | Response:
    """Fill answers at the input's size; the mask (recorded for tests) must match it."""
    if not body.get("image"):
        return invalid("image", "Field required")
    img = Image.open(io.BytesIO(base64.b64decode(body["image"])))
    if body.get("mask"):
        m = Image.open(io.BytesIO(base64.b64decode(body["mask"])))
        if m.size != img.size:
            return invalid("mask", "mask must have the same size as image")
        state.jobs["last_mask"] = {"mode": m.mode, "white_pixels": m.convert("L").histogram()[255]}
    return img.size


def output_size(state: FakeState, model: str, body: dict[str, Any]) -> tuple[int, int] | Response:
    if model.startswith("flux-2") or model in ("flux-pro-1.1", "flux-pro", "flux-dev"):
        return sized(model, body)
    if "fill" in model:
        return filled(state, body)
    dims = ratio_dims(body.get("aspect_ratio", "1:1"), 4.0 if "ultra" in model else 1.0)
    return invalid("aspect_ratio", "aspect ratio must be between 3:7 and 7:3") if dims is None else dims


async def submit(request: Request, state: FakeState) -> Response:
    model = request.path_params["model"]
    if model not in MODELS:
        return detail(404, "Not Found")
    try:
        body = await request.json()
    except ValueError:
        return invalid("body", "Invalid JSON")
    prompt = body.get("prompt")
    if not prompt and "fill" not in model:
        return invalid("prompt", "Field required")
    fmt = body.get("output_format", "jpeg")
    if fmt not in ("jpeg", "png"):
        return invalid("output_format", "Input should be 'jpeg' or 'png'")
    if trigger(prompt) == "rate-limit":
        return detail(429, "You have reached the maximum number of active tasks. Please wait for a task to finish.")
    limit = 6 if model == "flux-kontext-max" else 24
    if active(state) >= limit:
        return detail(429, f"Too many active tasks (limit {limit}).")
    size = output_size(state, model, body)
    if isinstance(size, Response):
        return size
    w, h = size
    inputs = sorted(k for k in body if k.startswith("input_image"))
    state.jobs["last_body"] = {
        k: v for k, v in body.items() if not k.startswith("input_image") and k not in ("image", "mask")
    } | {"inputs": inputs}
    job_id = state.new_id()
    state.jobs[job_id] = {
        "model": model,
        "prompt": prompt or "",
        "w": w,
        "h": h,
        "fmt": fmt,
        "seed": body.get("seed"),
        "status": "Pending",
    }
    state.submitted()
    return JSONResponse(
        {
            "id": job_id,
            "polling_url": f"{state.origin(POLL_HOST)}/v1/get_result?id={job_id}",
            "cost": MODELS[model],
            "input_mp": 0.0,
            "output_mp": round(w * h / 1_000_000, 2),
        }
    )


def status(
    job_id: str, name: str, *, progress: float | None = None, details: dict[str, Any] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"id": job_id, "status": name, "result": None, "progress": progress, "details": details, "preview": None}
    )


async def get_result(request: Request, state: FakeState) -> Response:
    job_id = request.query_params.get("id", "")
    job = state.jobs.get(job_id)
    if job is None or "model" not in job:
        return status(job_id, "Task not found")
    if state.advance(job_id, "Pending") is not None:
        return status(job_id, "Pending", progress=round(state.polled[job_id] / state.polls_to_finish, 2))
    t = trigger(job["prompt"])
    if t == "moderated":
        job["status"] = "Request Moderated"
        return status(job_id, "Request Moderated", details={"Moderation Reasons": ["Derivative Works Filter"]})
    if t == "error":
        job["status"] = "Error"
        return status(job_id, "Error", details={"error": "Internal generation error"})
    if "sample" not in job:
        await state.work(1)
        data = state.image(job["prompt"], job["w"], job["h"], job["fmt"], seed=job["seed"])
        job["sample"] = state.link(data, f"image/{job['fmt']}", ttl=state.url_ttl, host=DELIVERY_HOST)
        job["status"] = "Ready"
        job["end"] = time.time()
    return JSONResponse(
        {
            "id": job_id,
            "status": "Ready",
            "progress": None,
            "details": None,
            "preview": None,
            "result": {
                "sample": job["sample"],
                "prompt": job["prompt"],
                "seed": job["seed"],
                "start_time": job["end"] - 1,
                "end_time": job["end"],
                "duration": 1.0,
            },
        }
    )


ROUTES = (
    Endpoint("GET", "/v1/get_result", get_result, count="poll"),
    Endpoint("POST", "/v1/{model}", submit, count="requests"),
)


def create_app(state: FakeState) -> FastAPI:
    return fake_app(state, ROUTES, auth=x_key)
