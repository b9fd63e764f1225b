"""Fake Stability AI v2beta Stable Image API.

Imitates: ``Authorization: Bearer`` (401 ``unauthorized`` envelope), multipart/form-data
bodies only, ``Accept: image/*`` (raw bytes with ``finish-reason`` and ``seed`` headers) or
``application/json`` (``{image, finish_reason, seed}``); generate ``ultra``/``core``/``sd3``
(sd3 ``model`` and ``mode``) with the nine aspect ratios at about one megapixel; inpaint
(``image`` + grayscale ``mask``, output the input's size); the ``{id, name, errors}`` error
envelope: 400 ``bad_request`` naming the field, 403 ``content_moderation``, 429 with the
60 s lockout message, 500 ``internal_error``. No ``n``: one image per call.
"""

from __future__ import annotations

import base64
import io
import secrets

from fastapi import FastAPI
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imagegate.media import synth
from imagegate.testing.fakes.common import FakeState, mount_blobs, trigger

PROVIDER = "stability"

DIMS = {"1:1": (1024, 1024), "16:9": (1344, 768), "9:16": (768, 1344), "21:9": (1536, 640), "9:21": (640, 1536),
        "3:2": (1216, 832), "2:3": (832, 1216), "5:4": (1152, 896), "4:5": (896, 1152)}
SD3_MODELS = {"sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash", "sd3-large", "sd3-large-turbo",
              "sd3-medium"}
FORMATS = {"png", "jpeg", "webp"}


def serr(status: int, name: str, *errors: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"id": secrets.token_hex(16), "name": name, "errors": list(errors)}, status, headers=headers)


def create_app(state: FakeState) -> FastAPI:
    async def handle(request: Request, kind: str) -> Response:
        state.calls["requests"] += 1
        if (r := state.scripted(request)) is not None:
            return r
        if request.headers.get("authorization") != f"Bearer {state.api_key}":
            return serr(401, "unauthorized", "authorization: invalid or missing header value")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return serr(400, "bad_request", "content-type: must be multipart/form-data")
        accept = request.headers.get("accept", "image/*")
        if accept not in ("image/*", "application/json"):
            return serr(400, "bad_request", "accept: must be either image/* or application/json")
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        files = {k: v for k, v in form.items() if not isinstance(v, str)}
        prompt = fields.get("prompt", "")
        if not prompt:
            return serr(400, "bad_request", "prompt: cannot be empty")
        fmt = fields.get("output_format", "png")
        if fmt not in FORMATS:
            return serr(400, "bad_request", f"output_format: must be one of {sorted(FORMATS)}")
        ratio = fields.get("aspect_ratio", "1:1")
        if ratio not in DIMS:
            return serr(400, "bad_request", f"aspect_ratio: must be one of {list(DIMS)}")
        if kind == "sd3" and fields.get("model", "sd3.5-large") not in SD3_MODELS:
            return serr(400, "bad_request", f"model: must be one of {sorted(SD3_MODELS)}")
        record: dict = {"kind": kind, "fields": fields, "files": sorted(files)}
        w, h = DIMS[ratio]
        if kind == "inpaint" or "image" in files:
            if "image" not in files:
                return serr(400, "bad_request", "image: required")
            img = Image.open(io.BytesIO(await files["image"].read()))
            w, h = img.size
            if kind != "inpaint":
                if "strength" not in fields:
                    return serr(400, "bad_request", "strength: required when image is provided")
                if kind == "core":
                    return serr(400, "bad_request", "image: unexpected field")
        if kind == "inpaint":
            if "mask" in files:
                m = Image.open(io.BytesIO(await files["mask"].read()))
                if m.size != (w, h):
                    return serr(400, "bad_request", "mask: must have the same dimensions as image")
                record["mask"] = {"mode": m.mode, "white_pixels": m.convert("L").histogram()[255]}
        state.jobs["last"] = record
        t = trigger(prompt)
        if t == "moderated":
            return serr(403, "content_moderation", "Your request was flagged by our content moderation system, "
                        "as a result your request was denied and you were not charged.")
        if t == "error":
            return serr(500, "internal_error", "An unexpected server error has occurred, please try again later.")
        if t == "rate-limit":
            return serr(429, "rate_limit_exceeded", "You have exceeded the rate limit of 150 requests within a 10 "
                        "second period, and have been timed out for 60 seconds.")
        state.calls["submit"] += 1
        state.calls["images"] += 1
        await state.work(1)
        seed = int(fields.get("seed") or 0) or secrets.randbelow(4294967294) + 1
        data = synth.render_bytes(prompt, w, h, fmt, seed=seed)
        if accept == "application/json":
            return JSONResponse({"image": base64.b64encode(data).decode(), "finish_reason": "SUCCESS", "seed": seed})
        return Response(data, 200, media_type=f"image/{fmt}", headers={"finish-reason": "SUCCESS", "seed": str(seed)})

    def route(kind: str):
        async def endpoint(request: Request) -> Response:
            return await handle(request, kind)
        return endpoint

    routes = [Route(f"/v2beta/stable-image/generate/{k}", route(k), methods=["POST"]) for k in ("ultra", "core", "sd3")]
    routes.append(Route("/v2beta/stable-image/edit/inpaint", route("inpaint"), methods=["POST"]))
    app = FastAPI(routes=routes, openapi_url=None, docs_url=None, redoc_url=None)
    mount_blobs(app, state)
    return app
