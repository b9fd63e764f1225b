"""apimodels: the ``{code, msg, data}`` envelope on ``/api/v1/images/generations``.

``image_base64`` / ``image_url`` / ``image_urls`` are images 1, 2, ... in that order, and
``mask_base64`` the mask. A model the catalog marks ``sync`` runs in the request and answers
``completed`` with ``resultUrls``; any other is queued and answers ``pending``; ``GET
?task_id=`` shows the state. The HTTP status always equals ``code``. The callback body is the
seed's (``data.param`` and ``data.resultJson`` are JSON strings, times are ms epochs).

Unknown body fields are accepted and ignored, as on the OpenAI routes: apimodels fronts many
providers whose parameters differ, and the callback's ``data.param`` echoes the request as sent.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from imagegate.api.body import RequestBody
from imagegate.api.dialects.base import CreateRoute, ParseContext, TaskRoute, task_error
from imagegate.api.openapi import Operation
from imagegate.api.validation import check, given
from imagegate.catalog import Catalog
from imagegate.domain import ErrorCode, GatewayError, ImageRef, Outcome, Submission, TaskStatus, TaskView

PATH = "/api/v1/images/generations"
STATES = {
    TaskStatus.queued: "pending",
    TaskStatus.awaiting_upload: "pending",
    TaskStatus.running: "processing",
    TaskStatus.succeeded: "completed",
    TaskStatus.failed: "failed",
    TaskStatus.canceled: "failed",
}
IMAGE_FIELDS = ("image_base64", "image_url", "image_urls", "mask_base64")
#: body fields that are not validation parameters (results are always URLs here)
IGNORED = (*IMAGE_FIELDS, "callback_url", "response_format")


Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class ApimodelsRequest(BaseModel):
    """A generation; input images make it an edit (image 1 is image_base64, then image_url, then
    image_urls), mask_base64 an inpainting. Whether a value suits the model is checked against its
    catalog entry (GET /v1/models)."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"model": "test/test", "prompt": "a baby otter"}]}
    )

    model: Id = Field(description="e.g. gpt-image-2-lite; see GET /v1/models", examples=["gpt-image-2-lite"])
    prompt: str | None = Field(None, examples=["a baby otter"])
    size: str | None = Field(None, description="WIDTHxHEIGHT or auto", examples=["1024x1024"])
    quality: str | None = None
    output_format: str | None = Field(None, description="png, jpeg or webp")
    resolution: str | None = Field(None, description="1K, 2K or 4K")
    aspect_ratio: str | None = Field(None, description="W:H, e.g. 16:9")
    n: int | None = Field(None, ge=1, le=10)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    negative_prompt: str | None = None
    image_base64: str | list[str] | None = Field(None, description="base64 image(s) or data URIs")
    image_url: str | None = Field(None, description="an http(s) image URL")
    image_urls: list[str] | None = Field(None, description="http(s) image URLs")
    mask_base64: str | None = Field(None, description="the mask of image 1 (base64 PNG)")
    callback_url: str | None = Field(None, description="POSTed once the task is completed or failed")
    response_format: str | None = Field(None, description="ignored: answers always carry URLs")


class ApimodelsQuery(BaseModel):
    task_id: Id = Field(description="the taskId of the create answer")


class ApimodelsTask(BaseModel):
    """``data`` of an answer (the seed's camelCase names)."""

    taskId: str
    state: Literal["pending", "processing", "completed", "failed"]
    createTime: int | None = Field(description="ms since the epoch")
    completeTime: int | None = None
    resultUrls: list[str] | None = Field(None, description="once completed: signed links")
    failCode: str | None = None
    failMsg: str | None = None


class ApimodelsEnvelope(BaseModel):
    """Every answer, errors too: ``code`` equals the HTTP status."""

    code: int
    msg: str
    data: ApimodelsTask | None
    param: str | None = Field(None, description="on errors: the parameter at fault")
    error: str | None = Field(None, description="on errors: a stable machine-readable code")


def envelope_status(exc: GatewayError) -> int:
    """The seed's codes: 400 bad input, 401 bad key, 402 credits, 404 unknown task, 500 ours or upstream;
    and for an ``Idempotency-Key``, 409 (its request is still running) and 422 (another body)."""
    if exc.status in (401, 402, 429):
        return exc.status
    if exc.code == ErrorCode.not_found:
        return 404
    if exc.code in (ErrorCode.conflict, ErrorCode.idempotency_mismatch):
        return exc.status
    return 400 if exc.status < 500 else 500


def ms(dt: datetime | None) -> int | None:
    return int(dt.timestamp() * 1000) if dt is not None else None


def _strings(name: str, value: str | list[str] | None) -> list[str]:
    values = [value] if isinstance(value, str) else value or []
    if any(not v.strip() for v in values):
        raise GatewayError.bad(name, f"'{name}' holds an empty string")
    return values


