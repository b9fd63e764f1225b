"""Fake Replicate predictions API.

Imitates: ``Authorization: Bearer`` (or ``Token``) with RFC 7807 401 bodies; official-model
``POST /v1/models/{owner}/{name}/predictions`` and ``POST /v1/predictions`` with a version;
``Prefer: wait`` answering the finished prediction when it is done in time (here: when
``polls_to_finish`` is 0) or else the ``starting`` one; ``GET /v1/predictions/{id}`` advancing
starting -> processing -> succeeded over ``polls_to_finish`` polls; ``POST .../cancel``;
per-model inputs and output shapes (flux-schnell/dev: a list of URLs and ``num_outputs`` 1-4;
flux-1.1-pro and kontext: one URL string; ``aspect_ratio`` enums, ``custom`` width/height);
422 ``Input validation failed`` with ``invalid_fields``; 429 throttling with ``Retry-After``;
failed predictions with the E005 sensitive-content error; output files on
``replicate.delivery`` that expire after an hour.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.testing.fakes.server import Endpoint, fake_app
from imagegate.testing.fakes.state import FakeState, Job, trigger

PROVIDER = "replicate"
API = "https://api.replicate.com"
DELIVERY = "https://replicate.delivery"
#: FLUX on Replicate: output pixels per aspect ratio (about one megapixel)
DIMS = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "21:9": (1536, 640),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
    "3:4": (896, 1152),
    "4:3": (1152, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}
RATIOS = list(DIMS)
#: model -> (output is a list, accepts num_outputs, accepts custom size)
MODELS = {
    "black-forest-labs/flux-schnell": (True, True, False),
    "black-forest-labs/flux-dev": (True, True, False),
    "black-forest-labs/flux-1.1-pro": (False, False, True),
    "black-forest-labs/flux-kontext-pro": (False, False, False),
    "black-forest-labs/flux-pro": (False, False, False),
}
FORMATS = {"webp": "webp", "jpg": "jpeg", "png": "png"}


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: object
) -> JSONResponse:
    return JSONResponse(
        {"title": title, "detail": detail, "status": status, **extra},
        status,
        headers=headers,
        media_type="application/problem+json",
    )


def invalid(field: str, desc: str) -> JSONResponse:
    return problem(
        422,
        "Input validation failed",
        f"- input: {desc}",
        invalid_fields=[{"type": "invalid", "field": f"input.{field}", "description": desc}],
    )


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def token(request: Request, state: FakeState) -> Response | None:
    value = request.headers.get("authorization", "")
    if not value:
        return problem(401, "Unauthenticated", "You did not pass an authentication token")
    if value not in (f"Bearer {state.api_key}", f"Token {state.api_key}"):
        return problem(401, "Unauthenticated", "You did not pass a valid authentication token")
    return None


def view(p: Job) -> Job:
    """A prediction as the API shows it: the fake's own bookkeeping keys start with ``_``."""
    return {k: v for k, v in p.items() if not k.startswith("_")}


def not_found() -> JSONResponse:
    return problem(404, "Not found", "The requested resource could not be found.")


async def finish(state: FakeState, p: Job) -> None:
    """Render the outputs now; their URLs live an hour."""
    inp = p["input"]
    n = int(inp.get("num_outputs", 1))
    await state.work(n)
    fmt = FORMATS[inp.get("output_format", "webp")]
    w, h = p["_size"]
    urls = [
        state.link(
            state.image(inp["prompt"], w, h, fmt, seed=inp.get("seed"), index=i),
            f"image/{fmt}",
            ttl=3600,
            host=DELIVERY,
        )
        for i in range(n)
    ]
    p.update(
        status="succeeded",
        output=urls if p["_list"] else urls[0],
        completed_at=now(),
        metrics={"predict_time": 0.01 * n, "total_time": 0.02 * n},
        logs="100%|##########| 4/4",
    )
    state.calls["images"] += n


async def advance(state: FakeState, p: Job) -> None:
    if p["status"] not in ("starting", "processing"):
        return
    if (stage := state.advance(p["id"], "processing")) is not None:
        p.update(status=stage, started_at=p["started_at"] or now())
        return
    t = trigger(p["input"]["prompt"])
    if t == "moderated":
        p.update(
            status="failed",
            completed_at=now(),
            error="The input or output was flagged as sensitive. Please try again with different inputs. (E005)",
        )
    elif t == "error":
        p.update(status="failed", completed_at=now(), error="Prediction failed: CUDA error: an illegal memory access")
    else:
        await finish(state, p)


