"""What a dialect hands the core (:class:`Submission`) and what it gets back (:class:`Outcome`).

A dialect only parses: it names the model, the parameters to validate, the input images as
the client gave them and how the client wants the answer. The core does the rest once for
every dialect: idempotency, callback and input checks, validation against the catalog,
credits, the task row, and running it (inline, queued, or waiting for uploads).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from imagegate.domain.images import Mode, OutputFormat
from imagegate.domain.tasks import Caller, TaskView, UploadSlot

#: "sync": run in the request; "async": queue and answer at once; "auto": as the catalog says for the model
RunMode = Literal["sync", "async", "auto"]


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An input image as the client sent it: a URL, data URI, base64 or ``upload://id`` string, or file bytes."""

    value: str | bytes
    param: str  # the client's own name for the field, for errors
    role: Literal["image", "mask"] = "image"


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """An input the client will PUT after the create answer (the task waits for it)."""

    field: str
    filename: str
    content_type: str
    role: Literal["image", "mask"] = "image"


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    key: str
    fingerprint: str  # sha256 of the request as sent: the same key with another body is refused


@dataclass(slots=True)
class Submission:
    dialect: str
    caller: Caller
    model: str
    params: dict[str, Any]  # what validation reads: prompt, n, size, quality, ...
    base_url: str
    images: list[ImageRef] = field(default_factory=list)
    uploads: list[PendingUpload] = field(default_factory=list)
    mode: Mode | None = None  # None: an edit when there are input images
    run: RunMode = "sync"
    wait: float | None = None  # an async create may wait this long for the end (``Prefer: wait``)
    callback_url: str | None = None
    idempotency: IdempotencyKey | None = None
    default_output_format: OutputFormat = "png"
    #: what an omitted ``response_format`` means: ``url``, or the model's own OpenAI default (OpenAI's routes)
    default_response_format: Literal["url", "model"] = "url"
    record: dict[str, Any] = field(default_factory=dict)  # dialect bits kept on the task
    #: validation names parameters in imagegate's terms; these give the client's names back
    param_names: Mapping[str, str] = field(default_factory=dict)
    param_prefix: str = ""
    #: answer with the task's events as they happen (a queued task: it runs whether or not the client stays)
    stream: bool = False
    partial_images: int = 0  # previews a streamed answer asks of upstreams that make them

    def client_param(self, param: str | None) -> str | None:
        """A validation error's parameter as this client calls it."""
        if param is None:
            return None
        name = self.param_names.get(param, param)
        return name if name.startswith(self.param_prefix) else self.param_prefix + name


@dataclass(frozen=True, slots=True)
class Outcome:
    """The core's answer to a submission: the task as it stands when the request ends."""

    task: TaskView
    replayed: bool = False  # an earlier request with the same Idempotency-Key made this task
    uploads: tuple[UploadSlot, ...] = ()  # where to PUT the inputs the task waits for
    #: a streamed submission: the task's events, until and including its terminal view
    events: AsyncIterator[StreamEvent] | None = None


@dataclass(frozen=True, slots=True)
class PartialImage:
    """A preview of one output image while it is made (base64, as the upstream sent it)."""

    b64_json: str
    index: int  # 0-based, per task


#: what a streamed task tells its client: a preview, the task once terminal, or None (nothing new: keep alive)
StreamEvent = PartialImage | TaskView | None
