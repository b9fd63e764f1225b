"""ByteDance Seedream through Volcengine Ark / BytePlus ModelArk (``/api/v3/images/generations``).

One synchronous call. Seedream has no ``n``: several images come from *sequential* generation
(``sequential_image_generation=auto`` + ``max_images``), where inputs plus outputs total <= 15 and
the model may return fewer than asked. Items in ``data[]`` can fail one by one; we keep the good
ones and fail only when none came back. Result URLs are signed TOS links that live 24 h.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError
from imagegate.catalog import sizing
from imagegate.providers.base import Provider, http_error, register

MAX_TOTAL = 15  # reference images + generated images per request

_MODERATION = ("InputTextSensitiveContentDetected", "InputImageSensitiveContentDetected",
               "OutputImageSensitiveContentDetected", "OutputTextSensitiveContentDetected")


def ark_error(status: int, body: Any, retry_after: str | None = None) -> UpstreamError:
    err = (body or {}).get("error") if isinstance(body, dict) else None
    err = err if isinstance(err, dict) else {}
    code, message = str(err.get("code") or ""), str(err.get("message") or f"HTTP {status}")
    text = f"{code}: {message}" if code else message
    mapped = _code_map(code)
    if mapped is None:
        return http_error("ark", status, text, retry_after=retry_after, param=err.get("param") or None)
    return UpstreamError(mapped, f"ark: {text}", status=status, param=err.get("param") or None,
                         retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None)


def _code_map(code: str) -> ErrorCode | None:
    if code in _MODERATION or code.endswith("SensitiveContentDetected"):
        return ErrorCode.content_policy_violation
    if code in ("AuthenticationError", "AccessDenied") or code.startswith("AuthenticationError"):
        return ErrorCode.upstream_auth
    if code in ("AccountOverdueError", "QuotaExceeded") or code.startswith("AccountOverdue"):
        return ErrorCode.upstream_quota
    if code.startswith("RateLimitExceeded") or code == "ServerOverloaded":
        return ErrorCode.upstream_rate_limited if code != "ServerOverloaded" else ErrorCode.upstream_unavailable
    if code.startswith(("InvalidParameter", "MissingParameter", "InvalidEndpoint", "ModelNotOpen")):
        return ErrorCode.upstream_bad_request
    if code == "InternalServiceError":
        return ErrorCode.upstream_error
    return None


def _fit(w: float, h: float, lo: int, hi: int) -> tuple[int, int]:
    """Scale w x h into [lo, hi] pixels, keeping the shape; sides stay multiples of 16."""
    px = w * h
    if lo <= px <= hi:
        return int(round(w / 16) * 16), int(round(h / 16) * 16)
    f = math.sqrt((lo if px < lo else hi) / px)
    snap = math.ceil if px < lo else math.floor
    return int(snap(w * f / 16) * 16), int(snap(h * f / 16) * 16)


@register
class ArkProvider(Provider):
    name = "ark"
    kind = "sync"
    default_base_url = "https://ark.cn-beijing.volces.com"

    # -- parameter map -------------------------------------------------------------------
    def _size(self, req: ImageRequest) -> str | None:
        """'2K'/'4K' or 'WxH' inside the model's pixel budget (Seedream 4.5 starts at ~3.7 MP)."""
        opts = self.deployment.options
        tiers = [t.upper() for t in opts.get("tiers", ["1K", "2K", "4K"])]
        lo, hi = int(opts.get("min_pixels", 1280 * 720)), int(opts.get("max_pixels", 4096 * 4096))
        if req.width and req.height:
            w, h = req.width, req.height
        elif req.aspect_ratio and (ratio := sizing.parse_ratio(req.aspect_ratio)):
            tier = sizing.normalize_tier(req.resolution or "") or ("2K" if "2K" in tiers else tiers[0])
            w, h = sizing.tier_dims(tier, ratio)
        elif req.resolution and (tier := sizing.normalize_tier(req.resolution)):
            side = sizing.TIER_LONG_SIDE[tier]
            return tier if tier in tiers else sizing.nearest_tier(side, side, tiers)
        else:
            return None  # the model's default (2048x2048)
        return "{}x{}".format(*_fit(w, h, lo, hi))

    def _body(self, req: ImageRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.deployment.model,
            "prompt": req.prompt,
            "response_format": self.deployment.options.get("response_format", "url"),
            "watermark": bool(self.deployment.options.get("watermark", False)),
        }
        if (size := self._size(req)) is not None:
            body["size"] = size
        if req.images:
            refs = [i.url or f"data:{i.mime};base64,{base64.b64encode(i.data).decode()}" for i in req.images]
            body["image"] = refs[0] if len(refs) == 1 else refs
        n = max(1, min(req.n, MAX_TOTAL - len(req.images)))
        if n > 1:
            body["sequential_image_generation"] = "auto"
            body["sequential_image_generation_options"] = {"max_images": n}
            body["prompt"] = f"{req.prompt}\nGenerate a set of {n} images."
        else:
            body["sequential_image_generation"] = "disabled"
        if req.seed is not None and self.deployment.options.get("seed", False):
            body["seed"] = req.seed
        return body

    # -- call + response transform -------------------------------------------------------
    async def generate(self, req: ImageRequest) -> ProviderResult:
        headers = {"Authorization": f"Bearer {self.credential()}", "Content-Type": "application/json"}
        resp = await self.request("POST", f"{self.base_url}/api/v3/images/generations",
                                  json=self._body(req), headers=headers)
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code != 200:
            raise ark_error(resp.status_code, body, resp.headers.get("retry-after"))
        items = body.get("data") or []
        good, failed = [], []
        for item in items:
            if item.get("b64_json"):
                good.append(GeneratedImage(data=base64.b64decode(item["b64_json"]), mime="image/jpeg"))
            elif item.get("url"):
                good.append(GeneratedImage(url=item["url"]))
            elif item.get("error"):
                failed.append(item["error"])
        if not good:
            if failed:
                raise ark_error(400, {"error": failed[0]})
            raise UpstreamError(ErrorCode.upstream_error, "ark: response has no images")
        images = await self.download_all(good)
        usage = dict(body.get("usage") or {})
        usage["failed_images"] = len(failed)
        return ProviderResult(images=images, usage=usage)
