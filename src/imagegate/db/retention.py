"""What retention may remove, and its removal: stored files, upload slots, settled deliveries, old
Idempotency-Key rows. Each query takes at most ``limit`` rows, oldest first, so one sweep never
holds a long transaction or loads an unbounded list, whatever the backlog.

Files are listed here and their rows deleted here, but their bytes are removed by the caller in
between (:mod:`imagegate.engine.retention`): bytes first, row second, so a sweep that stops half-way
leaves a row whose bytes may be gone (the next sweep deletes it again, which is harmless), never
bytes that no row points to any more (which nothing would ever find).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from imagegate.db.database import Database, changed
from imagegate.db.tables import Delivery, DeliveryAttempt, IdempotencyKey, StoredFile, Task, Upload
from imagegate.db.tasks import LIVE

PENDING_DELIVERY = "pending"


@dataclass(frozen=True, slots=True)
class Doomed:
    """A stored file to remove: its row id and its storage key."""

    id: str
    path: str


@dataclass(frozen=True, slots=True)
class DoomedUpload:
    """An expired upload slot, and the file its PUT stored when no task took it as an input."""

    id: str
    file: Doomed | None


class RetentionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def outputs(self, before: datetime, limit: int) -> list[Doomed]:
        """Output images stored before ``before`` (outputs exist only for tasks that succeeded)."""
        q = (
            select(StoredFile.id, StoredFile.path)
            .where(StoredFile.role == "output", StoredFile.created_at < before)
            .order_by(StoredFile.created_at)
            .limit(limit)
        )
        async with self.db.session() as s:
            return [Doomed(r.id, r.path) for r in (await s.execute(q)).all()]

    async def inputs(self, before: datetime, limit: int) -> list[Doomed]:
        """Input images and masks of tasks that ended before ``before``; a live task's are never listed,
        however old (it may still run, or run again after a restart)."""
        q = (
            select(StoredFile.id, StoredFile.path)
            .join(Task, Task.id == StoredFile.task_id)
            .where(
                StoredFile.role.in_(("input", "mask")),
                Task.status.not_in(LIVE),
                Task.completed_at.is_not(None),
                Task.completed_at < before,
            )
            .order_by(Task.completed_at)
            .limit(limit)
        )
        async with self.db.session() as s:
            return [Doomed(r.id, r.path) for r in (await s.execute(q)).all()]

    async def uploads(self, before: datetime, limit: int) -> list[DoomedUpload]:
        """Upload slots that expired before ``before`` and belong to no live task, with the file of a
        free-standing upload (a task's slot file is one of its inputs: :meth:`inputs` handles it)."""
        live = select(Task.id).where(Task.status.in_(LIVE))
        q = (
            select(Upload.id, StoredFile.id.label("file_id"), StoredFile.path, StoredFile.role)
            .outerjoin(StoredFile, StoredFile.id == Upload.file_id)
            .where(Upload.expires_at < before, Upload.task_id.is_(None) | Upload.task_id.not_in(live))
            .order_by(Upload.expires_at)
            .limit(limit)
        )
        async with self.db.session() as s:
            rows = (await s.execute(q)).all()
        return [
            DoomedUpload(r.id, Doomed(r.file_id, r.path) if r.file_id is not None and r.role == "upload" else None)
            for r in rows
        ]

    async def delete_files(self, ids: Sequence[str]) -> int:
        async with self.db.session.begin() as s:
            return await changed(s, delete(StoredFile).where(StoredFile.id.in_(ids)))

    async def delete_uploads(self, ids: Sequence[str], file_ids: Sequence[str]) -> int:
        async with self.db.session.begin() as s:
            if file_ids:
                await s.execute(delete(StoredFile).where(StoredFile.id.in_(file_ids)))
            return await changed(s, delete(Upload).where(Upload.id.in_(ids)))

    async def prune_deliveries(self, before: datetime, limit: int) -> int:
        """Settled deliveries (delivered, failed, stopped) created before ``before``, with their attempts.
        A pending one is still being sent and stays, whatever its age."""
        q = (
            select(Delivery.id)
            .where(Delivery.status != PENDING_DELIVERY, Delivery.created_at < before)
            .order_by(Delivery.created_at)
            .limit(limit)
        )
        async with self.db.session.begin() as s:
            ids = list((await s.execute(q)).scalars())
            if not ids:
                return 0
            await s.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids)))
            return await changed(s, delete(Delivery).where(Delivery.id.in_(ids)))

    async def prune_idempotency(self, before: datetime, limit: int) -> int:
        """Idempotency-Key rows past their time to live (the claim path also prunes, but only per key
        and only when that key is used again)."""
        q = select(IdempotencyKey.id).where(IdempotencyKey.created_at < before).order_by(IdempotencyKey.id).limit(limit)
        async with self.db.session.begin() as s:
            ids = list((await s.execute(q)).scalars())
            if not ids:
                return 0
            return await changed(s, delete(IdempotencyKey).where(IdempotencyKey.id.in_(ids)))
