"""Google image models on the Gemini API: Gemini native images and Imagen.

- Gemini (``gemini-*-image*``): ``POST /v1beta/models/{model}:generateContent`` with text and
  ``inlineData`` parts, ``generationConfig.responseModalities`` and ``imageConfig`` (aspectRatio,
  imageSize 1K/2K/4K). One image per call, so ``n`` fans out.
- Imagen (``imagen-*``): ``POST /v1beta/models/{model}:predict`` with ``instances``/``parameters``
  (sampleCount 1-4, so more than 4 fans out in chunks).

``deployment.options``: ``api: gemini|imagen`` (default: by model id prefix), ``image_size: false``
for models without imageSize (default: off for gemini-2.5 and imagen *fast*), ``aspect_ratios``.
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import httpx

from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError
from imagegate.media import codecs
from imagegate.catalog import sizing
from imagegate.providers.base import Provider, http_error, register

GEMINI_RATIOS = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
IMAGEN_RATIOS = ["1:1", "3:4", "4:3", "9:16", "16:9"]
IMAGEN_MAX_SAMPLES = 4

MODERATED_FINISH = {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII",
                    "RECITATION", "IMAGE_RECITATION"}
_RAI = re.compile(r"sensitive words|responsible ai|safety (?:filter|setting)|violat", re.I)


def error_from(resp: httpx.Response) -> UpstreamError:
    """Map ``{"error": {code, message, status, details}}``."""
    try:
        err = resp.json().get("error") or {}
    except (ValueError, AttributeError):
        err = {}
    status_text = str(err.get("status") or "")
    message = str(err.get("message") or f"HTTP {resp.status_code}")
    details = err.get("details") or []
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    if "API_KEY_INVALID" in reasons or status_text in ("UNAUTHENTICATED", "PERMISSION_DENIED") \
            or resp.status_code in (401, 403):
        return UpstreamError(ErrorCode.upstream_auth, "google: API key rejected", status=resp.status_code)
    retry_after: Any = resp.headers.get("retry-after")
    for d in details:  # google.rpc.RetryInfo {"retryDelay": "34s"}
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("RetryInfo"):
            retry_after = str(d.get("retryDelay", "")).rstrip("s") or retry_after
    if status_text == "FAILED_PRECONDITION":  # e.g. billing not enabled / region without free tier
        return UpstreamError(ErrorCode.upstream_quota, f"google: {message}", status=resp.status_code)
    if resp.status_code == 400 and _RAI.search(message):
        return http_error("google", 400, message, moderated=True)
    return http_error("google", resp.status_code, message, retry_after=retry_after)


@register
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

    def uses_image_size(self) -> bool:
        opt = self.deployment.options.get("image_size")
        if opt is not None:
            return bool(opt)
        m = self.deployment.model
        return not (m.startswith("gemini-2.") or "fast" in m)

    def shape(self, req: ImageRequest, ratios: list[str]) -> tuple[str | None, str | None]:
        """(aspectRatio, imageSize) for the request; None leaves the model's default."""
        ratios = list(self.deployment.options.get("aspect_ratios") or ratios)
        ratio: str | None = None
        tier: str | None = sizing.normalize_tier(req.resolution) if req.resolution else None
        if req.aspect_ratio:
            r = sizing.parse_ratio(req.aspect_ratio)
            ratio = req.aspect_ratio if req.aspect_ratio in ratios else (
                sizing.nearest_ratio(int(r * 1000), 1000, ratios) if r else None)
        elif req.width and req.height:
            ratio = sizing.nearest_ratio(req.width, req.height, ratios)
        if tier is None and req.width and req.height:
            tier = sizing.nearest_tier(req.width, req.height, ["1K", "2K", "4K"])
        if tier == "512":
            tier = "1K"
        return ratio, (tier if self.uses_image_size() else None)

    async def generate(self, req: ImageRequest) -> ProviderResult:
        if self.api == "imagen":
            return await self._imagen(req)
        return await self._gemini(req)

    # -- Gemini ----------------------------------------------------------------------------
    def gemini_body(self, req: ImageRequest, index: int = 0) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"text": req.prompt}]
        for img in req.images:
            parts.append({"inlineData": {"mimeType": img.mime, "data": base64.b64encode(img.data).decode()}})
        image_config: dict[str, Any] = {}
        ratio, tier = self.shape(req, GEMINI_RATIOS)
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
        images = [img for r in results for img in r.images]
        usage: dict[str, Any] = {}
        for r in results:  # add up token counts of the fanned-out calls
            for k, v in (r.usage or {}).items():
                if isinstance(v, (int, float)):
                    usage[k] = usage.get(k, 0) + v
        return ProviderResult(images=images, usage=usage or None)

    async def _gemini_once(self, body: dict[str, Any]) -> ProviderResult:
        resp = await self.request("POST", self.url("generateContent"), headers=self.headers(), json=body)
        if resp.status_code != 200:
            raise error_from(resp)
        payload = resp.json()
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
                    data = base64.b64decode(inline["data"])
                    images.append(GeneratedImage(data=data, mime=inline.get("mimeType") or inline.get("mime_type")))
        if images:
            return ProviderResult(images=images[:1], usage=payload.get("usageMetadata"))
        if finish in MODERATED_FINISH:
            raise UpstreamError(ErrorCode.content_policy_violation, f"google: output blocked ({finish})", status=200)
        raise UpstreamError(ErrorCode.upstream_error, f"google: no image in response (finishReason {finish})",
                            status=200)

    # -- Imagen ----------------------------------------------------------------------------
    def imagen_body(self, req: ImageRequest, count: int) -> dict[str, Any]:
        params: dict[str, Any] = {"sampleCount": count}
        ratio, tier = self.shape(req, IMAGEN_RATIOS)
        if ratio:
            params["aspectRatio"] = ratio
        if tier:
            params["imageSize"] = "2K" if tier in ("2K", "4K") else "1K"
        if req.output_format == "jpeg":
            params["outputOptions"] = {"mimeType": "image/jpeg"}
        params.update(self.deployment.options.get("parameters") or {})
        return {"instances": [{"prompt": req.prompt}], "parameters": params}

    async def _imagen(self, req: ImageRequest) -> ProviderResult:
        counts = [min(IMAGEN_MAX_SAMPLES, req.n - i) for i in range(0, req.n, IMAGEN_MAX_SAMPLES)]
        results = await asyncio.gather(*(self._imagen_once(req, k) for k in counts))
        return ProviderResult(images=[img for r in results for img in r])

    async def _imagen_once(self, req: ImageRequest, count: int) -> list[GeneratedImage]:
        resp = await self.request("POST", self.url("predict"), headers=self.headers(),
                                  json=self.imagen_body(req, count))
        if resp.status_code != 200:
            raise error_from(resp)
        images = []
        for p in resp.json().get("predictions") or []:
            if p.get("bytesBase64Encoded"):
                data = base64.b64decode(p["bytesBase64Encoded"])
                fmt = codecs.sniff_format(data)
                images.append(GeneratedImage(data=data, mime=p.get("mimeType") or (f"image/{fmt}" if fmt else None)))
        if not images:  # Imagen drops filtered samples; none left means the whole call was filtered
            raise UpstreamError(ErrorCode.content_policy_violation, "google: all images were filtered by safety",
                                status=200)
        return images
