"""Limits: per-key request rates, and per-deployment circuits and concurrency caps.

The embedded default keeps circuits and caps in memory. On the cluster profile they are
shared through PostgreSQL, so BFL's cap of 24 is 24 for the whole cluster, and a deployment one
process saw failing is skipped by all: caps take a slot row per call; circuits stay in memory
on the request path, publish their failures, and adopt their peers' state every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from math import ceil
from typing import Any, Protocol

from imagegate.catalog import Deployment
from imagegate.db.limits import LimitStore
from imagegate.db.tables import utcnow
from imagegate.domain import Caller, ErrorCode, GatewayError

log = logging.getLogger("imagegate.limits")


@dataclass
class Breaker:
    """Closed -> open after ``threshold`` consecutive failures; half-open after ``cooldown``: one probe."""

    threshold: int = 5
    cooldown: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False

    def state(self, now: float | None = None) -> str:
        if self.opened_at is None:
            return "closed"
        if (now or time.monotonic()) - self.opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        st = self.state()
        if st == "closed":
            return True
        if st == "half_open" and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        self.failures, self.opened_at, self.probing = 0, None, False

    def failure(self) -> None:
        self.failures += 1
        self.probing = False
        if self.failures >= self.threshold or self.opened_at is not None:
            self.opened_at = time.monotonic()


class BreakerBoard:
    """The circuits of every deployment this process calls; shared when given a store."""

    def __init__(self, threshold: int = 5, cooldown: float = 30.0, store: LimitStore | None = None,
                 sync_every: float = 1.0) -> None:  # fmt: skip
        self.threshold = threshold
        self.cooldown = cooldown
        self.store = store
        self.sync_every = sync_every
        self.breakers: dict[str, Breaker] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._sync: asyncio.Task[None] | None = None

    def get(self, deployment_id: str) -> Breaker:
        if deployment_id not in self.breakers:
            self.breakers[deployment_id] = Breaker(self.threshold, self.cooldown)
        return self.breakers[deployment_id]

    def states(self) -> list[tuple[str, str]]:
        """(deployment id, circuit state) of every deployment called so far: the metrics read it at scrape."""
        now = time.monotonic()
        return [(dep, b.state(now)) for dep, b in list(self.breakers.items())]

    def state_of(self, deployment_id: str) -> tuple[str, int]:
        """(circuit state, consecutive failures); a deployment never called is closed (nothing is created)."""
        b = self.breakers.get(deployment_id)
        return ("closed", 0) if b is None else (b.state(), b.failures)

    def failure(self, deployment_id: str) -> None:
        self.get(deployment_id).failure()
        if self.store is not None:
            self._publish(self.store.breaker_failure(deployment_id, self.threshold))

    def success(self, deployment_id: str) -> None:
        b = self.get(deployment_id)
        had_failures = b.failures > 0 or b.opened_at is not None
        b.success()
        if self.store is not None and had_failures:  # the usual success writes nothing
            self._publish(self.store.breaker_success(deployment_id))

    def _publish(self, write: Coroutine[Any, Any, None]) -> None:
        """Share a change without holding up the request that saw it."""

        async def run() -> None:
            try:
                await write
            except Exception:
                log.warning("could not share a circuit change", exc_info=True)

        task = asyncio.create_task(run())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def start(self) -> None:
        if self.store is not None:
            self._sync = asyncio.create_task(self._adopt_loop(), name="imagegate-breaker-sync")

    async def stop(self) -> None:
        tasks = [t for t in [self._sync, *self._pending] if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _adopt_loop(self) -> None:
        assert self.store is not None
        while True:
            try:
                await self.adopt()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not read the shared circuits", exc_info=True)
            await asyncio.sleep(self.sync_every)

    async def adopt(self) -> None:
        """Take the cluster's view: open what a peer opened, close what a peer's probe closed."""
        assert self.store is not None
        now_wall, now_mono = utcnow(), time.monotonic()
        for row in await self.store.breakers():
            b = self.get(row.deployment_id)
            if row.opened_at is not None:
                opened = now_mono - (now_wall - row.opened_at.replace(tzinfo=now_wall.tzinfo)).total_seconds()
                if b.opened_at is None or opened > b.opened_at:
                    b.failures, b.opened_at = max(b.failures, row.failures), opened
            elif row.failures == 0 and b.opened_at is not None and not b.probing:
                b.success()


class Gates(Protocol):
    """At most ``max_concurrency`` calls at once to a deployment (none: no cap)."""

    def hold(self, dep: Deployment) -> contextlib.AbstractAsyncContextManager[None]: ...


class LocalGates:
    def __init__(self) -> None:
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    @contextlib.asynccontextmanager
    async def hold(self, dep: Deployment) -> AsyncIterator[None]:
        if not dep.max_concurrency:
            yield
            return
        sem = self._semaphores.setdefault(dep.id, asyncio.Semaphore(dep.max_concurrency))
        async with sem:
            yield


class SharedGates:
    """Slots in PostgreSQL, held by this process (a slot of a process that is gone is free again)."""

    def __init__(self, store: LimitStore, owner: Callable[[], str], max_wait: float = 0.5) -> None:
        self.store = store
        self.owner = owner
        self.max_wait = max_wait

    @contextlib.asynccontextmanager
    async def hold(self, dep: Deployment) -> AsyncIterator[None]:
        if not dep.max_concurrency:
            yield
            return
        wait = 0.02
        while (slot := await self.store.take_slot(dep.id, dep.max_concurrency, self.owner())) is None:
            await asyncio.sleep(wait)
            wait = min(wait * 1.5, self.max_wait)
        try:
            yield
        finally:
            await asyncio.shield(self.store.give_slot(dep.id, slot))


class KeyLimits:
    """A key's requests per minute, counted where every API process sees them (before any credit is held)."""

    def __init__(self, store: LimitStore) -> None:
        self.store = store

    async def admit(self, caller: Caller) -> None:
        if not caller.rate_limit_rpm:
            return
        retry = await self.store.take_rate(caller.id, caller.rate_limit_rpm)
        if retry is not None:
            raise GatewayError(
                ErrorCode.rate_limited,
                f"this key is limited to {caller.rate_limit_rpm} requests per minute; retry in {max(1, ceil(retry))} s",
                retry_after=retry,
            )
