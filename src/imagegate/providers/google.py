"""Google image models on the Gemini API: Gemini native images and Imagen.

- Gemini (``gemini-*-image*``): ``POST /v1beta/models/{model}:generateContent`` with text and
  ``inlineData`` parts, ``generationConfig.responseModalities`` and ``imageConfig`` (aspectRatio,
  imageSize 1K/2K/4K). No count field: one image per call, so ``n`` fans out.
- Imagen (``imagen-*``): ``POST /v1beta/models/{model}:predict`` with ``instances``/``parameters``
  (sampleCount up to the model's ``images_per_call``, 4; more fans out in chunks).

Both are sized by aspect ratio and tier: the ratio and tier validation accepted against the
model's catalog ``aspect_ratios``/``resolutions``, and a size from its ``size_table`` as that
entry's ratio and tier. ``imageSize`` is sent only to models offering more than one tier (not
gemini-2.5 or Imagen *fast*, which refuse it). ``deployment.options``: ``api: gemini|imagen``
(default: by model id prefix), ``parameters`` (extra Imagen parameters).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx

from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError, token_usage
from imagegate.media import b64, codecs
from imagegate.providers.base import Provider
from imagegate.providers.toolkit import (
    aspect_and_tier,
    chunks,
    http_error,
    json_body,
    per_call,
    retry_after_of,
    sum_usage,
)

MODERATED_FINISH = {
    "SAFETY",
    "IMAGE_SAFETY",
    "PROHIBITED_CONTENT",
    "IMAGE_PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "RECITATION",
    "IMAGE_RECITATION",
}
_RAI = re.compile(r"sensitive words|responsible ai|safety (?:filter|setting)|violat", re.I)


def error_from(resp: httpx.Response) -> UpstreamError:
    """Map ``{"error": {code, message, status, details}}``."""
    err = json_body(resp).get("error")
    err = err if isinstance(err, dict) else {}
    status_text = str(err.get("status") or "")
    message = str(err.get("message") or f"HTTP {resp.status_code}")
    details = err.get("details") or []
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    if (
        "API_KEY_INVALID" in reasons
        or status_text in ("UNAUTHENTICATED", "PERMISSION_DENIED")
        or resp.status_code in (401, 403)
    ):
        return UpstreamError(ErrorCode.upstream_auth, "google: API key rejected", status=resp.status_code)
    retry_after: str | float | None = retry_after_of(resp)
    for d in details:  # google.rpc.RetryInfo {"retryDelay": "34s"}
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("RetryInfo") and d.get("retryDelay"):
            retry_after = str(d["retryDelay"])
    if status_text == "FAILED_PRECONDITION":  # e.g. billing not enabled / region without free tier
        return UpstreamError(ErrorCode.upstream_quota, f"google: {message}", status=resp.status_code)
    if resp.status_code == 400 and _RAI.search(message):
        return http_error("google", 400, message, moderated=True)
    return http_error("google", resp.status_code, message, retry_after=retry_after)


def gemini_tokens(meta: Any) -> dict[str, Any] | None:
    """Gemini's ``usageMetadata`` as OpenAI's usage: prompt tokens in, candidate tokens out, and the
    prompt's IMAGE-modality tokens as its image tokens."""
    if not isinstance(meta, dict) or not isinstance(meta.get("promptTokenCount"), int):
        return None
    prompt = meta["promptTokenCount"]
    total = meta.get("totalTokenCount")
    out = meta.get("candidatesTokenCount")
    if not isinstance(out, int):
        out = total - prompt if isinstance(total, int) else 0
    image = sum(
        d.get("tokenCount") or 0
        for d in meta.get("promptTokensDetails") or []
        if isinstance(d, dict) and d.get("modality") == "IMAGE"
    )
    return token_usage(prompt, out, image_tokens=image, total_tokens=total if isinstance(total, int) else None)


