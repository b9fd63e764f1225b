"""The response objects of the OpenAI-style routes, for the OpenAPI document and its tests.

Renderers build these answers as plain dicts (a sync answer can carry megabytes of base64, and
building a model for it on every request would cost more than the rest of the response), so
these models do not produce the answers: the tests hold every rendered answer to them
(``tests/test_openapi.py``, and Schemathesis checks every operation's answers against the
document). Fields a renderer leaves out in some states are optional here; none is extra.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from imagegate.domain import TaskStatus


class ErrorDetail(BaseModel):
    message: str = Field(description="what went wrong, in words")
    type: str = Field(description="OpenAI's error type, e.g. invalid_request_error")
    param: str | None = Field(description="the parameter at fault, as the client named it")
    code: str | None = Field(description="a stable machine-readable code, e.g. unsupported_value")


class ErrorResponse(BaseModel):
    """Every error of the OpenAI-style routes (and the Omni API's)."""

    error: ErrorDetail


class ImageData(BaseModel):
    url: str | None = Field(None, description="a signed link that expires (IMAGEGATE_URL_TTL_SECONDS)")
    b64_json: str | None = Field(None, description="the image itself, when response_format asked for base64")
    revised_prompt: str | None = None


class _Outputs(BaseModel):
    size: str | None = None
    output_format: str | None = None
    latency: int | None = Field(None, description="milliseconds the generation took")
    cost: float | None = Field(None, description="USD billed to the key")
    provider: str | None = None
    quality: str | None = None
    background: str | None = None
    usage: dict[str, Any] | None = None


class ImagesResponse(_Outputs):
    """A finished synchronous generation."""

    created: int | None
    data: list[ImageData]
    model: str


class TaskUrls(BaseModel):
    get: str
    cancel: str


class TaskErrorObject(BaseModel):
    code: str
    message: str


class TaskObject(_Outputs):
    """A task: what an async create answers, what polling shows, what the default webhook posts."""

    id: str
    task_id: str
    object: Literal["image.task"]
    status: TaskStatus
    model: str
    mode: str
    prompt: str | None = Field(None, description="the prompt the task was created with")
    created_at: int | None
    started_at: int | None
    completed_at: int | None
    urls: TaskUrls
    queue_position: int | None = Field(None, description="while queued: how many tasks start before this one")
    progress: int | None = None
    data: list[ImageData] | None = Field(None, description="the outputs, once succeeded")
    error: TaskErrorObject | None = None


class TaskList(BaseModel):
    object: Literal["list"]
    data: list[TaskObject]
    has_more: bool
    next_cursor: str | None = Field(description="pass as 'after' for the next page")


class DeliveryAttempt(BaseModel):
    at: float | None
    status_code: int | None
    error: str | None
    duration_ms: int | None


class Delivery(BaseModel):
    id: str
    object: Literal["webhook.delivery"]
    url: str
    status: str
    attempt_count: int
    created_at: float | None
    delivered_at: float | None
    next_attempt_at: float | None
    attempts: list[DeliveryAttempt]


class DeliveryList(BaseModel):
    object: Literal["list"]
    data: list[Delivery]


class UploadSlotObject(BaseModel):
    """Where to PUT an input's bytes; use ``ref`` (``upload://<id>``) in any image field afterwards."""

    object: Literal["upload"]
    upload_id: str
    id: str
    upload_url: str = Field(description="signed: PUT the bytes here, no API key needed")
    method: Literal["PUT"]
    expires_at: int
    max_bytes: int
    filename: str
    content_type: str
    ref: str


class UploadReceived(BaseModel):
    object: Literal["upload"]
    upload_id: str
    status: Literal["uploaded"]
    ref: str


class ModelEntry(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    description: str
    aliases: list[str]
    capabilities: dict[str, Any] = Field(description="sizes, tiers, ratios, formats, n: what validation accepts")
    pricing: dict[str, Any]
    ready: bool
    providers: list[str]
    resubmit: dict[str, Literal["lookup", "replay", "none"]] = Field(
        description="per provider, after a crash mid-call: lookup (asked for the job by the task's reference "
        "before anything is sent again), replay (free to call again) or none (ended, refunded, code interrupted)"
    )
    chat_completions: bool = Field(
        description="true: the model answers POST /v1/chat/completions with images (modalities: image)"
    )
    not_ready_reason: str | None = None


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelEntry]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str]


class WebhookSecret(BaseModel):
    key: str = Field(description="the Standard Webhooks signing secret of this key")
