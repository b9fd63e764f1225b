"""Limits every process must see alike: per-key request rates, deployment circuits, deployment slots.

On SQLite (one process) the engine keeps circuits and slots in memory and only rate events are
stored; on PostgreSQL these tables are where API processes and workers meet. Counting under a
per-key (or per-deployment) advisory lock makes "at most N" exact across processes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from imagegate.db.database import Database, lock
from imagegate.db.processes import ProcessStore
from imagegate.db.tables import BreakerState, DeploymentSlot, Process, RateEvent, utcnow

WINDOW = timedelta(minutes=1)


class LimitStore:
    def __init__(self, db: Database, processes: ProcessStore) -> None:
        self.db = db
        self.processes = processes

    async def take_rate(self, key_id: str, per_minute: int, now: datetime | None = None) -> float | None:
        """Count one request of the key if fewer than ``per_minute`` were accepted in the last minute;
        else the seconds until one more would be (nothing counted)."""
        now = now or utcnow()
        async with self.db.session.begin() as s:
            await lock(s, f"rate:{key_id}")
            await s.execute(delete(RateEvent).where(RateEvent.key_id == key_id, RateEvent.at <= now - WINDOW))
            q = select(func.count(), func.min(RateEvent.at)).where(RateEvent.key_id == key_id)
            count, oldest = (await s.execute(q)).one()
            if count >= per_minute:
                return max(1.0, ((oldest.replace(tzinfo=now.tzinfo) + WINDOW) - now).total_seconds())
            s.add(RateEvent(key_id=key_id, at=now))
        return None

    # -- circuits --------------------------------------------------------------------------
    async def breaker_failure(self, deployment_id: str, threshold: int) -> None:
        """One more consecutive failure of the deployment; it opens at ``threshold`` (a failed probe re-opens)."""
        now = utcnow()
        async with self.db.session.begin() as s:
            await lock(s, f"breaker:{deployment_id}")
            row = await s.get(BreakerState, deployment_id)
            if row is None:
                row = BreakerState(deployment_id=deployment_id, failures=0)
                s.add(row)
            row.failures += 1
            if row.failures >= threshold or row.opened_at is not None:
                row.opened_at = now
            row.updated_at = now

    async def breaker_success(self, deployment_id: str) -> None:
        async with self.db.session.begin() as s:
            stmt = (
                update(BreakerState)
                .where(BreakerState.deployment_id == deployment_id)
                .values(failures=0, opened_at=None, updated_at=utcnow())
            )
            await s.execute(stmt)

    async def breakers(self) -> list[BreakerState]:
        async with self.db.session() as s:
            return list((await s.execute(select(BreakerState))).scalars())

    # -- slots -----------------------------------------------------------------------------
    async def take_slot(self, deployment_id: str, size: int, owner: str) -> int | None:
        """One free slot of the deployment for ``owner``, or None when all ``size`` are held by live processes."""
        alive = select(Process.id).where(Process.heartbeat_at > self.processes.cutoff(), Process.stopped_at.is_(None))
        async with self.db.session.begin() as s:
            await lock(s, f"slots:{deployment_id}")
            stale = delete(DeploymentSlot).where(
                DeploymentSlot.deployment_id == deployment_id, DeploymentSlot.owner.not_in(alive)
            )
            await s.execute(stale)
            held = select(DeploymentSlot.slot).where(DeploymentSlot.deployment_id == deployment_id)
            taken = set((await s.execute(held)).scalars())
            free = next((i for i in range(size) if i not in taken), None)
            if free is not None:
                s.add(DeploymentSlot(deployment_id=deployment_id, slot=free, owner=owner, acquired_at=utcnow()))
            return free

    async def give_slot(self, deployment_id: str, slot: int) -> None:
        async with self.db.session.begin() as s:
            stmt = delete(DeploymentSlot).where(
                DeploymentSlot.deployment_id == deployment_id, DeploymentSlot.slot == slot
            )
            await s.execute(stmt)
