"""OpenAI Images API: ``/images/generations`` (JSON) and ``/images/edits`` (multipart).

GPT image models always answer base64; dall-e models are asked for ``b64_json`` too, so we
never race a 60-minute URL. Sizes are snapped to what each model family takes; ``n`` larger
than a model allows per call (dall-e-3: 1) is fanned out into parallel calls. ``deployment.options.defaults`` fills fields the client left
unset (e.g. ``{moderation: low, quality: low}`` for a flat-priced tier).
"""

from __future__ import annotations

import asyncio
import io
import math
from typing import Any

import httpx
import orjson
from PIL import Image, ImageOps

from imagegate.domain import MIME, ErrorCode, GeneratedImage, ImageInput, ImageRequest, ProviderResult, UpstreamError
from imagegate.media import b64, codecs
from imagegate.catalog import sizing
from imagegate.providers.base import Provider, http_error, register

GPT_IMAGE_SIZES = ["1024x1024", "1536x1024", "1024x1536"]
DALLE3_SIZES = ["1024x1024", "1792x1024", "1024x1792"]
DALLE2_SIZES = ["256x256", "512x512", "1024x1024"]

#: gpt-image-2 free sizes: both sides multiples of 16, ratio within 1:3..3:1, at most 3840x2160 pixels;
#: the pixel floor (655,360) is from memory of OpenAI's guide, not confirmed
FREE_MULTIPLE = 16
FREE_MAX_SIDE = 3840
FREE_MAX_PIXELS = 3840 * 2160
FREE_MIN_PIXELS = 655_360

MODERATION_CODES = {"moderation_blocked", "content_policy_violation"}
QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"}


def family(model: str) -> str:
    """'dall-e-2' | 'dall-e-3' | 'gpt-image-2' (free WxH) | 'gpt-image' (three fixed sizes)."""
    m = model.lower()
    if m.startswith("dall-e-2"):
        return "dall-e-2"
    if m.startswith("dall-e-3"):
        return "dall-e-3"
    if m.startswith("gpt-image-2") or m.startswith("chatgpt-image"):
        return "gpt-image-2"
    return "gpt-image"


