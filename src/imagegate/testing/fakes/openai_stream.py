"""The fake OpenAI Images API's error envelope and its streamed answer (see :mod:`imagegate.testing.fakes.openai`).

Previews are the final picture at a coarser scale, the size of the final one, as OpenAI's are
progressively finer renders of it; the events follow openai-python's ``ImageGenStreamEvent`` and
``ImageEditStreamEvent`` types (no ``output_tokens_details`` in a completed event's ``usage``).
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from typing import Any

from PIL import Image
from starlette.responses import JSONResponse, Response, StreamingResponse


def err(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}, status, headers=headers
    )


def check_stream(fam: str, body: dict[str, Any]) -> Response | int:
    """The previews a streamed request asks for, or OpenAI's 400."""
    if not fam.startswith("gpt-image"):
        return err(400, "Streaming is not supported for this model.", param="stream", code="unsupported_value")
    raw = body.get("partial_images", 0)
    try:
        count = int(raw)
    except (TypeError, ValueError):
        return err(400, f"Invalid type for 'partial_images': {raw!r}.", param="partial_images", code="invalid_type")
    if not 0 <= count <= 3:
        return err(
            400, "Invalid 'partial_images': must be between 0 and 3.", param="partial_images", code="invalid_value"
        )
    if int(body.get("n", 1)) != 1:
        return err(400, "Streaming supports n=1 only.", param="n", code="invalid_value")
    return count


def streamed(body: dict[str, Any]) -> bool:
    return body.get("stream") in (True, "true", "True")


def coarse(image: bytes, fmt: str, step: int) -> bytes:
    """A preview: the picture at 1/2**step of its scale, brought back to its size."""
    img = Image.open(io.BytesIO(image))
    small = img.resize((max(1, img.width >> step), max(1, img.height >> step)))
    buf = io.BytesIO()
    small.resize(img.size).save(buf, {"jpeg": "JPEG", "webp": "WEBP"}.get(fmt, "PNG"))
    return buf.getvalue()


def event_stream(out: dict[str, Any], png: bytes, fmt: str, previews: int, kind: str) -> StreamingResponse:
    common = {k: out[k] for k in ("background", "output_format", "quality", "size")}

    def frame(data: dict[str, Any]) -> bytes:
        return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()

    def events() -> Iterator[bytes]:
        for i in range(previews):
            b64 = base64.b64encode(coarse(png, fmt, previews - i + 1)).decode()
            data = {"type": f"{kind}.partial_image", "b64_json": b64, "partial_image_index": i}
            yield frame({**data, **common, "created_at": int(time.time())})
        usage = {k: v for k, v in out["usage"].items() if k != "output_tokens_details"}
        final = {"type": f"{kind}.completed", "b64_json": out["data"][0]["b64_json"], **common}
        yield frame({**final, "created_at": int(time.time()), "usage": usage})

    return StreamingResponse(events(), media_type="text/event-stream")