class GoogleProvider(Provider):
    name = "google"
    kind = "sync"
    default_base_url = "https://generativelanguage.googleapis.com"

    @property
    def api(self) -> str:
        api = self.deployment.options.get("api")
        if api:
            return str(api)
        return "imagen" if self.deployment.model.startswith("imagen") else "gemini"

    def headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.credential("api_key"), "Content-Type": "application/json"}

    def url(self, method: str) -> str:
        base = self.base_url
        if not re.search(r"/v1(beta|alpha)?\d*$", base):
            base += "/v1beta"
        return f"{base}/models/{self.deployment.model}:{method}"

    def shape(self, req: ImageRequest) -> tuple[str | None, str | None]:
        """(aspectRatio, imageSize); None leaves the model's default. A tier is sent only where the
        model offers a choice of tiers: the others refuse ``imageSize``."""
        ratio, tier = aspect_and_tier(self.spec, req)
        return ratio, (tier if len(self.spec.resolutions or []) > 1 else None)

    async def generate(self, req: ImageRequest) -> ProviderResult:
        if self.api == "imagen":
            return await self._imagen(req)
        return await self._gemini(req)

    # -- Gemini ----------------------------------------------------------------------------
    def gemini_body(self, req: ImageRequest, index: int = 0) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"text": req.prompt}]
        for img in req.images:
            parts.append({"inlineData": {"mimeType": img.mime, "data": b64.encode(img.data)}})
        image_config: dict[str, Any] = {}
        ratio, tier = self.shape(req)
        if ratio:
            image_config["aspectRatio"] = ratio
        if tier:
            image_config["imageSize"] = tier
        gen: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
        if req.seed is not None:  # fanned-out calls each get their own seed, or they'd be identical
            gen["seed"] = req.seed + index
        if image_config:
            gen["imageConfig"] = image_config
        return {"contents": [{"role": "user", "parts": parts}], "generationConfig": gen}

    async def _gemini(self, req: ImageRequest) -> ProviderResult:
        results = await asyncio.gather(*(self._gemini_once(self.gemini_body(req, i)) for i in range(req.n)))
        return ProviderResult(
            images=[img for r in results for img in r.images],
            usage=sum_usage(r.usage for r in results),
            tokens=sum_usage(r.tokens for r in results),
        )

    async def _gemini_once(self, body: dict[str, Any]) -> ProviderResult:
        resp = await self.request("POST", self.url("generateContent"), headers=self.headers(), json=body)
        if resp.status_code != 200:
            raise error_from(resp)
        payload = json_body(resp)
        block = (payload.get("promptFeedback") or {}).get("blockReason")
        if block:
            raise UpstreamError(ErrorCode.content_policy_violation, f"google: prompt blocked ({block})", status=200)
        images: list[GeneratedImage] = []
        finish = None
        for cand in payload.get("candidates") or []:
            finish = cand.get("finishReason") or finish
            for part in (cand.get("content") or {}).get("parts") or []:
                inline = part.get("inlineData") or part.get("inline_data")
                if inline and inline.get("data"):
                    data = b64.decode(inline["data"])
                    images.append(GeneratedImage(data=data, mime=inline.get("mimeType") or inline.get("mime_type")))
        if images:
            meta = payload.get("usageMetadata")
            return ProviderResult(images=images[:1], usage=meta, tokens=gemini_tokens(meta))
        if finish in MODERATED_FINISH:
            raise UpstreamError(ErrorCode.content_policy_violation, f"google: output blocked ({finish})", status=200)
        raise UpstreamError(
            ErrorCode.upstream_error, f"google: no image in response (finishReason {finish})", status=200
        )

    # -- Imagen ----------------------------------------------------------------------------
    def imagen_body(self, req: ImageRequest, count: int) -> dict[str, Any]:
        params: dict[str, Any] = {"sampleCount": count}
        ratio, tier = self.shape(req)
        if ratio:
            params["aspectRatio"] = ratio
        if tier:
            params["imageSize"] = tier
        if req.output_format == "jpeg":
            params["outputOptions"] = {"mimeType": "image/jpeg"}
        params.update(self.deployment.options.get("parameters") or {})
        return {"instances": [{"prompt": req.prompt}], "parameters": params}

    async def _imagen(self, req: ImageRequest) -> ProviderResult:
        results = await asyncio.gather(*(self._imagen_once(req, k) for k in chunks(req.n, per_call(self.spec))))
        return ProviderResult(images=[img for r in results for img in r])

    async def _imagen_once(self, req: ImageRequest, count: int) -> list[GeneratedImage]:
        resp = await self.request(
            "POST", self.url("predict"), headers=self.headers(), json=self.imagen_body(req, count)
        )
        if resp.status_code != 200:
            raise error_from(resp)
        images = []
        for p in json_body(resp).get("predictions") or []:
            if p.get("bytesBase64Encoded"):
                data = b64.decode(p["bytesBase64Encoded"])
                fmt = codecs.sniff_format(data)
                images.append(GeneratedImage(data=data, mime=p.get("mimeType") or (f"image/{fmt}" if fmt else None)))
        if not images:  # Imagen drops filtered samples; none left means the whole call was filtered
            raise UpstreamError(
                ErrorCode.content_policy_violation, "google: all images were filtered by safety", status=200
            )
        return images
