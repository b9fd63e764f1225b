"""Fake Gemini API for image models: Gemini ``:generateContent`` and Imagen ``:predict``.

Imitates: ``x-goog-api-key`` (or ``?key=``) with Google's 400 ``INVALID_ARGUMENT`` /
``API_KEY_INVALID`` answer for a bad key and 403 ``PERMISSION_DENIED`` for none; the
``{"error": {code, message, status, details}}`` envelope; Gemini parts (text + ``inlineData``)
with ``imageConfig.aspectRatio``/``imageSize`` mapped to each model's pixel table (2.5 flash:
1K only; Gemini 3: 1K/2K/4K), output shaped like the first input when no ratio is given,
``promptFeedback.blockReason`` for moderated prompts, 429 ``RESOURCE_EXHAUSTED`` with a
``RetryInfo`` delay, 500 ``INTERNAL``; Imagen ``instances``/``parameters`` (sampleCount 1-4,
five aspect ratios, imageSize 1K/2K except *fast*) answering ``predictions[].bytesBase64Encoded``,
and dropping filtered samples (an empty answer) when moderated.
"""

from __future__ import annotations

import base64
import io
import secrets
from typing import Any

from fastapi import FastAPI
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.catalog import sizing
from imagegate.testing.fakes.server import Endpoint, fake_app
from imagegate.testing.fakes.state import FakeState, trigger

PROVIDER = "google"

#: gemini-2.5-flash-image: one tier, ~1290 output tokens each
GEMINI_25 = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}
#: Gemini 3 image models at 1K; 2K and 4K are 2x and 4x
GEMINI_3_1K = {
    "1:1": (1024, 1024),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
    "1:4": (512, 2048),
    "4:1": (2048, 512),
    "1:8": (384, 3072),
    "8:1": (3072, 384),
}
IMAGEN_1K = {"1:1": (1024, 1024), "3:4": (896, 1280), "4:3": (1280, 896), "9:16": (768, 1408), "16:9": (1408, 768)}
TIER_SCALE = {"1K": 1, "2K": 2, "4K": 4}


def gerr(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message, "status": status}}
    if details:
        body["error"]["details"] = details
    return JSONResponse(body, code)


async def api_key(request: Request, state: FakeState) -> Response | None:
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if not key:
        return gerr(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without "
            "established identity). Please use API Key or other form of API consumer identity to call "
            "this API.",
        )
    if key != state.api_key:
        return gerr(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ],
        )
    return None


def faults(prompt: str) -> Response | None:
    t = trigger(prompt)
    if t == "error":
        return gerr(
            500,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting",
        )
    if t == "rate-limit":
        return gerr(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}],
        )
    return None


def gemini_size(model: str, cfg: dict[str, Any], inputs: list[dict[str, Any]]) -> tuple[int, int] | Response:
    """Pixels from ``imageConfig`` and the model's table; without a ratio, the first input's shape."""
    old = model.startswith("gemini-2.")
    if len(inputs) > (3 if old else 14):
        return gerr(400, "INVALID_ARGUMENT", "Too many images in the request.")
    ratio = cfg.get("aspectRatio")
    table = GEMINI_25 if old else GEMINI_3_1K
    if ratio is not None and ratio not in table:
        return gerr(400, "INVALID_ARGUMENT", f"Unsupported aspect ratio: {ratio}")
    tier = cfg.get("imageSize", "1K")
    if "imageSize" in cfg and (old or tier not in TIER_SCALE):
        return gerr(400, "INVALID_ARGUMENT", f"Invalid value at 'generation_config.image_config.image_size' ({tier})")
    if ratio is None and inputs:
        first = Image.open(io.BytesIO(base64.b64decode(inputs[0]["data"])))
        ratio = sizing.nearest_ratio(first.width, first.height, list(table))
    w, h = table[ratio or "1:1"]
    return w * TIER_SCALE[tier], h * TIER_SCALE[tier]


