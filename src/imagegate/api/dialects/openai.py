"""OpenAI's Images API, and the OmniRouters / OmniaKey / ImageRouter variants that ride on it.

``/v1/images/*`` answer with OpenAI's shapes (png by default); ``/v1/openai/images/*`` are
ImageRouter's paths, with webp as the default and one handler for both (an edit without an
image is a generation there). ``?async=true`` (or ``"async": true``) creates a task to poll.
The task object defined here is also what ``/v1/tasks`` and the default webhook show.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from imagegate.api.body import RequestBody, image_refs, prefer_wait
from imagegate.api.dialects.base import CreateRoute, ParseContext, TaskRoute, task_error
from imagegate.api.dialects.openai_models import (
    ImageEdit,
    ImageEditForm,
    ImageGeneration,
    ImageGenerationForm,
    ImageParams,
    ImageQuery,
    StreamParams,
)
from imagegate.api.dialects.openai_stream import stream_response
from imagegate.api.errors import gateway_response
from imagegate.api.openapi import Operation
from imagegate.api.responses import FastJSON, ts
from imagegate.api.schemas import ImagesResponse, TaskObject
from imagegate.api.validation import check, given
from imagegate.domain import (
    ErrorCode,
    GatewayError,
    Outcome,
    OutputFormat,
    OutputImage,
    Submission,
    TaskStatus,
    TaskView,
)

#: path prefix -> the output format an omitted ``output_format`` means there
VARIANTS: tuple[tuple[str, OutputFormat], ...] = (("/v1/images", "png"), ("/v1/openai/images", "webp"))


def _item(img: OutputImage) -> dict[str, Any]:
    out: dict[str, Any] = {"b64_json": img.b64_json} if img.b64_json is not None else {"url": img.url}
    if img.revised_prompt:
        out["revised_prompt"] = img.revised_prompt
    return out


def images_body(view: TaskView) -> dict[str, Any]:
    """The synchronous images response (also the outputs part of a finished task object)."""
    body: dict[str, Any] = {
        "created": ts(view.created_at),
        "data": [_item(img) for img in view.images],
        "model": view.model,
        "size": view.size,
        "output_format": view.output_format,
        "latency": view.latency_ms,
        "cost": view.cost_usd,
        "provider": view.provider,
    }
    for name in ("quality", "background"):
        if view.request.get(name):
            body[name] = view.request[name]
    if view.usage:
        body["usage"] = view.usage
    return body


def task_object(view: TaskView) -> dict[str, Any]:
    """The task: GET /v1/images/generations/{id}, /v1/tasks, the default webhook, an async create's 202."""
    base = view.base_url
    out: dict[str, Any] = {
        "id": view.id,
        "task_id": view.id,
        "object": "image.task",
        "status": view.status.value,
        "model": view.model,
        "mode": view.mode,
        "prompt": view.request.get("prompt"),
        "created_at": ts(view.created_at),
        "started_at": ts(view.started_at),
        "completed_at": ts(view.completed_at),
        "urls": {"get": f"{base}/v1/images/generations/{view.id}", "cancel": f"{base}/v1/tasks/{view.id}/cancel"},
    }
    if view.status == TaskStatus.queued:
        out["queue_position"] = view.queue_position
    if view.progress is not None:
        out["progress"] = view.progress
    if view.status == TaskStatus.succeeded:
        body = images_body(view)
        del body["created"], body["model"]
        out.update(body)
    else:
        out["cost"] = view.cost_usd
    if view.error is not None:
        out["error"] = {"code": view.error.code, "message": view.error.message}
    return out


