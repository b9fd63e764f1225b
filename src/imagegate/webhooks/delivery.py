"""Webhook outbox and delivery: one durable Delivery row per finished task, sent until a 2xx.

The row is written by an engine terminal hook inside the transaction that finishes the task,
so a task can never finish without its webhook being scheduled. A background service claims
due rows (a conditional UPDATE that pushes ``next_at`` forward by a lease, so two processes
never send the same attempt at once and a crashed sender's claim simply runs out), renders
the payload fresh at send time (signed image URLs must not have expired), signs it with the
key's ``whsec_`` secret (Standard Webhooks) and records every attempt.

Dialects choose the body: :func:`register_payload` maps ``task.dialect`` to a renderer; the
signature headers and the retry promise are the same for all of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.repo import aware, new_id
from imagegate.db.tables import ApiKey, Delivery, DeliveryAttempt, Task, utcnow
from imagegate.domain import GatewayError
from imagegate.media.fetch import check_url
from imagegate.webhooks import signing

log = logging.getLogger("imagegate.webhooks")

PENDING, DELIVERED, FAILED, STOPPED = "pending", "delivered", "failed", "stopped"
MAX_GAP = 3600.0  # the longest wait between two attempts (before scaling)
MAX_RETRY_AFTER = 3600.0


@dataclass
class Payload:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # extra headers (the signature ones are added)


#: (gw, task, base_url) -> the body a dialect's clients expect
PayloadRenderer = Callable[[Any, Task, str], Awaitable[Payload]]
RENDERERS: dict[str, PayloadRenderer] = {}


def register_payload(dialect: str, renderer: PayloadRenderer) -> None:
    """Let a dialect send its own webhook body for the tasks it created."""
    RENDERERS[dialect] = renderer


async def task_view_payload(gw: Any, task: Task, base: str) -> Payload:
    """The default body: the task object exactly as GET /v1/tasks/{id} shows it."""
    from imagegate.api.render import task_view

    view = await task_view(gw, task, base)
    return Payload(json.dumps(view, separators=(",", ":")).encode())


def retry_gap(failures: int, scale: float = 1.0) -> float:
    """Seconds to wait after the ``failures``-th failed attempt: 1, 2, 4, 8, ... capped at an hour."""
    return min(2.0 ** max(0, failures - 1), MAX_GAP) * scale


def base_url_of(gw: Any, task: Task) -> str:
    """Where the task's links should point: the configured public URL, else the host it was created on."""
    if gw.settings.public_base_url:
        return gw.settings.public_base_url.rstrip("/")
    extra = (task.request or {}).get("extra") or {}
    return str(extra.get("base_url") or "http://localhost").rstrip("/")


async def write_outbox(s: AsyncSession, task: Task) -> None:
    """Terminal hook: schedule the task's webhook in the same transaction as its final state."""
    if task.callback_url:
        s.add(Delivery(id=new_id("msg"), task_id=task.id, key_id=task.key_id, url=task.callback_url, payload="",
                       status=PENDING, attempts=0, next_at=utcnow(), created_at=utcnow()))


