"""What adapters share, written once: sizes in the upstream's terms, image references, fan-out, errors.

An adapter only translates. The facts it translates with are its model's catalog entry
(:class:`ModelSpec`), and the size arithmetic is :mod:`imagegate.catalog.sizing`, the same
functions validation uses, so a size validation accepted reaches the upstream unchanged and an
aspect ratio or tier reaches it as the value the client chose.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeVar

import httpx

from imagegate.catalog import sizing
from imagegate.catalog.schema import ModelSpec
from imagegate.domain import ErrorCode, ImageInput, ImageRequest, UpstreamError
from imagegate.media import b64, codecs
from imagegate.media.pool import DECODES

P = ParamSpec("P")
T = TypeVar("T")

# -- image work --------------------------------------------------------------------------------


def input_pixels(req: ImageRequest) -> int:
    """Pixels of a request's input images and mask: what decoding them for the upstream holds in memory."""
    images = [*req.images, *([req.mask] if req.mask is not None else [])]
    return sum(i.width * i.height for i in images)


async def image_work(pixels: int, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run Pillow work (masks, crops, request bodies with images) in the process's bounded decode pool,
    so concurrent big images queue instead of multiplying memory."""
    return await DECODES.run(pixels, fn, *args, **kwargs)


# -- sizes -------------------------------------------------------------------------------------


def pixel_size(spec: ModelSpec, req: ImageRequest, rounding: sizing.Rounding = "nearest") -> tuple[int, int] | None:
    """WxH for an upstream sized in pixels; None leaves the size to the upstream (``auto``).

    A validated request already holds a size the model takes, which comes back as it is. A
    request built elsewhere gets the same treatment validation gives: a tier and ratio become
    :func:`sizing.tier_size`, and a free size is fitted into the rule or onto the nearest listed size.
    """
    if req.width and req.height:
        return sizing.conform(spec, req.width, req.height, rounding)
    if req.resolution or req.aspect_ratio:
        ratio = sizing.parse_ratio(req.aspect_ratio or "1:1") or 1.0
        w, h = sizing.tier_size(spec, sizing.normalize_tier(req.resolution or ""), ratio, req.aspect_ratio)
        return sizing.conform(spec, w, h, rounding)
    return None


def aspect_and_tier(spec: ModelSpec, req: ImageRequest) -> tuple[str | None, str | None]:
    """(aspect ratio, tier) for an upstream sized by aspect ratio; None leaves either to the upstream.

    The client's ratio and tier go as they are. A size from the model's ``size_table`` goes as
    that entry's ratio and tier, so the upstream makes exactly that size; any other size goes as
    the nearest ratio the model offers and the nearest tier (the documented snapping rule).
    """
    dims = (req.width, req.height) if req.width and req.height else None
    entry = sizing.table_entry(spec, *dims) if dims else None
    ratios = spec.aspect_ratios or []
    ratio: str | None = None
    if req.aspect_ratio:
        parsed = sizing.parse_ratio(req.aspect_ratio)
        if not ratios or req.aspect_ratio in ratios:
            ratio = req.aspect_ratio
        elif parsed:
            ratio = sizing.nearest_ratio(round(parsed * 1000), 1000, ratios)
    elif entry:
        ratio = entry[0]
    elif dims:
        ratio = sizing.nearest_ratio(*dims, ratios) if ratios else sizing.ratio_label(*dims)
    tier = sizing.normalize_tier(req.resolution) if req.resolution else None
    if tier is None and entry:
        tier = entry[1]
    elif tier is None and dims and spec.resolutions:
        tier = sizing.nearest_tier(*dims, spec.resolutions)
    return ratio, tier


# -- image references --------------------------------------------------------------------------

#: one multipart file part: (field, (filename, bytes, content type))
FilePart = tuple[str, tuple[str, bytes, str]]
#: any multipart part, a plain text field being (field, (None, text))
FormPart = tuple[str, tuple[str | None, str | bytes] | tuple[str | None, str | bytes, str]]


def remote_url(img: ImageInput) -> str | None:
    """The client's own http(s) URL, which an upstream can fetch itself (smaller requests than bytes)."""
    return img.url if img.url and img.url.startswith(("https://", "http://")) else None


def data_uri(img: ImageInput) -> str:
    return f"data:{img.mime or 'image/png'};base64,{b64.encode(img.data)}"


def image_ref(img: ImageInput, inline: Literal["data_uri", "base64"] = "data_uri") -> str:
    """An input image as an upstream takes it: the client's URL when it gave one, else the bytes inline."""
    url = remote_url(img)
    if url is not None:
        return url
    return data_uri(img) if inline == "data_uri" else b64.encode(img.data)


def edit_mask_png(mask: ImageInput, size: tuple[int, int]) -> bytes:
    """A grayscale PNG, white where to edit, at the input image's size (BFL, Replicate, Stability)."""
    return codecs.encode(codecs.edit_area(mask.data, size), "png")


# -- fan-out -----------------------------------------------------------------------------------


def per_call(spec: ModelSpec) -> int:
    """Images one upstream call may return for this model."""
    return max(1, spec.images_per_call or spec.max_n)


def chunks(n: int, per: int) -> list[int]:
    """The image count of each upstream call when ``n`` is split into calls of at most ``per``."""
    per = max(1, per)
    return [min(per, n - i) for i in range(0, n, per)]


def sum_usage(usages: Iterable[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """Usage of fanned-out calls added up, nested ``*_details`` objects too (lists are left out)."""
    got = [u for u in usages if u]
    if not got:
        return None
    if len(got) == 1:
        return dict(got[0])

    def add(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for k, v in b.items():
            if isinstance(v, (int, float)) and isinstance(out.get(k, 0), (int, float)):
                out[k] = out.get(k, 0) + v
            elif isinstance(v, Mapping):
                out[k] = add(out.get(k) or {}, v)
        return out

    total: dict[str, Any] = {}
    for u in got:
        total = add(total, u)
    return total


# -- errors ------------------------------------------------------------------------------------


def parse_retry_after(value: str | float | None) -> float | None:
    """Seconds to wait from a Retry-After value: seconds ('7', '1.5'), a duration ('34s', Google's
    RetryInfo) or an HTTP date; None when absent or unreadable."""
    if value is None or isinstance(value, (int, float)):
        return float(value) if value is not None and math.isfinite(value) and value >= 0 else None
    text = value.strip().removesuffix("s")
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return max(0.0, seconds)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def retry_after_of(resp: httpx.Response) -> float | None:
    """OpenAI's ``retry-after-ms`` (finer) when sent, else ``Retry-After``."""
    ms = parse_retry_after(resp.headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    return parse_retry_after(resp.headers.get("retry-after"))


def json_body(resp: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when it is not one (an HTML error page, an empty body)."""
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def http_error(
    provider: str,
    status: int,
    message: str,
    *,
    retry_after: str | float | None = None,
    moderated: bool = False,
    param: str | None = None,
) -> UpstreamError:
    """Map an upstream HTTP status onto our error classes (a :class:`CodeMap` refines by body codes)."""
    if moderated:
        code = ErrorCode.content_policy_violation
    elif status in (401, 403):
        code = ErrorCode.upstream_auth
    elif status == 402:
        code = ErrorCode.upstream_quota
    elif status == 429:
        code = ErrorCode.upstream_rate_limited
    elif status in (408, 504):
        code = ErrorCode.upstream_timeout
    elif status == 503:
        code = ErrorCode.upstream_unavailable
    elif status >= 500:
        code = ErrorCode.upstream_error
    elif status in (400, 404, 413, 422):
        code = ErrorCode.upstream_bad_request
    else:
        code = ErrorCode.upstream_error
    return UpstreamError(
        code, f"{provider}: {message}", status=status, retry_after=parse_retry_after(retry_after), param=param
    )


def prefixes(*names: str) -> str:
    """A :class:`CodeMap` pattern for codes starting with any of ``names``."""
    return "|".join(re.escape(n) for n in names)


def exactly(*names: str) -> str:
    """A :class:`CodeMap` pattern for codes equal to one of ``names``."""
    return f"(?:{prefixes(*names)})$"


@dataclass(frozen=True, slots=True)
class CodeMap:
    """An upstream's business error codes -> our error classes; the first matching pattern wins.

    Codes an upstream sends in its body say more than its HTTP status (Tencent answers 200 for
    everything); a code the map does not know falls back to :func:`http_error` on the status.
    """

    provider: str
    rules: tuple[tuple[re.Pattern[str], ErrorCode], ...]

    @classmethod
    def of(cls, provider: str, *rules: tuple[str, ErrorCode]) -> CodeMap:
        return cls(provider, tuple((re.compile(pattern), code) for pattern, code in rules))

    def code_for(self, code: str) -> ErrorCode | None:
        return next((mapped for pattern, mapped in self.rules if pattern.match(code)), None)

    def error(
        self,
        status: int,
        code: object,
        message: str,
        *,
        retry_after: str | float | None = None,
        param: str | None = None,
    ) -> UpstreamError:
        code_text = "" if code is None else str(code)
        text = f"{code_text}: {message}" if code_text else message
        mapped = self.code_for(code_text) if code_text else None
        if mapped is None:
            return http_error(self.provider, status, text, retry_after=retry_after, param=param)
        return UpstreamError(
            mapped, f"{self.provider}: {text}", status=status, retry_after=parse_retry_after(retry_after), param=param
        )
