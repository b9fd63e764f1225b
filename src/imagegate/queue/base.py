"""The one small interface the engine needs from a job queue.

The embedded default is :class:`imagegate.queue.local.LocalQueue` (in-process workers over
the task table); a cluster deployment can put a real job engine behind the same three calls.
"""

from __future__ import annotations

from typing import Protocol


class TaskQueue(Protocol):
    async def start(self) -> None:
        """Begin working, picking up what a previous process left queued or running."""

    async def enqueue(self, task_id: str) -> None:
        """Schedule a task whose row is already committed as queued."""

    async def stop(self) -> None:
        """Stop taking work; unfinished tasks stay in the table for the next start."""
