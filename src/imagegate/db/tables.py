"""SQLAlchemy models. The same definitions run on SQLite and PostgreSQL; Alembic owns the schema.

Money is stored as integer micro-dollars (1 USD = 1_000_000) so balances never drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(20))  # shown in listings; never enough to authenticate
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the secret
    credits_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None: unlimited
    webhook_secret: Mapped[str] = mapped_column(String(80))
    #: the secret a rotation replaced: it signs too (a second signature) for a grace period after the rotation
    previous_webhook_secret: Mapped[str | None] = mapped_column(String(80), nullable=True)
    webhook_secret_rotated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    rate_limit_rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)  # requests per minute
    max_concurrent_tasks: Mapped[int | None] = mapped_column(Integer, nullable=True)  # queued + running
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)  # may call /admin/v1/
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)  # 401 from then on
    #: fnmatch patterns of the catalog model ids the key may use (``openai/*``); None: every model
    allowed_models: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    #: spend (settled plus held) per calendar month (UTC) the key may reach; None: no budget
    monthly_budget_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Process(Base):
    """A running imagegate process; a task it owns is taken over only once its heartbeat stops."""

    __tablename__ = "processes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))  # serve / api / worker
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(nullable=True)


class RateEvent(Base):
    """One accepted request of a key with a rate limit: counted over the last minute by every API process."""

    __tablename__ = "rate_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column()

    __table_args__ = (Index("ix_rate_events_key_at", "key_id", "at"),)


class BreakerState(Base):
    """A deployment's circuit as the whole cluster sees it (the embedded default keeps it in memory)."""

    __tablename__ = "breakers"

    deployment_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive, across processes
    opened_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeploymentSlot(Base):
    """One of a deployment's ``max_concurrency`` slots, held by one task in one process."""

    __tablename__ = "deployment_slots"

    deployment_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))  # the process holding it: freed when that process is gone
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)  # creation order, for queue position
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    model: Mapped[str] = mapped_column(String(120))
    mode: Mapped[str] = mapped_column(String(20))
    dialect: Mapped[str] = mapped_column(String(20), default="openai")
    status: Mapped[str] = mapped_column(String(20), index=True)
    is_async: Mapped[bool] = mapped_column(Boolean, default=False)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs: Mapped[list[Any]] = mapped_column(JSON, default=list)  # stored input file ids
    deployment_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(60), nullable=True)
    upstream: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # submit intent, then handle
    owner: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)  # the process running it
    job_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # its job in the job engine, if any
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[int | None] = mapped_column(Integer, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    reserved_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)  # awaiting_upload deadline

    __table_args__ = (Index("ix_tasks_key_seq", "key_id", "seq"), Index("ix_tasks_created_at", "created_at"))


class StoredFile(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str | None] = mapped_column(String(40), index=True, nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(40), index=True, nullable=True)
    role: Mapped[str] = mapped_column(String(10))  # output / input / mask / upload
    path: Mapped[str] = mapped_column(Text)  # storage key
    mime: Mapped[str] = mapped_column(String(40))
    bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Upload(Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(80))
    max_bytes: Mapped[int] = mapped_column(BigInteger)
    file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)  # set once PUT
    task_id: Mapped[str | None] = mapped_column(String(40), index=True, nullable=True)
    field: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class Delivery(Base):
    """One webhook to deliver for one task; its attempts are :class:`DeliveryAttempt` rows."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # also the webhook-id header
    task_id: Mapped[str] = mapped_column(String(40), index=True)
    key_id: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), index=True)  # pending / delivered / failed / stopped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(40))
    idem_key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str | None] = mapped_column(String(40), nullable=True)  # None while being created
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("key_id", "idem_key", name="uq_idem_key"),)
