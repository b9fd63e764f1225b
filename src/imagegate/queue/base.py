"""The one small interface the engine needs from a job queue.

The embedded default is :class:`imagegate.queue.local.LocalQueue` (in-process workers over
the task table); a cluster deployment can put a real job engine behind the same calls (its
``reserve`` may simply answer False).
"""

from __future__ import annotations

from typing import Any, Protocol


class TaskQueue(Protocol):
    async def start(self) -> None:
        """Begin working, picking up what a previous process left queued or running."""

    async def enqueue(self, task_id: str) -> None:
        """Schedule a task whose row is already committed as queued."""

    async def reserve(self) -> bool:
        """Take a free run slot for a task about to be created already claimed (False: enqueue it)."""

    def release(self) -> None:
        """Give back a reserved slot that was not used."""

    def run_claimed(self, task: Any) -> None:
        """Run a task created as running, in a slot taken with ``reserve``."""

    async def stop(self) -> None:
        """Stop taking work; unfinished tasks stay in the table for the next start."""
