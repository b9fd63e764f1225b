"""Run Alembic migrations programmatically on an async engine's connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import psycopg
from alembic import command
from alembic.config import Config
from procrastinate.schema import SchemaManager
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


async def upgrade(engine: AsyncEngine) -> None:
    def _up(sync_conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # processes starting together upgrade one after the other
            await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7120300)")
        await conn.run_sync(_up)


async def ensure_job_schema(engine: AsyncEngine) -> bool:
    """Create the job engine's tables on PostgreSQL once; True when they were created.

    procrastinate ships its schema as SQL; a later procrastinate release that changes it ships
    migration files too (``procrastinate schema --migrations-path``), applied by hand before an upgrade.
    """
    async with engine.begin() as conn:
        if conn.dialect.name != "postgresql":
            return False
        # a lock so that processes starting together do not create the schema twice
        await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7120301)")
        if (await conn.exec_driver_sql("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar():
            return False
        raw = await conn.get_raw_connection()
        pg = cast("psycopg.AsyncConnection[Any]", raw.driver_connection)  # without parameters psycopg reads no %
        await pg.execute(SchemaManager.get_schema())
        return True
