"""Replicate predictions: create with ``Prefer: wait``, poll ``urls.get`` if not finished, cancel.

``deployment.model`` is ``owner/name`` (official model: ``POST /v1/models/{owner}/{name}/predictions``)
or ``owner/name:version`` / a bare version id (``POST /v1/predictions``). A prediction that comes
back ``succeeded`` from the create call is stored in the handle as is, so the first poll only
downloads. Output is a URL string or a list of URLs (files live one hour).

FLUX models take an ``aspect_ratio`` enum (the ratio validation accepted against the model's catalog
``aspect_ratios``; a size of its ``size_table`` as that entry's ratio) or, with ``custom_size``,
``aspect_ratio: custom`` + ``width``/``height`` inside the model's ``size_rule``.

``deployment.options`` (the shape of the Replicate model's input): ``n_field`` (e.g. ``num_outputs``,
up to the model's ``images_per_call`` per prediction; unset: one prediction per image),
``image_field`` (default ``input_image``), ``images_field`` (list-valued input, e.g. ``image_input``),
``mask_field`` (default ``mask``), ``custom_size``, ``wait`` (seconds for ``Prefer: wait``, default 60;
0 disables), ``input`` (extra input fields).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import httpx

from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError
from imagegate.media import b64, codecs
from imagegate.providers.base import PollResult, Provider
from imagegate.providers.toolkit import (
    aspect_and_tier,
    chunks,
    edit_mask_png,
    http_error,
    image_ref,
    image_work,
    input_pixels,
    json_body,
    per_call,
    pixel_size,
    retry_after_of,
)

TERMINAL_FAIL = {"failed", "canceled", "aborted"}
_MODERATED = re.compile(r"\bE005\b|NSFW|flagged as sensitive|content moderation|safety", re.I)


def error_from(resp: httpx.Response) -> UpstreamError:
    """Map RFC 7807 ``{type, title, status, detail, invalid_fields?}``."""
    body = json_body(resp)
    message = str(body.get("detail") or body.get("title") or f"HTTP {resp.status_code}")
    if resp.status_code in (401, 403):
        return UpstreamError(ErrorCode.upstream_auth, "replicate: API token rejected", status=resp.status_code)
    param = None
    fields = body.get("invalid_fields") or []
    if fields and isinstance(fields[0], dict):
        param = str(fields[0].get("field") or "").removeprefix("input.") or None
    return http_error("replicate", resp.status_code, message, retry_after=retry_after_of(resp), param=param)


def outputs(output: object) -> list[str]:
    if isinstance(output, str):
        return [output]
    if isinstance(output, list):
        return [o for o in output if isinstance(o, str)]
    return []


class ReplicateProvider(Provider):
    name = "replicate"
    kind = "poll"
    default_base_url = "https://api.replicate.com"

    @property
    def opts(self) -> dict[str, Any]:
        return self.deployment.options

    def headers(self, wait: bool = False) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.credential('api_key')}"}
        seconds = int(self.opts.get("wait", 60))
        if wait and seconds > 0:
            h["Prefer"] = f"wait={min(seconds, 60)}"
        return h

    def create_call(self) -> tuple[str, dict[str, Any]]:
        model = self.deployment.model
        if ":" in model or "/" not in model:
            return f"{self.base_url}/v1/predictions", {"version": model}
        return f"{self.base_url}/v1/models/{model}/predictions", {}

    def inputs(self, req: ImageRequest, count: int, index: int) -> dict[str, Any]:
        inp: dict[str, Any] = {
            "prompt": req.prompt,
            "output_format": {"jpeg": "jpg"}.get(req.output_format, req.output_format),
        }
        if req.seed is not None:
            inp["seed"] = req.seed + index
        if self.opts.get("n_field"):
            inp[self.opts["n_field"]] = count
        dims = pixel_size(self.spec, req) if self.opts.get("custom_size") and req.width and req.height else None
        if dims is not None:
            inp["aspect_ratio"] = "custom"
            inp["width"], inp["height"] = dims
        else:
            inp["aspect_ratio"], _ = aspect_and_tier(self.spec, req)
        if req.images:
            if self.opts.get("images_field"):
                inp[str(self.opts["images_field"])] = [image_ref(i) for i in req.images]
            else:
                inp[str(self.opts.get("image_field", "input_image"))] = image_ref(req.images[0])
        if req.mask is not None and req.images:
            first = req.images[0]
            mask = edit_mask_png(req.mask, (first.width, first.height))
            inp[str(self.opts.get("mask_field", "mask"))] = "data:image/png;base64," + b64.encode(mask)
        if req.negative_prompt and self.opts.get("negative_prompt"):
            inp["negative_prompt"] = req.negative_prompt
        inp.update(self.opts.get("input") or {})
        return {k: v for k, v in inp.items() if v is not None}

    @staticmethod
    def entry(p: dict[str, Any]) -> dict[str, Any]:
        """What the handle keeps of a prediction (JSON-safe, small)."""
        urls = p.get("urls") or {}
        e = {"id": p.get("id"), "get": urls.get("get"), "cancel": urls.get("cancel"), "status": p.get("status")}
        if p.get("status") == "succeeded":
            e["output"] = outputs(p.get("output"))
        elif p.get("status") in TERMINAL_FAIL:
            e["error"] = str(p.get("error") or p.get("status"))
        return e

    async def submit(self, req: ImageRequest, reference: str | None = None) -> dict[str, Any]:
        counts = chunks(req.n, per_call(self.spec) if self.opts.get("n_field") else 1)
        url, base = self.create_call()
        inputs = await image_work(input_pixels(req), lambda: [self.inputs(req, k, i) for i, k in enumerate(counts)])
        results = await asyncio.gather(
            *(
                self.request("POST", url, headers=self.headers(wait=True), json={**base, "input": inp})
                for inp in inputs
            ),
            return_exceptions=True,
        )
        preds, failure = [], None
        for r in results:
            if isinstance(r, BaseException):
                failure = failure or r
            elif r.status_code not in (200, 201, 202):
                failure = failure or error_from(r)
            else:
                preds.append(self.entry(json_body(r)))
        if failure is not None:
            await self.cancel({"predictions": preds})  # don't leave paid work running
            raise failure
        return {"predictions": preds}

    async def _refresh(self, e: dict[str, Any]) -> dict[str, Any]:
        if e.get("status") == "succeeded" or e.get("status") in TERMINAL_FAIL:
            return e
        url = e.get("get") or f"{self.base_url}/v1/predictions/{e['id']}"
        resp = await self.request("GET", url, headers=self.headers())
        if resp.status_code != 200:
            raise error_from(resp)
        return self.entry(json_body(resp))

    async def poll(self, handle: dict[str, Any]) -> PollResult:
        preds = list(await asyncio.gather(*(self._refresh(e) for e in handle["predictions"])))
        new = {**handle, "predictions": preds}
        for e in preds:
            if e["status"] == "failed":
                err = e.get("error") or "prediction failed"
                code = ErrorCode.content_policy_violation if _MODERATED.search(err) else ErrorCode.upstream_error
                raise UpstreamError(code, f"replicate: {err}"[:500])
            if e["status"] in ("canceled", "aborted"):
                raise UpstreamError(ErrorCode.canceled, f"replicate: prediction {e['status']}")
        if all(e["status"] == "succeeded" for e in preds):
            urls = [u for e in preds for u in e.get("output") or []]
            if not urls:
                raise UpstreamError(ErrorCode.upstream_error, "replicate: succeeded without output")
            images = await self.download_all([GeneratedImage(url=u) for u in urls])
            for img in images:
                if not img.mime or img.mime == "application/octet-stream":
                    fmt = codecs.sniff_format(img.data or b"")
                    img.mime = f"image/{fmt}" if fmt else img.mime
            return PollResult(done=True, result=ProviderResult(images=images), progress=100, handle=new)
        done = sum(e["status"] == "succeeded" for e in preds)
        return PollResult(done=False, progress=int(100 * done / len(preds)), handle=new)

    async def cancel(self, handle: dict[str, Any]) -> None:
        async def one(e: dict[str, Any]) -> None:
            if e.get("status") in ("starting", "processing") and e.get("id"):
                url = e.get("cancel") or f"{self.base_url}/v1/predictions/{e['id']}/cancel"
                with contextlib.suppress(UpstreamError):  # best effort: the prediction may finish anyway
                    await self.request("POST", url, headers=self.headers())

        await asyncio.gather(*(one(e) for e in handle.get("predictions") or []))
