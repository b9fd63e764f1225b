"""Retention: remove what the operator chose not to keep, in bounded batches, while the process runs.

Images are the bulk of what a gateway stores and the part clients' data lives in, so each kind has
its own period (``IMAGEGATE_RETAIN_OUTPUTS``, ``_INPUTS``, ``_DELIVERIES``; None keeps that kind
forever) and Idempotency-Key rows go once their time to live has passed. Task rows stay: they are
the caller's history and the ledger of what was charged; a removed output's link then answers 404.

Every worker (and the embedded process) sweeps; two sweepers racing over the same rows is harmless
(deleting a missing file or row is no error). A sweep takes at most ``batch`` rows per query and at
most ``max_batches`` queries per kind, so a large backlog drains over several sweeps instead of one
long transaction or one unbounded listing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from imagegate.db.retention import Doomed, RetentionStore
from imagegate.db.tables import utcnow
from imagegate.settings import Settings
from imagegate.storage.base import Storage
from imagegate.storage.layout import derived_keys

log = logging.getLogger("imagegate.retention")
DELETES_AT_ONCE = 16  # storage deletes in flight (an object store is a round trip per key)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Seconds each kind is kept (None: forever), and the size of one sweep's bites."""

    outputs: float | None = None
    inputs: float | None = None
    deliveries: float | None = None
    idempotency: float | None = None
    batch: int = 500
    max_batches: int = 20

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            outputs=settings.retain_outputs,
            inputs=settings.retain_inputs,
            deliveries=settings.retain_deliveries,
            idempotency=settings.idempotency_ttl,
        )


@dataclass(slots=True)
class Swept:
    """What one sweep removed, by kind (rows; for files, rows whose bytes are gone too)."""

    outputs: int = 0
    inputs: int = 0
    uploads: int = 0
    deliveries: int = 0
    idempotency: int = 0
    failed_deletes: list[str] = field(default_factory=list)  # storage keys kept for the next sweep


class RetentionSweeper:
    """Sweeps every ``interval`` seconds while the process runs (``start`` / ``stop``)."""

    def __init__(
        self, store: RetentionStore, storage: Storage, policy: RetentionPolicy, interval: float = 300.0
    ) -> None:
        self.store = store
        self.storage = storage
        self.policy = policy
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="imagegate-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def sweep(self, now: datetime | None = None) -> Swept:
        """One pass over every kind whose period is set; ``now`` lets a test look from the future."""
        now = now or utcnow()
        p, out = self.policy, Swept()
        if p.outputs is not None:
            out.outputs = await self._files(self.store.outputs, _before(now, p.outputs), out)
        if p.inputs is not None:
            before = _before(now, p.inputs)
            out.inputs = await self._files(self.store.inputs, before, out)
            out.uploads = await self._uploads(before, out)
        if p.deliveries is not None:
            before = _before(now, p.deliveries)
            out.deliveries = await self._rows(lambda: self.store.prune_deliveries(before, p.batch))
        if p.idempotency is not None:
            before = _before(now, p.idempotency)
            out.idempotency = await self._rows(lambda: self.store.prune_idempotency(before, p.batch))
        return out

    async def _files(
        self, listing: Callable[[datetime, int], Awaitable[list[Doomed]]], before: datetime, out: Swept
    ) -> int:
        removed = 0
        for _ in range(self.policy.max_batches):
            batch = await listing(before, self.policy.batch)
            gone = await self._delete_bytes(batch, out)
            if gone:
                removed += await self.store.delete_files([d.id for d in gone])
            if len(batch) < self.policy.batch or len(gone) < len(batch):
                break  # drained, or the store is failing: the rest waits for the next sweep
        return removed

    async def _uploads(self, before: datetime, out: Swept) -> int:
        removed = 0
        for _ in range(self.policy.max_batches):
            batch = await self.store.uploads(before, self.policy.batch)
            files = [u.file for u in batch if u.file is not None]
            gone = {d.id for d in await self._delete_bytes(files, out)}
            done = [u for u in batch if u.file is None or u.file.id in gone]
            if done:
                removed += await self.store.delete_uploads([u.id for u in done], sorted(gone))
            if len(batch) < self.policy.batch or len(done) < len(batch):
                break
        return removed

    async def _rows(self, prune: Callable[[], Awaitable[int]]) -> int:
        removed = 0
        for _ in range(self.policy.max_batches):
            n = await prune()
            removed += n
            if n < self.policy.batch:
                break
        return removed

    async def _delete_bytes(self, files: Sequence[Doomed], out: Swept) -> list[Doomed]:
        """Remove the files' bytes and what was made from them (an output's thumbnails); the ones whose
        delete failed are left out (their rows stay, so the next sweep tries every key again)."""
        gate = asyncio.Semaphore(DELETES_AT_ONCE)

        async def one(f: Doomed) -> Doomed | None:
            async with gate:
                try:
                    for key in (*derived_keys(f.path), f.path):  # the file last: a retry still finds the rest
                        await self.storage.delete(key)
                except OSError:
                    log.warning("retention could not delete %s; it is tried again next sweep", f.path, exc_info=True)
                    out.failed_deletes.append(f.path)
                    return None
                return f

        return [f for f in await asyncio.gather(*(one(f) for f in files)) if f is not None]

    async def _loop(self) -> None:
        while True:
            try:
                swept = await self.sweep()
                if swept.outputs or swept.inputs or swept.uploads or swept.deliveries or swept.idempotency:
                    log.info("retention removed %s", swept)
            except asyncio.CancelledError:
                raise
            except Exception:  # a DB or storage hiccup must not end retention for the life of the process
                log.exception("retention sweep failed")
            await asyncio.sleep(self.interval)


def _before(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)
