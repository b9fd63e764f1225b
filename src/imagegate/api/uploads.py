"""Upload slots: reserve, PUT the bytes to a signed URL, then reference ``upload://<id>`` anywhere.

``POST /v1/uploads`` answers ``{upload_id, upload_url, expires_at}``; ``PUT upload_url`` with
the raw bytes (no API key: the URL is the credential, like a presigned S3 URL) stores them once
they decode as an image. Only the owning key can use an upload.

Dialects that create tasks before their inputs arrive (Omni API's ``awaiting_upload``) use
:func:`create_slot` with ``task_id``: when the task's last slot is PUT, the uploads become the
task's inputs (in slot order; a slot whose field is ``mask`` becomes the mask) and the task is
queued and enqueued (or failed with ``invalid_image`` when the mask does not fit the first
image). :class:`UploadSweeper` fails awaiting tasks past their deadline with
``upload_expired``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.api.auth import require_key
from imagegate.db.repo import aware, new_id
from imagegate.db.tables import ApiKey, StoredFile, Task, Upload, utcnow
from imagegate.domain import ErrorCode, GatewayError, ImageInput, TaskStatus
from imagegate.engine.runner import EXT
from imagegate.media import fetch
from imagegate.storage.signing import UrlSigner

log = logging.getLogger("imagegate.uploads")
CONTENT_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
_ID = re.compile(r"^upl_[0-9a-f]{24}$")
UPLOAD_EXPIRED = "upload_expired"


@dataclass
class Slot:
    upload: Upload
    url: str

    def view(self) -> dict[str, Any]:
        u = self.upload
        return {"object": "upload", "upload_id": u.id, "id": u.id, "upload_url": self.url, "method": "PUT",
                "expires_at": int(aware(u.expires_at).timestamp()), "max_bytes": u.max_bytes,  # type: ignore[union-attr]
                "filename": u.filename, "content_type": u.content_type, "ref": f"upload://{u.id}"}


def _mac(gw: Any, upload_id: str, expires: int) -> str:
    return UrlSigner(gw.settings.secret_key or "", 0, namespace="uploads").mac(upload_id, expires)


def upload_url(gw: Any, base: str, upload: Upload) -> str:
    expires = int(aware(upload.expires_at).timestamp())  # type: ignore[union-attr]
    return f"{base.rstrip('/')}/v1/uploads/{upload.id}?expires={expires}&sig={_mac(gw, upload.id, expires)}"


async def create_slot(gw: Any, key_id: str, base: str, *, filename: str, content_type: str,
                      size: int | None = None, task_id: str | None = None, field: str | None = None,
                      ttl: float | None = None, session: AsyncSession | None = None) -> Slot:
    """Reserve one upload slot (optionally tied to an ``awaiting_upload`` task's ``field``)."""
    limit = gw.settings.max_image_bytes
    if size is not None and size > limit:
        raise GatewayError(ErrorCode.payload_too_large, f"'size' is larger than the {limit // 2**20} MB limit",
                           param="size")
    now = utcnow()
    row = Upload(id=new_id("upl"), key_id=key_id, filename=filename, content_type=content_type,
                 max_bytes=min(size or limit, limit), task_id=task_id, field=field, created_at=now,
                 expires_at=now + timedelta(seconds=ttl or gw.settings.upload_ttl))
    if session is not None:
        session.add(row)
    else:
        async with gw.db.session.begin() as s:
            s.add(row)
    return Slot(row, upload_url(gw, base, row))


def parse_slot_request(body: Any) -> tuple[str, str, int | None]:
    if not isinstance(body, dict):
        raise GatewayError.bad("body", "request body must be a JSON object")
    filename, ctype, size = body.get("filename"), body.get("content_type"), body.get("size")
    if not isinstance(filename, str) or not 1 <= len(filename) <= 255:
        raise GatewayError.bad("filename", "'filename' is required: a string of 1 to 255 characters")
    if not isinstance(ctype, str) or ctype.lower() not in CONTENT_TYPES:
        raise GatewayError.bad("content_type", f"'content_type' must be one of {', '.join(CONTENT_TYPES)}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise GatewayError.bad("size", "'size' must be a positive integer (bytes)")
    return filename, ctype.lower(), size


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> GatewayError:
    return GatewayError(ErrorCode.payload_too_large, f"the upload is larger than its {limit} byte limit",
                        param="body")


async def receive(gw: Any, upload_id: str, expires: str | None, sig: str | None, request: Request) -> Upload:
    """Check the signed URL, read and check the bytes, store them, mark the slot filled."""
    if not _ID.match(upload_id) or not expires or not sig or not expires.isdigit() or \
            not hmac.compare_digest(_mac(gw, upload_id, int(expires)), sig):
        raise GatewayError(ErrorCode.forbidden, "the upload URL is invalid", param="sig")
    async with gw.db.session() as s:
        up = (await s.execute(select(Upload).where(Upload.id == upload_id))).scalar_one_or_none()
    if up is None or int(aware(up.expires_at).timestamp()) != int(expires):  # type: ignore[union-attr]
        raise GatewayError(ErrorCode.forbidden, "the upload URL is invalid", param="sig")
    if aware(up.expires_at) < utcnow():  # type: ignore[operator]
        raise GatewayError(ErrorCode.forbidden, "the upload URL has expired; create a new upload", param="expires")
    if up.file_id is not None:
        raise GatewayError(ErrorCode.conflict, f"upload '{upload_id}' already has its bytes", param="upload_id")
    data = await read_limited(request, min(up.max_bytes, gw.settings.max_image_bytes))
    if not data:
        raise GatewayError.bad("body", "the upload body is empty: PUT the image bytes")
    img = await asyncio.to_thread(fetch.checked, data, "body", gw.policy, "upload")
    file_id = new_id("in")
    path = f"inputs/{file_id[3:5]}/{file_id}.{EXT.get(img.mime, 'bin')}"
    await gw.storage.put(path, data, img.mime)
    role = ("mask" if up.field == "mask" else "input") if up.task_id else "upload"
    async with gw.db.session.begin() as s:
        res = await s.execute(update(Upload).where(Upload.id == up.id, Upload.file_id.is_(None))
                              .values(file_id=file_id))
        if res.rowcount != 1:
            raise GatewayError(ErrorCode.conflict, f"upload '{upload_id}' already has its bytes", param="upload_id")
        s.add(StoredFile(id=file_id, key_id=up.key_id, task_id=up.task_id, role=role, path=path, mime=img.mime,
                         bytes=len(data), width=img.width, height=img.height))
    up.file_id = file_id
    if up.task_id:
        await start_when_uploaded(gw, up.task_id)
    return up


async def start_when_uploaded(gw: Any, task_id: str) -> bool:
    """Queue an ``awaiting_upload`` task once every one of its slots is filled. True when it was queued.

    A mask whose size differs from the first image's fails the task (``invalid_image``, credits
    refunded): it could not be checked at create time, when its bytes had not arrived.
    """
    async with gw.db.session.begin() as s:
        slots = list((await s.execute(select(Upload).where(Upload.task_id == task_id)
                                      .order_by(Upload.created_at, Upload.id))).scalars())
        if not slots or any(u.file_id is None for u in slots):
            return False
        task = (await s.execute(select(Task).where(Task.id == task_id))).scalar_one_or_none()
        if task is None or task.status != TaskStatus.awaiting_upload.value:
            return False
        inputs = list(task.inputs or []) + [u.file_id for u in slots if u.file_id not in (task.inputs or [])]
        problem = await _mask_mismatch(s, inputs)
        if problem is None:
            res = await s.execute(update(Task).where(Task.id == task_id,
                                                     Task.status == TaskStatus.awaiting_upload.value)
                                  .values(status=TaskStatus.queued.value, inputs=inputs, expires_at=None))
            if res.rowcount != 1:
                return False
    if problem is not None:
        await gw.engine.expire_waiting(task_id, ErrorCode.invalid_image.value, problem)
        return False
    await gw.queue.enqueue(task_id)
    return True


async def _mask_mismatch(s: AsyncSession, inputs: list[str]) -> str | None:
    """Why the mask does not fit the first image (the order the runner reads them in), or None."""
    rows = {f.id: f for f in (await s.execute(select(StoredFile).where(StoredFile.id.in_(inputs)))).scalars()}
    files = [rows[i] for i in inputs if i in rows]
    mask = next((f for f in files if f.role == "mask"), None)
    first = next((f for f in files if f.role != "mask"), None)
    if mask is None or first is None or (mask.width, mask.height) == (first.width, first.height):
        return None
    return (f"'mask' must have the same dimensions as the first image ({first.width}x{first.height}), "
            f"got {mask.width}x{mask.height}")


async def resolve_upload(gw: Any, key: ApiKey, upload_id: str, param: str) -> ImageInput:
    """``upload://<id>`` in an image field -> the uploaded image (400 naming ``param`` otherwise)."""
    async with gw.db.session() as s:
        up = (await s.execute(select(Upload).where(Upload.id == upload_id, Upload.key_id == key.id)))\
            .scalar_one_or_none()
        f = None
        if up is not None and up.file_id is not None:
            f = (await s.execute(select(StoredFile).where(StoredFile.id == up.file_id))).scalar_one_or_none()
    if up is None:
        raise GatewayError.bad(param, f"'{param}' names upload '{upload_id}', which does not exist")
    if f is None:
        raise GatewayError.bad(param, f"'{param}' names upload '{upload_id}', whose bytes have not been PUT yet")
    data = await gw.storage.get(f.path)
    if data is None:
        raise GatewayError.bad(param, f"'{param}' names upload '{upload_id}', whose bytes are no longer stored")
    return ImageInput(data=data, mime=f.mime, width=f.width, height=f.height, source="upload")


class UploadSweeper:
    """Fails ``awaiting_upload`` tasks whose deadline passed (refund, webhook), every ``interval`` s."""

    def __init__(self, gw: Any, interval: float = 1.0) -> None:
        self.gw = gw
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="imagegate-upload-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def sweep(self) -> list[str]:
        async with self.gw.db.session() as s:
            due = list((await s.execute(select(Task.id).where(
                Task.status == TaskStatus.awaiting_upload.value, Task.expires_at <= utcnow()))).scalars())
        done = []
        for task_id in due:
            if await self.gw.engine.expire_waiting(task_id, UPLOAD_EXPIRED,
                                                   "the inputs were not uploaded before the deadline"):
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


def install(app: FastAPI, gw: Any) -> None:
    async def _resolve(key: ApiKey, upload_id: str, param: str) -> ImageInput:
        return await resolve_upload(gw, key, upload_id, param)

    gw.resolve_upload = _resolve
    gw.background.append(UploadSweeper(gw))

    @app.post("/v1/uploads")
    async def uploads_create(request: Request) -> JSONResponse:
        key = await require_key(request)
        try:
            body = await request.json()
        except ValueError as exc:
            raise GatewayError.bad("body", "request body must be JSON: {filename, content_type, size?}") from exc
        filename, ctype, size = parse_slot_request(body)
        slot = await create_slot(gw, key.id, gw.base_url(request), filename=filename, content_type=ctype, size=size)
        return JSONResponse(slot.view(), status_code=201)

    @app.put("/v1/uploads/{upload_id}")
    async def uploads_put(upload_id: str, request: Request) -> Response:
        q = request.query_params
        up = await receive(gw, upload_id, q.get("expires"), q.get("sig"), request)
        return JSONResponse({"object": "upload", "upload_id": up.id, "status": "uploaded",
                             "ref": f"upload://{up.id}"})
