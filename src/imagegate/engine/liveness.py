"""This process's identity and heartbeat: the owner written on the tasks it runs.

Another process takes a task over only once its owner stopped heartbeating (or stopped
cleanly, or, on this host, its pid is gone): recovery never touches a live peer's work.
"""

from __future__ import annotations

import asyncio
import logging

from imagegate.db.processes import ProcessStore

log = logging.getLogger("imagegate.liveness")


class Liveness:
    def __init__(self, store: ProcessStore, role: str, interval: float = 5.0) -> None:
        self.store = store
        self.role = role
        self.interval = interval
        self._id: str | None = None
        self._beat: asyncio.Task[None] | None = None

    def me(self) -> str:
        if self._id is None:
            raise RuntimeError("the process has not registered yet (Liveness.start)")
        return self._id

    async def start(self) -> None:
        self._id = await self.store.register(self.role)
        self._beat = asyncio.create_task(self._loop(), name="imagegate-heartbeat")

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            await asyncio.gather(self._beat, return_exceptions=True)
        if self._id is not None:
            await self.store.stop(self._id)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.store.heartbeat(self.me())
            except asyncio.CancelledError:
                raise
            except Exception:  # a missed beat is survivable; many in a row make peers take our tasks
                log.warning("heartbeat failed", exc_info=True)
