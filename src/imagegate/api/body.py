"""Request bodies as clients send them: JSON, multipart or urlencoded, read once and bounded.

Image fields (``image``, ``image[]``, ``mask``, ``images``) and file parts are kept apart from
the scalar fields, in the order sent, so a dialect can turn them into image references.

Bounded means bounded before the work, not after it: the byte limit holds while the body
streams in (a chunked body has no Content-Length to check up front), and a JSON body's shape
(nesting, number of values) is measured from its bytes before any parser builds objects, so no
body can recurse the parser or turn a few megabytes of ``[]`` into gigabytes of lists.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.types import Message, Receive

from imagegate.domain import ErrorCode, GatewayError, IdempotencyKey, ImageRef, shown

IMAGE_FIELDS = ("image", "mask", "images")
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LEN = 255
MAX_JSON_DEPTH = 32  # Settings.max_json_depth
MAX_JSON_VALUES = 100_000  # arrays, objects and their members in one JSON body
MAX_FORM_FILES = 64
MAX_FORM_FIELDS = 256
MAX_PREFER_WAIT = 60.0  # seconds; the core holds an async create no longer than this either
_WAIT = re.compile(r"wait(?:\s*=\s*(.*))?", re.I)
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_SHAPE = bytes(b for b in range(256) if b not in b"[]{},")

#: a multipart file part, or a string (URL, data URI, base64, upload://id) in an image field
ImageValue = UploadFile | str


@dataclass(slots=True)
class RequestBody:
    fields: dict[str, Any]
    images: dict[str, list[ImageValue]] = field(default_factory=dict)  # by field name without "[]"


def _too_large(limit: int) -> GatewayError:
    size = f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit:,} bytes"
    return GatewayError(ErrorCode.payload_too_large, f"request body is larger than {size}", param="body")


async def read_body(request: Request, max_bytes: int, *, max_depth: int = MAX_JSON_DEPTH) -> RequestBody:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _read_form(Request(request.scope, _capped(request.receive, max_bytes)))
    raw = await read_capped(request, max_bytes)
    if not raw.strip():
        raise GatewayError.bad("body", "request body is empty: send JSON with at least 'model' and 'prompt'")
    data = parse_json(raw, max_depth)
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


async def read_capped(request: Request, max_bytes: int, too_large: Callable[[int], GatewayError] = _too_large) -> bytes:
    """The whole body, refused with ``too_large(max_bytes)`` once it passes ``max_bytes``."""
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _capped(receive: Receive, max_bytes: int) -> Receive:
    """``receive`` that refuses the body once it passes ``max_bytes``, for parsers that stream it themselves."""
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > max_bytes:
            raise _too_large(max_bytes)
        return message

    return capped


def parse_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH, max_values: int = MAX_JSON_VALUES) -> Any:
    """Measure the shape, then parse (400 naming ``body`` for either).

    The shape comes from the bytes (:func:`_shape`), and the nesting from peeling innermost
    ``[]`` pairs away once per level. All of it is bytes methods running in C, nothing
    recurses, the peeling stops at ``max_depth``, and the loops are bounded by ``max_values``.
    """
    shape = _shape(raw, max_values)
    if shape.count(b",") + shape.count(b"[") > max_values:
        raise _too_many_values(max_values)
    if _deeper_than(shape.replace(b",", b""), max_depth):
        raise GatewayError.bad("body", f"request body is nested deeper than {max_depth} levels")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError.bad("body", f"request body is not valid JSON ({shown(str(exc), 120)})") from exc


def _shape(raw: bytes, max_values: int) -> bytes:
    """The brackets and commas of a JSON text that lie outside its strings, ``{}`` written as ``[]``.

    Escaped backslashes go first, then escaped quotes (left to right, as JSON reads escapes),
    so every quote left opens or closes a string. A string is a value or a key, so the loop
    over them stops after ``2 * max_values``.
    """
    text = raw.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in raw else raw  # base64 has none
    outside, pos = [], 0
    for _ in range(2 * max_values + 1):
        start = text.find(b'"', pos)
        if start < 0:
            outside.append(text[pos:])
            break
        outside.append(text[pos:start])
        end = text.find(b'"', start + 1)
        if end < 0:
            break  # an unterminated string: the parser refuses it
        pos = end + 1
    else:
        raise _too_many_values(max_values)
    return b"".join(outside).translate(_BRACKETS, _NOT_SHAPE)


def _too_many_values(limit: int) -> GatewayError:
    return GatewayError.bad("body", f"request body has more than {limit:,} JSON values")


def _deeper_than(brackets: bytes, levels: int) -> bool:
    for _ in range(levels):
        peeled = brackets.replace(b"[]", b"")
        if len(peeled) == len(brackets):
            return False  # nothing left to peel (or unbalanced: the parser will say so)
        brackets = peeled
    return b"[]" in brackets


async def _read_form(request: Request) -> RequestBody:
    try:
        form = await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS)
    except GatewayError:
        raise
    except MultiPartException as exc:  # the limits above, a part over 1 MB, a broken boundary: its message says
        raise GatewayError.bad("body", f"malformed form body: {shown(exc.message, 120)}") from exc
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
    """``Prefer: wait=N``: how long an async create may wait for the task's end, at most MAX_PREFER_WAIT.

    RFC 7240 lets a server honour a preference partly, so a long wait is cut to the limit; a
    value that is no number of seconds at all (``wait=soon``, ``wait=-1``, ``wait=nan``) is a
    400 naming ``Prefer`` rather than a silent no-wait the client would not expect.
    """
    for part in request.headers.get("prefer", "").split(","):
        m = _WAIT.fullmatch(part.strip())
        if m:
            return _wait_seconds(m.group(1))
    return None


def _wait_seconds(value: str | None) -> float:
    if value is None:
        return MAX_PREFER_WAIT
    try:
        seconds = float(value.strip().strip('"'))
    except ValueError:
        seconds = math.nan
    if math.isnan(seconds) or seconds < 0:
        raise GatewayError.bad(
            "Prefer", f"'Prefer: wait={shown(value, 32)}' must be a number of seconds from 0 to {MAX_PREFER_WAIT:g}"
        )
    return min(seconds, MAX_PREFER_WAIT)


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
