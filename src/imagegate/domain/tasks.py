"""A task's lifecycle states and the read-only view of a task that dialects render."""

from __future__ import annotations

import enum


class TaskStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"
    awaiting_upload = "awaiting_upload"

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.succeeded, TaskStatus.failed, TaskStatus.canceled)


