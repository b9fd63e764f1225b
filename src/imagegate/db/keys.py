"""API keys and their credits. Keys are looked up by the SHA-256 of the secret; the secret is never stored.

Credits are integer micro-dollars moved by conditional UPDATEs, so concurrent requests can
never take a balance below zero and a reservation is refunded in the same transaction as
the task's terminal state.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.database import Database, changed, new_id, to_micros
from imagegate.db.tables import ApiKey, utcnow


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def reserve(s: AsyncSession, key_id: str, micros: int) -> bool:
    """Take ``micros`` from the balance in one conditional UPDATE: never below zero, race-free."""
    if micros <= 0:
        return True
    stmt = (
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .where(ApiKey.credits_micros.is_(None) | (ApiKey.credits_micros >= micros))
        .values(credits_micros=ApiKey.credits_micros - micros)
    )
    return await changed(s, stmt) == 1


async def refund(s: AsyncSession, key_id: str, micros: int) -> None:
    if micros > 0:
        await s.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.credits_micros.is_not(None))
            .values(credits_micros=ApiKey.credits_micros + micros)
        )


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        name: str,
        credits_usd: float | None,
        *,
        rate_limit_rpm: int | None = None,
        max_concurrent_tasks: int | None = None,
    ) -> tuple[ApiKey, str]:
        secret = "ig-" + secrets.token_urlsafe(32)
        row = ApiKey(
            id=new_id("key"),
            name=name,
            prefix=secret[:10],
            key_hash=hash_key(secret),
            credits_micros=None if credits_usd is None else to_micros(credits_usd),
            webhook_secret=_webhook_secret(),
            created_at=utcnow(),
            rate_limit_rpm=rate_limit_rpm,
            max_concurrent_tasks=max_concurrent_tasks,
        )
        async with self.db.session.begin() as s:
            s.add(row)
        return row, secret

    async def by_secret(self, secret: str) -> ApiKey | None:
        async with self.db.session() as s:
            q = select(ApiKey).where(ApiKey.key_hash == hash_key(secret))
            return (await s.execute(q)).scalar_one_or_none()

    async def all(self) -> list[ApiKey]:
        async with self.db.session() as s:
            return list((await s.execute(select(ApiKey).order_by(ApiKey.created_at))).scalars())

    async def find(self, ident: str) -> ApiKey | None:
        """By id, name or displayed prefix; None unless exactly one key matches."""
        async with self.db.session() as s:
            q = select(ApiKey).where((ApiKey.id == ident) | (ApiKey.name == ident) | (ApiKey.prefix == ident))
            rows = (await s.execute(q)).scalars().all()
        return rows[0] if len(rows) == 1 else None

    async def revoke(self, key_id: str) -> bool:
        async with self.db.session.begin() as s:
            stmt = update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
            return await changed(s, stmt) == 1

    async def set_limits(self, key_id: str, *, rate_limit_rpm: int | None, max_concurrent_tasks: int | None) -> None:
        """Set (or, with None, lift) a key's limits; every API process applies them from its next request."""
        values = {"rate_limit_rpm": rate_limit_rpm, "max_concurrent_tasks": max_concurrent_tasks}
        async with self.db.session.begin() as s:
            await s.execute(update(ApiKey).where(ApiKey.id == key_id).values(**values))

    async def rotate_webhook_secret(self, key_id: str) -> str:
        """A new secret; the one it replaces is kept, with the time, so deliveries can carry a signature
        by each until the grace period ends and receivers can switch over without missing a webhook.
        A second rotation within the grace period drops the oldest secret at once."""
        new = _webhook_secret()
        # both SET clauses read the row as it was: the previous secret is the one being replaced
        stmt = (
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(
                previous_webhook_secret=ApiKey.webhook_secret, webhook_secret=new, webhook_secret_rotated_at=utcnow()
            )
        )
        async with self.db.session.begin() as s:
            await s.execute(stmt)
        return new
