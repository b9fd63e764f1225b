"""Kling (Kuaishou) image generation: JWT-signed async tasks.

Auth is a short-lived HS256 JWT (``iss`` = access key, ``exp`` = now + 30 min, ``nbf`` = now - 5 s)
signed with the secret key. Two task families share one envelope
``{code, message, request_id, data: {task_id, task_status, task_status_msg, task_result}}``:
``/v1/images/generations`` (kling-v1 ... v2-1: one ``image``, raw base64 without a ``data:``
prefix, or URL) and ``/v1/images/omni-image`` (kling-image-o1, kling-v3-omni: ``image_list``,
1k/2k/4k). ``n`` is 1-9 per task; statuses are submitted / processing / succeed / failed.
"""

from __future__ import annotations

import base64
import time
import warnings
from typing import Any

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from imagegate.domain import ErrorCode, GeneratedImage, ImageInput, ImageRequest, ProviderResult, UpstreamError
from imagegate.catalog import sizing
from imagegate.providers.base import PollResult, Provider, http_error, register

RATIOS = ["16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9"]
MAX_N = 9

# Kling's business codes -> our error classes (HTTP status is refined by these)
CODE_MAP: dict[range, ErrorCode] = {
    range(1000, 1005): ErrorCode.upstream_auth,  # auth failed / empty / invalid / not yet valid / expired
    range(1100, 1101): ErrorCode.upstream_auth,  # account exception
    range(1101, 1103): ErrorCode.upstream_quota,  # arrears / resource pack exhausted
    range(1103, 1104): ErrorCode.upstream_auth,  # no permission for the resource
    range(1200, 1204): ErrorCode.upstream_bad_request,
    range(1300, 1302): ErrorCode.content_policy_violation,
    range(1302, 1304): ErrorCode.upstream_rate_limited,  # rate / concurrency over limit
    range(1304, 1305): ErrorCode.upstream_auth,  # IP allow-list
    range(5000, 5001): ErrorCode.upstream_error,
    range(5001, 5002): ErrorCode.upstream_unavailable,
    range(5002, 5003): ErrorCode.upstream_timeout,
}


def kling_error(status: int, body: dict[str, Any], retry_after: str | None = None) -> UpstreamError:
    code = body.get("code")
    message = f"{code}: {body.get('message') or ''}" if code is not None else f"HTTP {status}"
    if isinstance(code, int):
        for span, mapped in CODE_MAP.items():
            if code in span:
                ra = float(retry_after) if retry_after and retry_after.isdigit() else None
                return UpstreamError(mapped, f"kling: {message}", status=status, retry_after=ra)
    return http_error("kling", status, message, retry_after=retry_after)


def _image_ref(img: ImageInput) -> str:
    """Kling takes a URL or raw base64 (no ``data:`` prefix)."""
    return img.url or base64.b64encode(img.data).decode()


@register
class KlingProvider(Provider):
    name = "kling"
    kind = "poll"
    default_base_url = "https://api-singapore.klingai.com"
    credential_names = ("access_key", "secret_key")

    def _token(self) -> str:
        now = int(time.time())
        payload = {"iss": self.credential("access_key"), "exp": now + 1800, "nbf": now - 5}
        with warnings.catch_warnings():  # the key length is Kling's choice, not ours
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            return jwt.encode(payload, self.credential("secret_key"), algorithm="HS256", headers={"typ": "JWT"})

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}", "Content-Type": "application/json"}

    @property
    def _omni(self) -> bool:
        return self.deployment.options.get("endpoint") == "omni-image" or "omni" in self.deployment.model \
            or self.deployment.model.startswith("kling-image-o")

    @property
    def _path(self) -> str:
        return "/v1/images/omni-image" if self._omni else "/v1/images/generations"

    # -- parameter map -------------------------------------------------------------------
    def _aspect(self, req: ImageRequest) -> str | None:
        ratios = self.deployment.options.get("aspect_ratios", RATIOS)
        if req.width and req.height:
            return sizing.nearest_ratio(req.width, req.height, ratios)
        if req.aspect_ratio and (r := sizing.parse_ratio(req.aspect_ratio)):
            return sizing.nearest_ratio(int(r * 1000), 1000, ratios)
        return None

    def _resolution(self, req: ImageRequest) -> str | None:
        tiers = [t.upper() for t in self.deployment.options.get("resolutions", ["1K", "2K", "4K"] if self._omni
                                                                 else ["1K", "2K"])]
        if req.resolution and (t := sizing.normalize_tier(req.resolution)):
            side = sizing.TIER_LONG_SIDE[t]
        elif req.width and req.height:
            side = max(req.width, req.height)
        else:
            return None
        return sizing.nearest_tier(side, side, tiers).lower()

    def _body(self, req: ImageRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model_name": self.deployment.model, "prompt": req.prompt,
                                "n": max(1, min(req.n, MAX_N))}
        if (ratio := self._aspect(req)) is not None:
            body["aspect_ratio"] = ratio
        if (res := self._resolution(req)) is not None:
            body["resolution"] = res
        if self._omni:
            if req.images:
                body["image_list"] = [{"image": _image_ref(i)} for i in req.images]
            if req.negative_prompt:
                body["negative_prompt"] = req.negative_prompt
        else:
            if req.images:
                body["image"] = _image_ref(req.images[0])
            elif req.negative_prompt:  # Kling ignores negative_prompt with an image reference
                body["negative_prompt"] = req.negative_prompt
        return body

    # -- submit / poll -------------------------------------------------------------------
    async def _call(self, method: str, url: str, **kw: Any) -> dict[str, Any]:
        resp = await self.request(method, url, headers=self._headers(), **kw)
        try:
            body = resp.json()
        except ValueError:
            body = {"message": resp.text[:200]}
        if resp.status_code != 200 or body.get("code") not in (0, None):
            raise kling_error(resp.status_code, body, resp.headers.get("retry-after"))
        return body.get("data") or {}

    async def submit(self, req: ImageRequest) -> dict[str, Any]:
        data = await self._call("POST", f"{self.base_url}{self._path}", json=self._body(req))
        if not data.get("task_id"):
            raise UpstreamError(ErrorCode.upstream_error, "kling: submit answer has no task_id")
        return {"task_id": data["task_id"], "path": self._path}

    async def poll(self, handle: dict[str, Any]) -> PollResult:
        data = await self._call("GET", f"{self.base_url}{handle.get('path', self._path)}/{handle['task_id']}")
        status = data.get("task_status")
        if status == "submitted":
            return PollResult(done=False, progress=0, queue_position=0)
        if status == "processing":
            return PollResult(done=False, progress=50)
        if status == "failed":
            msg = str(data.get("task_status_msg") or "task failed")
            moderated = any(w in msg.lower() for w in ("risk", "sensitive", "policy", "inappropriate", "violat"))
            code = ErrorCode.content_policy_violation if moderated else ErrorCode.upstream_error
            raise UpstreamError(code, f"kling: {msg}")
        if status != "succeed":
            return PollResult(done=False)
        images = sorted((data.get("task_result") or {}).get("images") or [], key=lambda i: i.get("index", 0))
        if not images:
            raise UpstreamError(ErrorCode.upstream_error, "kling: task succeeded without images")
        got = await self.download_all([GeneratedImage(url=i["url"]) for i in images])
        return PollResult(done=True, progress=100, result=ProviderResult(
            images=got, usage={"final_unit_deduction": data.get("final_unit_deduction")}))