def snap_free(w: int, h: int) -> tuple[int, int]:
    """Bring any WxH within gpt-image-2's rule, keeping the shape as far as the rule allows."""
    ratio = min(3.0, max(1 / 3, w / h))
    if abs(ratio - w / h) > 1e-9:  # too elongated: keep the long side, widen the short one
        w, h = (w, round(w / ratio)) if w >= h else (round(h * ratio), h)
    scale = min(1.0, FREE_MAX_SIDE / max(w, h), math.sqrt(FREE_MAX_PIXELS / (w * h)))
    if w * h * scale * scale < FREE_MIN_PIXELS:
        scale = math.sqrt(FREE_MIN_PIXELS / (w * h))
    w, h = w * scale, h * scale

    def down(x: float) -> int:
        return max(FREE_MULTIPLE, int(x // FREE_MULTIPLE) * FREE_MULTIPLE)

    def near(x: float) -> int:
        return max(FREE_MULTIPLE, int(round(x / FREE_MULTIPLE)) * FREE_MULTIPLE)

    sw, sh = near(w), near(h)
    if sw > FREE_MAX_SIDE or sh > FREE_MAX_SIDE or sw * sh > FREE_MAX_PIXELS:
        sw, sh = down(w), down(h)
    return sw, sh


def wanted_dims(req: ImageRequest) -> tuple[int, int] | None:
    """The pixel size the client asked for, directly or as resolution + aspect ratio."""
    if req.width and req.height:
        return req.width, req.height
    if req.resolution or req.aspect_ratio:
        ratio = sizing.parse_ratio(req.aspect_ratio or "1:1") or 1.0
        tier = sizing.normalize_tier(req.resolution or "1K") or "1K"
        return sizing.tier_dims(tier, ratio, FREE_MULTIPLE)
    return None


def size_for(model: str, req: ImageRequest) -> str | None:
    """The ``size`` value to send (None: leave it to the model's default)."""
    fam = family(model)
    dims = wanted_dims(req)
    if dims is None:
        return "auto" if fam.startswith("gpt-image") else None
    w, h = dims
    if fam == "gpt-image-2":
        sw, sh = snap_free(w, h)
        return f"{sw}x{sh}"
    choices = {"dall-e-2": DALLE2_SIZES, "dall-e-3": DALLE3_SIZES}.get(fam, GPT_IMAGE_SIZES)
    if f"{w}x{h}" in choices:
        return f"{w}x{h}"
    if fam == "dall-e-2":  # squares only: pick by area
        return min(choices, key=lambda c: abs(int(c.split("x")[0]) ** 2 - w * h))
    return sizing.nearest_size(w, h, choices)


def quality_for(model: str, quality: str | None) -> str | None:
    fam = family(model)
    if not quality:
        return None
    if fam == "dall-e-2":
        return None
    if fam == "dall-e-3":
        return {"high": "hd", "hd": "hd"}.get(quality, "standard")
    return {"hd": "high", "standard": "medium"}.get(quality, quality)


def alpha_mask(mask: ImageInput, size: tuple[int, int]) -> bytes:
    """OpenAI wants a PNG mask the size of the first image, alpha 0 where to edit."""
    area = codecs.edit_area(mask.data, size)
    out = Image.new("RGBA", size, (0, 0, 0, 255))
    out.putalpha(ImageOps.invert(area))
    buf = io.BytesIO()
    out.save(buf, "PNG")
    return buf.getvalue()


def with_defaults(fields: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Drop unset fields, then fill ``options.defaults`` (e.g. ``{moderation: low}``) where the client set none."""
    out = {k: v for k, v in fields.items() if v is not None}
    for k, v in (options.get("defaults") or {}).items():
        out.setdefault(k, v)
    return out


def error_from(provider: str, resp: httpx.Response) -> UpstreamError:
    """Map OpenAI's ``{"error": {message, type, param, code}}`` envelope."""
    try:
        err = resp.json().get("error") or {}
        if not isinstance(err, dict):
            err = {"message": str(err)}
    except ValueError:
        err = {}
    code = str(err.get("code") or "")
    param = err.get("param") or None
    status = resp.status_code
    retry_after = resp.headers.get("retry-after")
    if retry_after is None and resp.headers.get("retry-after-ms"):
        try:
            retry_after = str(float(resp.headers["retry-after-ms"]) / 1000)
        except ValueError:
            retry_after = None
    if status in (401, 403):
        # OpenAI's 401 message echoes part of the key: never pass it on.
        return http_error(provider, status, f"authentication failed ({code or status})")
    message = str(err.get("message") or resp.text[:200] or f"HTTP {status}")
    if code in QUOTA_CODES or err.get("type") == "insufficient_quota":
        return UpstreamError(ErrorCode.upstream_quota, f"{provider}: {message}", status=status)
    moderated = code in MODERATION_CODES or err.get("type") == "image_generation_user_error" and "safety" in message
    return http_error(provider, status, message, retry_after=retry_after, moderated=moderated,
                      param=param if isinstance(param, str) else None)


@register
class OpenAIProvider(Provider):
    name = "openai"
    kind = "sync"
    default_base_url = "https://api.openai.com/v1"

    # -- request building (overridable by OpenAI-shaped gateways) -----------------------
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential('api_key')}"}

    def per_call_n(self) -> int:
        return 1 if family(self.deployment.model) == "dall-e-3" else 10

    def fields(self, req: ImageRequest, n: int) -> dict[str, Any]:
        """Body fields common to generations and edits, in OpenAI's names."""
        model = self.deployment.model
        fam = family(model)
        gpt = fam.startswith("gpt-image")
        f: dict[str, Any] = {"model": model, "prompt": req.prompt, "n": n}
        f["size"] = size_for(model, req)
        f["quality"] = quality_for(model, req.quality)
        f["user"] = req.user
        if gpt:
            f["background"] = req.background
            f["moderation"] = req.moderation
            f["output_format"] = req.output_format
            if req.output_format in ("jpeg", "webp"):
                f["output_compression"] = req.output_compression
        else:
            f["response_format"] = "b64_json"
            if fam == "dall-e-3":
                f["style"] = req.style
        if req.mode == "edit" and gpt and not model.lower().startswith("gpt-image-1-mini"):
            f["input_fidelity"] = req.input_fidelity
        return with_defaults(f, self.deployment.options)

    def files(self, req: ImageRequest) -> list[tuple[str, tuple[str, bytes, str]]]:
        """Multipart file parts of an edit: ``image[]`` (or ``image`` for dall-e-2) and ``mask``."""
        fam = family(self.deployment.model)
        out: list[tuple[str, tuple[str, bytes, str]]] = []
        field = "image" if fam == "dall-e-2" else "image[]"
        images = req.images[:1] if fam == "dall-e-2" else req.images[:16]
        for i, img in enumerate(images):
            ext = img.mime.split("/")[-1].replace("jpeg", "jpg")
            out.append((field, (f"image_{i}.{ext}", img.data, img.mime)))
        if req.mask is not None and images:
            first = images[0]
            out.append(("mask", ("mask.png", alpha_mask(req.mask, (first.width, first.height)), "image/png")))
        return out

    def endpoint(self, mode: str) -> str:
        return f"{self.base_url}/images/{'edits' if mode == 'edit' else 'generations'}"

    # -- the call ---------------------------------------------------------------------------
    async def generate(self, req: ImageRequest) -> ProviderResult:
        per = max(1, self.per_call_n())
        counts = [min(per, req.n - i) for i in range(0, req.n, per)]
        files = await asyncio.to_thread(self.files, req) if req.mode == "edit" and req.images else None
        results = await asyncio.gather(*(self._call(req, k, files) for k in counts))
        images = [img for r in results for img in r.images]
        images = await self.download_all(images)
        usage = _sum_usage([r.usage for r in results])
        revised = next((i.revised_prompt for i in images if i.revised_prompt), None)
        return ProviderResult(images=images, usage=usage, revised_prompt=revised)

    async def _call(self, req: ImageRequest, n: int, files: list | None) -> ProviderResult:
        body = self.fields(req, n)
        if files is not None:
            data = {k: str(v) for k, v in body.items()}
            resp = await self.request("POST", self.endpoint("edit"), headers=self.headers(), data=data, files=files)
        else:
            resp = await self.request("POST", self.endpoint("generate"), headers=self.headers(), json=body)
        if resp.status_code != 200:
            raise error_from(self.name, resp)
        # decoding megabytes of JSON and base64 is CPU work: keep it off the event loop
        return await asyncio.to_thread(self.parse, resp, req)

    def parse(self, resp: httpx.Response, req: ImageRequest) -> ProviderResult:
        try:
            payload = orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(ErrorCode.upstream_error, f"{self.name}: response is not JSON") from exc
        fmt = payload.get("output_format") or (req.output_format if family(self.deployment.model).startswith(
            "gpt-image") else "png")
        images: list[GeneratedImage] = []
        for item in payload.get("data") or []:
            revised = item.get("revised_prompt")
            if item.get("b64_json"):
                data = b64.decode(item["b64_json"])
                mime = MIME.get(codecs.sniff_format(data) or fmt)
                images.append(GeneratedImage(data=data, mime=mime, revised_prompt=revised))
            elif item.get("url"):
                images.append(GeneratedImage(url=item["url"], revised_prompt=revised))
        if not images:
            raise UpstreamError(ErrorCode.upstream_error, f"{self.name}: response held no images")
        return ProviderResult(images=images, usage=payload.get("usage"))


def _sum_usage(usages: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Add token counts of fanned-out calls (nested ``*_details`` dicts too)."""
    got = [u for u in usages if u]
    if not got:
        return None
    if len(got) == 1:
        return got[0]

    def add(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for k, v in b.items():
            if isinstance(v, (int, float)) and isinstance(out.get(k, 0), (int, float)):
                out[k] = out.get(k, 0) + v
            elif isinstance(v, dict):
                out[k] = add(out.get(k) or {}, v)
        return out

    total: dict[str, Any] = {}
    for u in got:
        total = add(total, u)
    return total
