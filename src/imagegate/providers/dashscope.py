"""Alibaba Cloud Model Studio (DashScope): Wan and Qwen-Image text-to-image, Qwen-Image-Edit.

Text-to-image is the async task API: submit ``POST /services/aigc/text2image/image-synthesis`` with
``X-DashScope-Async: enable`` (sizes are ``W*H``, ``n`` 1-4; we fan out beyond a model's ``max_n``),
then poll ``GET /tasks/{task_id}``. A task is SUCCEEDED when at least one image succeeded: failed
items carry ``{code, message}`` in ``output.results`` and are skipped. Task data and URLs live 24 h.
Only PENDING tasks can be canceled (``POST /tasks/{task_id}/cancel``); a running one finishes.

Editing (``options.api: multimodal``, e.g. qwen-image-edit-plus) is the synchronous
``POST /services/aigc/multimodal-generation/generation`` (it refuses ``X-DashScope-Async``): one user
message whose content is the input images (URL or ``data:`` URI) followed by one text item; images
come back in ``output.choices[].message.content[].image``. ``submit`` makes that call and returns a
handle that already holds the result URLs, so a restart after it downloads them instead of paying again.
"""

from __future__ import annotations

import asyncio
import base64
import math
import uuid
from typing import Any

from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError
from imagegate.catalog import sizing
from imagegate.providers.base import PollResult, Provider, http_error, register


def ds_error(status: int, code: str | None, message: str | None, retry_after: str | None = None) -> UpstreamError:
    code = code or ""
    text = f"{code}: {message or ''}".strip(": ") or f"HTTP {status}"
    mapped: ErrorCode | None = None
    if code == "InvalidApiKey" or code.startswith("AccessDenied"):
        mapped = ErrorCode.upstream_auth
    elif code in ("Arrearage", "DataInspectionFailed.Arrearage") or "Arrearage" in code or code == "QuotaExhausted":
        mapped = ErrorCode.upstream_quota
    elif code.startswith(("DataInspectionFailed", "IPInfringementSuspect", "DataInspection")):
        mapped = ErrorCode.content_policy_violation
    elif code.startswith("Throttling"):
        mapped = ErrorCode.upstream_rate_limited
    elif code.startswith(("InvalidParameter", "InvalidURL", "InvalidFile", "BadRequest", "ModelNotFound")):
        mapped = ErrorCode.upstream_bad_request
    elif code.startswith(("InternalError", "SystemError")):
        mapped = ErrorCode.upstream_error
    if mapped is None:
        return http_error("dashscope", status, text, retry_after=retry_after)
    ra = float(retry_after) if retry_after and retry_after.isdigit() else None
    return UpstreamError(mapped, f"dashscope: {text}", status=status, retry_after=ra)


