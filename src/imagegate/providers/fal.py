"""fal.ai through its queue API: submit, poll status, fetch the result, cancel.

Wire format (docs.fal.ai, Model APIs > Queue): ``POST https://queue.fal.run/{model_id}`` with
``Authorization: Key <FAL_KEY>`` answers ``{request_id, status_url, response_url, cancel_url}``.
Status, result and cancel URLs name only ``{owner}/{alias}`` (the subpath is dropped), so we keep
the URLs fal returns and only build them ourselves when a submit answer lacks them.

FLUX endpoints take ``image_size`` as ``{width, height}`` (the size validation accepted against the
model's ``size_rule``) or, with ``options.image_size: preset``, one of fal's named presets (the
nearest; the only snapping here). Input images and masks are URLs or ``data:`` URIs.
"""

from __future__ import annotations

from typing import Any

import httpx

from imagegate.catalog import sizing
from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError
from imagegate.providers.base import PollResult, Provider
from imagegate.providers.toolkit import http_error, image_ref, json_body, pixel_size, retry_after_of

#: fal's named sizes for FLUX endpoints (image_size presets)
PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}


def _app_path(model_id: str) -> str:
    """'fal-ai/flux/dev' -> 'fal-ai/flux': queue status/result/cancel URLs drop the subpath."""
    return "/".join(model_id.split("/")[:2])


def fal_error(resp: httpx.Response) -> UpstreamError:
    """Map fal's ``{"detail": str | [{loc, msg, type}]}`` envelope onto our error classes."""
    status = resp.status_code
    body = json_body(resp)
    detail = body.get("detail") if body else resp.text[:200] or None
    moderated, param, message = False, None, f"HTTP {status}"
    if isinstance(detail, str):
        message = detail
    elif isinstance(detail, list) and detail:
        first = detail[0] if isinstance(detail[0], dict) else {}
        message = str(first.get("msg") or message)
        moderated = any(isinstance(d, dict) and d.get("type") == "content_policy_violation" for d in detail)
        loc = [str(x) for x in first.get("loc") or [] if x != "body"]
        param = loc[0] if loc else None
    return http_error("fal", status, message, retry_after=retry_after_of(resp), moderated=moderated, param=param)


class FalProvider(Provider):
    name = "fal"
    kind = "poll"
    default_base_url = "https://queue.fal.run"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.credential()}", "Content-Type": "application/json"}

    def _image_size(self, req: ImageRequest) -> str | dict[str, int] | None:
        dims = pixel_size(self.spec, req)
        if dims is None:
            return None
        if self.deployment.options.get("image_size") == "preset":
            choices = {f"{w}x{h}": k for k, (w, h) in PRESETS.items()}
            return choices[sizing.nearest_size(*dims, list(choices))]
        return {"width": dims[0], "height": dims[1]}

    def _body(self, req: ImageRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": req.prompt,
            "num_images": req.n,
            "output_format": "png" if req.output_format == "png" else "jpeg",
        }
        if (size := self._image_size(req)) is not None:
            body["image_size"] = size
        if req.seed is not None:
            body["seed"] = req.seed
        if req.negative_prompt and self.deployment.options.get("negative_prompt"):
            body["negative_prompt"] = req.negative_prompt
        if req.images:
            field = str(self.deployment.options.get("image_field", "image_url"))
            uris = [image_ref(i) for i in req.images]
            body[field] = uris if field.endswith("s") else uris[0]
        if req.mask is not None:
            body[str(self.deployment.options.get("mask_field", "mask_url"))] = image_ref(req.mask)
        body.update(self.deployment.options.get("extra_input", {}))
        return body

    async def submit(self, req: ImageRequest, reference: str | None = None) -> dict[str, Any]:
        model = self.deployment.model
        resp = await self.request("POST", f"{self.base_url}/{model}", json=self._body(req), headers=self._headers())
        body = json_body(resp)
        if resp.status_code not in (200, 201, 202):
            raise fal_error(resp)
        rid = body.get("request_id")
        if not rid:
            raise UpstreamError(ErrorCode.upstream_error, "fal: submit answer has no request_id")
        base = f"{self.base_url}/{_app_path(model)}/requests/{rid}"
        return {
            "request_id": rid,
            "status_url": body.get("status_url") or f"{base}/status",
            "response_url": body.get("response_url") or base,
            "cancel_url": body.get("cancel_url") or f"{base}/cancel",
        }

    async def poll(self, handle: dict[str, Any]) -> PollResult:
        resp = await self.request("GET", handle["status_url"], headers=self._headers())
        body = json_body(resp)
        if resp.status_code not in (200, 202):
            raise fal_error(resp)
        status = body.get("status")
        if status == "IN_QUEUE":
            return PollResult(done=False, progress=0)
        if status == "IN_PROGRESS":
            return PollResult(done=False)
        if status != "COMPLETED":
            return PollResult(done=False)  # unknown states are not terminal
        if body.get("error"):
            raise UpstreamError(ErrorCode.upstream_error, f"fal: {body.get('error')}")
        return PollResult(done=True, progress=100, result=await self._result(handle))

    async def _result(self, handle: dict[str, Any]) -> ProviderResult:
        resp = await self.request("GET", handle["response_url"], headers=self._headers())
        body = json_body(resp)
        if resp.status_code != 200:
            raise fal_error(resp)
        images = body.get("images") or ([body["image"]] if isinstance(body.get("image"), dict) else [])
        flags = body.get("has_nsfw_concepts") or []
        kept = [img for i, img in enumerate(images) if not (i < len(flags) and flags[i])]
        if images and not kept:
            raise UpstreamError(
                ErrorCode.content_policy_violation, "fal: every image was flagged by the safety checker"
            )
        if not kept:
            raise UpstreamError(ErrorCode.upstream_error, "fal: result has no images")
        got = await self.download_all([GeneratedImage(url=img["url"], mime=img.get("content_type")) for img in kept])
        return ProviderResult(images=got, usage={"seed": body.get("seed"), "images": len(got)})

    async def cancel(self, handle: dict[str, Any]) -> None:
        resp = await self.request("PUT", handle["cancel_url"], headers=self._headers())
        if resp.status_code in (200, 202, 400, 404):  # 400 ALREADY_COMPLETED, 404 NOT_FOUND: nothing to stop
            return
        raise fal_error(resp)
