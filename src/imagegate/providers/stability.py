"""Stability AI Stable Image v2beta: multipart in, raw image bytes (or JSON) out.

- generate: ``/v2beta/stable-image/generate/{ultra|core|sd3}`` (sd3 takes a ``model`` field)
- edit with a mask: ``/v2beta/stable-image/edit/inpaint`` (grayscale mask, white = change)
- edit without a mask: ultra / sd3 image-to-image (``image`` + ``strength``)

Sized by ``aspect_ratio`` only: the ratio validation accepted against the model's catalog
``aspect_ratios``; a size of its ``size_table`` as that entry's ratio, any other as the nearest
(SD 3.5's 1024x768 goes as 5:4 and comes back 1152x896).

No ``n``: one call per image, seeds offset per image. ``deployment.options``: ``accept``
(``image/*`` default, or ``application/json``), ``strength`` (image-to-image, default 0.7),
``style_preset`` (core), ``endpoint`` (override the generate endpoint name), ``client_id``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx

from imagegate.domain import MIME, ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError
from imagegate.media import b64, codecs
from imagegate.providers.base import Provider
from imagegate.providers.toolkit import (
    FilePart,
    FormPart,
    aspect_and_tier,
    edit_mask_png,
    http_error,
    image_work,
    input_pixels,
    json_body,
    retry_after_of,
)

LOCKOUT_S = 60.0  # Stability times a key out for 60 s after a 429
_PARAM = re.compile(r"^\s*([a-z_]+)\s*:")


def error_from(resp: httpx.Response) -> UpstreamError:
    """Map ``{"id", "name", "errors": [...]}``."""
    body = json_body(resp)
    name = str(body.get("name") or "")
    errors = body.get("errors") or []
    message = "; ".join(str(e) for e in errors) or name or f"HTTP {resp.status_code}"
    status = resp.status_code
    if name == "content_moderation" or (status == 403 and "moderat" in message.lower()):
        return http_error("stability", status, message, moderated=True)
    if status in (401, 403):
        return UpstreamError(ErrorCode.upstream_auth, "stability: API key rejected", status=status)
    if status == 402 or name in ("payment_required", "insufficient_balance"):
        return UpstreamError(ErrorCode.upstream_quota, f"stability: {message}", status=status)
    retry_after = retry_after_of(resp) or (LOCKOUT_S if status == 429 else None)
    m = _PARAM.match(str(errors[0])) if errors else None
    return http_error("stability", status, message, retry_after=retry_after, param=m.group(1) if m else None)


class StabilityProvider(Provider):
    name = "stability"
    kind = "sync"
    default_base_url = "https://api.stability.ai"

    @property
    def accept(self) -> str:
        return str(self.deployment.options.get("accept", "image/*"))

    def headers(self) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.credential('api_key')}", "Accept": self.accept}
        if self.deployment.options.get("client_id"):
            h["stability-client-id"] = str(self.deployment.options["client_id"])
        return h

    def endpoint(self) -> str:
        model = self.deployment.model
        name = self.deployment.options.get("endpoint") or ("sd3" if model.startswith("sd3") else model)
        return f"/v2beta/stable-image/generate/{name}"

    def plan(self, req: ImageRequest) -> tuple[str, dict[str, Any], list[FilePart]]:
        """(path, text fields, file parts) for one call; CPU work (mask conversion) included."""
        model = self.deployment.model
        fields: dict[str, Any] = {
            "prompt": req.prompt,
            "output_format": req.output_format,
            "negative_prompt": req.negative_prompt,
        }
        files: list[FilePart] = []
        image = req.images[0] if req.images else None
        if req.mode == "edit" and image is not None and req.mask is not None:
            mask = edit_mask_png(req.mask, (image.width, image.height))
            files += [("image", ("image", image.data, image.mime)), ("mask", ("mask.png", mask, "image/png"))]
            return "/v2beta/stable-image/edit/inpaint", fields, files
        path = self.endpoint()
        if model.startswith("sd3"):
            fields["model"] = model
        if req.mode == "edit" and image is not None:
            if path.endswith("/core"):
                raise UpstreamError(
                    ErrorCode.upstream_bad_request, "stability: core takes no input image", param="image"
                )
            files.append(("image", ("image", image.data, image.mime)))
            fields["strength"] = self.deployment.options.get("strength", 0.7)
            if model.startswith("sd3"):
                fields["mode"] = "image-to-image"
        else:
            fields["aspect_ratio"], _ = aspect_and_tier(self.spec, req)
            if model.startswith("sd3"):
                fields["mode"] = "text-to-image"
        if path.endswith("/core"):
            fields["style_preset"] = self.deployment.options.get("style_preset")
        return path, fields, files

    async def generate(self, req: ImageRequest) -> ProviderResult:
        path, fields, files = await image_work(input_pixels(req), self.plan, req)
        calls = []
        for i in range(req.n):
            f = dict(fields)
            if req.seed is not None:
                f["seed"] = (req.seed + i) % 4294967295
            calls.append(self._call(path, f, files, req.output_format))
        return ProviderResult(images=list(await asyncio.gather(*calls)))

    async def _call(self, path: str, fields: dict[str, Any], files: list[FilePart], fmt: str) -> GeneratedImage:
        # multipart/form-data always, even without a file: send every field as a form part
        parts: list[FormPart] = [(k, (None, str(v))) for k, v in fields.items() if v is not None]
        parts.extend(files)
        resp = await self.request("POST", self.base_url + path, headers=self.headers(), files=parts)
        if resp.status_code != 200:
            raise error_from(resp)
        ctype = resp.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            body = json_body(resp)
            finish = body.get("finish_reason")
            data = b64.decode(body.get("image") or "")
        else:
            finish = resp.headers.get("finish-reason")
            data = resp.content
        if finish == "CONTENT_FILTERED":
            raise UpstreamError(
                ErrorCode.content_policy_violation, "stability: output was filtered by moderation", status=200
            )
        if not data:
            raise UpstreamError(ErrorCode.upstream_error, "stability: empty image", status=200)
        return GeneratedImage(data=data, mime=MIME.get(codecs.sniff_format(data) or fmt, ctype or None))
