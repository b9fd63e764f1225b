"""Fake OpenAI Images API: generations (JSON) and edits (multipart), per-model size rules.

Imitates: ``Authorization: Bearer`` with OpenAI's 401 ``invalid_api_key`` envelope (key masked),
per-family ``size``/``n``/``quality``/``response_format`` validation with ``invalid_value`` 400s
naming the param, GPT image answers as ``b64_json`` with ``usage`` and top-level
``output_format``/``size``/``quality``/``background``, dall-e ``url`` (60 min) or ``b64_json``
and dall-e-3 ``revised_prompt``, edits with ``image[]`` (up to 16) + a PNG ``mask`` that must have
an alpha channel and the first image's size, ``moderation`` (auto, low) and an edit's
``input_fidelity`` per model, ``moderation_blocked`` / ``content_policy_violation``
400s, 429 ``rate_limit_exceeded`` with ``retry-after``, and 500 ``server_error``.

Streaming (GPT image models, as openai-python's ``ImageGenStreamEvent`` / ``ImageEditStreamEvent``
types and OpenAI's image-generation guide describe it): ``stream`` true (``"true"`` in a form) answers
``text/event-stream``; ``partial_images`` (0-3, else a 400 naming it) previews come first as
``image_generation.partial_image`` (``image_edit.partial_image`` on edits) events with ``b64_json``
and a 0-based ``partial_image_index``, then one ``*.completed`` event with the image and ``usage``;
each event's ``event:`` name equals its data's ``type``, and each carries ``size``, ``quality``,
``background``, ``output_format`` and ``created_at``. Previews here are the final picture at a
coarser scale, the size of the final one; streaming with ``n`` above 1 is refused (400 on ``n``).

``gateway=True`` (the ``openai_compat`` fake) behaves like a lenient OpenAI-shaped gateway (xAI,
Together, ...): any ``WxH`` size, no per-family field rules, ``data[].url`` unless
``response_format=b64_json``.
"""

from __future__ import annotations

import base64
import io
import time
from functools import partial
from typing import Any

from fastapi import FastAPI
from PIL import Image
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.testing.fakes.openai_stream import check_stream, err, event_stream, streamed
from imagegate.testing.fakes.server import Endpoint, fake_app
from imagegate.testing.fakes.state import FakeState, trigger

PROVIDER = "openai"

GPT_SIZES = ["1024x1024", "1536x1024", "1024x1536"]
SIZES = {"dall-e-2": ["256x256", "512x512", "1024x1024"], "dall-e-3": ["1024x1024", "1792x1024", "1024x1792"]}
QUALITIES = {"dall-e-3": ["standard", "hd"], "dall-e-2": ["standard"]}
GPT_QUALITIES = ["auto", "low", "medium", "high"]
GPT_ONLY = ("background", "moderation", "output_format", "output_compression")
#: (model family, output size; (0, 0) for ``auto``) of a request that passed validation
Checked = tuple[str, tuple[int, int]]


def family(model: str) -> str:
    if model.startswith("dall-e-2"):
        return "dall-e-2"
    if model.startswith("dall-e-3"):
        return "dall-e-3"
    if model.startswith("gpt-image-2") or model.startswith("chatgpt-image"):
        return "gpt-image-2"
    return "gpt-image"


def check_size(fam: str, size: str) -> tuple[int, int] | None:
    if fam == "gpt-image-2" and size != "auto":
        try:
            w, h = (int(x) for x in size.split("x"))
        except ValueError:
            return None
        ok = w % 16 == 0 and h % 16 == 0 and 1 / 3 <= w / h <= 3 and max(w, h) <= 3840 and w * h <= 3840 * 2160
        return (w, h) if ok else None
    allowed = SIZES.get(fam, GPT_SIZES + ["auto"])
    if size not in allowed:
        return None
    if size == "auto":
        return (0, 0)
    w, h = (int(x) for x in size.split("x"))
    return w, h


def masked_key(auth: str) -> str:
    key = auth.removeprefix("Bearer ").strip()
    return (key[:8] + "*" * 12 + key[-4:]) if len(key) > 12 else "*" * len(key)