@register
class DashScopeProvider(Provider):
    name = "dashscope"
    kind = "poll"
    default_base_url = "https://dashscope.aliyuncs.com/api/v1"
    can_cancel = True

    def _headers(self, submit: bool = False, sync: bool = False) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.credential()}"}
        if submit or sync:
            h["Content-Type"] = "application/json"
        if submit:
            h["X-DashScope-Async"] = "enable"
        return h

    @property
    def _multimodal(self) -> bool:
        return self.deployment.options.get("api") == "multimodal"

    # -- parameter map -------------------------------------------------------------------
    def _size(self, req: ImageRequest) -> str | None:
        opts = self.deployment.options
        if req.width and req.height:
            w, h = req.width, req.height
        elif req.aspect_ratio and (ratio := sizing.parse_ratio(req.aspect_ratio)):
            w, h = sizing.tier_dims(sizing.normalize_tier(req.resolution or "") or "1K", ratio)
        else:
            return None  # the model's default
        if sizes := opts.get("sizes"):
            return sizing.nearest_size(w, h, [s.replace("*", "x") for s in sizes]).replace("x", "*")
        lo, hi = int(opts.get("min_side", 512)), int(opts.get("max_side", 1440))
        max_px = int(opts.get("max_pixels", hi * hi))
        f = min(1.0, math.sqrt(max_px / (w * h)), hi / max(w, h))
        f = max(f, lo / min(w, h))
        w, h = (min(hi, max(lo, int(round(v * f / 16) * 16))) for v in (w, h))
        return f"{w}*{h}"

    def _body(self, req: ImageRequest, n: int) -> dict[str, Any]:
        opts = self.deployment.options
        inp: dict[str, Any] = {"prompt": req.prompt}
        if req.negative_prompt:
            inp["negative_prompt"] = req.negative_prompt
        params: dict[str, Any] = {"n": n, "watermark": bool(opts.get("watermark", False)),
                                  "prompt_extend": bool(opts.get("prompt_extend", False))}
        if (size := self._size(req)) is not None:
            params["size"] = size
        if req.seed is not None:
            params["seed"] = req.seed
        return {"model": self.deployment.model, "input": inp, "parameters": params}

    def _edit_body(self, req: ImageRequest, n: int) -> dict[str, Any]:
        opts = self.deployment.options
        content: list[dict[str, str]] = [{"image": _image_ref(ref)} for ref in req.images]
        content.append({"text": req.prompt})
        params: dict[str, Any] = {"n": n, "watermark": bool(opts.get("watermark", False))}
        if "prompt_extend" in opts:
            params["prompt_extend"] = bool(opts["prompt_extend"])
        if req.negative_prompt:
            params["negative_prompt"] = req.negative_prompt
        if req.seed is not None:
            params["seed"] = req.seed
        if (size := self._size(req)) is not None:
            params["size"] = size
        return {"model": self.deployment.model, "input": {"messages": [{"role": "user", "content": content}]},
                "parameters": params}

    # -- submit / poll -------------------------------------------------------------------
    async def _edit_one(self, req: ImageRequest, n: int) -> tuple[str, dict[str, Any]]:
        """One synchronous multimodal call: (an id for the handle, its finished entry)."""
        resp = await self.request("POST", f"{self.base_url}/services/aigc/multimodal-generation/generation",
                                  json=self._edit_body(req, n), headers=self._headers(sync=True))
        body = _json(resp)
        if resp.status_code != 200 or body.get("code"):
            raise ds_error(resp.status_code, body.get("code"), body.get("message"), resp.headers.get("retry-after"))
        urls = [item["image"] for choice in (body.get("output") or {}).get("choices") or []
                for item in (choice.get("message") or {}).get("content") or [] if item.get("image")]
        if not urls:
            raise UpstreamError(ErrorCode.upstream_error, "dashscope: edit answer has no images")
        return f"sync-{body.get('request_id') or uuid.uuid4().hex}", {"urls": urls, "errors": []}

    async def _submit_one(self, req: ImageRequest, n: int) -> str:
        resp = await self.request("POST", f"{self.base_url}/services/aigc/text2image/image-synthesis",
                                  json=self._body(req, n), headers=self._headers(submit=True))
        body = _json(resp)
        if resp.status_code != 200 or body.get("code"):
            raise ds_error(resp.status_code, body.get("code"), body.get("message"), resp.headers.get("retry-after"))
        task_id = (body.get("output") or {}).get("task_id")
        if not task_id:
            raise UpstreamError(ErrorCode.upstream_error, "dashscope: submit answer has no task_id")
        return task_id

    async def submit(self, req: ImageRequest) -> dict[str, Any]:
        per = max(1, int(self.deployment.options.get("max_n", 4)))
        chunks = [min(per, req.n - i) for i in range(0, req.n, per)]
        if self._multimodal:
            done = await asyncio.gather(*(self._edit_one(req, k) for k in chunks))
            return {"task_ids": [i for i, _ in done], "finished": dict(done)}
        ids = await asyncio.gather(*(self._submit_one(req, k) for k in chunks))
        return {"task_ids": list(ids), "finished": {}}

    async def cancel(self, handle: dict[str, Any]) -> None:
        """Cancel the tasks still open; DashScope only cancels PENDING ones (400 otherwise: it runs on)."""
        finished = handle.get("finished") or {}

        async def one(task_id: str) -> None:
            resp = await self.request("POST", f"{self.base_url}/tasks/{task_id}/cancel", headers=self._headers())
            if resp.status_code in (200, 400, 404):
                return
            body = _json(resp)
            raise ds_error(resp.status_code, body.get("code"), body.get("message"), resp.headers.get("retry-after"))

        await asyncio.gather(*(one(t) for t in handle.get("task_ids") or [] if t not in finished))

    async def _query(self, task_id: str) -> dict[str, Any]:
        resp = await self.request("GET", f"{self.base_url}/tasks/{task_id}", headers=self._headers())
        body = _json(resp)
        if resp.status_code != 200:
            raise ds_error(resp.status_code, body.get("code"), body.get("message"), resp.headers.get("retry-after"))
        return body.get("output") or {}

    async def poll(self, handle: dict[str, Any]) -> PollResult:
        finished: dict[str, Any] = dict(handle.get("finished") or {})
        pending = [t for t in handle["task_ids"] if t not in finished]
        outs = await asyncio.gather(*(self._query(t) for t in pending))
        queued = 0
        for task_id, out in zip(pending, outs):
            status = out.get("task_status")
            if status == "SUCCEEDED":
                finished[task_id] = {"urls": [r["url"] for r in out.get("results", []) if r.get("url")],
                                     "errors": [r for r in out.get("results", []) if r.get("code")]}
            elif status == "FAILED":
                finished[task_id] = {"urls": [], "errors": [{"code": out.get("code"), "message": out.get("message")}]}
            elif status == "CANCELED":
                raise UpstreamError(ErrorCode.canceled, f"dashscope: task {task_id} was canceled")
            elif status == "UNKNOWN":
                raise UpstreamError(ErrorCode.upstream_error, f"dashscope: task {task_id} is unknown or expired")
            elif status == "PENDING":
                queued += 1
        new_handle = {**handle, "finished": finished}
        total = len(handle["task_ids"])
        if len(finished) < total:
            return PollResult(done=False, progress=int(100 * len(finished) / total), handle=new_handle,
                              queue_position=0 if queued == len(pending) else None)
        urls = [u for f in finished.values() for u in f["urls"]]
        errors = [e for f in finished.values() for e in f["errors"]]
        if not urls:
            first = errors[0] if errors else {}
            raise ds_error(400, first.get("code") or "InternalError", first.get("message") or "no images")
        images = await self.download_all([GeneratedImage(url=u) for u in urls])
        return PollResult(done=True, progress=100, handle=new_handle,
                          result=ProviderResult(images=images, usage={"image_count": len(images),
                                                                      "failed_images": len(errors)}))


def _image_ref(ref: Any) -> str:
    """A public URL as given, else the bytes as a ``data:`` URI (DashScope takes both)."""
    if ref.url and str(ref.url).startswith(("https://", "http://")):
        return str(ref.url)
    return f"data:{ref.mime or 'image/png'};base64,{base64.b64encode(ref.data).decode()}"


def _json(resp: Any) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {"message": resp.text[:200]}
    return body if isinstance(body, dict) else {}
