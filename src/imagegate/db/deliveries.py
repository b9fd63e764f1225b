"""Webhook deliveries (the outbox rows written with a task's terminal state) and their attempts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from imagegate.db.database import Database, changed
from imagegate.db.tables import ApiKey, Delivery, DeliveryAttempt, Task

PENDING, DELIVERED, FAILED, STOPPED = "pending", "delivered", "failed", "stopped"


class DeliveryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim_due(self, now: datetime, lease: float, limit: int = 32) -> list[str]:
        """Take due deliveries by pushing ``next_at`` forward by a lease: two senders never send the
        same attempt at once, and a crashed sender's claim simply runs out."""
        async with self.db.session() as s:
            q = (
                select(Delivery.id)
                .where(Delivery.status == PENDING, Delivery.next_at <= now)
                .order_by(Delivery.next_at)
                .limit(limit)
            )
            due = list((await s.execute(q)).scalars())
        claimed = []
        for delivery_id in due:
            async with self.db.session.begin() as s:
                stmt = (
                    update(Delivery)
                    .where(Delivery.id == delivery_id, Delivery.status == PENDING, Delivery.next_at <= now)
                    .values(next_at=now + timedelta(seconds=lease))
                )
                if await changed(s, stmt) == 1:
                    claimed.append(delivery_id)
        return claimed

    async def load(self, delivery_id: str) -> tuple[Delivery | None, Task | None, ApiKey | None]:
        async with self.db.session() as s:
            d = (await s.execute(select(Delivery).where(Delivery.id == delivery_id))).scalar_one_or_none()
            if d is None:
                return None, None, None
            task = (await s.execute(select(Task).where(Task.id == d.task_id))).scalar_one_or_none()
            key = (await s.execute(select(ApiKey).where(ApiKey.id == d.key_id))).scalar_one_or_none()
            return d, task, key

    async def record(self, d: Delivery, attempt: DeliveryAttempt, values: dict[str, Any]) -> None:
        async with self.db.session.begin() as s:
            s.add(attempt)
            await s.execute(update(Delivery).where(Delivery.id == d.id, Delivery.status == PENDING).values(**values))

    async def of_task(self, task_id: str) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
        async with self.db.session() as s:
            q = select(Delivery).where(Delivery.task_id == task_id).order_by(Delivery.created_at)
            rows = list((await s.execute(q)).scalars())
            aq = (
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id.in_([d.id for d in rows]))
                .order_by(DeliveryAttempt.id)
            )
            attempts = list((await s.execute(aq)).scalars())
        return [(d, [a for a in attempts if a.delivery_id == d.id]) for d in rows]

    async def redeliver(self, task_id: str, delivery_id: str, now: datetime) -> Delivery | None:
        """Send a finished delivery (delivered, failed or stopped) once more, now; None when the task has
        no such delivery. One still pending is left alone: its sender may hold it this very moment."""
        stmt = (
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.task_id == task_id, Delivery.status != PENDING)
            .values(status=PENDING, next_at=now)
        )
        async with self.db.session.begin() as s:
            await s.execute(stmt)
            q = select(Delivery).where(Delivery.id == delivery_id, Delivery.task_id == task_id)
            return (await s.execute(q)).scalar_one_or_none()