async def bearer(request: Request, state: FakeState) -> Response | None:
    auth = request.headers.get("authorization", "")
    if auth == f"Bearer {state.api_key}":
        return None
    if not auth:
        return err(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    return err(
        401,
        f"Incorrect API key provided: {masked_key(auth)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def triggered(prompt: str, fam: str) -> Response | None:
    t = trigger(prompt)
    if t == "moderated":
        if fam.startswith("gpt-image"):
            return err(
                400,
                "Your request was rejected by the safety system. safety_violations=[sexual].",
                type_="image_generation_user_error",
                code="moderation_blocked",
            )
        return err(
            400,
            "Your request was rejected as a result of our safety system. Your prompt may "
            "contain text that is not allowed by our safety system.",
            code="content_policy_violation",
        )
    if t == "error":
        return err(
            500, "The server had an error while processing your request. Sorry about that!", type_="server_error"
        )
    if t == "rate-limit":
        return err(
            429,
            "Rate limit reached for images per minute. Please try again in 1s.",
            type_="requests",
            code="rate_limit_exceeded",
            headers={"retry-after": "1"},
        )
    return None


def validate(state: FakeState, body: dict[str, Any], *, edit: bool, gateway: bool) -> Response | Checked:
    state.jobs["last_body"] = dict(body)
    if gateway:
        return validate_gateway(body)
    fam = family(str(body.get("model") or ("gpt-image-1.5" if edit else "dall-e-2")))
    if not body.get("prompt"):
        return err(400, "Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    if (bad := check_n(fam, body)) is not None:
        return bad
    size = str(body.get("size") or ("auto" if fam.startswith("gpt-image") else "1024x1024"))
    dims = check_size(fam, size)
    if dims is None:
        allowed = ", ".join(f"'{s}'" for s in SIZES.get(fam, GPT_SIZES + ["auto"]))
        return err(
            400, f"Invalid value: '{size}'. Supported values are: {allowed}.", param="size", code="invalid_value"
        )
    return check_fields(fam, body) or (fam, dims)


def check_n(fam: str, body: dict[str, Any]) -> Response | None:
    try:
        n = int(body.get("n", 1))
    except (TypeError, ValueError):
        return err(400, "Invalid type for 'n'.", param="n", code="invalid_type")
    if n < 1 or n > 10 or (fam == "dall-e-3" and n != 1):
        return err(
            400,
            "Invalid 'n': dall-e-3 only supports n=1."
            if fam == "dall-e-3"
            else "Invalid 'n': must be between 1 and 10.",
            param="n",
            code="invalid_value",
        )
    return None


def check_fields(fam: str, body: dict[str, Any]) -> Response | None:
    """The per-family field rules: GPT image and dall-e accept different optional fields."""
    gpt = fam.startswith("gpt-image")
    quality = body.get("quality")
    if quality is not None and quality not in (GPT_QUALITIES if gpt else QUALITIES.get(fam, [])):
        return err(400, f"Invalid value: '{quality}'.", param="quality", code="invalid_value")
    unknown = [name for name in ("response_format",) if gpt and name in body]
    unknown += [name for name in GPT_ONLY if not gpt and name in body]
    unknown += [name for name in ("style",) if fam != "dall-e-3" and name in body]
    if unknown:
        return err(400, f"Unknown parameter: '{unknown[0]}'.", param=unknown[0], code="unknown_parameter")
    return check_gpt_levels(fam, body)


def check_gpt_levels(fam: str, body: dict[str, Any]) -> Response | None:
    """``moderation`` (auto, low) and an edit's ``input_fidelity``: high and low on gpt-image-1 and
    1.5, low only on gpt-image-1-mini, none on gpt-image-2 (OpenAI: omit it)."""
    moderation = body.get("moderation")
    if moderation is not None and moderation not in ("auto", "low"):
        return err(400, f"Invalid value: '{moderation}'.", param="moderation", code="invalid_value")
    fidelity = body.get("input_fidelity")
    if fidelity is None:
        return None
    model = str(body.get("model") or "")
    if not fam.startswith("gpt-image") or fam == "gpt-image-2":
        return err(400, "Unknown parameter: 'input_fidelity'.", param="input_fidelity", code="unknown_parameter")
    allowed = ("low",) if model.startswith("gpt-image-1-mini") else ("low", "high")
    if fidelity not in allowed:
        return err(400, f"Invalid value: '{fidelity}'.", param="input_fidelity", code="invalid_value")
    return None


def validate_gateway(body: dict[str, Any]) -> Response | Checked:
    if not body.get("model"):
        return err(400, "you must provide a model parameter", param="model")
    if not body.get("prompt"):
        return err(400, "Missing required parameter: 'prompt'.", param="prompt")
    size = str(body.get("size") or "1024x1024")
    try:
        w, h = (int(x) for x in size.lower().split("x"))
    except ValueError:
        return err(400, f"Invalid size '{size}'.", param="size", code="invalid_value")
    if not (64 <= w <= 4096 and 64 <= h <= 4096) or not 1 <= int(body.get("n", 1)) <= 10:
        return err(400, "size or n out of range.", param="size", code="invalid_value")
    return "gateway", (w, h)


def auto_size(first: tuple[int, int] | None) -> tuple[int, int]:
    """``size=auto``: the GPT size nearest the first input's shape for edits, square otherwise."""
    if not first:
        return 1024, 1024

    def distance(size: str) -> float:
        w, h = (int(x) for x in size.split("x"))
        return abs(w / h - first[0] / first[1])

    w, h = (int(x) for x in min(GPT_SIZES, key=distance).split("x"))
    return w, h


def usage(n: int) -> dict[str, Any]:
    return {
        "input_tokens": 50,
        "input_tokens_details": {"text_tokens": 50, "image_tokens": 0},
        "output_tokens": 1056 * n,
        "output_tokens_details": {"text_tokens": 0, "image_tokens": 1056 * n},
        "total_tokens": 50 + 1056 * n,
    }


async def answer(
    state: FakeState, body: dict[str, Any], checked: Checked, first: tuple[int, int] | None, *, edit: bool = False
) -> Response:
    fam, dims = checked
    previews = check_stream(fam, body) if streamed(body) else None
    if isinstance(previews, Response):
        return previews
    gpt = fam.startswith("gpt-image")
    n = int(body.get("n", 1))
    w, h = auto_size(first) if dims == (0, 0) else dims
    await state.work(n)
    fmt = str(body.get("output_format") or "png") if gpt or fam == "gateway" else "png"
    fmt = fmt if fmt in ("png", "jpeg", "webp") else "png"
    prompt = str(body["prompt"])
    data = []
    for i in range(n):
        png = state.image(prompt, w, h, fmt, index=i)
        item: dict[str, Any] = {}
        if gpt or body.get("response_format") == "b64_json":
            item["b64_json"] = base64.b64encode(png).decode()
        else:
            item["url"] = state.link(png, f"image/{fmt}", ttl=3600)
        if fam == "dall-e-3":
            item["revised_prompt"] = f"A detailed rendering of: {prompt}"
        data.append(item)
    out: dict[str, Any] = {"created": int(time.time()), "data": data}
    if gpt:
        out.update(
            background="opaque" if body.get("background") != "transparent" else "transparent",
            output_format=fmt,
            quality=body.get("quality") or "medium",
            size=f"{w}x{h}",
            usage=usage(n),
        )
    if previews is not None:
        return event_stream(out, png, fmt, previews, "image_edit" if edit else "image_generation")
    return JSONResponse(out)


async def generations(request: Request, state: FakeState, *, gateway: bool = False) -> Response:
    try:
        body = await request.json()
    except ValueError:
        return err(400, "We could not parse the JSON body of your request.", code="invalid_json")
    checked = validate(state, body, edit=False, gateway=gateway)
    if isinstance(checked, Response):
        return checked
    if (r := triggered(str(body["prompt"]), checked[0])) is not None:
        return r
    state.submitted(images=int(body.get("n", 1)))
    return await answer(state, body, checked, None)


async def decode_images(images: list[UploadFile]) -> list[Image.Image] | Response:
    decoded: list[Image.Image] = []
    for up in images:
        try:
            decoded.append(Image.open(io.BytesIO(await up.read())))
        except Exception:
            return err(
                400,
                "Invalid image file or mode for image 1, please check your image file.",
                param="image",
                code="invalid_image_format",
            )
    return decoded


async def check_mask(form: FormData, size: tuple[int, int]) -> dict[str, Any] | Response | None:
    """What the test reads of the mask (size, transparent pixels), or OpenAI's 400 for a bad one."""
    mask = form.get("mask")
    if mask is None or isinstance(mask, str):
        return None
    try:
        m = Image.open(io.BytesIO(await mask.read()))
    except Exception:
        return err(400, "Invalid mask image file.", param="mask", code="invalid_image_format")
    if m.format != "PNG" or m.mode not in ("RGBA", "LA"):
        return err(
            400,
            "Invalid mask image format - mask image missing alpha channel",
            param="mask",
            code="invalid_image_format",
        )
    if m.size != size:
        return err(
            400,
            "Invalid mask image format - mask size does not match image size",
            param="mask",
            code="invalid_image_format",
        )
    return {"size": list(m.size), "transparent_pixels": sum(m.getchannel("A").histogram()[:1])}


async def edits(request: Request, state: FakeState, *, gateway: bool = False) -> Response:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return err(400, "Invalid Content-Type header, expected multipart/form-data.")
    form = await request.form()
    body: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    images = [v for v in form.getlist("image[]") + form.getlist("image") if not isinstance(v, str)]
    checked = validate(state, body, edit=True, gateway=gateway)
    if isinstance(checked, Response):
        return checked
    if not images:
        return err(400, "Missing required parameter: 'image'.", param="image", code="missing_required_parameter")
    if len(images) > (1 if checked[0] == "dall-e-2" else 16):
        return err(400, "Too many images.", param="image", code="invalid_value")
    decoded = await decode_images(images)
    if isinstance(decoded, Response):
        return decoded
    mask_info = await check_mask(form, decoded[0].size)
    if isinstance(mask_info, Response):
        return mask_info
    state.jobs["last_edit"] = {
        "fields": body,
        "image_count": len(images),
        "mask": mask_info,
        "image_field": "image[]" if form.getlist("image[]") else "image",
    }
    if (r := triggered(str(body["prompt"]), checked[0])) is not None:
        return r
    state.submitted(images=int(body.get("n", 1)))
    return await answer(state, body, checked, decoded[0].size, edit=True)


def routes(*, gateway: bool) -> list[Endpoint]:
    gen, edit = partial(generations, gateway=gateway), partial(edits, gateway=gateway)
    return [
        endpoint
        for prefix in ("/v1", "")
        for endpoint in (
            Endpoint("POST", f"{prefix}/images/generations", gen, count="generations"),
            Endpoint("POST", f"{prefix}/images/edits", edit, count="edits"),
        )
    ]


def create_app(state: FakeState, *, gateway: bool = False) -> FastAPI:
    return fake_app(state, routes(gateway=gateway), auth=bearer)
