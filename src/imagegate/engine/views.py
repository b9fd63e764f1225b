"""A task row -> the :class:`TaskView` dialects render: signed links, base64 when asked, timings, cost.

Building the view here keeps renderers pure: they never read storage, sign a URL or query
the database. Base64 is encoded off the event loop (megabytes per image).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from imagegate.db.database import aware, maybe_aware, to_usd
from imagegate.db.tables import Task
from imagegate.domain import MIME, OutputImage, TaskError, TaskStatus, TaskView, openai_usage
from imagegate.media import b64
from imagegate.storage.base import Storage
from imagegate.storage.layout import output_key
from imagegate.storage.signing import UrlSigner

B64_FORMATS = ("b64_json", "b64_ephemeral")
#: tasks ahead of a queued one (None when it is not queued)
PositionOf = Callable[[Task], Awaitable[int | None]]


def latency_ms(task: Task) -> int | None:
    if task.completed_at is None:
        return None
    return int((aware(task.completed_at) - aware(task.created_at)).total_seconds() * 1000)


def _error(task: Task) -> TaskError | None:
    if task.status in (TaskStatus.failed.value, TaskStatus.canceled.value):
        return TaskError(task.error_code or "upstream_error", task.error_message or "generation failed")
    return None


class Views:
    def __init__(self, signer: UrlSigner, storage: Storage, position_of: PositionOf) -> None:
        self.signer = signer
        self.storage = storage
        self.position_of = position_of

    async def view(
        self, task: Task, base_url: str, fresh: Sequence[bytes] | None = None, *, b64: bool = False
    ) -> TaskView:
        """``fresh``: the image bytes of a sync task that just finished (no storage read for its base64);
        ``b64``: base64 whatever the task asked (a streamed answer carries the images themselves)."""
        result = task.result or {}
        status = TaskStatus(task.status)
        return TaskView(
            id=task.id,
            key_id=task.key_id,
            model=task.model,
            mode=task.mode,
            dialect=task.dialect,
            status=status,
            is_async=task.is_async,
            base_url=base_url,
            request=task.request or {},
            created_at=aware(task.created_at),
            started_at=maybe_aware(task.started_at),
            completed_at=maybe_aware(task.completed_at),
            upload_deadline=maybe_aware(task.expires_at) if status == TaskStatus.awaiting_upload else None,
            progress=task.progress,
            queue_position=await self.position_of(task) if status == TaskStatus.queued else None,
            images=await self._images(task, base_url, fresh, b64) if status == TaskStatus.succeeded else (),
            size=result.get("size"),
            output_format=result.get("output_format"),
            usage=openai_usage(result.get("usage")),
            provider=result.get("provider"),
            cost_usd=to_usd(task.cost_micros),
            latency_ms=latency_ms(task),
            error=_error(task),
        )

    async def _images(
        self, task: Task, base: str, fresh: Sequence[bytes] | None, b64_always: bool = False
    ) -> tuple[OutputImage, ...]:
        entries: list[dict[str, Any]] = (task.result or {}).get("images", [])
        fmt = (task.result or {}).get("output_format") or "png"
        if not b64_always and (task.request or {}).get("response_format", "url") not in B64_FORMATS:
            return tuple(self._image(e, base, fmt, None) for e in entries if "name" in e)
        if fresh is None:
            entries = [e for e in entries if "name" in e]  # b64_ephemeral kept nothing to read back
            fresh = [await self.storage.get(output_key(e["name"])) or b"" for e in entries]
        encoded = await asyncio.to_thread(lambda: [b64.encode(data) for data in fresh])
        return tuple(self._image(e, base, fmt, b) for e, b in zip(entries, encoded, strict=False))

    def _image(self, entry: dict[str, Any], base: str, fmt: str, b64_json: str | None) -> OutputImage:
        name = entry.get("name")
        ext = name.rsplit(".", 1)[-1] if name else fmt
        return OutputImage(
            url=self.signer.url(base, name) if name else None,
            b64_json=b64_json,
            width=entry.get("width"),
            height=entry.get("height"),
            content_type=MIME.get(ext),
            revised_prompt=entry.get("revised_prompt") or None,
        )
