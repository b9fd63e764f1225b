"""The database: one async engine and its sessions, on SQLite (embedded) or PostgreSQL.

SQL lives with the rows it touches: :mod:`imagegate.db.tasks` (tasks, their inputs and outputs,
the webhook outbox written with a terminal state), :mod:`imagegate.db.keys` (keys and credits),
:mod:`imagegate.db.uploads`, :mod:`imagegate.db.idempotency` and :mod:`imagegate.db.deliveries`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from imagegate.db import migrate

MICROS = 1_000_000
#: the database is overloaded (pool exhausted, SQLite busy): callers answer 503 and the client retries
BUSY = (sa_exc.TimeoutError, sa_exc.OperationalError)


def disk_full(exc: BaseException) -> bool:
    """Whether a database error is a full disk: SQLite's SQLITE_FULL, PostgreSQL's ``disk_full`` (53100).
    Not an overload, and a retry will not help: callers say so (``storage_full``)."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlite_errorcode", None) == 13 or getattr(orig, "sqlstate", None) == "53100"


def to_micros(usd: float) -> int:
    return int(round(usd * MICROS))


def to_usd(micros: int | None) -> float | None:
    return None if micros is None else round(micros / MICROS, 6)


def aware(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def maybe_aware(dt: datetime | None) -> datetime | None:
    return None if dt is None else aware(dt)


_PG_PREFIXES = ("postgresql+psycopg://", "postgresql+asyncpg://", "postgresql://", "postgres://")


def async_url(url: str) -> str:
    """The SQLAlchemy URL, with psycopg 3 for PostgreSQL whatever the user wrote: one driver serves
    SQLAlchemy and the job engine, so a job is deferred on the very connection that writes its task."""
    for prefix in _PG_PREFIXES:
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def libpq_url(url: str) -> str:
    """The same database as a plain ``postgresql://`` conninfo (for psycopg itself)."""
    for prefix in _PG_PREFIXES:
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    raise ValueError("not a PostgreSQL URL")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def seq_now() -> int:
    return time.time_ns() // 1000


async def changed(s: AsyncSession, stmt: Executable) -> int:
    """Run an UPDATE or DELETE and say how many rows it changed (conditional writes decide races)."""
    result = cast("CursorResult[Any]", await s.execute(stmt))
    return result.rowcount


async def lock(s: AsyncSession, name: str) -> None:
    """Serialize the writers of ``name`` until the transaction ends (PostgreSQL; SQLite writes one at a time)."""
    if s.get_bind().dialect.name == "postgresql":
        await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(name.encode())})


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
    def __init__(self, url: str, *, pool_size: int | None = None, max_overflow: int | None = None) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.is_postgres = self.url.startswith("postgresql")
        kw: dict[str, Any]
        if self.is_sqlite:
            kw = {"connect_args": {"timeout": 30}, "pool_size": pool_size or 8, "max_overflow": 24, "pool_timeout": 60}
        else:
            kw = {"pool_size": pool_size or 10, "pool_pre_ping": True, "pool_timeout": 60}
            kw["max_overflow"] = 20 if max_overflow is None else max_overflow
        self.engine: AsyncEngine = create_async_engine(self.url, **kw)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session = Sessions(async_sessionmaker(self.engine, expire_on_commit=False), serialize=self.is_sqlite)

    async def migrate(self) -> None:
        """Our tables (Alembic), and on PostgreSQL the job engine's."""
        await migrate.upgrade(self.engine)
        await migrate.ensure_job_schema(self.engine)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
