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
from functools import partial
from typing import Any

from fastapi import FastAPI
from PIL import Image
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.testing.fakes.server import Endpoint, fake_app
from imagegate.testing.fakes.state import FakeState, trigger

PROVIDER = "stability"

DIMS = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
    "21:9": (1536, 640),
    "9:21": (640, 1536),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "5:4": (1152, 896),
    "4:5": (896, 1152),
}
SD3_MODELS = {
    "sd3.5-large",
    "sd3.5-large-turbo",
    "sd3.5-medium",
    "sd3.5-flash",
    "sd3-large",
    "sd3-large-turbo",
    "sd3-medium",
}
FORMATS = {"png", "jpeg", "webp"}


def serr(status: int, name: str, *errors: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"id": secrets.token_hex(16), "name": name, "errors": list(errors)}, status, headers=headers)


async def bearer(request: Request, state: FakeState) -> Response | None:
    if request.headers.get("authorization") != f"Bearer {state.api_key}":
        return serr(401, "unauthorized", "authorization: invalid or missing header value")
    return None


def check_fields(kind: str, fields: dict[str, str]) -> Response | None:
    if not fields.get("prompt", ""):
        return serr(400, "bad_request", "prompt: cannot be empty")
    if fields.get("output_format", "png") not in FORMATS:
        return serr(400, "bad_request", f"output_format: must be one of {sorted(FORMATS)}")
    if fields.get("aspect_ratio", "1:1") not in DIMS:
        return serr(400, "bad_request", f"aspect_ratio: must be one of {list(DIMS)}")
    if kind == "sd3" and fields.get("model", "sd3.5-large") not in SD3_MODELS:
        return serr(400, "bad_request", f"model: must be one of {sorted(SD3_MODELS)}")
    return None


async def check_images(
    kind: str, fields: dict[str, str], files: dict[str, UploadFile], record: dict[str, Any]
) -> tuple[int, int] | Response:
    """Output pixels: the input image's for edits and image-to-image, else the aspect ratio's."""
    w, h = DIMS[fields.get("aspect_ratio", "1:1")]
    if kind == "inpaint" or "image" in files:
        if "image" not in files:
            return serr(400, "bad_request", "image: required")
        w, h = Image.open(io.BytesIO(await files["image"].read())).size
        if kind != "inpaint":
            if "strength" not in fields:
                return serr(400, "bad_request", "strength: required when image is provided")
            if kind == "core":
                return serr(400, "bad_request", "image: unexpected field")
    if kind == "inpaint" and "mask" in files:
        m = Image.open(io.BytesIO(await files["mask"].read()))
        if m.size != (w, h):
            return serr(400, "bad_request", "mask: must have the same dimensions as image")
        record["mask"] = {"mode": m.mode, "white_pixels": m.convert("L").histogram()[255]}
    return w, h


def triggered(prompt: str) -> Response | None:
    t = trigger(prompt)
    if t == "moderated":
        return serr(
            403,
            "content_moderation",
            "Your request was flagged by our content moderation system, "
            "as a result your request was denied and you were not charged.",
        )
    if t == "error":
        return serr(500, "internal_error", "An unexpected server error has occurred, please try again later.")
    if t == "rate-limit":
        return serr(
            429,
            "rate_limit_exceeded",
            "You have exceeded the rate limit of 150 requests within a 10 "
            "second period, and have been timed out for 60 seconds.",
        )
    return None


async def handle(request: Request, state: FakeState, *, kind: str) -> Response:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return serr(400, "bad_request", "content-type: must be multipart/form-data")
    accept = request.headers.get("accept", "image/*")
    if accept not in ("image/*", "application/json"):
        return serr(400, "bad_request", "accept: must be either image/* or application/json")
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    files = {k: v for k, v in form.items() if not isinstance(v, str)}
    if (bad := check_fields(kind, fields)) is not None:
        return bad
    record: dict[str, Any] = {"kind": kind, "fields": fields, "files": sorted(files)}
    size = await check_images(kind, fields, files, record)
    if isinstance(size, Response):
        return size
    state.jobs["last"] = record
    prompt, fmt = fields["prompt"], fields.get("output_format", "png")
    if (r := triggered(prompt)) is not None:
        return r
    state.submitted(images=1)
    await state.work(1)
    seed = int(fields.get("seed") or 0) or secrets.randbelow(4294967294) + 1
    data = state.image(prompt, *size, fmt, seed=seed)
    if accept == "application/json":
        return JSONResponse({"image": base64.b64encode(data).decode(), "finish_reason": "SUCCESS", "seed": seed})
    return Response(data, 200, media_type=f"image/{fmt}", headers={"finish-reason": "SUCCESS", "seed": str(seed)})


ROUTES = (
    *(
        Endpoint("POST", f"/v2beta/stable-image/generate/{k}", partial(handle, kind=k), count="requests")
        for k in ("ultra", "core", "sd3")
    ),
    Endpoint("POST", "/v2beta/stable-image/edit/inpaint", partial(handle, kind="inpaint"), count="requests"),
)


def create_app(state: FakeState) -> FastAPI:
    return fake_app(state, ROUTES, auth=bearer)
