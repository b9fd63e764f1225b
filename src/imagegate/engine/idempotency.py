"""``Idempotency-Key`` on create, for every dialect.

A key is claimed by inserting a row; the task id is bound to that row in the same transaction
that creates the task, so a later request with the key finds nothing, a claim in progress, or
the task:

- same key, same fingerprint, task bound -> the caller replays from the stored task
- same key, same fingerprint, still being created (or a sync run still going) -> 409 ``conflict``
- same key, another fingerprint -> 422 ``idempotency_mismatch``
- a request that fails before its task exists releases the claim, so it can be retried

Rows older than the TTL are pruned lazily, per key, on the next claim.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from imagegate.db.database import aware
from imagegate.db.idempotency import IdempotencyStore
from imagegate.db.tables import Task, utcnow
from imagegate.db.tasks import TaskStore
from imagegate.domain import ErrorCode, GatewayError, IdempotencyKey, TaskStatus

HEADER = "Idempotency-Key"
#: a claim that never got its task (the process died mid-create) is taken over after this long
STALE_CLAIM = timedelta(minutes=10)


@dataclass(slots=True)
class Claim:
    """Either a fresh claim to bind a new task to, or an earlier task to replay."""

    row_id: int | None = None
    replay: Task | None = None
    bound: bool = False


def _in_progress() -> GatewayError:
    return GatewayError(
        ErrorCode.conflict,
        f"a request with this '{HEADER}' is still being processed; retry after it finishes",
        param=HEADER,
    )


class Idempotency:
    def __init__(self, store: IdempotencyStore, tasks: TaskStore, ttl: float) -> None:
        self.store = store
        self.tasks = tasks
        self.ttl = ttl

    @contextlib.asynccontextmanager
    async def guard(self, key_id: str, idem: IdempotencyKey | None) -> AsyncIterator[Claim | None]:
        """``async with guard(...) as claim``: None without a key; released unless a task was bound to it."""
        if idem is None:
            yield None
            return
        claim = await self.claim(key_id, idem)
        try:
            yield claim
        finally:
            if claim.row_id is not None and not claim.bound:
                await self.store.release(claim.row_id)

    async def claim(self, key_id: str, idem: IdempotencyKey) -> Claim:
        """Claim the key for a new request, or find what an earlier request with it left."""
        await self.store.prune(key_id, utcnow() - timedelta(seconds=self.ttl))
        for _ in range(3):
            row_id = await self.store.insert(key_id, idem.key, idem.fingerprint)
            if row_id is not None:
                return Claim(row_id=row_id)
            found = await self._existing(key_id, idem)
            if found is not None:
                return found
        raise GatewayError(ErrorCode.conflict, f"a request with this '{HEADER}' is in progress", param=HEADER)

    async def _existing(self, key_id: str, idem: IdempotencyKey) -> Claim | None:
        """The earlier request's outcome; None when its stale claim was removed (claim again)."""
        row = await self.store.find(key_id, idem.key)
        if row is None:
            return None
        if row.fingerprint != idem.fingerprint:
            raise GatewayError(
                ErrorCode.idempotency_mismatch,
                f"this '{HEADER}' was used with a different request; use a new key for a new request",
                param=HEADER,
            )
        if row.task_id is None:
            if aware(row.created_at) < utcnow() - STALE_CLAIM:
                await self.store.release(row.id)
                return None
            raise _in_progress()
        task = await self.tasks.get(row.task_id)
        if task is None or (not task.is_async and not TaskStatus(task.status).terminal):
            raise _in_progress()
        return Claim(replay=task)
