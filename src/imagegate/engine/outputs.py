"""A task's files: its inputs kept at create time, its outputs converted and stored when it succeeds.

Inputs are stored so that a task can run (or re-run after a restart) in any process; outputs
are converted to the asked format with Pillow (off the event loop) and stored behind signed
links, except ``b64_ephemeral`` ones, which only ever live in memory.

A store that cannot write (a full disk, a failing bucket) is the gateway's problem, not the
upstream's: it surfaces as ``storage_full`` (507) or ``storage_error`` (503), so the runner fails
and refunds the task under that code and a sync client is told what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from imagegate.db.database import new_id
from imagegate.db.tables import StoredFile, Task
from imagegate.db.tasks import TaskStore
from imagegate.domain import (
    RETRY_AFTER,
    ErrorCode,
    GatewayError,
    GeneratedImage,
    ImageInput,
    ImageRequest,
    UpstreamError,
)
from imagegate.media import codecs
from imagegate.observe import Metrics
from imagegate.storage.base import Storage
from imagegate.storage.layout import input_key, output_key, output_name

log = logging.getLogger("imagegate.storage")
FULL = (errno.ENOSPC, errno.EDQUOT)


def storage_failure(exc: OSError) -> GatewayError:
    """What a client is told when the store refused a write."""
    if exc.errno in FULL:
        return GatewayError(
            ErrorCode.storage_full, "the gateway's storage is full; the image could not be kept and nothing was charged"
        )
    return GatewayError(
        ErrorCode.storage_error,
        f"the gateway could not write to its storage ({type(exc).__name__}); nothing was charged; retry later",
        retry_after=RETRY_AFTER[ErrorCode.storage_error],
    )


@dataclass(slots=True)
class Stored:
    entries: list[dict[str, Any]] = field(default_factory=list)  # the task result's ``images``
    rows: list[StoredFile] = field(default_factory=list)  # committed with the terminal state
    blobs: list[bytes] = field(default_factory=list)


class OutputWriter:
    def __init__(self, storage: Storage, store: TaskStore, metrics: Metrics | None = None) -> None:
        self.storage = storage
        self.store = store
        self.metrics = metrics or Metrics()

    async def put(self, kind: str, path: str, data: bytes, mime: str) -> None:
        """Write to storage (``kind``: input, output, upload, for the metrics); a refused write is a
        :func:`storage_failure`."""
        try:
            await self.storage.put(path, data, mime)
        except OSError as exc:
            log.error("storage write of %s failed: %s", path, exc)
            raise storage_failure(exc) from exc
        self.metrics.stored(kind, len(data))

    async def keep_input(self, key_id: str, task_id: str, img: ImageInput, role: str) -> StoredFile:
        """Write an input's bytes to storage; its row is committed with the task."""
        file_id = new_id("in")
        path = input_key(file_id, img.mime)
        await self.put("input", path, img.data, img.mime)
        return StoredFile(
            id=file_id,
            key_id=key_id,
            task_id=task_id,
            role=role,
            path=path,
            mime=img.mime,
            bytes=len(img.data),
            width=img.width,
            height=img.height,
        )

    async def load_request(self, task: Task) -> ImageRequest:
        """The task's request with its input images read back from storage (a queued or recovered task)."""
        fields = {k: v for k, v in (task.request or {}).items() if k not in ("images", "mask")}
        images: list[ImageInput] = []
        mask: ImageInput | None = None
        if task.inputs:
            rows = await self.store.files(task.inputs)
            described = (task.request or {}).get("images", [])
            for i, fid in enumerate(task.inputs):
                f = rows[fid]
                data = await self.storage.get(f.path)
                if data is None:
                    raise UpstreamError(ErrorCode.internal, f"input file {fid} is missing from storage")
                info = described[i] if i < len(described) else {}
                img = ImageInput(
                    data=data,
                    mime=f.mime,
                    width=f.width,
                    height=f.height,
                    source=info.get("source", f.role),
                    url=info.get("url"),
                )
                if f.role == "mask":
                    mask = img
                else:
                    images.append(img)
        return ImageRequest(**fields, images=images, mask=mask)

    async def save(self, task: Task, req: ImageRequest, images: Sequence[GeneratedImage]) -> Stored:
        """Convert each image to the asked format and store it (``b64_ephemeral``: memory only)."""
        transparent = None if req.background in (None, "auto") else req.background == "transparent"
        keep = req.response_format != "b64_ephemeral"
        out = Stored()
        try:
            await self._save_each(task, req, images, keep, transparent, out)
        except BaseException:
            await self.discard(out)  # no half-stored result stays behind in the bucket
            raise
        if not out.entries:
            raise UpstreamError(ErrorCode.upstream_error, "provider returned no images")
        return out

    async def discard(self, stored: Stored) -> None:
        """Remove the files of a result that will not be kept: a run that failed part-way, or one that lost
        to a cancel (or to a peer) when it came to settle. Best effort: retention sweeps what this misses.
        No thumbnail can exist for them: previews are made only of a succeeded task's recorded result."""
        for row in stored.rows:
            with contextlib.suppress(OSError):
                await self.storage.delete(row.path)

    async def _save_each(
        self,
        task: Task,
        req: ImageRequest,
        images: Sequence[GeneratedImage],
        keep: bool,
        transparent: bool | None,
        out: Stored,
    ) -> None:
        for img in images[: req.n]:
            if img.data is None:
                raise UpstreamError(ErrorCode.upstream_error, "provider returned an image without bytes")
            data = await codecs.convert_async(
                img.data, req.output_format, req.output_compression, transparent=transparent
            )
            w, h = await asyncio.to_thread(codecs.size_of, data)
            entry: dict[str, Any] = {
                "width": w,
                "height": h,
                "bytes": len(data),
                "revised_prompt": img.revised_prompt or None,
            }
            if keep:
                row = await self._put_output(task, data, req.output_format, w, h)
                out.rows.append(row)
                entry.update(file_id=row.id, name=output_name(row.id, req.output_format))
            out.entries.append(entry)
            out.blobs.append(data)

    async def _put_output(self, task: Task, data: bytes, fmt: str, w: int, h: int) -> StoredFile:
        file_id = new_id("file")
        path = output_key(output_name(file_id, fmt))
        await self.put("output", path, data, f"image/{fmt}")
        return StoredFile(
            id=file_id,
            key_id=task.key_id,
            task_id=task.id,
            role="output",
            path=path,
            mime=f"image/{fmt}",
            bytes=len(data),
            width=w,
            height=h,
        )
