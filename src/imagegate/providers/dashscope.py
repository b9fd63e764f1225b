"""Alibaba Cloud Model Studio (DashScope): Wan and Qwen-Image text-to-image, Qwen-Image-Edit.

Text-to-image is the async task API: submit ``POST /services/aigc/text2image/image-synthesis`` with
``X-DashScope-Async: enable`` (``size`` is ``W*H``: the size validation accepted against the model's
catalog ``sizes`` or ``size_rule``; ``n`` beyond the model's ``images_per_call`` is fanned out),
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
import uuid
from typing import Any

import httpx

from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError
from imagegate.providers.base import PollResult, Provider
from imagegate.providers.toolkit import (
    CodeMap,
    chunks,
    exactly,
    image_ref,
    json_body,
    per_call,
    pixel_size,
    prefixes,
    retry_after_of,
)

CODES = CodeMap.of(
    "dashscope",
    (exactly("InvalidApiKey") + "|" + prefixes("AccessDenied"), ErrorCode.upstream_auth),
    (r".*Arrearage|" + exactly("QuotaExhausted"), ErrorCode.upstream_quota),
    (prefixes("DataInspection", "IPInfringementSuspect"), ErrorCode.content_policy_violation),
    (prefixes("Throttling"), ErrorCode.upstream_rate_limited),
    (
        prefixes("InvalidParameter", "InvalidURL", "InvalidFile", "BadRequest", "ModelNotFound"),
        ErrorCode.upstream_bad_request,
    ),
    (prefixes("InternalError", "SystemError"), ErrorCode.upstream_error),
)


def ds_error(status: int, code: str | None, message: str | None, retry_after: float | None = None) -> UpstreamError:
    """Map ``{code, message}`` (a task's output carries the same pair)."""
    text = message or ("" if code else f"HTTP {status}")
    return CODES.error(status, code or None, text, retry_after=retry_after)


def _raise_for(resp: httpx.Response, body: dict[str, Any]) -> None:
    if resp.status_code != 200 or body.get("code"):
        raise ds_error(resp.status_code, body.get("code"), body.get("message"), retry_after_of(resp))


class DashScopeProvider(Provider):
    name = "dashscope"
    kind = "poll"
    default_base_url = "https://dashscope.aliyuncs.com/api/v1"

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
        """'W*H' the model takes; None leaves the model's default."""
        dims = pixel_size(self.spec, req)
        return f"{dims[0]}*{dims[1]}" if dims else None

    def _body(self, req: ImageRequest, n: int) -> dict[str, Any]:
        opts = self.deployment.options
        inp: dict[str, Any] = {"prompt": req.prompt}
        if req.negative_prompt:
            inp["negative_prompt"] = req.negative_prompt
        params: dict[str, Any] = {
            "n": n,
            "watermark": bool(opts.get("watermark", False)),
            "prompt_extend": bool(opts.get("prompt_extend", False)),
        }
        if (size := self._size(req)) is not None:
            params["size"] = size
        if req.seed is not None:
            params["seed"] = req.seed
        return {"model": self.deployment.model, "input": inp, "parameters": params}

    def _edit_body(self, req: ImageRequest, n: int) -> dict[str, Any]:
        opts = self.deployment.options
        content: list[dict[str, str]] = [{"image": image_ref(ref)} for ref in req.images]
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
        return {
            "model": self.deployment.model,
            "input": {"messages": [{"role": "user", "content": content}]},
            "parameters": params,
        }

    # -- submit / poll -------------------------------------------------------------------
    async def _edit_one(self, req: ImageRequest, n: int) -> tuple[str, dict[str, Any]]:
        """One synchronous multimodal call: (an id for the handle, its finished entry)."""
        resp = await self.request(
            "POST",
            f"{self.base_url}/services/aigc/multimodal-generation/generation",
            json=self._edit_body(req, n),
            headers=self._headers(sync=True),
        )
        body = json_body(resp)
        _raise_for(resp, body)
        urls = [
            item["image"]
            for choice in (body.get("output") or {}).get("choices") or []
            for item in (choice.get("message") or {}).get("content") or []
            if item.get("image")
        ]
        if not urls:
            raise UpstreamError(ErrorCode.upstream_error, "dashscope: edit answer has no images")
        return f"sync-{body.get('request_id') or uuid.uuid4().hex}", {"urls": urls, "errors": []}

    async def _submit_one(self, req: ImageRequest, n: int) -> str:
        resp = await self.request(
            "POST",
            f"{self.base_url}/services/aigc/text2image/image-synthesis",
            json=self._body(req, n),
            headers=self._headers(submit=True),
        )
        body = json_body(resp)
        _raise_for(resp, body)
        task_id = (body.get("output") or {}).get("task_id")
        if not task_id:
            raise UpstreamError(ErrorCode.upstream_error, "dashscope: submit answer has no task_id")
        return str(task_id)

    async def submit(self, req: ImageRequest, reference: str | None = None) -> dict[str, Any]:
        counts = chunks(req.n, per_call(self.spec))
        if self._multimodal:
            done = await asyncio.gather(*(self._edit_one(req, k) for k in counts))
            return {"task_ids": [i for i, _ in done], "finished": dict(done)}
        ids = await asyncio.gather(*(self._submit_one(req, k) for k in counts))
        return {"task_ids": list(ids), "finished": {}}

    async def cancel(self, handle: dict[str, Any]) -> None:
        """Cancel the tasks still open; DashScope only cancels PENDING ones (400 otherwise: it runs on)."""
        finished = handle.get("finished") or {}

        async def one(task_id: str) -> None:
            resp = await self.request("POST", f"{self.base_url}/tasks/{task_id}/cancel", headers=self._headers())
            if resp.status_code in (200, 400, 404):
                return
            _raise_for(resp, json_body(resp))

        await asyncio.gather(*(one(t) for t in handle.get("task_ids") or [] if t not in finished))

    async def _query(self, task_id: str) -> dict[str, Any]:
        resp = await self.request("GET", f"{self.base_url}/tasks/{task_id}", headers=self._headers())
        body = json_body(resp)
        if resp.status_code != 200:
            raise ds_error(resp.status_code, body.get("code"), body.get("message"), retry_after_of(resp))
        output = body.get("output")
        return output if isinstance(output, dict) else {}

    async def poll(self, handle: dict[str, Any]) -> PollResult:
        finished: dict[str, Any] = dict(handle.get("finished") or {})
        pending = [t for t in handle["task_ids"] if t not in finished]
        outs = await asyncio.gather(*(self._query(t) for t in pending))
        for task_id, out in zip(pending, outs, strict=True):
            status = out.get("task_status")
            if status == "SUCCEEDED":
                finished[task_id] = {
                    "urls": [r["url"] for r in out.get("results", []) if r.get("url")],
                    "errors": [r for r in out.get("results", []) if r.get("code")],
                }
            elif status == "FAILED":
                finished[task_id] = {"urls": [], "errors": [{"code": out.get("code"), "message": out.get("message")}]}
            elif status == "CANCELED":
                raise UpstreamError(ErrorCode.canceled, f"dashscope: task {task_id} was canceled")
            elif status == "UNKNOWN":
                raise UpstreamError(ErrorCode.upstream_error, f"dashscope: task {task_id} is unknown or expired")
        new_handle = {**handle, "finished": finished}
        total = len(handle["task_ids"])
        if len(finished) < total:
            return PollResult(done=False, progress=int(100 * len(finished) / total), handle=new_handle)
        urls = [u for f in finished.values() for u in f["urls"]]
        errors = [e for f in finished.values() for e in f["errors"]]
        if not urls:
            first = errors[0] if errors else {}
            raise ds_error(400, first.get("code") or "InternalError", first.get("message") or "no images")
        images = await self.download_all([GeneratedImage(url=u) for u in urls])
        return PollResult(
            done=True,
            progress=100,
            handle=new_handle,
            result=ProviderResult(images=images, usage={"image_count": len(images), "failed_images": len(errors)}),
        )
