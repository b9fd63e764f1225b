"""Upload slots: reserve one, PUT the bytes to its signed URL, then use ``upload://<id>`` anywhere.

The URL is the credential for the PUT (like a presigned S3 URL); only the owning key can use
the upload afterwards. A slot may belong to a task created before its inputs arrive
(``awaiting_upload``): when the task's last slot is filled, the uploads become its inputs (in
slot order; a ``mask`` slot becomes the mask) and the task is queued, or failed with
``invalid_image`` when the mask does not fit the first image. :class:`UploadSweeper` fails
waiting tasks past their deadline.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta

from imagegate.db.database import aware, new_id
from imagegate.db.tables import StoredFile, Upload, utcnow
from imagegate.db.tasks import TaskStore
from imagegate.db.uploads import UploadStore
from imagegate.domain import ErrorCode, GatewayError, UploadSlot
from imagegate.engine.queue import TaskQueue
from imagegate.engine.tasks import TaskService
from imagegate.media import fetch
from imagegate.storage.base import Storage
from imagegate.storage.layout import input_key
from imagegate.storage.signing import UrlSigner

log = logging.getLogger("imagegate.uploads")
CONTENT_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
_ID = re.compile(r"^upl_[0-9a-f]{24}$")
#: reads the request body, refusing more than the given number of bytes
BodyReader = Callable[[int], Awaitable[bytes]]


class UploadService:
    def __init__(
        self,
        store: UploadStore,
        tasks: TaskService,
        queue: TaskQueue,
        storage: Storage,
        policy: fetch.NetworkPolicy,
        signer: UrlSigner,
        *,
        ttl: float,
    ) -> None:
        self.store = store
        self.tasks = tasks
        self.queue = queue
        self.storage = storage
        self.policy = policy
        self.signer = signer  # the "uploads" namespace: a files signature never opens a slot
        self.ttl = ttl

    def new_row(
        self,
        key_id: str,
        *,
        filename: str,
        content_type: str,
        size: int | None = None,
        field: str | None = None,
        ttl: float | None = None,
    ) -> Upload:
        limit = self.policy.max_bytes
        if size is not None and size > limit:
            raise GatewayError(
                ErrorCode.payload_too_large, f"'size' is larger than the {limit // 2**20} MB limit", param="size"
            )
        now = utcnow()
        return Upload(
            id=new_id("upl"),
            key_id=key_id,
            filename=filename,
            content_type=content_type,
            max_bytes=min(size or limit, limit),
            field=field,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl or self.ttl),
        )

    def slot(self, row: Upload, base_url: str) -> UploadSlot:
        expires = int(aware(row.expires_at).timestamp())
        url = f"{base_url.rstrip('/')}/v1/uploads/{row.id}?expires={expires}&sig={self.signer.mac(row.id, expires)}"
        return UploadSlot(
            id=row.id,
            url=url,
            expires_at=aware(row.expires_at),
            max_bytes=row.max_bytes,
            filename=row.filename,
            content_type=row.content_type,
            field=row.field,
        )

    async def create(
        self, key_id: str, base_url: str, *, filename: str, content_type: str, size: int | None
    ) -> UploadSlot:
        row = self.new_row(key_id, filename=filename, content_type=content_type, size=size)
        await self.store.add(row)
        return self.slot(row, base_url)

    async def slots_of(self, task_id: str, base_url: str) -> tuple[UploadSlot, ...]:
        """A task's slots as its create answer listed them (same order, same signed URLs)."""
        return tuple(self.slot(u, base_url) for u in await self.store.of_task(task_id))

    async def receive(self, upload_id: str, expires: str | None, sig: str | None, read: BodyReader) -> Upload:
        """Check the signed URL, read and check the bytes, store them, fill the slot."""
        up = await self._open(upload_id, expires, sig)
        data = await read(min(up.max_bytes, self.policy.max_bytes))
        if not data:
            raise GatewayError.bad("body", "the upload body is empty: PUT the image bytes")
        img = await asyncio.to_thread(fetch.checked, data, "body", self.policy, "upload")
        file_id = new_id("in")
        path = input_key(file_id, img.mime)
        await self.tasks.outputs.put("upload", path, data, img.mime)
        role = ("mask" if up.field == "mask" else "input") if up.task_id else "upload"
        row = StoredFile(
            id=file_id,
            key_id=up.key_id,
            task_id=up.task_id,
            role=role,
            path=path,
            mime=img.mime,
            bytes=len(data),
            width=img.width,
            height=img.height,
        )
        if not await self.store.fill(up, row):
            raise GatewayError(ErrorCode.conflict, f"upload '{upload_id}' already has its bytes", param="upload_id")
        if up.task_id:
            await self.start_when_uploaded(up.task_id)
        return up

    async def _open(self, upload_id: str, expires: str | None, sig: str | None) -> Upload:
        if not _ID.match(upload_id) or not self.signer.matches(upload_id, expires, sig):
            raise GatewayError(ErrorCode.forbidden, "the upload URL is invalid", param="sig")
        up = await self.store.get(upload_id)
        if up is None or int(aware(up.expires_at).timestamp()) != int(expires or 0):
            raise GatewayError(ErrorCode.forbidden, "the upload URL is invalid", param="sig")
        if aware(up.expires_at) < utcnow():
            raise GatewayError(ErrorCode.forbidden, "the upload URL has expired; create a new upload", param="expires")
        if up.file_id is not None:
            raise GatewayError(ErrorCode.conflict, f"upload '{upload_id}' already has its bytes", param="upload_id")
        return up

    async def start_when_uploaded(self, task_id: str) -> bool:
        """Queue an ``awaiting_upload`` task once every one of its slots is filled. True when it was queued.

        A mask whose size differs from the first image's fails the task (``invalid_image``, credits
        refunded): it could not be checked at create time, when its bytes had not arrived.
        """
        found = await self.tasks.store.queue_when_uploaded(task_id, self.queue.defer)
        if found is None:
            return False
        task, problem = found
        if problem is not None:
            await self.tasks.store.fail(task, ErrorCode.invalid_image.value, problem, from_status="awaiting_upload")
            return False
        if self.queue.defer is None:
            await self.queue.enqueue(task_id)
        return True


class UploadSweeper:
    """Fails ``awaiting_upload`` tasks whose deadline passed (refund, webhook), every ``interval`` s."""

    def __init__(self, tasks: TaskService, store: TaskStore, interval: float = 1.0) -> None:
        self.tasks = tasks
        self.store = store
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="imagegate-upload-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def sweep(self) -> list[str]:
        done = []
        for task_id in await self.store.awaiting_due(utcnow()):
            task = await self.store.get(task_id)
            if task is not None and await self.tasks.expire(task):
                done.append(task_id)
        return done

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("upload sweep failed")
            await asyncio.sleep(self.interval)
