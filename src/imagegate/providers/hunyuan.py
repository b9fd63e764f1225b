"""Tencent Hunyuan image generation over Tencent Cloud API 3.0 (TC3-HMAC-SHA256 signed).

``SubmitHunyuanImageJob`` / ``QueryHunyuanImageJob`` on ``hunyuan.tencentcloudapi.com``
(version 2023-09-01, region ap-guangzhou). HTTP is always 200: failures are
``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``. Accounts get one concurrent job by
default, so ``Num`` (1-4) is used instead of fanning out. Result URLs live one hour.
``Resolution`` is ``W:H``, one of the model's catalog ``sizes``; a reference image is
``ContentImage`` ``{ImageUrl}`` for a client URL, else ``{ImageBase64}``.

Panorama deployments (``options.panorama``) ask for a 2:1 ``Resolution`` and guarantee an
equirectangular 2:1 output by centre-cropping whatever comes back. This is the fallback for
``Hunyuan-3d-2.0``; the real panorama scene lives in MPS (see :mod:`imagegate.providers.tencent_mps`).

:func:`tc3_headers`, :func:`tc3_call` and :func:`tc_error` are shared by every Tencent Cloud API 3.0
adapter (same signing, same ``{"Response": {"Error": ...}}`` envelope, same common error codes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlparse

from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError
from imagegate.media import b64, codecs
from imagegate.providers.base import PollResult, Provider
from imagegate.providers.toolkit import CodeMap, image_work, json_body, pixel_size, prefixes, remote_url

VERSION = "2023-09-01"
CONTENT_TYPE = "application/json; charset=utf-8"

#: Tencent Cloud API 3.0 codes (common and product-specific), the same for every product
TC_CODES = CodeMap.of(
    "hunyuan",
    (
        prefixes(
            "AuthFailure",
            "UnauthorizedOperation",
            "FailedOperation.ServiceNotActivated",
            "FailedOperation.UserUnAuthError",
        ),
        ErrorCode.upstream_auth,
    ),
    (
        prefixes(
            "OperationDenied.ImageIllegalDetected",
            "OperationDenied.TextIllegalDetected",
            "FailedOperation.GenerateImageFailed",
        ),
        ErrorCode.content_policy_violation,
    ),
    (
        prefixes("RequestLimitExceeded", "LimitExceeded", "FailedOperation.EngineServerLimitExceeded"),
        ErrorCode.upstream_rate_limited,
    ),
    (
        prefixes(
            "ResourceInsufficient",
            "ResourceUnavailable",
            "FailedOperation.ResourcePackExhausted",
            "FailedOperation.FreeResourcePackExhausted",
            "FailedOperation.ServiceStop",
        ),
        ErrorCode.upstream_quota,
    ),
    (
        prefixes("InvalidParameter", "MissingParameter", "UnknownParameter", "InvalidAction"),
        ErrorCode.upstream_bad_request,
    ),
    (prefixes("FailedOperation.EngineRequestTimeout"), ErrorCode.upstream_timeout),
)


def tc_error(code: str, message: str, provider: str = "hunyuan") -> UpstreamError:
    """Map a Tencent Cloud error code onto our error classes (HTTP is 200 whatever happened)."""
    return CodeMap(provider, TC_CODES.rules).error(200, code, message)


def hunyuan_error(code: str, message: str) -> UpstreamError:
    return tc_error(code, message, "hunyuan")


def tc3_headers(
    *,
    secret_id: str,
    secret_key: str,
    host: str,
    service: str,
    action: str,
    region: str | None,
    payload: bytes,
    timestamp: int,
    version: str = VERSION,
) -> dict[str, str]:
    """Tencent Cloud API 3.0 signature v3 (TC3-HMAC-SHA256) over content-type, host and x-tc-action."""
    date = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    signed_headers = "content-type;host;x-tc-action"
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{CONTENT_TYPE}\nhost:{host}\nx-tc-action:{action.lower()}\n",
            signed_headers,
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    scope = f"{date}/{service}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"

    def _h(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    k = _h(_h(_h(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers = {
        "Authorization": f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}",
        "Content-Type": CONTENT_TYPE,
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Version": version,
    }
    if region:  # optional for some products (MPS)
        headers["X-TC-Region"] = region
    return headers


async def tc3_call(
    p: Provider, action: str, params: dict[str, Any], *, service: str, version: str, region: str | None
) -> dict[str, Any]:
    """POST one signed API 3.0 action to ``p.base_url``; the ``Response`` object, or an UpstreamError."""
    payload = json.dumps(params, separators=(",", ":"), ensure_ascii=False).encode()
    headers = tc3_headers(
        secret_id=p.credential("secret_id"),
        secret_key=p.credential("secret_key"),
        host=urlparse(p.base_url).netloc,
        service=service,
        action=action,
        region=region,
        payload=payload,
        timestamp=int(time.time()),
        version=version,
    )
    resp = await p.request("POST", p.base_url + "/", content=payload, headers=headers)
    body = json_body(resp).get("Response") or {}
    if resp.status_code != 200:
        raise UpstreamError(
            ErrorCode.upstream_unavailable if resp.status_code >= 500 else ErrorCode.upstream_error,
            f"{p.name}: HTTP {resp.status_code}",
            status=resp.status_code,
        )
    if err := body.get("Error"):
        raise tc_error(str(err.get("Code", "")), str(err.get("Message", "")), p.name)
    return dict(body)


def crop_2_1(data: bytes) -> bytes:
    """Centre-crop to exactly 2:1 (equirectangular); unchanged when it already is."""
    img = codecs.open_image(data)
    w, h = img.size
    if abs(w / h - 2.0) < 0.01:
        return data
    if w / h > 2.0:
        nw = 2 * h
        img = img.crop(((w - nw) // 2, 0, (w - nw) // 2 + nw, h))
    else:
        nh = w // 2
        img = img.crop((0, (h - nh) // 2, w, (h - nh) // 2 + nh))
    return codecs.encode(img, "png")


class HunyuanProvider(Provider):
    name = "hunyuan"
    kind = "poll"
    default_base_url = "https://hunyuan.tencentcloudapi.com"
    credential_names = ("secret_id", "secret_key")

    async def _call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        opts = self.deployment.options
        return await tc3_call(
            self,
            action,
            params,
            service=opts.get("service", "hunyuan"),
            version=VERSION,
            region=opts.get("tc_region", "ap-guangzhou"),
        )

    def _resolution(self, req: ImageRequest) -> str | None:
        """'W:H' of the model's sizes; a panorama deployment asks for its 2:1 ``panorama_resolution``."""
        opts = self.deployment.options
        if opts.get("panorama"):
            return str(opts.get("panorama_resolution", "1440:720"))
        dims = pixel_size(self.spec, req)
        return f"{dims[0]}:{dims[1]}" if dims else None

    async def submit(self, req: ImageRequest, reference: str | None = None) -> dict[str, Any]:
        opts = self.deployment.options
        params: dict[str, Any] = {
            "Prompt": req.prompt,
            "Num": req.n,
            "LogoAdd": 0,
            "Revise": 0 if req.seed is not None else int(opts.get("revise", 1)),
        }
        if req.negative_prompt:
            params["NegativePrompt"] = req.negative_prompt
        if (res := self._resolution(req)) is not None:
            params["Resolution"] = res
        if req.seed is not None:
            params["Seed"] = req.seed
        if req.style:
            params["Style"] = req.style
        if req.images:
            url = remote_url(req.images[0])
            params["ContentImage"] = {"ImageUrl": url} if url else {"ImageBase64": b64.encode(req.images[0].data)}
        body = await self._call("SubmitHunyuanImageJob", params)
        if not body.get("JobId"):
            raise UpstreamError(ErrorCode.upstream_error, "hunyuan: submit answer has no JobId")
        return {"job_id": body["JobId"]}

    async def poll(self, handle: dict[str, Any]) -> PollResult:
        body = await self._call("QueryHunyuanImageJob", {"JobId": handle["job_id"]})
        status = str(body.get("JobStatusCode", ""))
        if status == "1":
            return PollResult(done=False, progress=0)
        if status == "2":
            return PollResult(done=False, progress=50)
        if status == "4":
            raise hunyuan_error(
                str(body.get("JobErrorCode") or "FailedOperation"), str(body.get("JobErrorMsg") or "job failed")
            )
        if status != "5":
            return PollResult(done=False)
        urls = [u for u in body.get("ResultImage") or [] if u]
        if not urls:
            raise UpstreamError(ErrorCode.upstream_error, "hunyuan: job finished without images")
        revised = [p for p in body.get("RevisedPrompt") or [] if p]
        images = await self.download_all(
            [GeneratedImage(url=u, revised_prompt=revised[0] if revised else None) for u in urls]
        )
        if self.deployment.options.get("panorama"):
            for img in images:
                if img.data is not None:
                    img.data = await image_work(codecs.header_pixels(img.data), crop_2_1, img.data)
                    img.mime = "image/png" if img.data[:4] == b"\x89PNG" else img.mime
        return PollResult(done=True, progress=100, result=ProviderResult(images=images))
