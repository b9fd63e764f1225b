"""Upload slot routes: ``POST /v1/uploads`` reserves a slot; ``PUT`` its signed URL with the bytes.

The PUT needs no API key: the signed URL is the credential, like a presigned S3 URL. A link whose
``expires`` or ``sig`` is missing or malformed is a 403 like a forged one, never a 400 that tells
a prober which part it got wrong; its form is checked here, before any signature is computed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, WithJsonSchema

from imagegate.api.body import parse_json, read_capped
from imagegate.api.deps import BaseUrl, CurrentKey, GatewayDep
from imagegate.api.openapi import Operation
from imagegate.api.schemas import UploadReceived, UploadSlotObject
from imagegate.api.validation import check
from imagegate.domain import ErrorCode, GatewayError, UploadSlot
from imagegate.engine.uploads import CONTENT_TYPES

router = APIRouter()

__all__ = ["CONTENT_TYPES", "ContentType", "router", "slot_object"]

MAX_SLOT_REQUEST = 64 * 1024  # bytes of JSON: a file name and a content type


def _content_type(value: str) -> str:
    if value.lower() not in CONTENT_TYPES:
        raise ValueError(f"must be one of {', '.join(CONTENT_TYPES)}")
    return value.lower()


#: an image type an upload may have (any letter case)
ContentType = Annotated[
    str, AfterValidator(_content_type), WithJsonSchema({"type": "string", "enum": list(CONTENT_TYPES)})
]


def _count(value: Any) -> Any:
    """JSON's integers (``12`` or ``12.0``), not the strings and booleans Pydantic would also read as one."""
    if isinstance(value, bool | str):
        raise ValueError("must be an integer")
    return value


class UploadSlotRequest(BaseModel):
    """Unknown fields are ignored, as on every /v1 route."""

    filename: str = Field(min_length=1, max_length=255, examples=["input.png"])
    content_type: ContentType = Field(description="the type the PUT will send")
    size: Annotated[int, Field(ge=1), BeforeValidator(_count)] | None = Field(
        None, description="bytes the PUT will send, when known (checked then)"
    )


class SignedLink(BaseModel):
    """The query of a signed link as the gateway hands it out (a missing or wrong one is a 403)."""

    expires: str = Field(pattern=r"^[0-9]{1,12}$", description="Unix seconds after which the link is refused")
    sig: str = Field(pattern=r"^[0-9a-f]{1,128}$", description="the link's signature (hex)")


def signed_link(request: Request) -> SignedLink:
    """The link's ``expires`` and ``sig`` in the form the signer writes them (ASCII digits and hex: the
    signature check compares them as they are), or the 403 any wrong link gets."""
    try:
        return check(SignedLink, request.query_params)
    except GatewayError as exc:
        raise GatewayError(ErrorCode.forbidden, "the link is invalid or has expired", param=exc.param) from None


#: the PUT's body: the image's own bytes, whatever type it declares (they are sniffed)
IMAGE_BYTES = {
    ctype: {"schema": {"type": "string", "format": "binary"}} for ctype in ("application/octet-stream", *CONTENT_TYPES)
}


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


def _too_large(limit: int) -> GatewayError:
    return GatewayError(ErrorCode.payload_too_large, f"the upload is larger than its {limit} byte limit", param="body")


def body_reader(request: Request) -> Any:
    async def read(limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        return await read_capped(request, limit, _too_large)

    return read


CREATE = Operation(
    id="create_upload",
    summary="reserve an upload slot",
    tag="Uploads",
    responses={201: (UploadSlotObject, "the slot: PUT the bytes to upload_url before expires_at")},
    body=UploadSlotRequest,
)
PUT = Operation(
    id="put_upload",
    summary="upload an input's bytes to a slot",
    tag="Uploads",
    description="No API key: the signed upload_url is the credential.",
    responses={200: (UploadReceived, "stored: use ref in an image field")},
    query=SignedLink,
    raw_body=IMAGE_BYTES,
)


@router.post("/v1/uploads", status_code=201, **CREATE.route_kwargs())
async def uploads_create(request: Request, gw: GatewayDep, caller: CurrentKey, base: BaseUrl) -> JSONResponse:
    raw = await read_capped(request, MAX_SLOT_REQUEST)
    body = parse_json(raw) if raw.strip() else None
    if not isinstance(body, dict):
        raise GatewayError.bad("body", "request body must be a JSON object: {filename, content_type, size?}")
    sent = check(UploadSlotRequest, body)
    slot = await gw.uploads.create(
        caller.id, base, filename=sent.filename, content_type=sent.content_type, size=sent.size
    )
    return JSONResponse(slot_object(slot), status_code=201)


@router.put("/v1/uploads/{upload_id}", **PUT.route_kwargs())
async def uploads_put(upload_id: str, request: Request, gw: GatewayDep) -> JSONResponse:
    link = signed_link(request)
    up = await gw.uploads.receive(upload_id, link.expires, link.sig, body_reader(request))
    return JSONResponse({"object": "upload", "upload_id": up.id, "status": "uploaded", "ref": f"upload://{up.id}"})