def recorded_param(body: dict[str, Any]) -> dict[str, Any]:
    """The request as the client sent it (for the callback's ``data.param``), base64 payloads summarised."""
    out = {}
    for k, v in body.items():
        if k in ("image_base64", "mask_base64") and v:
            n = sum(len(x) for x in v) if isinstance(v, list) else len(str(v))
            out[k] = f"<base64, {n} characters>"
        else:
            out[k] = v
    return out


def task_data(view: TaskView) -> dict[str, Any]:
    """``data`` of a create or query answer."""
    state = STATES[view.status]
    data: dict[str, Any] = {"taskId": view.id, "state": state, "createTime": ms(view.created_at)}
    if state == "completed":
        data["resultUrls"] = [img.url for img in view.images if img.url]
    if state == "failed":
        data["failCode"] = view.error.code if view.error else None
        data["failMsg"] = view.error.message if view.error else "generation failed"
    if view.completed_at is not None:
        data["completeTime"] = ms(view.completed_at)
    return data


def _ok(data: dict[str, Any], status: int = 200, msg: str = "success") -> JSONResponse:
    return JSONResponse({"code": status, "msg": msg, "data": data}, status_code=status)


class ApimodelsDialect:
    name = "apimodels"

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog  # to name models as apimodels does: <owner>/<model>
        create = Operation(
            id="apimodels_create",
            summary="apimodels: create a task",
            tag="apimodels",
            responses={200: (ApimodelsEnvelope, "completed (sync models), or pending: poll with GET ?task_id=")},
            body=ApimodelsRequest,
            error=ApimodelsEnvelope,
        )
        get = Operation(
            id="apimodels_get",
            summary="apimodels: a task's state",
            tag="apimodels",
            responses={200: (ApimodelsEnvelope, "the task")},
            query=ApimodelsQuery,
            error=ApimodelsEnvelope,
        )
        self.create_routes = [CreateRoute(PATH, self.parse, create)]
        self.task_routes = [TaskRoute(PATH, get)]

    async def parse(self, request: Request, body: RequestBody, ctx: ParseContext) -> Submission:
        if body.images:
            field = next(iter(body.images))
            raise GatewayError.bad(
                field, f"'{field}' is not a field here: send image_url, image_urls, image_base64 or mask_base64"
            )
        fields = body.fields
        sent = check(ApimodelsRequest, given(fields))
        refs = [
            ImageRef(v, field)
            for field, value in (
                ("image_base64", sent.image_base64),
                ("image_url", sent.image_url),
                ("image_urls", sent.image_urls),
            )
            for v in _strings(field, value)
        ]
        refs += [ImageRef(v, "mask_base64", "mask") for v in _strings("mask_base64", sent.mask_base64)]
        return Submission(
            dialect=self.name,
            caller=ctx.caller,
            model=sent.model,
            base_url=ctx.base_url,
            images=refs,
            params={k: v for k, v in fields.items() if k not in IGNORED},
            run="auto",
            callback_url=sent.callback_url,
            record={"param": recorded_param(fields)},
            param_names={"image": "image_url", "mask": "mask_base64"},
        )

    def render(self, outcome: Outcome) -> Response:
        """A failed sync task carries its error's code; anything else is 200 (completed, pending, or
        still running past the sync timeout: poll it)."""
        view = outcome.task
        data = task_data(view)
        if view.is_async or data["state"] != "failed":
            return _ok(data)
        return _ok(data, envelope_status(task_error(view)), data["failMsg"])

    def render_task(self, view: TaskView) -> Response:
        return _ok(task_data(view))

    def render_error(self, exc: GatewayError) -> Response:
        status = envelope_status(exc)
        body = {"code": status, "msg": exc.message, "data": None, "param": exc.param, "error": exc.code.value}
        headers = {"retry-after": str(int(max(1, exc.retry_after)))} if exc.retry_after is not None else None
        return JSONResponse(body, status_code=status, headers=headers)

    def webhook_body(self, view: TaskView) -> bytes:
        """The seed's callback: ``param`` and ``resultJson`` are JSON strings, times are ms epochs."""
        data = task_data(view)
        done = data["state"] == "completed"
        param = view.extra.get("param") or {"model": view.model}
        body = {
            "code": 200,
            "msg": "success" if done else (data.get("failMsg") or "failed"),
            "data": {
                "taskId": view.id,
                "model": self.public_model(view),
                "state": data["state"],
                "param": json.dumps(param, ensure_ascii=False),
                "resultJson": json.dumps({"resultUrls": data["resultUrls"]}) if done else None,
                "failCode": None if done else data.get("failCode"),
                "failMsg": None if done else data.get("failMsg"),
                "costTime": view.latency_ms,
                "completeTime": data.get("completeTime"),
                "createTime": data["createTime"],
            },
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def public_model(self, view: TaskView) -> str:
        """``<provider>/<model_name>`` as apimodels names models (the catalog's owner)."""
        if "/" in view.model:
            return view.model
        model = self.catalog.get(view.model)
        return f"{model.spec.owned_by if model else view.provider or 'imagegate'}/{view.model}"

    def extra_routes(self) -> APIRouter | None:
        return None
