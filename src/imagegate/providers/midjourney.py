"""Midjourney through a midjourney-proxy server (novicezk/midjourney-proxy and compatible forks).

``POST /mj/submit/imagine`` ``{prompt, base64Array}`` (header ``mj-api-secret`` when the proxy has
one) answers ``{code, description, result: taskId}``; ``GET /mj/task/{id}/fetch`` reports
NOT_START / SUBMITTED / IN_PROGRESS (``progress`` "NN%") / SUCCESS / FAILURE. One imagine job
delivers a 2x2 grid in ``imageUrl``: we cut it into its four images, so n <= 4 is one job and
larger n fans out. Aspect ratio and negative prompt travel as ``--ar W:H`` / ``--no`` flags: the
ratio validation accepted against the model's catalog ``aspect_ratios``, as the client wrote it.
Image prompts go as ``data:`` URIs in ``base64Array``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError
from imagegate.media import codecs
from imagegate.providers.base import PollResult, Provider
from imagegate.providers.toolkit import (
    CodeMap,
    aspect_and_tier,
    chunks,
    data_uri,
    exactly,
    http_error,
    image_work,
    json_body,
    retry_after_of,
)

PER_JOB = 4  # one imagine job is a 2x2 grid

#: submit answer codes -> what they mean for us (1, 21, 22 are accepted)
CODES = CodeMap.of(
    "midjourney",
    (exactly("23"), ErrorCode.upstream_rate_limited),  # queue full
    (exactly("24"), ErrorCode.content_policy_violation),  # banned prompt
    (exactly("3", "4"), ErrorCode.upstream_bad_request),  # not found, validation error
)
_MODERATION_WORDS = ("banned", "sensitive", "moderat", "blocked", "violat", "敏感")


def split_grid(data: bytes, count: int = 4) -> list[bytes]:
    """Cut a 2x2 grid into its images (top-left, top-right, bottom-left, bottom-right); keep ``count``."""
    grid = codecs.open_image(data)
    w, h = grid.size
    hw, hh = w // 2, h // 2
    boxes = [(0, 0, hw, hh), (hw, 0, 2 * hw, hh), (0, hh, hw, 2 * hh), (hw, hh, 2 * hw, 2 * hh)]
    return [codecs.encode(grid.crop(b), "png") for b in boxes[:count]]


class MidjourneyProvider(Provider):
    name = "midjourney"
    kind = "poll"
    default_base_url = "http://127.0.0.1:8080"  # midjourney-proxy's default; real URL comes from MJ_PROXY_URL

    @property
    def _root(self) -> str:
        base = self.base_url
        return base if base.endswith("/mj") else f"{base}/mj"

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if secret := self.credential():
            h["mj-api-secret"] = secret
        return h

    def _prompt(self, req: ImageRequest) -> str:
        text = req.prompt.strip()
        ratio, _ = aspect_and_tier(self.spec, req)
        if ratio is not None and "--ar" not in text and "--aspect" not in text:
            text += f" --ar {ratio}"
        if req.negative_prompt and "--no" not in text:
            text += f" --no {req.negative_prompt.replace('--', ' ').strip()}"
        if req.seed is not None and "--seed" not in text:
            text += f" --seed {req.seed % 4294967296}"
        if (suffix := self.deployment.options.get("suffix")) and suffix not in text:
            text += f" {suffix}"
        return text

    async def _submit_one(self, req: ImageRequest) -> str:
        body: dict[str, Any] = {"prompt": self._prompt(req), "state": req.user or ""}
        if req.images:
            body["base64Array"] = [data_uri(i) for i in req.images]
        resp = await self.request("POST", f"{self._root}/submit/imagine", json=body, headers=self._headers())
        if resp.status_code != 200:
            raise http_error(
                "midjourney",
                resp.status_code,
                f"proxy answered HTTP {resp.status_code}",
                retry_after=retry_after_of(resp),
            )
        out = json_body(resp)
        if not out:
            raise UpstreamError(ErrorCode.upstream_error, "midjourney: proxy answer is not a JSON object")
        code, desc = out.get("code"), str(out.get("description") or "")
        if code in (1, 21, 22) and out.get("result"):
            return str(out["result"])  # 21: the task already exists, 22: queued; both are accepted
        raise CODES.error(200, code, desc)

    async def submit(self, req: ImageRequest, reference: str | None = None) -> dict[str, Any]:
        ids = await asyncio.gather(*(self._submit_one(req) for _ in chunks(req.n, PER_JOB)))
        return {"task_ids": list(ids), "n": req.n, "finished": {}}

    async def _fetch(self, task_id: str) -> dict[str, Any]:
        resp = await self.request("GET", f"{self._root}/task/{task_id}/fetch", headers=self._headers())
        if resp.status_code != 200:
            raise http_error("midjourney", resp.status_code, f"proxy answered HTTP {resp.status_code}")
        task = json_body(resp)
        if not task:
            raise UpstreamError(ErrorCode.upstream_error, f"midjourney: task {task_id} not found")
        return task

    async def poll(self, handle: dict[str, Any]) -> PollResult:
        finished = dict(handle.get("finished") or {})
        pending = [t for t in handle["task_ids"] if t not in finished]
        tasks = await asyncio.gather(*(self._fetch(t) for t in pending))
        progress = [100] * len(finished)
        for task_id, task in zip(pending, tasks, strict=True):
            status = task.get("status")
            if status == "SUCCESS" and task.get("imageUrl"):
                finished[task_id] = task["imageUrl"]
                progress.append(100)
            elif status in ("FAILURE", "CANCEL"):
                reason = str(task.get("failReason") or "task failed")
                moderated = any(w in reason.lower() for w in _MODERATION_WORDS)
                raise UpstreamError(
                    ErrorCode.content_policy_violation if moderated else ErrorCode.upstream_error,
                    f"midjourney: {reason}",
                )
            else:
                m = re.match(r"(\d+)", str(task.get("progress") or "0"))
                progress.append(min(99, int(m.group(1))) if m else 0)
        new_handle = {**handle, "finished": finished}
        if len(finished) < len(handle["task_ids"]):
            return PollResult(done=False, progress=sum(progress) // len(handle["task_ids"]), handle=new_handle)
        grids = await self.download_all([GeneratedImage(url=finished[t]) for t in handle["task_ids"]])
        wanted = chunks(handle["n"], PER_JOB)
        parts = await asyncio.gather(
            *(
                image_work(codecs.header_pixels(g.data or b""), split_grid, g.data or b"", k)
                for g, k in zip(grids, wanted, strict=False)
            )
        )
        images = [GeneratedImage(data=p, mime="image/png") for quad in parts for p in quad][: handle["n"]]
        return PollResult(
            done=True,
            progress=100,
            handle=new_handle,
            result=ProviderResult(images=images, usage={"jobs": len(handle["task_ids"])}),
        )
