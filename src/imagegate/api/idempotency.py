"""``Idempotency-Key`` for create requests, shared by every dialect.

A key is claimed by inserting a row; the unique ``(key_id, idem_key)`` constraint makes two
concurrent claims safe on SQLite and PostgreSQL alike (the loser sees an IntegrityError and
reads the winner's row). The task id is bound to the row in the same transaction that
creates the task, so a replay always finds either nothing, a claim in progress, or the task.

- same key, same fingerprint, task bound  -> the caller replays from the stored task
- same key, same fingerprint, still being created (or a sync run still going) -> 409 ``conflict``
- same key, another fingerprint           -> 422 ``idempotency_mismatch``
- a request that fails before its task exists releases the claim, so it can be retried

Rows older than ``settings.idempotency_ttl`` are pruned lazily, per key, on the next claim.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, AsyncIterator, Awaitable, Callable

from fastapi import Request
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from imagegate.db.repo import aware
from imagegate.db.tables import ApiKey, IdempotencyKey, Task, utcnow
from imagegate.domain import ErrorCode, GatewayError, TaskStatus

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_LEN = 255
#: a claim that never got its task (the process died mid-create) is taken over after this long
STALE_CLAIM = timedelta(minutes=10)


@dataclass
class Claim:
    """Either a fresh claim to bind a new task to, or an earlier task to replay."""

    row_id: int | None = None
    replay: Task | None = None
    bound: bool = False


async def fingerprint(request: Request, fields: dict[str, Any], files: dict[str, list[Any]]) -> str:
    """sha256 of method, path, query and the canonical body (file parts by their sha256)."""
    canon_files: dict[str, list[str]] = {}
    for name, values in sorted(files.items()):
        out = []
        for v in values:
            if isinstance(v, UploadFile):
                data = await v.read()
                await v.seek(0)
                out.append("sha256:" + hashlib.sha256(data).hexdigest())
            else:
                out.append(str(v))
        canon_files[name] = out
    canon = {
        "method": request.method.upper(), "path": request.url.path,
        "query": sorted(request.query_params.multi_items()),
        "fields": {k: v if not isinstance(v, UploadFile) else "file" for k, v in fields.items()},
        "files": canon_files,
    }
    raw = json.dumps(canon, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def header_value(request: Request) -> str | None:
    value = request.headers.get(HEADER)
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_LEN or not value.isascii() or not value.isprintable():
        raise GatewayError.bad(HEADER, f"'{HEADER}' must be 1 to {MAX_LEN} printable ASCII characters")
    return value


async def claim(gw: Any, key: ApiKey, idem: str, fp: str) -> Claim:
    """Claim ``idem`` for a new request, or find what an earlier request with it left."""
    cutoff = utcnow() - timedelta(seconds=gw.settings.idempotency_ttl)
    async with gw.db.session.begin() as s:
        await s.execute(delete(IdempotencyKey).where(IdempotencyKey.key_id == key.id,
                                                     IdempotencyKey.created_at < cutoff))
    for _ in range(3):
        try:
            async with gw.db.session.begin() as s:
                row = IdempotencyKey(key_id=key.id, idem_key=idem, fingerprint=fp, created_at=utcnow())
                s.add(row)
                await s.flush()
                return Claim(row_id=row.id)
        except IntegrityError:
            pass
        found = await _existing(gw, key, idem, fp)
        if found is not None:
            return found
    raise GatewayError(ErrorCode.conflict, f"a request with this '{HEADER}' is in progress", param=HEADER)


async def _existing(gw: Any, key: ApiKey, idem: str, fp: str) -> Claim | None:
    """The earlier request's outcome; None when its stale claim was removed (claim again)."""
    async with gw.db.session() as s:
        row = (await s.execute(select(IdempotencyKey).where(
            IdempotencyKey.key_id == key.id, IdempotencyKey.idem_key == idem))).scalar_one_or_none()
    if row is None:
        return None
    if row.fingerprint != fp:
        raise GatewayError(ErrorCode.idempotency_mismatch, f"this '{HEADER}' was used with a different request; "
                           "use a new key for a new request", param=HEADER)
    if row.task_id is None:
        if aware(row.created_at) < utcnow() - STALE_CLAIM:  # type: ignore[operator]
            async with gw.db.session.begin() as s:
                await s.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row.id,
                                                             IdempotencyKey.task_id.is_(None)))
            return None
        raise _in_progress()
    task = await gw.engine.get(row.task_id)
    if task is None:
        raise _in_progress()
    if not task.is_async and not TaskStatus(task.status).terminal:
        raise _in_progress()
    return Claim(replay=task)


def _in_progress() -> GatewayError:
    return GatewayError(ErrorCode.conflict, f"a request with this '{HEADER}' is still being processed; "
                        "retry after it finishes", param=HEADER)


async def release(gw: Any, c: Claim) -> None:
    if c.row_id is not None and not c.bound:
        async with gw.db.session.begin() as s:
            await s.execute(delete(IdempotencyKey).where(IdempotencyKey.id == c.row_id,
                                                         IdempotencyKey.task_id.is_(None)))


@contextlib.asynccontextmanager
async def guard(gw: Any, request: Request, key: ApiKey, fields: dict[str, Any],
                files: dict[str, list[Any]]) -> AsyncIterator[Claim | None]:
    """``async with guard(...) as claim``: None without the header; released if the body raises unbound."""
    idem = header_value(request)
    if idem is None:
        yield None
        return
    c = await claim(gw, key, idem, await fingerprint(request, fields, files))
    try:
        yield c
    except BaseException:
        await release(gw, c)
        raise
    else:
        await release(gw, c)  # the request ended without creating a task (nothing to replay)


async def create_bound(gw: Any, c: Claim | None, make: Callable[[AsyncSession | None], Awaitable[Task]]) -> Task:
    """Create the task with ``make(session)`` and bind it to the claim in one transaction."""
    if c is None or c.row_id is None:
        return await make(None)
    async with gw.db.session.begin() as s:
        task = await make(s)
        await s.execute(update(IdempotencyKey).where(IdempotencyKey.id == c.row_id).values(task_id=task.id))
    c.bound = True
    return task