_CREATED = {
    200: (ImagesResponse | TaskObject, "the images (sync), or the task when it finished before this answer (async)"),
    202: (TaskObject, "the task, still queued or running: poll urls.get (async, or a sync run past its timeout)"),
}
_EVENTS = {
    200: {
        "description": "with stream: true, OpenAI's image streaming events (partial_image, completed, error)",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
_NO_QUERY = ImageQuery()
_NO_STREAM = StreamParams()
_ID_TEXT = "the task's id (id or task_id of its create answer)"


def create_doc(prefix: str, kind: str) -> Operation:
    """ImageRouter's paths take an edit without images (then it is a generation)."""
    edit = kind == "edits" and prefix == "/v1/images"
    router = prefix != "/v1/images"
    return Operation(
        id=("imagerouter_" if router else "") + ("create_image_edit" if kind == "edits" else "create_image"),
        summary=("ImageRouter: " if router else "") + ("edit images" if kind == "edits" else "generate images"),
        tag="OpenAI Images",
        responses=_CREATED,
        body=ImageEdit if edit else ImageGeneration,
        form=ImageEditForm if edit else ImageGenerationForm,
        query=ImageQuery,
        headers={"Prefer": "wait=N with async: wait up to N seconds (at most 60) for the task to finish"},
        raw_responses={} if router else _EVENTS,
    )


def task_doc(prefix: str) -> Operation:
    router = prefix != "/v1/images"
    return Operation(
        id=("imagerouter_" if router else "") + "get_image_task",
        summary="poll an image task",
        tag="OpenAI Images",
        responses={200: (TaskObject, "the task")},
        path={"task_id": _ID_TEXT},
    )


class OpenAIDialect:
    name = "openai"

    def __init__(self) -> None:
        self.create_routes = [
            CreateRoute(
                f"{prefix}/{kind}",
                partial(self.parse, edit=kind == "edits", default_format=fmt),
                create_doc(prefix, kind),
            )
            for prefix, fmt in VARIANTS
            for kind in ("generations", "edits")
        ]
        self.task_routes = [TaskRoute(f"{prefix}/generations/{{task_id}}", task_doc(prefix)) for prefix, _ in VARIANTS]

    async def parse(
        self, request: Request, body: RequestBody, ctx: ParseContext, *, edit: bool, default_format: OutputFormat
    ) -> Submission:
        fields = body.fields
        sent = check(ImageParams, given(fields))
        query = check(ImageQuery, given(request.query_params)) if request.scope.get("query_string") else _NO_QUERY
        is_async = bool(sent.run_async if query.run_async is None else query.run_async)
        callback_url = sent.callback_url or query.callback_url
        fields.pop("async", None)
        fields.pop("callback_url", None)
        streamed = self._stream_params(fields, is_async, default_format)
        refs = await image_refs(body.images, ctx.max_image_bytes)
        if edit and default_format == "png" and not any(r.role == "image" for r in refs):
            raise GatewayError.bad("image", "'image' is required on the edits endpoint")
        return Submission(
            dialect=self.name,
            caller=ctx.caller,
            model=sent.model,
            params=fields,
            base_url=ctx.base_url,
            images=refs,
            run="async" if is_async or streamed.stream else "sync",
            wait=prefer_wait(request) if is_async else None,
            callback_url=callback_url,
            default_output_format=default_format,
            default_response_format="model" if default_format == "png" else "url",  # OpenAI's: b64 for GPT Image
            stream=bool(streamed.stream),
            partial_images=streamed.partial_images or 0,
        )

    @staticmethod
    def _stream_params(fields: dict[str, Any], is_async: bool, default_format: OutputFormat) -> StreamParams:
        """``stream`` and ``partial_images`` on /v1/images/* (ImageRouter's paths ignore them, as before)."""
        if default_format != "png" or ("stream" not in fields and "partial_images" not in fields):
            return _NO_STREAM
        streamed = check(StreamParams, given(fields))
        fields.pop("stream", None)
        fields.pop("partial_images", None)
        if streamed.stream and is_async:
            raise GatewayError.bad("stream", "'stream' cannot be combined with 'async': poll the task instead")
        return streamed

    def render(self, outcome: Outcome) -> Response:
        view = outcome.task
        if outcome.events is not None:
            return stream_response(outcome.events, view)
        if view.is_async or not view.status.terminal:  # queued, or a sync run past its timeout: poll it
            return FastJSON(task_object(view), status_code=200 if view.status.terminal else 202)
        if view.status != TaskStatus.succeeded:
            return self.render_error(task_error(view))
        if outcome.replayed and view.request.get("response_format") == "b64_ephemeral":
            raise GatewayError(
                ErrorCode.conflict,
                "the images of a 'b64_ephemeral' request are handed back once and cannot be replayed",
                param="Idempotency-Key",
            )
        return FastJSON(images_body(view))

    def render_task(self, view: TaskView) -> Response:
        return FastJSON(task_object(view))

    def render_error(self, exc: GatewayError) -> Response:
        return gateway_response(exc)

    def webhook_body(self, view: TaskView) -> bytes:
        return orjson.dumps(task_object(view))

    def extra_routes(self) -> APIRouter | None:
        return None