class DeliveryService:
    """Sends due deliveries; started and stopped with the app (``gw.background``)."""

    def __init__(self, gw: Any, *, idle: float = 0.25, concurrency: int = 16) -> None:
        self.gw = gw
        self.idle = idle
        self._sem = asyncio.Semaphore(concurrency)
        self._loop_task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.client: httpx.AsyncClient | None = None

    @property
    def lease(self) -> float:
        return float(self.gw.settings.webhook_timeout) + 2.0

    async def start(self) -> None:
        self.client = httpx.AsyncClient(trust_env=False, follow_redirects=False,
                                        headers={"user-agent": "imagegate-webhooks/0.1"})
        self._loop_task = asyncio.create_task(self._loop(), name="imagegate-webhooks")

    async def stop(self) -> None:
        tasks = [t for t in [self._loop_task, *self._sending] if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                claimed = await self.claim_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # a DB hiccup must not end delivery for the life of the process
                log.exception("could not claim due webhook deliveries")
                claimed = []
            for delivery_id in claimed:
                t = asyncio.create_task(self._send_guarded(delivery_id))
                self._sending.add(t)
                t.add_done_callback(self._sending.discard)
            await asyncio.sleep(0.01 if claimed else self.idle)

    async def claim_due(self, limit: int = 32) -> list[str]:
        now = utcnow()
        async with self.gw.db.session() as s:
            due = list((await s.execute(select(Delivery.id).where(Delivery.status == PENDING, Delivery.next_at <= now)
                                        .order_by(Delivery.next_at).limit(limit))).scalars())
        claimed = []
        for delivery_id in due:
            async with self.gw.db.session.begin() as s:
                res = await s.execute(update(Delivery).where(
                    Delivery.id == delivery_id, Delivery.status == PENDING, Delivery.next_at <= now,
                ).values(next_at=now + timedelta(seconds=self.lease)))
            if res.rowcount == 1:
                claimed.append(delivery_id)
        return claimed

    async def _send_guarded(self, delivery_id: str) -> None:
        async with self._sem:
            try:
                await self.send(delivery_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # the lease runs out and the attempt is tried again
                log.exception("webhook delivery %s crashed", delivery_id)

    async def send(self, delivery_id: str) -> None:
        """One attempt: render, sign, POST, record."""
        async with self.gw.db.session() as s:
            d = (await s.execute(select(Delivery).where(Delivery.id == delivery_id))).scalar_one_or_none()
            task = (await s.execute(select(Task).where(Task.id == d.task_id))).scalar_one_or_none() if d else None
            key = (await s.execute(select(ApiKey).where(ApiKey.id == d.key_id))).scalar_one_or_none() if d else None
        if d is None or d.status != PENDING:
            return
        if task is None or key is None:
            await self._record(d, None, "the task or its key no longer exists", 0, None, b"", final=STOPPED)
            return
        started = time.monotonic()
        code, error, retry_after, body = await self._post(d, task, key)
        await self._record(d, code, error, int((time.monotonic() - started) * 1000), retry_after, body)

    async def _post(self, d: Delivery, task: Task, key: ApiKey) -> tuple[int | None, str | None, float | None, bytes]:
        timeout = float(self.gw.settings.webhook_timeout)
        body = b""
        try:
            await check_url(d.url, self.gw.policy, "callback_url")  # the policy holds at send time too
            renderer = RENDERERS.get(task.dialect, task_view_payload)
            payload = await renderer(self.gw, task, base_url_of(self.gw, task))
            body = payload.body
            headers = {"content-type": "application/json", **payload.headers,
                       **signing.headers(key.webhook_secret, d.id, body)}
            assert self.client is not None
            async with self.client.stream("POST", d.url, content=body, headers=headers, timeout=timeout) as resp:
                return resp.status_code, None, _retry_after(resp.headers.get("retry-after")), body
        except GatewayError as exc:
            return None, exc.message, None, body
        except httpx.TimeoutException:
            return None, f"timed out after {timeout:g}s", None, body
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500], None, body

    async def _record(self, d: Delivery, code: int | None, error: str | None, duration_ms: int,
                      retry_after: float | None, body: bytes, final: str | None = None) -> None:
        now = utcnow()
        failures = d.attempts + 1
        values: dict[str, Any] = {"attempts": failures}
        if body:
            values["payload"] = body.decode("utf-8", "replace")
        if code is not None and 200 <= code < 300:
            values.update(status=DELIVERED, delivered_at=now)
        elif final is not None or code == 410:
            values["status"] = final or STOPPED  # 410 Gone: the receiver asked us to stop
        elif now >= aware(d.created_at) + timedelta(seconds=self.gw.settings.webhook_retry_window):  # type: ignore[operator]
            values["status"] = FAILED
        else:
            gap = retry_gap(failures, self.gw.settings.webhook_backoff_scale)
            values["next_at"] = now + timedelta(seconds=max(gap, retry_after or 0.0))
        if code is not None and not 200 <= code < 300 and error is None:
            error = f"HTTP {code}"
        async with self.gw.db.session.begin() as s:
            s.add(DeliveryAttempt(delivery_id=d.id, at=now, status_code=code, error=error, duration_ms=duration_ms))
            await s.execute(update(Delivery).where(Delivery.id == d.id, Delivery.status == PENDING).values(**values))


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return min(float(value.strip()), MAX_RETRY_AFTER)
    return None


async def deliveries_of(gw: Any, task_id: str) -> list[dict[str, Any]]:
    """The task's deliveries with every attempt, for GET /v1/tasks/{id}/deliveries."""
    async with gw.db.session() as s:
        rows = list((await s.execute(select(Delivery).where(Delivery.task_id == task_id)
                                     .order_by(Delivery.created_at))).scalars())
        attempts = list((await s.execute(select(DeliveryAttempt).where(
            DeliveryAttempt.delivery_id.in_([d.id for d in rows])).order_by(DeliveryAttempt.id))).scalars())
    out = []
    for d in rows:
        out.append({
            "id": d.id, "object": "webhook.delivery", "url": d.url, "status": d.status,
            "attempt_count": d.attempts, "created_at": _ts(d.created_at), "delivered_at": _ts(d.delivered_at),
            "next_attempt_at": _ts(d.next_at) if d.status == PENDING else None,
            "attempts": [{"at": _ts(a.at), "status_code": a.status_code, "error": a.error,
                          "duration_ms": a.duration_ms} for a in attempts if a.delivery_id == d.id],
        })
    return out


def _ts(dt: datetime | None) -> float | None:
    return round(aware(dt).timestamp(), 3) if dt is not None else None  # type: ignore[union-attr]
