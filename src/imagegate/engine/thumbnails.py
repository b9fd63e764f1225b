"""Thumbnails of a task's outputs: made once, kept in the store beside the outputs, read back after.

A preview is made from the stored output the first time someone asks for it, then written under a
name derived from the output's (``storage.layout.thumb_key``), so every later request, in this
process or any other one on the same store, reads those bytes instead of decoding the output again.
Concurrent first requests in one process share one making; two processes that race both make the
same bytes and the second write replaces the first with an equal copy, which costs a decode and
nothing else. A thumbnail goes when its output goes (retention deletes ``layout.derived_keys``).

The only gap is the reverse race: a preview whose making began before retention removed its output
can be written just after, and then stays until the store is cleaned by other means. It needs a
request for an output in the seconds its retention period ends, and costs one small file.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from imagegate.db.tables import Task
from imagegate.domain import ErrorCode, GatewayError, TaskStatus
from imagegate.media.thumbs import thumbnail_async
from imagegate.observe import Metrics
from imagegate.storage.base import Storage
from imagegate.storage.layout import output_key, thumb_key

log = logging.getLogger("imagegate.thumbnails")
#: bump when the way previews are made changes: the ETag carries it, so browsers fetch the new ones
VERSION = "1"


@dataclass(frozen=True, slots=True)
class Wanted:
    """One output's preview at one size: where it is kept, and its validator."""

    task_id: str
    index: int
    size: int
    name: str  # the output's public name
    key: str  # the preview's storage key
    etag: str  # quoted, strong: the same output at the same size is the same bytes

    def matches(self, if_none_match: str | None) -> bool:
        """Whether a client's ``If-None-Match`` names this preview (it may then be told 304)."""
        if not if_none_match:
            return False
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or self.etag in tags


class Thumbnails:
    def __init__(self, storage: Storage, metrics: Metrics | None = None) -> None:
        self.storage = storage
        self.metrics = metrics or Metrics()
        self._making: dict[str, asyncio.Future[tuple[bytes, bool]]] = {}

    def wanted(self, task: Task, index: int, size: int) -> Wanted:
        """The task's ``index``-th output's preview, no larger than ``size`` on its longer side; refused
        (409) before the task has succeeded, 404 when it has no such output or did not keep it."""
        name = self._output_name(task, index)
        file_id = name.split(".", 1)[0]
        etag = f'"{file_id}.{size}.v{VERSION}"'
        return Wanted(task.id, index, size, name, thumb_key(file_id, size), etag)

    async def read(self, w: Wanted) -> tuple[bytes, bool]:
        """The preview's bytes, and whether they came from the store (False: made for this call)."""
        cached = await self.storage.get(w.key)
        if cached is not None:
            return cached, True
        making = self._making.get(w.key)
        if making is None:
            making = asyncio.ensure_future(self._make(w))
            self._making[w.key] = making
            making.add_done_callback(lambda _: self._making.pop(w.key, None))
        # shielded: a client that hangs up does not cancel the making others wait on
        return await asyncio.shield(making)

    def _output_name(self, task: Task, index: int) -> str:
        if task.status != TaskStatus.succeeded.value:
            raise GatewayError(
                ErrorCode.conflict,
                f"task '{task.id}' is {task.status}: only a succeeded task's images have thumbnails",
                param="task_id",
            )
        entries: list[dict[str, Any]] = (task.result or {}).get("images", [])
        if index >= len(entries):
            raise GatewayError(
                ErrorCode.not_found,
                f"task '{task.id}' has {len(entries)} image(s): 'index' must be below {len(entries)}",
                param="index",
            )
        name = entries[index].get("name")
        if not isinstance(name, str):
            raise GatewayError(
                ErrorCode.not_found,
                f"image {index} of task '{task.id}' was not kept (response_format 'b64_ephemeral')",
                param="index",
            )
        return name

    async def _make(self, w: Wanted) -> tuple[bytes, bool]:
        # a making that ended while this caller's first read was in flight has stored it already
        stored = await self.storage.get(w.key)
        if stored is not None:
            return stored, True
        data = await self.storage.get(output_key(w.name))
        if data is None:
            raise GatewayError(
                ErrorCode.not_found,
                f"image {w.index} of task '{w.task_id}' is no longer stored (its retention period has passed)",
                param="index",
            )
        thumb = await thumbnail_async(data, w.size)
        try:
            await self.storage.put(w.key, thumb, "image/webp")
        except OSError as exc:  # the preview is still good: answer it, and make it again next time
            log.warning("could not keep the thumbnail %s: %s", w.key, exc)
        else:
            self.metrics.stored("thumbnail", len(thumb))
        return thumb, False
