"""Black Forest Labs FLUX API: submit ``POST /v1/{model}``, poll the returned ``polling_url``.

No ``n``: one task per image, all submitted together; the handle keeps each task's id and
``polling_url`` (which may name another ``*.bfl.ai`` host) so a restarted runner resumes.
``result.sample`` is a signed URL that lives about ten minutes, so a ready task's image is
downloaded at once and kept until every task is ready.

Per family: FLUX.2 and FLUX1.1 [pro] take ``width``/``height`` (the model's catalog ``size_rule``:
multiples of 16 up to 4 MP / multiples of 32 in 256-1440), Kontext and Ultra take ``aspect_ratio``
(about 1 MP, 4 MP for Ultra), Fill takes ``image`` + grayscale ``mask`` and no size (the output
keeps the input's). Reference images go as ``input_image``, ``input_image_2`` ... (a URL or raw
base64), as many as the model's ``max_images``.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx

from imagegate.catalog import Deployment
from imagegate.catalog.schema import ModelSpec
from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError
from imagegate.media import b64
from imagegate.providers.base import PollResult, Provider
from imagegate.providers.toolkit import (
    aspect_and_tier,
    edit_mask_png,
    http_error,
    image_ref,
    image_work,
    input_pixels,
    json_body,
    pixel_size,
    retry_after_of,
)

MODERATED = {"Request Moderated", "Content Moderated"}


def family(model: str) -> str:
    if model.startswith("flux-2"):
        return "flux-2"
    if "kontext" in model:
        return "kontext"
    if "fill" in model:
        return "fill"
    if "ultra" in model:
        return "ultra"
    return "pro"  # flux-pro-1.1, flux-pro, flux-dev: width/height


def error_from(resp: httpx.Response) -> UpstreamError:
    """BFL answers ``{"detail": "..."}`` or FastAPI's ``{"detail": [{loc, msg, type}]}``."""
    detail = json_body(resp).get("detail")
    param = None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        loc = [str(x) for x in detail[0].get("loc") or [] if x not in ("body", "query")]
        param = loc[-1] if loc else None
        message = "; ".join(str(d.get("msg")) for d in detail if isinstance(d, dict))
    else:
        message = str(detail or resp.text[:200] or f"HTTP {resp.status_code}")
    if resp.status_code in (401, 403):
        return UpstreamError(ErrorCode.upstream_auth, "bfl: API key rejected", status=resp.status_code)
    return http_error("bfl", resp.status_code, message, retry_after=retry_after_of(resp), param=param)


