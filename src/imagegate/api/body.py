"""Request bodies as clients send them: JSON, multipart or urlencoded, read once and bounded.

Image fields (``image``, ``image[]``, ``mask``, ``images``) and file parts are kept apart from
the scalar fields, in the order sent, so a dialect can turn them into image references.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from imagegate.domain import ErrorCode, GatewayError, IdempotencyKey, ImageRef

IMAGE_FIELDS = ("image", "mask", "images")
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LEN = 255
TRUE = ("1", "true", "yes", "on")
_WAIT = re.compile(r"wait(?:=(\d+(?:\.\d+)?))?")

#: a multipart file part, or a string (URL, data URI, base64, upload://id) in an image field
ImageValue = UploadFile | str


@dataclass(slots=True)
class RequestBody:
    fields: dict[str, Any]
    images: dict[str, list[ImageValue]] = field(default_factory=dict)  # by field name without "[]"


def _too_large(limit: int) -> GatewayError:
    return GatewayError(ErrorCode.payload_too_large, f"request body is larger than {limit // 2**20} MB")


async def read_body(request: Request, max_bytes: int) -> RequestBody:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _read_form(request)
    raw = await request.body()
    if len(raw) > max_bytes:
        raise _too_large(max_bytes)
    if not raw.strip():
        raise GatewayError.bad("body", "request body is empty: send JSON with at least 'model' and 'prompt'")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GatewayError.bad("body", f"request body is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise GatewayError.bad("body", "request body must be a JSON object")
    body = RequestBody(fields=data)
    for name in ("image", "mask", "images", "image[]", "mask[]"):
        if name in data:
            value = data.pop(name)
            base = name.removesuffix("[]")
            values = value if isinstance(value, list) else [value]
            if any(not isinstance(v, str) for v in values):
                raise GatewayError.bad(base, f"'{base}' must be a string or an array of strings")
            body.images.setdefault(base, []).extend(v for v in values if v != "")
    return body


async def _read_form(request: Request) -> RequestBody:
    try:
        form = await request.form(max_files=64, max_fields=256)
    except Exception as exc:  # malformed multipart: the parser's own exception types vary
        raise GatewayError.bad("body", f"malformed form body ({type(exc).__name__})") from exc
    body = RequestBody(fields={})
    for name, value in form.multi_items():
        base = name.removesuffix("[]")
        if base in IMAGE_FIELDS or isinstance(value, UploadFile):
            body.images.setdefault(base, []).append(value)
        else:
            body.fields[base] = value
    return body


async def file_bytes(upload: UploadFile, param: str, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise GatewayError(
            ErrorCode.payload_too_large, f"'{param}' is larger than the {limit // 2**20} MB limit", param=param
        )
    return data


async def image_refs(images: dict[str, list[ImageValue]], max_bytes: int) -> list[ImageRef]:
    """``image``/``image[]`` then ``images[]``, then the mask; file parts read with the size limit."""

    async def ref(name: str, value: ImageValue, role: str) -> ImageRef:
        data = value if isinstance(value, str) else await file_bytes(value, name, max_bytes)
        return ImageRef(data, name, "mask" if role == "mask" else "image")

    order = [("image", "image"), ("images", "image"), ("mask", "mask")]
    return [await ref(name, v, role) for name, role in order for v in images.get(name, [])]


def prefer_wait(request: Request) -> float | None:
    """``Prefer: wait=N``: how long an async create may wait for the task's end."""
    for part in request.headers.get("prefer", "").split(","):
        m = _WAIT.fullmatch(part.strip())
        if m:
            return float(m.group(1)) if m.group(1) else 60.0
    return None


def truthy(value: Any) -> bool:
    return str(value or "").lower() in TRUE


async def idempotency_key(request: Request, body: RequestBody) -> IdempotencyKey | None:
    """The request's Idempotency-Key with the fingerprint of what was sent (file parts by their sha256)."""
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_KEY_LEN or not value.isascii() or not value.isprintable():
        raise GatewayError.bad(
            IDEMPOTENCY_HEADER, f"'{IDEMPOTENCY_HEADER}' must be 1 to {MAX_KEY_LEN} printable ASCII characters"
        )
    files: dict[str, list[str]] = {}
    for name, values in sorted(body.images.items()):
        files[name] = [await _digest(v) for v in values]
    canon = {
        "method": request.method.upper(),
        "path": request.url.path,
        "query": sorted(request.query_params.multi_items()),
        "fields": body.fields,
        "files": files,
    }
    raw = json.dumps(canon, sort_keys=True, separators=(",", ":"), default=str)
    return IdempotencyKey(value, hashlib.sha256(raw.encode()).hexdigest())


async def _digest(value: ImageValue) -> str:
    if isinstance(value, str):
        return value
    data = await value.read()
    await value.seek(0)
    return "sha256:" + hashlib.sha256(data).hexdigest()
