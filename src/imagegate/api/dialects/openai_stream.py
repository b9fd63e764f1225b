"""OpenAI's Images API streaming (``stream: true``): a task's events as server-sent events.

The wire format is OpenAI's (openai-python ``ImageGenStreamEvent`` / ``ImageEditStreamEvent``):
each event's ``event:`` name equals its data's ``type``. ``<kind>.partial_image`` carries a
preview (``b64_json``, ``partial_image_index`` from 0); ``<kind>.completed`` carries a finished
image, one event per image, where ``kind`` is ``image_generation`` or ``image_edit``. Both carry
``size``, ``quality``, ``background``, ``output_format`` and ``created_at``; a completed event adds
``usage`` (the task's whole usage rides on its last completed event, zeros on the others, so the
events add up to what the task used). A task that fails after the stream started ends it with an
``error`` event holding OpenAI's error object. Comment lines keep a quiet connection open.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from fastapi.responses import StreamingResponse

from imagegate.api.dialects.base import task_error
from imagegate.domain import PartialImage, StreamEvent, TaskStatus, TaskView

KEEP_ALIVE = b": keep-alive\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx: pass each event on at once


def frame(data: Mapping[str, Any], name: str | None = None) -> bytes:
    return b"event: " + (name or str(data["type"])).encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def settings_of(view: TaskView) -> dict[str, Any]:
    """The image settings every event repeats: as made once the task ended, as asked before."""
    req = view.request
    asked = f"{req['width']}x{req['height']}" if req.get("width") and req.get("height") else "auto"
    return {
        "size": view.size or asked,
        "quality": req.get("quality") or "auto",
        "background": req.get("background") or "auto",
        "output_format": view.output_format or req.get("output_format") or "png",
    }


def usage_of(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI's usage object; zeros where the upstream counts no tokens."""
    u = usage or {}
    details = u.get("input_tokens_details") or {}
    inp, out = int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0)
    return {
        "input_tokens": inp,
        "input_tokens_details": {
            "image_tokens": int(details.get("image_tokens") or 0),
            "text_tokens": int(details.get("text_tokens") or 0),
        },
        "output_tokens": out,
        "total_tokens": int(u.get("total_tokens") or inp + out),
    }


def ended(view: TaskView, kind: str) -> list[bytes]:
    """The frames of a terminal task: one completed event per image, or an error event."""
    if view.status != TaskStatus.succeeded or not view.images:
        exc = task_error(view)
        return [frame({"type": "error", "error": exc.to_dict()})]
    base = {**settings_of(view), "created_at": int(time.time())}
    last = len(view.images) - 1
    return [
        frame(
            {
                "type": f"{kind}.completed",
                "b64_json": img.b64_json or "",
                **base,
                "usage": usage_of(view.usage if i == last else None),
            }
        )
        for i, img in enumerate(view.images)
    ]


async def sse(events: AsyncIterator[StreamEvent], first: TaskView, kind: str) -> AsyncIterator[bytes]:
    """``first``: the task as created, whose request gives the previews' settings."""
    yield KEEP_ALIVE  # headers and a first byte at once, whatever the task does next
    async for event in events:
        if event is None:
            yield KEEP_ALIVE
        elif isinstance(event, PartialImage):
            data = {
                "type": f"{kind}.partial_image",
                "b64_json": event.b64_json,
                "partial_image_index": event.index,
                **settings_of(first),
                "created_at": int(time.time()),
            }
            yield frame(data)
        else:
            for chunk in ended(event, kind):
                yield chunk
            return


def stream_response(events: AsyncIterator[StreamEvent], view: TaskView) -> StreamingResponse:
    kind = "image_edit" if view.mode == "edit" else "image_generation"
    return StreamingResponse(sse(events, view, kind), media_type="text/event-stream", headers=HEADERS)
