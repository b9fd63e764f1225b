"""Tencent Cloud MPS (Media Processing Service) AIGC images: the Hunyuan World 360° panorama.

Tencent serves its "world model" panorama through MPS, not through the Hunyuan image API:
``CreateAigcImageTask`` with ``ModelName: "Hunyuan"`` and ``SceneType: "3d_panorama"`` (a scene only
Hunyuan supports), then ``DescribeAigcImageTask`` with the returned ``TaskId`` until ``Status`` is
DONE (``ImageUrls``, kept 12 h) or FAIL (``Message``). Host ``mps.tencentcloudapi.com``, API 3.0
version 2019-06-12, TC3-HMAC-SHA256 signed for service ``mps``; the region header is optional.

The panorama takes a prompt *or* a reference image, never both, and the reference must be a public
URL (``ImageInfos[].ImageUrl``: no base64), so this adapter is text-only. There is no seed field.
The output is guaranteed 2:1 (equirectangular): centre-cropped if the upstream ever returns
another ratio, then scaled to the requested size when one was asked for.
"""

from __future__ import annotations

import json
from typing import Any

from PIL import Image

from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError
from imagegate.media import codecs
from imagegate.providers.base import PollResult, Provider
from imagegate.providers.hunyuan import crop_2_1, tc3_call, tc_error
from imagegate.providers.toolkit import image_work

VERSION = "2019-06-12"
SERVICE = "mps"


def _equirect(data: bytes, size: tuple[int, int] | None) -> bytes:
    """Exactly 2:1, at ``size`` when given (a 2:1 image scales without breaking the projection)."""
    data = crop_2_1(data)
    if size is None or codecs.size_of(data) == size:
        return data
    img = codecs.open_image(data).resize(size, Image.Resampling.LANCZOS)
    return codecs.encode(img, "png")


class TencentMpsProvider(Provider):
    name = "tencent_mps"
    kind = "poll"
    default_base_url = "https://mps.tencentcloudapi.com"
    credential_names = ("secret_id", "secret_key")

    async def _call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        return await tc3_call(
            self, action, params, service=SERVICE, version=VERSION, region=self.deployment.options.get("tc_region")
        )

    def _params(self, req: ImageRequest) -> dict[str, Any]:
        opts = self.deployment.options
        params: dict[str, Any] = {
            "ModelName": opts.get("model_name", "Hunyuan"),
            "SceneType": opts.get("scene_type", "3d_panorama"),
            "Prompt": req.prompt,
            "EnhancePrompt": bool(opts.get("enhance_prompt", False)),
            "OutputImageCount": 1,
        }
        if version := opts.get("model_version"):
            params["ModelVersion"] = str(version)
        if req.negative_prompt:
            params["NegativePrompt"] = req.negative_prompt
        if extra := opts.get("additional_parameters"):  # e.g. {"size": "1440x720"}, sent as a JSON string
            params["AdditionalParameters"] = json.dumps(extra, separators=(",", ":"))
        return params

    async def submit(self, req: ImageRequest, reference: str | None = None) -> dict[str, Any]:
        body = await self._call("CreateAigcImageTask", self._params(req))
        if not body.get("TaskId"):
            raise UpstreamError(ErrorCode.upstream_error, "tencent_mps: submit answer has no TaskId")
        size = [req.width, req.height] if req.width and req.height and req.width == 2 * req.height else None
        return {"task_id": body["TaskId"], "size": size}

    async def poll(self, handle: dict[str, Any]) -> PollResult:
        body = await self._call("DescribeAigcImageTask", {"TaskId": handle["task_id"]})
        status = str(body.get("Status", ""))
        if status == "WAIT":
            return PollResult(done=False, progress=0)
        if status == "RUN":
            return PollResult(done=False, progress=50)
        if status == "FAIL":
            raise tc_error("FailedOperation", str(body.get("Message") or "task failed"), self.name)
        if status != "DONE":
            return PollResult(done=False)
        urls = [u for u in body.get("ImageUrls") or [] if u]
        if not urls:
            raise UpstreamError(ErrorCode.upstream_error, "tencent_mps: task finished without images")
        images = await self.download_all([GeneratedImage(url=u) for u in urls])
        size = tuple(handle["size"]) if handle.get("size") else None
        for img in images:
            if img.data is not None:
                img.data = await image_work(codecs.header_pixels(img.data), _equirect, img.data, size)
                img.mime = "image/png" if img.data[:4] == b"\x89PNG" else img.mime
        return PollResult(done=True, progress=100, result=ProviderResult(images=images))