class BFLProvider(Provider):
    name = "bfl"
    kind = "poll"
    default_base_url = "https://api.bfl.ai"

    def __init__(self, deployment: Deployment, spec: ModelSpec, http: httpx.AsyncClient) -> None:
        super().__init__(deployment, spec, http)
        self._got: dict[str, GeneratedImage] = {}  # task id -> downloaded image (samples expire)

    def headers(self) -> dict[str, str]:
        return {"x-key": self.credential("api_key"), "accept": "application/json"}

    # -- request body ------------------------------------------------------------------------
    def body(self, req: ImageRequest, index: int) -> dict[str, Any]:
        fam = family(self.deployment.model)
        b: dict[str, Any] = {"prompt": req.prompt, "output_format": "jpeg" if req.output_format == "jpeg" else "png"}
        if req.seed is not None:
            b["seed"] = req.seed + index
        if fam == "fill":
            if req.images:
                image = req.images[0]
                b["image"] = b64.encode(image.data)
                if req.mask is not None:
                    b["mask"] = b64.encode(edit_mask_png(req.mask, (image.width, image.height)))
        elif fam in ("kontext", "ultra"):
            ratio, _ = aspect_and_tier(self.spec, req)
            if ratio is not None:
                b["aspect_ratio"] = ratio
            if fam == "ultra" and req.images:
                b["image_prompt"] = image_ref(req.images[0], "base64")
        elif (dims := pixel_size(self.spec, req, "down")) is not None:
            b["width"], b["height"] = dims
        if fam in ("flux-2", "kontext"):
            for i, img in enumerate(req.images[: max(1, self.spec.max_images)]):
                b["input_image" if i == 0 else f"input_image_{i + 1}"] = image_ref(img, "base64")
        b.update(self.deployment.options.get("extra_body") or {})
        return b

    # -- submit / poll -----------------------------------------------------------------------
    async def submit(self, req: ImageRequest, reference: str | None = None) -> dict[str, Any]:
        bodies = await image_work(input_pixels(req), lambda: [self.body(req, i) for i in range(req.n)])
        url = f"{self.base_url}/v1/{self.deployment.model}"
        results = await asyncio.gather(
            *(self.request("POST", url, headers=self.headers(), json=b) for b in bodies), return_exceptions=True
        )
        tasks, failure = [], None
        for r in results:
            if isinstance(r, BaseException):
                failure = failure or r
            elif r.status_code != 200:
                failure = failure or error_from(r)
            else:
                j = json_body(r)
                tasks.append(
                    {
                        "id": j["id"],
                        "polling_url": j.get("polling_url") or f"{self.base_url}/v1/get_result?id={j['id']}",
                        "status": "Pending",
                        "cost": j.get("cost"),
                    }
                )
        if failure is not None:
            # Tasks already accepted will still run (and bill); there is no cancel to call.
            raise failure
        return {"tasks": tasks, "format": bodies[0]["output_format"]}

    def _check_host(self, url: str) -> None:
        """Send the key only to BFL: a polling URL on any other host is refused."""
        host = urlsplit(url).hostname or ""
        own = urlsplit(self.base_url).hostname or ""
        if not (host == own or host == "bfl.ai" or host.endswith(".bfl.ai") or host.endswith(".bfl.ml")):
            raise UpstreamError(ErrorCode.upstream_error, f"bfl: refusing to poll unexpected host {host!r}")

    async def _poll_task(self, task: dict[str, Any]) -> dict[str, Any]:
        self._check_host(task["polling_url"])
        resp = await self.request("GET", task["polling_url"], headers=self.headers())
        if resp.status_code != 200:
            raise error_from(resp)
        j = json_body(resp)
        status = j.get("status")
        if status == "Ready":
            sample = (j.get("result") or {}).get("sample")
            if not sample:
                raise UpstreamError(ErrorCode.upstream_error, "bfl: ready without a sample")
            self._got[task["id"]] = await self.download(sample)
        elif status in MODERATED:
            raise UpstreamError(ErrorCode.content_policy_violation, f"bfl: {status}", status=200)
        elif status in ("Error", "Failed"):
            raise UpstreamError(ErrorCode.upstream_error, f"bfl: task failed ({j.get('details') or status})")
        elif status == "Task not found":
            raise UpstreamError(ErrorCode.upstream_error, "bfl: task not found (expired or unknown id)")
        return {
            **task,
            "status": status if status in ("Ready", "Pending") else "Pending",
            "progress": j.get("progress"),
        }

    async def poll(self, handle: dict[str, Any]) -> PollResult:
        tasks = handle["tasks"]
        waiting = [t for t in tasks if t["id"] not in self._got]
        updated = {t["id"]: t for t in await asyncio.gather(*(self._poll_task(t) for t in waiting))}
        tasks = [updated.get(t["id"], {**t, "status": "Ready"}) for t in tasks]
        new_handle = {**handle, "tasks": tasks}
        if all(t["id"] in self._got for t in tasks):
            images = [self._got.pop(t["id"]) for t in tasks]
            for img in images:
                img.mime = img.mime or f"image/{handle.get('format', 'png')}"
            cost = [t.get("cost") for t in tasks if t.get("cost") is not None]
            usage = {"cost": sum(cost)} if cost else None
            return PollResult(
                done=True, result=ProviderResult(images=images, usage=usage), progress=100, handle=new_handle
            )
        progress = [
            100
            if t["id"] in self._got
            else float(t.get("progress") or 0) * (100 if float(t.get("progress") or 0) <= 1 else 1)
            for t in tasks
        ]
        return PollResult(done=False, progress=int(sum(progress) / len(progress)), handle=new_handle)
