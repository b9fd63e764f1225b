"""Database access: engine set-up, keys and credits. Task queries live in :mod:`imagegate.db.tasks`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from datetime import datetime, timezone
from typing import Any, AsyncIterator

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from imagegate.db import migrate
from imagegate.db.tables import ApiKey, utcnow

MICROS = 1_000_000


def to_micros(usd: float) -> int:
    return int(round(usd * MICROS))


def to_usd(micros: int | None) -> float | None:
    return None if micros is None else round(micros / MICROS, 6)


def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def seq_now() -> int:
    return time.time_ns() // 1000


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Sessions:
    """``db.session()`` opens a session; ``db.session.begin()`` a transaction.

    On SQLite, write transactions queue on an asyncio lock first: SQLite has one writer, and
    its busy handler sleep-polls, so hundreds of writers contending inside SQLite turn
    milliseconds into seconds. The lock is re-entrant per asyncio task, so a transaction
    opened while the same task holds one does not deadlock on the lock.
    """

    def __init__(self, maker: async_sessionmaker[AsyncSession], serialize: bool) -> None:
        self.maker = maker
        self._lock = asyncio.Lock() if serialize else None
        self._owner: asyncio.Task[Any] | None = None

    def __call__(self) -> AsyncSession:
        return self.maker()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        me = asyncio.current_task()
        if self._lock is None or self._owner is me:
            async with self.maker.begin() as s:
                yield s
            return
        async with self._lock:
            self._owner = me
            try:
                async with self.maker.begin() as s:
                    yield s
            finally:
                self._owner = None


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kw: dict = {}
        if self.is_sqlite:
            kw.update(connect_args={"timeout": 30}, pool_size=8, max_overflow=24, pool_timeout=60)
        else:
            kw.update(pool_size=10, max_overflow=30, pool_pre_ping=True, pool_timeout=60)
        self.engine: AsyncEngine = create_async_engine(url, **kw)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session = Sessions(async_sessionmaker(self.engine, expire_on_commit=False), serialize=self.is_sqlite)

    async def migrate(self) -> None:
        await migrate.upgrade(self.engine)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def close(self) -> None:
        await self.engine.dispose()

    # -- keys ------------------------------------------------------------------------------
    async def create_key(self, name: str, credits_usd: float | None) -> tuple[ApiKey, str]:
        secret = "ig-" + secrets.token_urlsafe(32)
        row = ApiKey(
            id=new_id("key"), name=name, prefix=secret[:10], key_hash=hash_key(secret),
            credits_micros=None if credits_usd is None else to_micros(credits_usd),
            webhook_secret="whsec_" + _b64(secrets.token_bytes(32)), created_at=utcnow(),
        )
        async with self.session.begin() as s:
            s.add(row)
        return row, secret

    async def key_by_secret(self, secret: str) -> ApiKey | None:
        async with self.session() as s:
            return (await s.execute(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))).scalar_one_or_none()

    async def list_keys(self) -> list[ApiKey]:
        async with self.session() as s:
            return list((await s.execute(select(ApiKey).order_by(ApiKey.created_at))).scalars())

    async def find_key(self, ident: str) -> ApiKey | None:
        """By id, name or displayed prefix."""
        async with self.session() as s:
            rows = (await s.execute(select(ApiKey).where(
                (ApiKey.id == ident) | (ApiKey.name == ident) | (ApiKey.prefix == ident)))).scalars().all()
        return rows[0] if len(rows) == 1 else None

    async def revoke_key(self, key_id: str) -> bool:
        async with self.session.begin() as s:
            res = await s.execute(update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                                  .values(revoked_at=utcnow()))
        return res.rowcount == 1

    async def add_credits(self, key_id: str, usd: float) -> None:
        async with self.session.begin() as s:
            await s.execute(update(ApiKey).where(ApiKey.id == key_id, ApiKey.credits_micros.is_not(None))
                            .values(credits_micros=ApiKey.credits_micros + to_micros(usd)))

    async def rotate_webhook_secret(self, key_id: str) -> str:
        new = "whsec_" + _b64(secrets.token_bytes(32))
        async with self.session.begin() as s:
            await s.execute(update(ApiKey).where(ApiKey.id == key_id).values(webhook_secret=new))
        return new

    # -- credits ---------------------------------------------------------------------------
    async def reserve(self, s: AsyncSession, key_id: str, micros: int) -> bool:
        """Take ``micros`` from the balance in one conditional UPDATE: never below zero, race-free."""
        if micros <= 0:
            return True
        res = await s.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .where(ApiKey.credits_micros.is_(None) | (ApiKey.credits_micros >= micros))
            .values(credits_micros=ApiKey.credits_micros - micros)
        )
        return res.rowcount == 1

    async def refund(self, s: AsyncSession, key_id: str, micros: int) -> None:
        if micros > 0:
            await s.execute(update(ApiKey).where(ApiKey.id == key_id, ApiKey.credits_micros.is_not(None))
                            .values(credits_micros=ApiKey.credits_micros + micros))


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
