"""Upload slot routes: ``POST /v1/uploads`` reserves a slot; ``PUT`` its signed URL with the bytes.

The PUT needs no API key: the signed URL is the credential, like a presigned S3 URL.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from imagegate.api.deps import BaseUrl, CurrentKey, GatewayDep
from imagegate.domain import ErrorCode, GatewayError, UploadSlot
from imagegate.engine.uploads import CONTENT_TYPES

router = APIRouter()

__all__ = ["CONTENT_TYPES", "router", "slot_object"]


def slot_object(slot: UploadSlot) -> dict[str, Any]:
    return {
        "object": "upload",
        "upload_id": slot.id,
        "id": slot.id,
        "upload_url": slot.url,
        "method": "PUT",
        "expires_at": int(slot.expires_at.timestamp()),
        "max_bytes": slot.max_bytes,
        "filename": slot.filename,
        "content_type": slot.content_type,
        "ref": f"upload://{slot.id}",
    }


def parse_slot_request(body: Any) -> tuple[str, str, int | None]:
    if not isinstance(body, dict):
        raise GatewayError.bad("body", "request body must be a JSON object")
    filename, ctype, size = body.get("filename"), body.get("content_type"), body.get("size")
    if not isinstance(filename, str) or not 1 <= len(filename) <= 255:
        raise GatewayError.bad("filename", "'filename' is required: a string of 1 to 255 characters")
    if not isinstance(ctype, str) or ctype.lower() not in CONTENT_TYPES:
        raise GatewayError.bad("content_type", f"'content_type' must be one of {', '.join(CONTENT_TYPES)}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise GatewayError.bad("size", "'size' must be a positive integer (bytes)")
    return filename, ctype.lower(), size


def _too_large(limit: int) -> GatewayError:
    return GatewayError(ErrorCode.payload_too_large, f"the upload is larger than its {limit} byte limit", param="body")


def body_reader(request: Request) -> Any:
    async def read(limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    return read


@router.post("/v1/uploads")
async def uploads_create(request: Request, gw: GatewayDep, caller: CurrentKey, base: BaseUrl) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError as exc:
        raise GatewayError.bad("body", "request body must be JSON: {filename, content_type, size?}") from exc
    filename, ctype, size = parse_slot_request(body)
    slot = await gw.uploads.create(caller.id, base, filename=filename, content_type=ctype, size=size)
    return JSONResponse(slot_object(slot), status_code=201)


@router.put("/v1/uploads/{upload_id}")
async def uploads_put(upload_id: str, request: Request, gw: GatewayDep) -> JSONResponse:
    q = request.query_params
    up = await gw.uploads.receive(upload_id, q.get("expires"), q.get("sig"), body_reader(request))
    return JSONResponse({"object": "upload", "upload_id": up.id, "status": "uploaded", "ref": f"upload://{up.id}"})
