"""Test parts for webhook secret rotation: move a key's last rotation into the past, so a test can see
what a receiver gets once the grace period is over without waiting it out."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import update

from imagegate.db.database import Database
from imagegate.db.keys import hash_key
from imagegate.db.tables import ApiKey, utcnow
from tests.conftest import ServerProc


async def age_rotation(db: Database, key: str, seconds: float) -> None:
    """Pretend the webhook secret of ``key`` (its id or its secret) was rotated ``seconds`` ago."""
    stmt = (
        update(ApiKey)
        .where((ApiKey.id == key) | (ApiKey.key_hash == hash_key(key)))
        .values(webhook_secret_rotated_at=utcnow() - timedelta(seconds=seconds))
    )
    async with db.session.begin() as s:
        await s.execute(stmt)


def age_rotation_of_server(server: ServerProc, key: str, seconds: float) -> None:
    """The same, in the database of a running ``imagegate serve`` (SQLite, or PostgreSQL in the cluster profile)."""
    url = server.env.get("IMAGEGATE_DATABASE_URL") or f"sqlite+aiosqlite:///{server.data_dir / 'imagegate.db'}"

    async def go() -> None:
        db = Database(url)
        try:
            await age_rotation(db, key, seconds)
        finally:
            await db.close()

    asyncio.run(go())
