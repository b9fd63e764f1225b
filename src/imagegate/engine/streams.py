"""A streamed task's events: previews as the upstream sends them, then the task once it ends.

The task row stays the source of truth: a follower reads it until it is terminal, whichever
process runs it, so the end of a stream works on every profile. Previews are passed in memory
(:class:`PartialHub`), so they reach a client only when the task runs in the process that
serves it (the embedded profile, or a cluster server that runs tasks itself); elsewhere the
stream carries the finished images alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from imagegate.db.tables import Task
from imagegate.domain import PartialImage, StreamEvent, TaskStatus, TaskView

KEEP_ALIVE = 15.0  # seconds of silence before a keep-alive (settings: stream_keep_alive)
#: the terminal row as the client sees it
View = Callable[[Task], Awaitable[TaskView]]
MAX_PARTIALS = 64  # previews held for a follower that reads slowly: more are dropped (they are previews)


class PartialHub:
    """Previews of running tasks, handed to the followers of each task in this process."""

    def __init__(self) -> None:
        self._subs: dict[str, list[asyncio.Queue[PartialImage]]] = {}

    def publish(self, task_id: str, partial: PartialImage) -> None:
        for queue in self._subs.get(task_id, ()):
            if queue.qsize() < MAX_PARTIALS:
                queue.put_nowait(partial)

    def subscribe(self, task_id: str) -> asyncio.Queue[PartialImage]:
        queue: asyncio.Queue[PartialImage] = asyncio.Queue()
        self._subs.setdefault(task_id, []).append(queue)
        return queue

    def unsubscribe(self, task_id: str, queue: asyncio.Queue[PartialImage]) -> None:
        subs = self._subs.get(task_id, [])
        if queue in subs:
            subs.remove(queue)
        if not subs:
            self._subs.pop(task_id, None)


class Follower:
    """Reads a task until it ends; ``view`` (per follow) renders the terminal row."""

    def __init__(
        self, hub: PartialHub, load: Callable[[str], Awaitable[Task | None]], keep_alive: float = KEEP_ALIVE
    ) -> None:
        self.hub = hub
        self.load = load
        self.keep_alive = keep_alive

    async def follow(self, task_id: str, view: View) -> AsyncIterator[StreamEvent]:
        """Subscribed once primed: the caller awaits the first event (a keep-alive) before the task
        starts, so no preview is published before anyone listens."""
        queue = self.hub.subscribe(task_id)
        try:
            yield None
            async for event in self._events(task_id, queue, view):
                yield event
        finally:
            self.hub.unsubscribe(task_id, queue)

    async def _events(self, task_id: str, queue: asyncio.Queue[PartialImage], view: View) -> AsyncIterator[StreamEvent]:
        loop = asyncio.get_running_loop()
        delay, quiet_since = 0.02, loop.time()
        while True:
            while not queue.empty():
                yield queue.get_nowait()
                quiet_since = loop.time()
            task = await self.load(task_id)
            if task is None or TaskStatus(task.status).terminal:
                while not queue.empty():
                    yield queue.get_nowait()
                if task is not None:
                    yield await view(task)
                return
            if loop.time() - quiet_since >= self.keep_alive:
                yield None
                quiet_since = loop.time()
            try:  # a preview wakes the follower at once; otherwise the row is read again (cheap, backing off)
                yield await asyncio.wait_for(queue.get(), delay)
                quiet_since = loop.time()
            except TimeoutError:
                delay = min(delay * 1.5, 0.5)
