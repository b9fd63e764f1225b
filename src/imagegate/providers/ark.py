"""ByteDance Seedream through Volcengine Ark / BytePlus ModelArk (``/api/v3/images/generations``).

One synchronous call. Seedream has no ``n``: several images come from *sequential* generation
(``sequential_image_generation=auto`` + ``max_images``), where inputs plus outputs total <= 15 and
the model may return fewer than asked. Items in ``data[]`` can fail one by one; we keep the good
ones and fail only when none came back. Result URLs are signed TOS links that live 24 h.

``size`` is ``WxH``: the size validation accepted against the model's catalog ``size_rule``, whose
pixel floor is the model's (Seedream 4.5 refuses anything under 2560x1440). Reference images are
URLs or ``data:`` URIs.
"""

from __future__ import annotations

from typing import Any

from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError, token_usage
from imagegate.media import b64
from imagegate.providers.base import Provider
from imagegate.providers.toolkit import CodeMap, exactly, image_ref, json_body, pixel_size, prefixes, retry_after_of

MAX_TOTAL = 15  # reference images + generated images per request

CODES = CodeMap.of(
    "ark",
    (r".*SensitiveContentDetected", ErrorCode.content_policy_violation),  # Input/Output Text/Image ...
    (prefixes("AuthenticationError", "AccessDenied"), ErrorCode.upstream_auth),
    (prefixes("AccountOverdue", "QuotaExceeded"), ErrorCode.upstream_quota),
    (prefixes("RateLimitExceeded"), ErrorCode.upstream_rate_limited),
    (exactly("ServerOverloaded"), ErrorCode.upstream_unavailable),
    (
        prefixes("InvalidParameter", "MissingParameter", "InvalidEndpoint", "ModelNotOpen"),
        ErrorCode.upstream_bad_request,
    ),
    (exactly("InternalServiceError"), ErrorCode.upstream_error),
)


def ark_error(status: int, body: dict[str, Any], retry_after: float | None = None) -> UpstreamError:
    """Map ``{"error": {code, message, param}}``."""
    err = body.get("error")
    err = err if isinstance(err, dict) else {}
    param = str(err["param"]) if err.get("param") else None
    return CODES.error(
        status,
        err.get("code") or None,
        str(err.get("message") or f"HTTP {status}"),
        retry_after=retry_after,
        param=param,
    )


def ark_tokens(usage: dict[str, Any]) -> dict[str, Any] | None:
    """Ark's ``usage`` (``output_tokens``, ``total_tokens``) as OpenAI's; what is not output was input."""
    out, total = usage.get("output_tokens"), usage.get("total_tokens")
    if not isinstance(out, int) or not isinstance(total, int):
        return None
    return token_usage(max(0, total - out), out, total_tokens=total)


class ArkProvider(Provider):
    name = "ark"
    kind = "sync"
    default_base_url = "https://ark.cn-beijing.volces.com"

    # -- parameter map -------------------------------------------------------------------
    def _size(self, req: ImageRequest) -> str | None:
        """'WxH' inside the model's rule; None leaves the model's default (2048x2048)."""
        dims = pixel_size(self.spec, req)
        return f"{dims[0]}x{dims[1]}" if dims else None

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
            refs = [image_ref(i) for i in req.images]
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
        resp = await self.request(
            "POST", f"{self.base_url}/api/v3/images/generations", json=self._body(req), headers=headers
        )
        body = json_body(resp)
        if resp.status_code != 200:
            raise ark_error(resp.status_code, body, retry_after_of(resp))
        items = body.get("data") or []
        good, failed = [], []
        for item in items:
            if item.get("b64_json"):
                good.append(GeneratedImage(data=b64.decode(item["b64_json"]), mime="image/jpeg"))
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
        return ProviderResult(images=images, usage=usage, tokens=ark_tokens(usage))