def output_size(inp: dict[str, Any]) -> tuple[int, int] | Response:
    """Pixels from ``aspect_ratio`` (or ``custom`` width/height); an input image's own size without one."""
    ratio = inp.get("aspect_ratio", "1:1")
    if ratio == "custom":
        w, h = int(inp.get("width", 1024)), int(inp.get("height", 1024))
        if not (256 <= w <= 1440 and 256 <= h <= 1440):
            return invalid("width", "width and height must be between 256 and 1440")
        return w, h
    if "input_image" in inp and "aspect_ratio" not in inp:
        data = inp["input_image"]
        raw = base64.b64decode(data.split(",", 1)[1]) if data.startswith("data:") else None
        size: tuple[int, int] = Image.open(io.BytesIO(raw)).size if raw else (1024, 1024)
        return size
    return DIMS[ratio]


def checked(inp: dict[str, Any], has_n: bool, custom: bool) -> tuple[int, int] | Response:
    prompt = inp.get("prompt")
    if not prompt:
        return invalid("prompt", "prompt is required")
    if trigger(prompt) == "rate-limit":
        return problem(
            429,
            "Request was throttled",
            "Request was throttled. Expected available in 1 second.",
            headers={"Retry-After": "1"},
        )
    ratio = inp.get("aspect_ratio", "1:1")
    if ratio not in RATIOS and not (custom and ratio == "custom"):
        return invalid("aspect_ratio", f"aspect_ratio must be one of the following: {RATIOS}")
    if inp.get("output_format", "webp") not in FORMATS:
        return invalid("output_format", "output_format must be one of the following: webp, jpg, png")
    if "num_outputs" in inp and (not has_n or not 1 <= int(inp["num_outputs"]) <= 4):
        return invalid("num_outputs", "num_outputs must be between 1 and 4")
    return output_size(inp)


async def create(request: Request, state: FakeState, model: str, version: str | None) -> Response:
    if model not in MODELS:
        return not_found()
    is_list, has_n, custom = MODELS[model]
    body = await request.json()
    inp = dict(body.get("input") or {})
    size = checked(inp, has_n, custom)
    if isinstance(size, Response):
        return size
    state.jobs["last_input"] = {k: (v[:30] if isinstance(v, str) else v) for k, v in inp.items()}
    pid = state.new_id()[:20]
    p = {
        "id": pid,
        "model": model,
        "version": version or "hidden",
        "input": inp,
        "logs": "",
        "output": None,
        "data_removed": False,
        "error": None,
        "status": "starting",
        "created_at": now(),
        "started_at": None,
        "completed_at": None,
        "metrics": {},
        "urls": {
            "get": f"{state.origin(API)}/v1/predictions/{pid}",
            "cancel": f"{state.origin(API)}/v1/predictions/{pid}/cancel",
            "web": f"https://replicate.com/p/{pid}",
        },
        "_list": is_list,
        "_size": size,
    }
    state.jobs[pid] = p
    state.submitted()
    if request.headers.get("prefer", "").startswith("wait") and state.polls_to_finish <= 0:
        await advance(state, p)
    return JSONResponse(view(p), 201)


async def models_create(request: Request, state: FakeState) -> Response:
    pp = request.path_params
    return await create(request, state, f"{pp['owner']}/{pp['name']}", None)


async def version_create(request: Request, state: FakeState) -> Response:
    body = await request.json()
    version = str(body.get("version") or "")
    model = version.split(":")[0] if ":" in version else ""
    return await create(request, state, model, version.split(":")[-1])


async def get(request: Request, state: FakeState) -> Response:
    p = state.jobs.get(request.path_params["pid"])
    if p is None or "urls" not in p:
        return not_found()
    await advance(state, p)
    return JSONResponse(view(p))


async def cancel(request: Request, state: FakeState) -> Response:
    p = state.jobs.get(request.path_params["pid"])
    if p is None or "urls" not in p:
        return not_found()
    if p["status"] in ("starting", "processing"):
        p.update(status="canceled", completed_at=now())
    return JSONResponse(view(p))


ROUTES = (
    Endpoint("POST", "/v1/models/{owner}/{name}/predictions", models_create, count="requests"),
    Endpoint("POST", "/v1/predictions", version_create, count="requests"),
    Endpoint("GET", "/v1/predictions/{pid}", get, count="poll"),
    Endpoint("POST", "/v1/predictions/{pid}/cancel", cancel, count="cancel", scripted=False),
)


def create_app(state: FakeState) -> FastAPI:
    return fake_app(state, ROUTES, auth=token)
