"""A task's lifecycle states, who asked for it, and the read-only view of a task that dialects render.

Dialects never see a database row: the engine turns a task into a :class:`TaskView` whose
image links are already signed (and whose base64 is already encoded when the task asked for
it), so a renderer is a plain function of the view.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any


class TaskStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"
    awaiting_upload = "awaiting_upload"

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.succeeded, TaskStatus.failed, TaskStatus.canceled)


@dataclass(frozen=True, slots=True)
class Caller:
    """The API key a request came with (never its secret)."""

    id: str
    name: str
    webhook_secret: str
    rate_limit_rpm: int | None = None  # requests per minute
    max_concurrent_tasks: int | None = None  # queued and running at once
    is_admin: bool = False
    #: fnmatch patterns of the model ids it may use (checked in memory on every create); None: any model
    allowed_models: tuple[str, ...] | None = None
    monthly_budget_micros: int | None = None  # checked with the credit reservation; None: no query at all

    def may_use(self, model_id: str) -> bool:
        return self.allowed_models is None or any(fnmatchcase(model_id, p) for p in self.allowed_models)


@dataclass(frozen=True, slots=True)
class OutputImage:
    """One output of a finished task, as a client may receive it."""

    url: str | None  # signed and expiring; None when nothing was stored (``b64_ephemeral``)
    b64_json: str | None  # filled when the task asked for base64
    width: int | None
    height: int | None
    content_type: str | None
    revised_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class TaskError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class UploadSlot:
    """A place the client PUTs an input's bytes to (a presigned-URL style upload)."""

    id: str
    url: str
    expires_at: datetime
    max_bytes: int
    filename: str
    content_type: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task as every dialect may show it: status, timing, cost, outputs, error."""

    id: str
    key_id: str
    model: str
    mode: str
    dialect: str
    status: TaskStatus
    is_async: bool
    base_url: str  # where the task's links point
    request: Mapping[str, Any]  # the validated request, summarised (no image bytes)
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    upload_deadline: datetime | None = None
    progress: int | None = None
    queue_position: int | None = None
    images: tuple[OutputImage, ...] = ()
    size: str | None = None
    output_format: str | None = None
    usage: Mapping[str, Any] | None = None
    provider: str | None = None
    cost_usd: float | None = None
    latency_ms: int | None = None
    error: TaskError | None = None

    @property
    def extra(self) -> Mapping[str, Any]:
        """What the dialect that created the task recorded on it."""
        extra = self.request.get("extra")
        return extra if isinstance(extra, Mapping) else {}
