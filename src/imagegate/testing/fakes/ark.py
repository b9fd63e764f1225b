"""A fake of Volcengine Ark / BytePlus ModelArk image generation (Seedream 4.x).

Imitates: ``POST /api/v3/images/generations`` with Bearer auth, ``size`` as 1K/2K/4K or WxH
within the model's pixel budget (Seedream 4.5: 2K/4K tiers, >= 2560x1440 pixels), sequential
generation (``max_images``, inputs + outputs <= 15), reference images as URL or data URI,
``url`` (signed, 24 h) or ``b64_json`` results, per-item failures in ``data[]``, and the
``{"error": {code, message, param, type}}`` envelope. A prompt holding
``[ark:output-moderated=I]`` makes item I fail output moderation (partial success).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.catalog.sizing import parse_size
from imagegate.testing.fakes.server import Endpoint, fake_app
from imagegate.testing.fakes.state import FakeState, trigger

PROVIDER = "ark"
TTL = 86400.0
_PARTIAL = re.compile(r"\[ark:output-moderated=(\d+)\]")


def _err(status: int, code: str, message: str, param: str = "", typ: str = "BadRequest") -> JSONResponse:
    rid = f"021{int(time.time() * 1000)}"
    return JSONResponse(
        {"error": {"code": code, "message": f"{message} Request id: {rid}", "param": param, "type": typ}}, status
    )


def _dims(model: str, size: str | None, n_refs: int) -> tuple[int, int] | JSONResponse:
    is45 = "4-5" in model or "4.5" in model
    tiers = {"2K": 2048, "4K": 4096} if is45 else {"1K": 1024, "2K": 2048, "4K": 4096}
    if size is None:
        return 2048, 2048
    if size.upper() in tiers:
        side = tiers[size.upper()]
        return side, side
    wh = parse_size(size) if "x" in size else None
    lo = 2560 * 1440 if is45 else 1280 * 720
    if wh is None or not lo <= wh[0] * wh[1] <= 4096 * 4096 or not 1 / 16 <= wh[0] / wh[1] <= 16:
        return _err(
            400, "InvalidParameter", f"The parameter `size` specified in the request is not valid: {size}", "size"
        )
    return wh


def _check_image(ref: Any) -> bool:
    if not isinstance(ref, str):
        return False
    if ref.startswith(("http://", "https://")):
        return True
    m = re.match(r"^data:image/(png|jpeg|jpg|webp|bmp|tiff|gif);base64,(.+)$", ref, re.S)
    if not m:
        return False
    try:
        base64.b64decode(m.group(2), validate=True)
    except binascii.Error:
        return False
    return True


async def bearer(request: Request, state: FakeState) -> Response | None:
    if request.headers.get("authorization") != f"Bearer {state.api_key}":
        return _err(401, "AuthenticationError", "The API key in the request is missing or invalid.", typ="Unauthorized")
    return None


def _check(body: dict[str, Any]) -> tuple[int, int, int] | JSONResponse:
    """(width, height, images to draw) for a valid body, else Ark's error."""
    model, prompt = str(body.get("model") or ""), body.get("prompt")
    if not prompt:
        return _err(400, "MissingParameter", "The required parameter `prompt` is missing.", "prompt")
    if not model.startswith(("doubao-seedream", "seedream", "ep-")):
        return _err(
            404,
            "InvalidEndpointOrModel.NotFound",
            f"The model or endpoint {model} does not exist or you do not have access to it.",
            typ="NotFound",
        )
    refs = body.get("image") or []
    refs = [refs] if isinstance(refs, str) else refs
    if len(refs) > 14 or not all(_check_image(r) for r in refs):
        return _err(400, "InvalidParameter", "The parameter `image` specified in the request is not valid.", "image")
    dims = _dims(model, body.get("size"), len(refs))
    if isinstance(dims, JSONResponse):
        return dims
    count = 1
    if body.get("sequential_image_generation") == "auto":
        count = int((body.get("sequential_image_generation_options") or {}).get("max_images", 15))
        if not 1 <= count <= 15 or count + len(refs) > 15:
            return _err(
                400,
                "InvalidParameter",
                "The total of input and output images must not exceed 15.",
                "sequential_image_generation_options.max_images",
            )
    return dims[0], dims[1], count


def _triggered(prompt: str) -> JSONResponse | None:
    t = trigger(prompt)
    if t == "rate-limit":
        return _err(
            429,
            "RateLimitExceeded.EndpointIPMExceeded",
            "The request has exceeded the images-per-minute limit.",
            typ="TooManyRequests",
        )
    if t == "moderated":
        return _err(
            400,
            "InputTextSensitiveContentDetected",
            "The request failed because the input text may contain sensitive information.",
        )
    if t == "error":
        return _err(
            500,
            "InternalServiceError",
            "The service encountered an unexpected internal error.",
            typ="InternalServerError",
        )
    return None


async def generations(request: Request, state: FakeState) -> Response:
    try:
        body = await request.json()
    except ValueError:
        return _err(400, "InvalidParameter", "The request body is not valid JSON.")
    checked = _check(body)
    if isinstance(checked, JSONResponse):
        return checked
    prompt = body["prompt"]
    if (r := _triggered(prompt)) is not None:
        return r
    w, h, count = checked
    state.submitted(images=count)
    await state.work(count)
    fail = {int(i) for i in _PARTIAL.findall(prompt)}
    data: list[dict[str, Any]] = []
    for i in range(count):
        if i in fail:
            data.append(
                {
                    "error": {
                        "code": "OutputImageSensitiveContentDetected",
                        "message": "The generated image may contain sensitive information.",
                    }
                }
            )
            continue
        blob = state.image(prompt, w, h, "jpeg", seed=body.get("seed"), index=i)
        item: dict[str, Any] = {"size": f"{w}x{h}"}
        if body.get("response_format", "url") == "b64_json":
            item["b64_json"] = base64.b64encode(blob).decode()
        else:
            item["url"] = state.link(blob, "image/jpeg", ttl=TTL)
        data.append(item)
    ok = count - len(fail & set(range(count)))
    return JSONResponse(
        {
            "model": body["model"],
            "created": int(time.time()),
            "data": data,
            "usage": {"generated_images": ok, "output_tokens": ok * 16384, "total_tokens": ok * 16384},
        }
    )


ROUTES = (Endpoint("POST", "/api/v3/images/generations", generations),)


def create_app(state: FakeState) -> FastAPI:
    return fake_app(state, ROUTES, auth=bearer)
