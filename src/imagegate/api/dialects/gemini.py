"""Gemini's own API (Google's Generative Language API, v1beta): ``generateContent`` for images.

``POST /v1beta/models/{model}:generateContent`` (and ``/v1/models/...``, where google-genai now
sends it) reads ``contents[].parts[]`` (the text parts are
the prompt, ``inlineData`` images the inputs of an edit) and ``generationConfig``
(``responseModalities`` must include IMAGE; ``imageConfig.aspectRatio`` / ``imageSize`` are the
catalog's aspect ratio and 1K/2K/4K tier; ``candidateCount`` is ``n``), and answers a
``GenerateContentResponse``: one candidate per image, the image as ``inlineData``. Any image
model of the catalog is served under its id or an alias (``models/`` in front or not), with the
validation, credits, storage and task of every other dialect: ``responseId`` is the task's id.

``GET /v1beta/models`` lists the ready models in Google's shape (``/v1/models`` stays OpenAI's list).
``:streamGenerateContent?alt=sse`` runs the same request as a task and answers server-sent
events: blank lines while it runs (keep-alives; not ``:`` comments, which Google's SDKs try to
read as JSON), then one ``data:`` event with the whole answer, or with the error.

Errors leave in Google's envelope, ``{"error": {"code", "message", "status"}}``, the message
naming the client's field. The key comes as ``x-goog-api-key`` or ``?key=`` (see
:func:`imagegate.api.deps.bearer`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from imagegate.api.body import RequestBody
from imagegate.api.dialects.base import CreateRoute, ParseContext, TaskRoute, task_error
from imagegate.api.dialects.gemini_models import (
    Content,
    GenerateContentRequest,
    GenerateContentResponse,
    GenerationConfig,
    GoogleError,
    GoogleModel,
    GoogleModelList,
    KeyQuery,
    StreamQuery,
)
from imagegate.api.openapi import Operation
from imagegate.api.responses import FastJSON
from imagegate.api.schemas import ErrorResponse
from imagegate.api.validation import check, given
from imagegate.catalog import Catalog, CatalogModel
from imagegate.domain import ErrorCode, GatewayError, ImageRef, Outcome, Submission, TaskStatus, TaskView, shown

PREFIX = "/v1beta/models"
#: imagegate's parameter -> the client's field, for validation errors
PARAMS = {
    "prompt": "contents[].parts[].text",
    "image": "contents[].parts[].inlineData",
    "aspect_ratio": "generationConfig.imageConfig.aspectRatio",
    "resolution": "generationConfig.imageConfig.imageSize",
    "size": "generationConfig.imageConfig",
    "n": "generationConfig.candidateCount",
    "seed": "generationConfig.seed",
}
#: HTTP status -> Google's canonical status name
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    422: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
    507: "RESOURCE_EXHAUSTED",
}
_MODEL_TEXT = "a catalog model id or alias, with or without models/ in front (e.g. gemini-3.1-flash-image-preview)"
#: Google's envelope; a path no route matches (a model name with a line break) gets the generic 404
ERRORS = GoogleError | ErrorResponse
_KEY_HEADER = {"x-goog-api-key": "an imagegate API key (or ?key=, or Authorization: Bearer)"}


def _doc(op: str, summary: str, query: type[KeyQuery] | type[StreamQuery], responses: dict[int, Any]) -> Operation:
    return Operation(
        id=op,
        summary=summary,
        tag="Gemini API",
        responses=responses,
        body=GenerateContentRequest,
        query=query,
        path={"model": _MODEL_TEXT},
        headers=_KEY_HEADER,
        error=ERRORS,
    )


GENERATE = _doc(
    "gemini_generate_content",
    "Gemini: generate or edit images",
    KeyQuery,
    {200: (GenerateContentResponse, "the images, one candidate each, as inlineData")},
)
STREAM = _doc(
    "gemini_stream_generate_content",
    "Gemini: generate or edit images, streamed (alt=sse)",
    StreamQuery,
    {200: (GenerateContentResponse, "text/event-stream: keep-alive blank lines, then one data: event")},
)
MODELS = Operation(
    id="gemini_list_models",
    summary="Gemini: the image models",
    tag="Gemini API",
    responses={200: (GoogleModelList, "every ready model, named models/<id>")},
    query=KeyQuery,
    error=ERRORS,
)
MODEL = Operation(
    id="gemini_get_model",
    summary="Gemini: one model",
    tag="Gemini API",
    responses={200: (GoogleModel, "the model")},
    query=KeyQuery,
    path={"model": _MODEL_TEXT},
    error=ERRORS,
)


def error_body(exc: GatewayError) -> dict[str, Any]:
    """Google's envelope; the message names the field in the client's terms."""
    message = exc.message
    for ours, theirs in PARAMS.items():
        message = message.replace(f"'{ours}'", f"'{theirs}'")
    param = PARAMS.get(exc.param or "", exc.param)
    if param and param not in message:
        message = f"Invalid value at '{param}': {message}"
    return {"error": {"code": exc.status, "message": message, "status": STATUS.get(exc.status, "UNKNOWN")}}


def _images(contents: list[Content]) -> tuple[str | None, list[ImageRef]]:
    """The prompt (the text parts, in order) and the inline images, each named by its place."""
    texts: list[str] = []
    refs: list[ImageRef] = []
    for i, content in enumerate(contents):
        for j, part in enumerate(content.parts):
            where = f"contents[{i}].parts[{j}]"
            if part.file_data is not None:
                raise GatewayError.bad(f"{where}.fileData", f"'{where}.fileData' is not served; send inlineData")
            if part.text:
                texts.append(part.text)
            if part.inline_data is not None:
                mime = part.inline_data.mime_type.strip().lower()
                if not mime.startswith("image/"):
                    raise GatewayError.bad(
                        f"{where}.inlineData.mimeType",
                        f"'{where}.inlineData.mimeType' must be an image type, got {shown(mime)!r}",
                    )
                refs.append(ImageRef(f"data:{mime};base64,{part.inline_data.data}", f"{where}.inlineData.data"))
    return ("\n".join(texts) or None), refs


def _params(config: GenerationConfig, prompt: str | None) -> dict[str, Any]:
    modalities = [m.upper() for m in config.response_modalities or ["IMAGE"]]
    if "IMAGE" not in modalities or any(m not in ("IMAGE", "TEXT") for m in modalities):
        raise GatewayError.bad(
            "generationConfig.responseModalities",
            "'generationConfig.responseModalities' must include IMAGE (and may include TEXT)",
        )
    params: dict[str, Any] = {"prompt": prompt, "response_format": "b64_json"}
    image = config.image_config
    if image is not None and image.aspect_ratio is not None:
        params["aspect_ratio"] = image.aspect_ratio
    if image is not None and image.image_size is not None:
        params["resolution"] = image.image_size.upper()
    if config.candidate_count is not None:
        params["n"] = config.candidate_count
    if config.seed is not None:
        params["seed"] = config.seed
    return params


def _count(usage: Any, *names: str) -> int:
    for name in names:
        value = usage.get(name)
        if isinstance(value, int) and value >= 0:
            return value
    return 0


def response_body(view: TaskView) -> dict[str, Any]:
    """A finished task as a ``GenerateContentResponse``: one candidate per image."""
    text = bool((view.extra.get("gemini") or {}).get("text"))
    fallback = f"image/{view.output_format or 'png'}".replace("jpg", "jpeg")
    candidates = []
    for i, img in enumerate(view.images):
        parts: list[dict[str, Any]] = [{"text": img.revised_prompt}] if text and img.revised_prompt else []
        mime = img.content_type or fallback
        if img.b64_json is not None:
            parts.append({"inlineData": {"mimeType": mime, "data": img.b64_json}})
        else:
            parts.append({"fileData": {"mimeType": mime, "fileUri": img.url}})
        candidates.append({"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": i})
    usage = view.usage or {}
    prompt = _count(usage, "promptTokenCount", "input_tokens", "prompt_tokens")
    output = _count(usage, "candidatesTokenCount", "output_tokens", "completion_tokens")
    total = _count(usage, "totalTokenCount", "total_tokens") or prompt + output
    return {
        "candidates": candidates,
        "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": total},
        "modelVersion": view.model,
        "responseId": view.id,
    }


def _outcome(view: TaskView) -> dict[str, Any]:
    """The answer once the task has ended, or raise its error."""
    if view.status == TaskStatus.succeeded:
        return response_body(view)
    if view.status.terminal:
        raise task_error(view)
    raise GatewayError(
        ErrorCode.upstream_timeout,
        f"the generation is still running as task {view.id}; see GET /v1/tasks/{view.id}",
    )


def model_object(model: CatalogModel) -> dict[str, Any]:
    return {
        "name": f"models/{model.id}",
        "baseModelId": model.id,
        "version": "imagegate",
        "displayName": model.id,
        "description": model.spec.description,
        "inputTokenLimit": model.spec.max_prompt_chars,
        "outputTokenLimit": 0,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent"],
    }


class GeminiDialect:
    name = "gemini"

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.create_routes = [
            route for prefix in (PREFIX, "/v1/models") for route in self._routes(prefix, prefix == PREFIX)
        ]
        self.task_routes: list[TaskRoute] = []

    def _routes(self, prefix: str, beta: bool) -> list[CreateRoute]:
        """Google's SDKs call v1beta or v1 (google-genai's default now); both paths take the same request."""
        generate = GENERATE if beta else replace(GENERATE, id=GENERATE.id + "_v1")
        stream = STREAM if beta else replace(STREAM, id=STREAM.id + "_v1")
        return [
            CreateRoute(f"{prefix}/{{model:path}}:generateContent", self.parse, generate),
            CreateRoute(f"{prefix}/{{model:path}}:streamGenerateContent", partial(self.parse, stream=True), stream),
        ]

    async def parse(
        self, request: Request, body: RequestBody, ctx: ParseContext, *, stream: bool = False
    ) -> Submission:
        if body.images:
            name = next(iter(body.images))
            raise GatewayError.bad(name, f"'{name}' is not a field here; send images as contents[].parts[].inlineData")
        query = check(StreamQuery, given(request.query_params))
        if stream and query.alt is not None and query.alt.lower() != "sse":
            raise GatewayError.bad("alt", f"'alt' must be sse, got {shown(query.alt)!r}")
        sent = check(GenerateContentRequest, body.fields)
        prompt, refs = _images(sent.contents)
        config = sent.generation_config or GenerationConfig()
        modalities = [m.upper() for m in config.response_modalities or ()]
        return Submission(
            dialect=self.name,
            caller=ctx.caller,
            model=self.model_name(request.path_params.get("model", "")),
            params=_params(config, prompt),
            base_url=ctx.base_url,
            images=refs,
            run="async" if stream else "sync",
            stream=stream,
            record={"gemini": {"text": "TEXT" in modalities}},
            param_names=PARAMS,
        )

    def model_name(self, raw: str) -> str:
        """The path's model: a catalog id or alias, ``models/`` in front or not (ids may hold a ``/``)."""
        name = raw.removeprefix("models/")
        if self.catalog.get(name) is None and self.catalog.get(raw) is not None:
            return raw
        return name

    def render(self, outcome: Outcome) -> Response:
        if outcome.events is not None:
            return self._stream(outcome)
        return FastJSON(_outcome(outcome.task))

    def _stream(self, outcome: Outcome) -> Response:
        stream = outcome.events
        assert stream is not None

        async def events() -> AsyncIterator[bytes]:
            view: TaskView = outcome.task
            yield b"\n"  # a keep-alive (an empty line dispatches no event; google-genai parses any other line)
            async for event in stream:
                if event is None:
                    yield b"\n"
                elif isinstance(event, TaskView):
                    view = event
            try:
                body = _outcome(view)
            except GatewayError as exc:
                body = error_body(exc)
            yield b"data: " + orjson.dumps(body) + b"\n\n"

        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    def render_task(self, view: TaskView) -> Response:
        return FastJSON(response_body(view))

    def render_error(self, exc: GatewayError) -> Response:
        headers = {"retry-after": str(int(max(1, exc.retry_after)))} if exc.retry_after is not None else {}
        return FastJSON(error_body(exc), status_code=exc.status, headers=headers)

    def webhook_body(self, view: TaskView) -> bytes:
        try:
            return orjson.dumps(_outcome(view))
        except GatewayError as exc:
            return orjson.dumps(error_body(exc))

    def extra_routes(self) -> APIRouter | None:
        router = APIRouter()

        @router.get(PREFIX, **MODELS.route_kwargs())
        async def gemini_models() -> Response:
            return FastJSON({"models": [model_object(m) for m in self.catalog.all() if m.ready]})

        @router.get(f"{PREFIX}/{{model:path}}", **MODEL.route_kwargs())
        async def gemini_model(request: Request) -> Response:
            model = request.path_params["model"]
            found = self.catalog.get(self.model_name(model))
            if found is None:
                exc = GatewayError(ErrorCode.model_not_found, f"model '{shown(model)}' does not exist", param="model")
                return self.render_error(exc)
            return FastJSON(model_object(found))

        return router