async def generate_content(request: Request, state: FakeState, model: str) -> Response:
    try:
        body = await request.json()
    except ValueError:
        return gerr(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    parts = [p for c in body.get("contents") or [] for p in c.get("parts") or []]
    prompt = " ".join(p["text"] for p in parts if "text" in p)
    inputs = [p.get("inlineData") or p.get("inline_data") for p in parts if "inlineData" in p or "inline_data" in p]
    gen = body.get("generationConfig") or {}
    cfg = gen.get("imageConfig") or {}
    if "IMAGE" not in [m.upper() for m in gen.get("responseModalities") or ["TEXT", "IMAGE"]]:
        return JSONResponse(
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "OK."}]}, "finishReason": "STOP"}]}
        )
    size = gemini_size(model, cfg, inputs)
    if isinstance(size, Response):
        return size
    state.jobs["last_gemini"] = {"model": model, "image_config": cfg, "inputs": len(inputs), "seed": gen.get("seed")}
    if (r := faults(prompt)) is not None:
        return r
    if trigger(prompt) == "moderated":
        return JSONResponse(
            {
                "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
                "modelVersion": model,
            }
        )
    state.submitted(images=1)
    await state.work(1)
    png = state.image(prompt, *size, "png", seed=gen.get("seed"))
    return gemini_answer(model, png, len(inputs))


def gemini_answer(model: str, png: bytes, inputs: int) -> JSONResponse:
    image = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}}
    content = {"role": "model", "parts": [{"text": "Here is the image you asked for."}, image]}
    return JSONResponse(
        {
            "candidates": [{"content": content, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {
                "promptTokenCount": 12 + 258 * inputs,
                "candidatesTokenCount": 1290,
                "totalTokenCount": 1302 + 258 * inputs,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}]
                + ([{"modality": "IMAGE", "tokenCount": 258 * inputs}] if inputs else []),
                "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290}],
            },
            "modelVersion": model,
            "responseId": secrets.token_urlsafe(12),
        }
    )


def imagen_params(model: str, body: dict[str, Any]) -> Response | None:
    instances = body.get("instances") or []
    params = body.get("parameters") or {}
    if not instances or not instances[0].get("prompt"):
        return gerr(400, "INVALID_ARGUMENT", "Prompt is required.")
    if not 1 <= int(params.get("sampleCount", 4)) <= 4:
        return gerr(400, "INVALID_ARGUMENT", "Number of images must be between 1 and 4.")
    ratio = params.get("aspectRatio", "1:1")
    if ratio not in IMAGEN_1K:
        return gerr(400, "INVALID_ARGUMENT", f"Unsupported aspect ratio: {ratio}")
    size = params.get("imageSize", "1K")
    if size not in ("1K", "2K") or ("imageSize" in params and "fast" in model):
        return gerr(400, "INVALID_ARGUMENT", f"Unsupported image size: {size}")
    return None


async def predict(request: Request, state: FakeState, model: str) -> Response:
    try:
        body = await request.json()
    except ValueError:
        return gerr(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    if (bad := imagen_params(model, body)) is not None:
        return bad
    prompt, params = body["instances"][0]["prompt"], body.get("parameters") or {}
    state.jobs["last_imagen"] = {"model": model, "parameters": params}
    if (r := faults(prompt)) is not None:
        return r
    if trigger(prompt) == "moderated":
        return JSONResponse({})
    count = int(params.get("sampleCount", 4))
    state.submitted(images=count)
    await state.work(count)
    w, h = IMAGEN_1K[params.get("aspectRatio", "1:1")]
    w, h = (w * 2, h * 2) if params.get("imageSize", "1K") == "2K" else (w, h)
    fmt = "jpeg" if (params.get("outputOptions") or {}).get("mimeType") == "image/jpeg" else "png"
    preds = [
        {
            "bytesBase64Encoded": base64.b64encode(state.image(prompt, w, h, fmt, index=i)).decode(),
            "mimeType": f"image/{fmt}",
        }
        for i in range(count)
    ]
    return JSONResponse({"predictions": preds})


async def dispatch(request: Request, state: FakeState) -> Response:
    """One route for every ``models/{model}:{method}``, as Google's API resolves the method after the colon."""
    model, _, method = request.path_params["target"].partition(":")
    if method == "generateContent" and "image" in model:
        return await generate_content(request, state, model)
    if method == "predict" and model.startswith("imagen"):
        return await predict(request, state, model)
    return gerr(
        404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, or is not supported for {method}."
    )


ROUTES = (Endpoint("POST", "/v1beta/models/{target}", dispatch, count="requests"),)


def create_app(state: FakeState) -> FastAPI:
    return fake_app(state, ROUTES, auth=api_key)
