"""Chat Completions with image output: ``POST /v1/chat/completions`` as OpenRouter and Gemini's
OpenAI-compatible endpoint answer it for image models.

The last user message's text is the prompt and its ``image_url`` parts (URLs or data URIs) are
the input images, so one with images is an edit. ``image_config`` maps onto the catalog's
aspect ratios and size tiers (errors name ``image_config.aspect_ratio`` / ``image_size``).
The images come back as data URIs in ``message.images``; with ``stream: true`` the task is
queued at once and followed, SSE comments keep the connection alive until ``delta.images``
carries the images. The gateway serves image models only, so a chat model, or ``modalities``
without ``image``, is a 400 naming the models that answer here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from imagegate.api.body import RequestBody
from imagegate.api.dialects.base import CreateRoute, ParseContext, TaskRoute, task_error
from imagegate.api.dialects.chat_models import (
    STREAM_DOC,
    ChatCompletion,
    ChatContentPart,
    ChatImageRequest,
    ChatMessage,
)
from imagegate.api.dialects.openai import task_object
from imagegate.api.errors import gateway_response
from imagegate.api.openapi import Operation
from imagegate.api.responses import FastJSON, ts
from imagegate.api.schemas import TaskObject
from imagegate.api.validation import check, given
from imagegate.catalog import Catalog
from imagegate.catalog.schema import ModelSpec
from imagegate.domain import GatewayError, ImageRef, Outcome, Submission, TaskStatus, TaskView

PATH = "/v1/chat/completions"
#: validation's names -> the client's
PARAMS = {"resolution": "image_config.image_size", "aspect_ratio": "image_config.aspect_ratio", "prompt": "messages"}


def makes_images(spec: ModelSpec) -> bool:
    """Whether the model answers on this route (``chat_completions`` in GET /v1/models)."""
    return "generate" in spec.capabilities or "edit" in spec.capabilities


def _image_models(catalog: Catalog, limit: int = 12) -> str:
    ids = [m.id for m in catalog.all() if m.ready and makes_images(m.spec)]
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more + " (GET /v1/models: chat_completions is true)"


def _last_user(messages: Sequence[ChatMessage]) -> tuple[int, ChatMessage]:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return i, messages[i]
    raise GatewayError.bad("messages", "'messages' has no user message: its text is the prompt")


def _prompt_and_images(messages: Sequence[ChatMessage]) -> tuple[str, list[ImageRef]]:
    at, message = _last_user(messages)
    content = message.content
    if content is None or isinstance(content, str):
        return content or "", []
    texts, refs = [], []
    for j, part in enumerate(content):
        where = f"messages[{at}].content[{j}]"
        if part.type == "text":
            texts.append(part.text or "")
        else:
            refs.append(ImageRef(_image_url(part, where), f"{where}.image_url"))
    return "\n".join(t for t in texts if t), refs


def _image_url(part: ChatContentPart, where: str) -> str:
    url = part.image_url if isinstance(part.image_url, str) else part.image_url.url if part.image_url else ""
    if not url:
        raise GatewayError.bad(f"{where}.image_url", f"'{where}.image_url' needs a url (http(s) or data URI)")
    return url


def _data_uri(view: TaskView) -> list[dict[str, Any]]:
    return [
        {"type": "image_url", "image_url": {"url": f"data:{img.content_type or 'image/png'};base64,{img.b64_json}"}}
        for img in view.images
        if img.b64_json is not None
    ]


def _usage(view: TaskView) -> dict[str, int]:
    """The upstream's token counts where it gave them (Images API or chat names), else zeros."""
    u = view.usage or {}
    prompt = int(u.get("prompt_tokens", u.get("input_tokens", 0)) or 0)
    completion = int(u.get("completion_tokens", u.get("output_tokens", 0)) or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _text(view: TaskView) -> str:
    return next((img.revised_prompt for img in view.images if img.revised_prompt), "")


def completion(view: TaskView) -> dict[str, Any]:
    message = {"role": "assistant", "content": _text(view), "images": _data_uri(view)}
    return {
        "id": f"chatcmpl-{view.id}",
        "object": "chat.completion",
        "created": ts(view.created_at),
        "model": view.model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(view),
        "cost": view.cost_usd,
    }


def _chunk(view: TaskView, delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
    body = {
        "id": f"chatcmpl-{view.id}",
        "object": "chat.completion.chunk",
        "created": ts(view.created_at),
        "model": view.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def _events(outcome: Outcome) -> AsyncIterator[bytes]:
    view = outcome.task
    yield b": keep-alive\n\n"  # the stream is open: headers go out now
    assert outcome.events is not None
    async for event in outcome.events:
        if event is None:  # a quiet spell
            yield b": keep-alive\n\n"
        elif isinstance(event, TaskView):
            view = event  # terminal; previews (chat has none to show) are skipped
    if view.status == TaskStatus.succeeded:
        yield _chunk(view, {"role": "assistant", "content": _text(view), "images": _data_uri(view)}, None)
        yield _chunk(view, {}, "stop", usage=_usage(view), cost=view.cost_usd)
    else:
        yield b"data: " + orjson.dumps({"error": task_error(view).to_dict()}) + b"\n\n"
    yield b"data: [DONE]\n\n"


DOC = Operation(
    id="create_chat_completion",
    summary="chat completions with image output (OpenRouter / Gemini shape)",
    tag="Chat Completions",
    responses={
        200: (ChatCompletion, "the completion, its images as data URIs in choices[0].message.images"),
        202: (TaskObject, "the task, still running past the sync timeout: poll urls.get"),
    },
    raw_responses=STREAM_DOC,
    body=ChatImageRequest,
)


class ChatDialect:
    name = "chat"

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.create_routes = [CreateRoute(PATH, self.parse, DOC)]
        self.task_routes: list[TaskRoute] = []

    async def parse(self, request: Request, body: RequestBody, ctx: ParseContext) -> Submission:
        if body.images:  # image fields belong in the messages here
            name = next(iter(body.images))
            raise GatewayError.bad(name, f"'{name}' is not a parameter here: send images as image_url parts")
        sent = check(ChatImageRequest, given(body.fields))
        model = ctx.catalog.get(sent.model)
        if model is None or not makes_images(model.spec):
            raise GatewayError.bad("model", f"'{sent.model}' makes no images; these do: {_image_models(ctx.catalog)}")
        if sent.modalities is not None and "image" not in sent.modalities:
            raise GatewayError.bad(
                "modalities",
                f"'modalities' must include 'image': models here make images ({_image_models(ctx.catalog)})",
            )
        prompt, refs = _prompt_and_images(sent.messages)
        config = sent.image_config
        params: dict[str, Any] = {"prompt": prompt, "n": sent.n, "seed": sent.seed, "user": sent.user}
        if config is not None:
            params.update(aspect_ratio=config.aspect_ratio, resolution=config.image_size)
        return Submission(
            dialect=self.name,
            caller=ctx.caller,
            model=sent.model,
            params={**given(params), "response_format": "b64_json"},
            base_url=ctx.base_url,
            images=refs,
            run="async" if sent.stream else "sync",
            stream=bool(sent.stream),
            param_names=PARAMS,
        )

    def render(self, outcome: Outcome) -> Response:
        view = outcome.task
        if outcome.events is not None:
            return StreamingResponse(_events(outcome), media_type="text/event-stream", headers=_SSE_HEADERS)
        if not view.status.terminal:  # a sync run past its timeout: the client polls the task
            return FastJSON(task_object(view), status_code=202)
        if view.status != TaskStatus.succeeded:
            raise task_error(view)
        return FastJSON(completion(view))

    def render_task(self, view: TaskView) -> Response:
        return FastJSON(completion(view) if view.status == TaskStatus.succeeded else task_object(view))

    def render_error(self, exc: GatewayError) -> Response:
        return gateway_response(exc)

    def webhook_body(self, view: TaskView) -> bytes:
        return orjson.dumps(completion(view) if view.status == TaskStatus.succeeded else task_object(view))

    def extra_routes(self) -> APIRouter | None:
        return None


_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
