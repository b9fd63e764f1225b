"""Webhook delivery: one durable outbox row per finished task, sent until a 2xx.

The row is written in the transaction that finishes the task (see :mod:`imagegate.db.tasks`),
so a task can never finish without its webhook being scheduled. This service claims due rows
under a lease, renders the body fresh at send time (signed image URLs must not have expired)
with the body of the dialect that created the task, signs it with the key's ``whsec_`` secret
(Standard Webhooks; for a grace period after a rotation, with the replaced one too), POSTs it and
records every attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from imagegate.db.database import aware, maybe_aware
from imagegate.db.deliveries import DELIVERED, FAILED, PENDING, STOPPED, DeliveryStore
from imagegate.db.tables import ApiKey, Delivery, DeliveryAttempt, Task, utcnow
from imagegate.domain import GatewayError, TaskView
from imagegate.engine.views import Views
from imagegate.media.fetch import NetworkPolicy, check_url
from imagegate.observe import Metrics
from imagegate.webhooks import signing

log = logging.getLogger("imagegate.webhooks")

MAX_GAP = 3600.0  # the longest wait between two attempts (before scaling)
MAX_RETRY_AFTER = 3600.0
#: a dialect's webhook body for a finished task
WebhookBody = Callable[[TaskView], bytes]


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    timeout: float  # seconds per attempt
    retry_window: float  # keep re-sending for this long after the task ended
    backoff_scale: float = 1.0  # multiplies the gaps between attempts (tests shrink them)
    public_base_url: str | None = None
    #: after a rotation the replaced secret signs too, for this long (``IMAGEGATE_WEBHOOK_SECRET_GRACE``)
    secret_grace: float = 86400.0


@dataclass(slots=True)
class Attempt:
    code: int | None
    error: str | None
    retry_after: float | None
    body: bytes
    ms: int = 0


def retry_gap(failures: int, scale: float = 1.0) -> float:
    """Seconds to wait after the ``failures``-th failed attempt: 1, 2, 4, 8, ... capped at an hour."""
    return min(2.0 ** max(0, failures - 1), MAX_GAP) * scale


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return min(float(value.strip()), MAX_RETRY_AFTER)
    return None


class DeliveryService:
    """Sends due deliveries while the process runs (``start`` / ``stop``)."""

    def __init__(
        self,
        store: DeliveryStore,
        views: Views,
        bodies: Mapping[str, WebhookBody],
        default_body: WebhookBody,
        network: NetworkPolicy,
        policy: DeliveryPolicy,
        *,
        idle: float = 0.25,
        concurrency: int = 16,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.views = views
        self.bodies = bodies
        self.default_body = default_body
        self.network = network
        self.policy = policy
        self.idle = idle
        self.metrics = metrics or Metrics()  # attempts by outcome: delivered, retry, failed, stopped
        self._sem = asyncio.Semaphore(concurrency)
        self._loop_task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.client: httpx.AsyncClient | None = None

    @property
    def lease(self) -> float:
        return self.policy.timeout + 2.0

    async def start(self) -> None:
        self.client = httpx.AsyncClient(
            trust_env=False, follow_redirects=False, headers={"user-agent": "imagegate-webhooks/0.1"}
        )
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
                claimed = await self.store.claim_due(utcnow(), self.lease)
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
        d, task, key = await self.store.load(delivery_id)
        if d is None or d.status != PENDING:
            return
        if task is None or key is None:
            await self._record(d, Attempt(None, "the task or its key no longer exists", None, b""), final=STOPPED)
            return
        started = time.monotonic()
        attempt = await self._post(d, task, key)
        attempt.ms = int((time.monotonic() - started) * 1000)
        await self._record(d, attempt)

    def base_url_of(self, task: Task) -> str:
        """Where the task's links should point: the configured public URL, else the host it was created on."""
        if self.policy.public_base_url:
            return self.policy.public_base_url.rstrip("/")
        extra = (task.request or {}).get("extra") or {}
        return str(extra.get("base_url") or "http://localhost").rstrip("/")

    def secrets_of(self, key: ApiKey) -> list[str]:
        """Signed by the previous secret too while the grace period lasts, so a receiver that has not yet
        switched to the new secret keeps accepting webhooks instead of dropping them as forged."""
        rotated = maybe_aware(key.webhook_secret_rotated_at)
        return signing.signing_secrets(
            key.webhook_secret, key.previous_webhook_secret, rotated, self.policy.secret_grace, utcnow()
        )

    async def _post(self, d: Delivery, task: Task, key: ApiKey) -> Attempt:
        timeout = self.policy.timeout
        body = b""
        try:
            # the policy holds at send time too, and the POST goes to the address it checked (no rebinding)
            target = await check_url(d.url, self.network, "callback_url")
            view = await self.views.view(task, self.base_url_of(task))
            body = self.bodies.get(task.dialect, self.default_body)(view)
            headers = {"content-type": "application/json", **signing.headers(self.secrets_of(key), d.id, body)}
            assert self.client is not None, "start() opens the client"
            request = target.build(self.client, "POST", content=body, headers=headers, timeout=timeout)
            resp = await self.client.send(request, stream=True)
            try:
                return Attempt(resp.status_code, None, _retry_after(resp.headers.get("retry-after")), body)
            finally:
                await resp.aclose()
        except GatewayError as exc:
            return Attempt(None, exc.message, None, body)
        except httpx.TimeoutException:
            return Attempt(None, f"timed out after {timeout:g}s", None, body)
        except httpx.HTTPError as exc:
            return Attempt(None, f"{type(exc).__name__}: {exc}"[:500], None, body)

    async def _record(self, d: Delivery, a: Attempt, final: str | None = None) -> None:
        now = utcnow()
        failures = d.attempts + 1
        values: dict[str, Any] = {"attempts": failures}
        if a.body:
            values["payload"] = a.body.decode("utf-8", "replace")
        ok = a.code is not None and 200 <= a.code < 300
        if ok:
            values.update(status=DELIVERED, delivered_at=now)
        elif final is not None or a.code == 410:
            values["status"] = final or STOPPED  # 410 Gone: the receiver asked us to stop
        elif now >= (window_end := aware(d.created_at) + timedelta(seconds=self.policy.retry_window)):
            values["status"] = FAILED
        else:
            gap = retry_gap(failures, self.policy.backoff_scale)
            # the last retry falls at the window's end, so a dead endpoint is marked failed on time
            values["next_at"] = min(now + timedelta(seconds=max(gap, a.retry_after or 0.0)), window_end)
        error = a.error if ok or a.code is None or a.error is not None else f"HTTP {a.code}"
        attempt = DeliveryAttempt(delivery_id=d.id, at=now, status_code=a.code, error=error, duration_ms=a.ms)
        await self.store.record(d, attempt, values)
        self.metrics.webhook(str(values.get("status", "retry")))
