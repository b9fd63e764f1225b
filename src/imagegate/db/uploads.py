"""Upload slots: rows reserved before the bytes arrive, filled once by a PUT to a signed URL."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.database import Database, changed
from imagegate.db.tables import StoredFile, Upload


class UploadStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, row: Upload, s: AsyncSession | None = None) -> None:
        """Reserve a slot, in the caller's transaction when it has one (a task and its slots commit together)."""
        if s is not None:
            s.add(row)
            return
        async with self.db.session.begin() as own:
            own.add(row)

    async def get(self, upload_id: str) -> Upload | None:
        async with self.db.session() as s:
            return (await s.execute(select(Upload).where(Upload.id == upload_id))).scalar_one_or_none()

    async def of_task(self, task_id: str) -> list[Upload]:
        """A task's slots in the order its create answer listed them."""
        async with self.db.session() as s:
            q = select(Upload).where(Upload.task_id == task_id).order_by(Upload.created_at, Upload.id)
            return list((await s.execute(q)).scalars())

    async def fill(self, upload: Upload, file: StoredFile) -> bool:
        """Attach the stored bytes to the slot, once: False when another PUT got there first."""
        async with self.db.session.begin() as s:
            stmt = update(Upload).where(Upload.id == upload.id, Upload.file_id.is_(None)).values(file_id=file.id)
            if await changed(s, stmt) != 1:
                return False
            s.add(file)
        upload.file_id = file.id
        return True

    async def owned_file(self, key_id: str, upload_id: str) -> tuple[Upload | None, StoredFile | None]:
        """The key's upload and, once PUT, its stored file."""
        async with self.db.session() as s:
            q = select(Upload).where(Upload.id == upload_id, Upload.key_id == key_id)
            up = (await s.execute(q)).scalar_one_or_none()
            if up is None or up.file_id is None:
                return up, None
            f = (await s.execute(select(StoredFile).where(StoredFile.id == up.file_id))).scalar_one_or_none()
            return up, f
