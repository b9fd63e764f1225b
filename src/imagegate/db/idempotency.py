"""Idempotency-Key rows. A unique ``(key_id, idem_key)`` makes two concurrent claims safe on SQLite
and PostgreSQL alike: the loser's INSERT fails and it reads the winner's row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.database import Database
from imagegate.db.tables import IdempotencyKey, utcnow


class IdempotencyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def prune(self, key_id: str, before: datetime) -> None:
        async with self.db.session.begin() as s:
            stmt = delete(IdempotencyKey).where(IdempotencyKey.key_id == key_id, IdempotencyKey.created_at < before)
            await s.execute(stmt)

    async def insert(self, key_id: str, idem: str, fingerprint: str) -> int | None:
        """The new claim's row id, or None when the key is already taken."""
        try:
            async with self.db.session.begin() as s:
                row = IdempotencyKey(key_id=key_id, idem_key=idem, fingerprint=fingerprint, created_at=utcnow())
                s.add(row)
                await s.flush()
                return row.id
        except IntegrityError:
            return None

    async def find(self, key_id: str, idem: str) -> IdempotencyKey | None:
        async with self.db.session() as s:
            q = select(IdempotencyKey).where(IdempotencyKey.key_id == key_id, IdempotencyKey.idem_key == idem)
            return (await s.execute(q)).scalar_one_or_none()

    async def release(self, row_id: int) -> None:
        """Drop a claim that never got its task, so the key can be used again."""
        async with self.db.session.begin() as s:
            stmt = delete(IdempotencyKey).where(IdempotencyKey.id == row_id, IdempotencyKey.task_id.is_(None))
            await s.execute(stmt)

    @staticmethod
    async def bind(s: AsyncSession, row_id: int, task_id: str) -> None:
        """Tie the claim to its task, in the transaction that creates the task."""
        await s.execute(update(IdempotencyKey).where(IdempotencyKey.id == row_id).values(task_id=task_id))
