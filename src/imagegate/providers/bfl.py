"""Black Forest Labs FLUX API: submit ``POST /v1/{model}``, poll the returned ``polling_url``.

No ``n``: one task per image, all submitted together; the handle keeps each task's id and
``polling_url`` (which may name another ``*.bfl.ai`` host) so a restarted runner resumes.
``result.sample`` is a signed URL that lives about ten minutes, so a ready task's image is
downloaded at once and kept until every task is ready.

Per family: FLUX.2 and FLUX1.1 [pro] take ``width``/``height`` (multiples of 16 / 32),
Kontext and Ultra take ``aspect_ratio``, Fill takes ``image`` + grayscale ``mask``.
"""

from __future__ import annotations

import asyncio
import base64
import math
from typing import Any
from urllib.parse import urlsplit

import httpx

from imagegate.domain import ErrorCode, GeneratedImage, ImageInput, ImageRequest, ProviderResult, UpstreamError
from imagegate.media import codecs
from imagegate.catalog import sizing
from imagegate.providers.base import PollResult, Provider, http_error, register

RATIOS = ["21:9", "16:9", "3:2", "4:3", "1:1", "3:4", "2:3", "9:16", "9:21"]
MODERATED = {"Request Moderated", "Content Moderated"}
#: input_image, input_image_2 ... per family
MAX_INPUTS = {"flux-2": 8, "kontext": 4}


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


def fit(w: int, h: int, multiple: int, lo: int, hi: int, max_pixels: int) -> tuple[int, int]:
    """Scale (w, h) into [lo, hi] per side and under max_pixels, then floor to the multiple."""
    scale = min(1.0, hi / max(w, h), math.sqrt(max_pixels / (w * h)))
    scale = max(scale, lo / min(w, h)) if min(w, h) * scale < lo else scale
    top = hi // multiple * multiple

    def snap(x: float) -> int:
        return min(top, max(lo, int(x) // multiple * multiple))

    return snap(w * scale), snap(h * scale)


def error_from(resp: httpx.Response) -> UpstreamError:
    """BFL answers ``{"detail": "..."}`` or FastAPI's ``{"detail": [{loc, msg, type}]}``."""
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    param = None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        loc = [str(x) for x in detail[0].get("loc") or [] if x not in ("body", "query")]
        param = loc[-1] if loc else None
        message = "; ".join(str(d.get("msg")) for d in detail if isinstance(d, dict))
    else:
        message = str(detail or resp.text[:200] or f"HTTP {resp.status_code}")
    if resp.status_code in (401, 403):
        return UpstreamError(ErrorCode.upstream_auth, "bfl: API key rejected", status=resp.status_code)
    return http_error("bfl", resp.status_code, message, retry_after=resp.headers.get("retry-after"), param=param)


@register
class BFLProvider(Provider):
    name = "bfl"
    kind = "poll"
    default_base_url = "https://api.bfl.ai"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._got: dict[str, GeneratedImage] = {}  # task id -> downloaded image (samples expire)

    def headers(self) -> dict[str, str]:
        return {"x-key": self.credential("api_key"), "accept": "application/json"}

    # -- request body ------------------------------------------------------------------------
    @staticmethod
    def image_value(img: ImageInput) -> str:
        return img.url or base64.b64encode(img.data).decode()

    def dims(self, req: ImageRequest) -> tuple[int, int] | None:
        if req.width and req.height:
            return req.width, req.height
        if req.resolution or req.aspect_ratio:
            ratio = sizing.parse_ratio(req.aspect_ratio or "1:1") or 1.0
            return sizing.tier_dims(sizing.normalize_tier(req.resolution or "1K") or "1K", ratio)
        return None

    def body(self, req: ImageRequest, index: int) -> dict[str, Any]:
        fam = family(self.deployment.model)
        b: dict[str, Any] = {"prompt": req.prompt,
                             "output_format": "jpeg" if req.output_format == "jpeg" else "png"}
        if req.seed is not None:
            b["seed"] = req.seed + index
        dims = self.dims(req)
        if fam == "fill":
            if req.images:
                image = req.images[0]
                b["image"] = base64.b64encode(image.data).decode()
                if req.mask is not None:
                    area = codecs.edit_area(req.mask.data, (image.width, image.height))
                    b["mask"] = base64.b64encode(codecs.encode(area, "png")).decode()
        elif fam in ("kontext", "ultra"):
            if req.aspect_ratio or dims:
                r = sizing.parse_ratio(req.aspect_ratio) if req.aspect_ratio else None
                w, h = (int(r * 1000), 1000) if r else dims  # type: ignore[misc]
                b["aspect_ratio"] = sizing.nearest_ratio(w, h, RATIOS)
            if fam == "ultra" and req.images:
                b["image_prompt"] = self.image_value(req.images[0])
        elif dims:
            w, h = dims
            b["width"], b["height"] = (fit(w, h, 16, 64, 4096, 4_000_000) if fam == "flux-2"
                                       else fit(w, h, 32, 256, 1440, 1440 * 1440))
        if fam in ("flux-2", "kontext"):
            for i, img in enumerate(req.images[:MAX_INPUTS[fam]]):
                b["input_image" if i == 0 else f"input_image_{i + 1}"] = self.image_value(img)
        b.update(self.deployment.options.get("extra_body") or {})
        return b

    # -- submit / poll -----------------------------------------------------------------------
    async def submit(self, req: ImageRequest) -> dict[str, Any]:
        bodies = await asyncio.to_thread(lambda: [self.body(req, i) for i in range(req.n)])
        url = f"{self.base_url}/v1/{self.deployment.model}"
        results = await asyncio.gather(*(self.request("POST", url, headers=self.headers(), json=b) for b in bodies),
                                       return_exceptions=True)
        tasks, failure = [], None
        for r in results:
            if isinstance(r, BaseException):
                failure = failure or r
            elif r.status_code != 200:
                failure = failure or error_from(r)
            else:
                j = r.json()
                tasks.append({"id": j["id"], "polling_url": j.get("polling_url")
                              or f"{self.base_url}/v1/get_result?id={j['id']}", "status": "Pending",
                              "cost": j.get("cost")})
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
        j = resp.json()
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
        return {**task, "status": status if status in ("Ready", "Pending") else "Pending",
                "progress": j.get("progress")}

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
            return PollResult(done=True, result=ProviderResult(images=images, usage=usage), progress=100,
                              handle=new_handle)
        progress = [100 if t["id"] in self._got else float(t.get("progress") or 0) * (
            100 if float(t.get("progress") or 0) <= 1 else 1) for t in tasks]
        return PollResult(done=False, progress=int(sum(progress) / len(progress)), handle=new_handle)
