"""API keys and their credits. Keys are looked up by the SHA-256 of the secret; the secret is never stored.

Credits are integer micro-dollars moved by conditional UPDATEs, so concurrent requests can
never take a balance below zero and a reservation is refunded in the same transaction as
the task's terminal state.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.database import Database, changed, new_id, to_micros
from imagegate.db.tables import ApiKey, utcnow
from imagegate.domain import GatewayError

#: what an administrator may set on a key in one update (column names)
SETTABLE = frozenset(
    {
        "name",
        "credits_micros",
        "is_admin",
        "expires_at",
        "allowed_models",
        "monthly_budget_micros",
        "rate_limit_rpm",
        "max_concurrent_tasks",
    }
)
MAX_BALANCE = 10**15  # micro-dollars (a billion USD): a top-up past it is refused, never a column overflow


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _secret() -> str:
    return "ig-" + secrets.token_urlsafe(32)


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
        is_admin: bool = False,
        settings: Mapping[str, Any] | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (shown once; only its hash is kept). ``settings``: more of :data:`SETTABLE`."""
        secret = _secret()
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
            is_admin=is_admin,
        )
        for name, value in _settable(settings or {}).items():
            setattr(row, name, value)
        async with self.db.session.begin() as s:
            s.add(row)
        return row, secret

    async def get(self, key_id: str) -> ApiKey | None:
        async with self.db.session() as s:
            return (await s.execute(select(ApiKey).where(ApiKey.id == key_id))).scalar_one_or_none()

    async def update(self, key_id: str, values: Mapping[str, Any], add_micros: int = 0) -> ApiKey | None:
        """Set ``values`` (columns of :data:`SETTABLE`) and top the balance up by ``add_micros``, in one
        transaction; the top-up is one conditional UPDATE, so requests reserving meanwhile lose nothing."""
        async with self.db.session.begin() as s:
            if (await s.execute(select(ApiKey.id).where(ApiKey.id == key_id))).scalar_one_or_none() is None:
                return None
            if values:
                await s.execute(update(ApiKey).where(ApiKey.id == key_id).values(**_settable(values)))
            if add_micros:
                await _top_up(s, key_id, add_micros)
        return await self.get(key_id)

    async def rotate(self, key_id: str) -> tuple[ApiKey, str] | None:
        """A new secret for a live key: the same id, so its tasks, spend and settings stay; the old secret
        is refused from the next request on."""
        secret = _secret()
        stmt = (
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(key_hash=hash_key(secret), prefix=secret[:10])
        )
        async with self.db.session.begin() as s:
            if await changed(s, stmt) != 1:
                return None
        row = await self.get(key_id)
        return (row, secret) if row is not None else None

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


def _settable(values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(values) - SETTABLE
    if unknown:
        raise ValueError(f"not settable on a key: {sorted(unknown)}")
    return dict(values)


async def _top_up(s: AsyncSession, key_id: str, micros: int) -> None:
    stmt = (
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.credits_micros.is_not(None))
        .where(ApiKey.credits_micros <= MAX_BALANCE - micros)
        .values(credits_micros=ApiKey.credits_micros + micros)
    )
    if await changed(s, stmt) == 1:
        return
    row = (await s.execute(select(ApiKey.credits_micros).where(ApiKey.id == key_id))).scalar_one_or_none()
    if row is None:
        raise GatewayError.bad("add_credits", "this key has unlimited credits: set 'credits' to give it a balance")
    raise GatewayError.bad("add_credits", f"the balance would pass {MAX_BALANCE // 10**6:,} USD")


def is_expired(key: ApiKey, now: datetime) -> bool:
    exp = key.expires_at
    return exp is not None and (exp if exp.tzinfo else exp.replace(tzinfo=now.tzinfo)) <= now
