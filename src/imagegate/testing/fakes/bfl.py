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

from fastapi import FastAPI
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imagegate.media import synth
from imagegate.catalog import sizing
from imagegate.testing.fakes.common import FakeState, mount_blobs, trigger

PROVIDER = "bfl"

MODELS = {"flux-2-pro": 3.0, "flux-2-max": 7.0, "flux-2-flex": 6.0, "flux-2-klein-4b": 1.4, "flux-2-klein-9b": 1.5,
          "flux-pro-1.1": 4.0, "flux-pro-1.1-ultra": 6.0, "flux-pro": 5.0, "flux-dev": 2.5,
          "flux-kontext-pro": 4.0, "flux-kontext-max": 8.0, "flux-pro-1.0-fill": 5.0}
POLL_HOST = "https://api.eu2.bfl.ai"
DELIVERY_HOST = "https://delivery-eu1.bfl.ai"


def detail(status: int, msg: str | list) -> JSONResponse:
    return JSONResponse({"detail": msg}, status)


def invalid(field: str, msg: str) -> JSONResponse:
    return detail(422, [{"loc": ["body", field], "msg": msg, "type": "value_error"}])


def ratio_dims(ratio: str, megapixels: float) -> tuple[int, int] | None:
    r = sizing.parse_ratio(ratio)
    if r is None or not 3 / 7 - 1e-6 <= r <= 7 / 3 + 1e-6:
        return None
    h = math.sqrt(megapixels * 1_000_000 / r)
    return sizing.round_to(h * r, 32), sizing.round_to(h, 32)


def create_app(state: FakeState) -> FastAPI:
    def active(model: str | None = None) -> int:
        return sum(1 for j in state.jobs.values() if j.get("status") == "Pending" and (model is None or j["model"] == model))

    async def submit(request: Request) -> Response:
        model = request.path_params["model"]
        state.calls["requests"] += 1
        if (r := state.scripted(request)) is not None:
            return r
        if request.headers.get("x-key") != state.api_key:
            return detail(403, "Invalid or missing API key")
        if model not in MODELS:
            return detail(404, "Not Found")
        try:
            body = await request.json()
        except ValueError:
            return invalid("body", "Invalid JSON")
        prompt = body.get("prompt")
        fill = "fill" in model
        if not prompt and not fill:
            return invalid("prompt", "Field required")
        fmt = body.get("output_format", "jpeg")
        if fmt not in ("jpeg", "png"):
            return invalid("output_format", "Input should be 'jpeg' or 'png'")
        if trigger(prompt) == "rate-limit":
            return detail(429, "You have reached the maximum number of active tasks. Please wait for a task to finish.")
        limit = 6 if model == "flux-kontext-max" else 24
        if active() >= limit:
            return detail(429, f"Too many active tasks (limit {limit}).")
        # output size by family
        if model.startswith("flux-2") or model in ("flux-pro-1.1", "flux-pro", "flux-dev"):
            mult, lo, hi = (16, 64, 4096) if model.startswith("flux-2") else (32, 256, 1440)
            w, h = int(body.get("width", 1024)), int(body.get("height", 1024 if mult == 16 else 768))
            for name, v in (("width", w), ("height", h)):
                if v % mult or not lo <= v <= hi:
                    return invalid(name, f"{name} must be a multiple of {mult} between {lo} and {hi}")
            if model.startswith("flux-2") and w * h > 4_194_304:
                return invalid("width", "width*height must be at most 4 megapixels")
            if model.startswith("flux-2") and body.get("input_image") and "width" not in body:
                w, h = Image.open(io.BytesIO(base64.b64decode(body["input_image"]))).size
        elif fill:
            if not body.get("image"):
                return invalid("image", "Field required")
            img = Image.open(io.BytesIO(base64.b64decode(body["image"])))
            w, h = img.size
            if body.get("mask"):
                m = Image.open(io.BytesIO(base64.b64decode(body["mask"])))
                if m.size != img.size:
                    return invalid("mask", "mask must have the same size as image")
                state.jobs["last_mask"] = {"mode": m.mode, "white_pixels": m.convert("L").histogram()[255]}
        else:
            dims = ratio_dims(body.get("aspect_ratio", "1:1"), 4.0 if "ultra" in model else 1.0)
            if dims is None:
                return invalid("aspect_ratio", "aspect ratio must be between 3:7 and 7:3")
            w, h = dims
        inputs = sorted(k for k in body if k.startswith("input_image"))
        state.jobs["last_body"] = {k: v for k, v in body.items() if not k.startswith("input_image")
                                   and k not in ("image", "mask")} | {"inputs": inputs}
        job_id = state.new_id()
        state.jobs[job_id] = {"model": model, "prompt": prompt or "", "w": w, "h": h, "fmt": fmt,
                              "seed": body.get("seed"), "polls": 0, "status": "Pending"}
        state.calls["submit"] += 1
        mp = round(w * h / 1_000_000, 2)
        return JSONResponse({"id": job_id, "polling_url": f"{POLL_HOST}/v1/get_result?id={job_id}",
                             "cost": MODELS[model], "input_mp": 0.0, "output_mp": mp})

    async def get_result(request: Request) -> Response:
        state.calls["poll"] += 1
        if (r := state.scripted(request)) is not None:
            return r
        if request.headers.get("x-key") != state.api_key:
            return detail(403, "Invalid or missing API key")
        job_id = request.query_params.get("id", "")
        job = state.jobs.get(job_id)
        if job is None or "model" not in job:
            return JSONResponse({"id": job_id, "status": "Task not found", "result": None, "progress": None,
                                 "details": None, "preview": None})
        job["polls"] += 1
        t = trigger(job["prompt"])
        if job["polls"] < state.polls_to_finish:
            return JSONResponse({"id": job_id, "status": "Pending", "result": None,
                                 "progress": round(job["polls"] / state.polls_to_finish, 2), "details": None,
                                 "preview": None})
        if t == "moderated":
            job["status"] = "Request Moderated"
            return JSONResponse({"id": job_id, "status": "Request Moderated", "result": None, "progress": None,
                                 "details": {"Moderation Reasons": ["Derivative Works Filter"]}, "preview": None})
        if t == "error":
            job["status"] = "Error"
            return JSONResponse({"id": job_id, "status": "Error", "result": None, "progress": None,
                                 "details": {"error": "Internal generation error"}, "preview": None})
        if "sample" not in job:
            await state.work(1)
            data = synth.render_bytes(job["prompt"], job["w"], job["h"], job["fmt"], seed=job["seed"])
            job["sample"] = DELIVERY_HOST + state.store(data, f"image/{job['fmt']}", ttl=state.url_ttl)
            job["status"] = "Ready"
            job["end"] = time.time()
        return JSONResponse({"id": job_id, "status": "Ready", "progress": None, "details": None, "preview": None,
                             "result": {"sample": job["sample"], "prompt": job["prompt"], "seed": job["seed"],
                                        "start_time": job["end"] - 1, "end_time": job["end"], "duration": 1.0}})

    app = FastAPI(routes=[Route("/v1/get_result", get_result, methods=["GET"]),
                          Route("/v1/{model}", submit, methods=["POST"])],
                  openapi_url=None, docs_url=None, redoc_url=None)
    mount_blobs(app, state)
    return app
