"""Turn the image strings clients send (URL, data URI, raw base64) into checked bytes.

URLs are fetched with httpx under a network policy (``media.network``): http/https only;
private, loopback, link-local and reserved addresses refused unless allowed; each connection
made to the address its check approved; every redirect hop re-checked; a byte cap and a time
limit. Bytes are judged by their header before anything decodes them: an image over the pixel
limit is refused however small its file. The same policy guards webhook targets.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Iterable
from urllib.parse import urljoin

import httpx

from imagegate.domain import ErrorCode, GatewayError, ImageInput
from imagegate.media import codecs
from imagegate.media.network import HTTP_URL, NetworkPolicy, Target, check_url

__all__ = ["NetworkPolicy", "Target", "check_url", "check_request_pixels", "checked", "fetch_url", "resolve"]

_DATA_URI = re.compile(r"^data:(?P<mime>[\w/+.-]*)?(?P<params>(;[\w=.-]+)*?)(?P<b64>;base64)?,(?P<data>.*)$", re.S)
_B64_CHARS = re.compile(r"^[A-Za-z0-9+/=\s_-]+$")
IMAGE_FORMS = f"{HTTP_URL}, a data URI or base64 image data"


async def fetch_url(client: httpx.AsyncClient, url: str, policy: NetworkPolicy, param: str) -> bytes:
    url = policy.rewrite(url)
    for _ in range(policy.max_redirects + 1):
        target = await check_url(url, policy, param, what=IMAGE_FORMS)
        try:
            request = target.build(client, "GET", timeout=policy.timeout)
            resp = await client.send(request, stream=True, follow_redirects=False)  # each hop is checked here
            try:
                if resp.is_redirect and resp.headers.get("location"):
                    url = urljoin(url, resp.headers["location"])
                    continue
                return await _body(resp, policy, param)
            finally:
                await resp.aclose()
        except httpx.TimeoutException as exc:
            raise GatewayError.bad(param, f"'{param}' URL timed out after {policy.timeout:g}s") from exc
        except httpx.HTTPError as exc:
            raise GatewayError.bad(param, f"'{param}' URL could not be fetched ({type(exc).__name__})") from exc
    raise GatewayError.bad(param, f"'{param}' URL redirected too many times")


async def _body(resp: httpx.Response, policy: NetworkPolicy, param: str) -> bytes:
    if resp.status_code != 200:
        raise GatewayError(ErrorCode.invalid_image, f"'{param}' URL answered HTTP {resp.status_code}", param=param)
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise _too_large(param, policy.max_bytes)
    chunks, total = [], 0
    async for chunk in resp.aiter_bytes():
        total += len(chunk)
        if total > policy.max_bytes:
            raise _too_large(param, policy.max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(param: str, limit: int) -> GatewayError:
    return GatewayError(
        ErrorCode.payload_too_large, f"'{param}' is larger than the {limit // (1024 * 1024)} MB limit", param=param
    )


def decode_base64(text: str, param: str) -> bytes:
    cleaned = "".join(text.split())
    if not cleaned or not _B64_CHARS.match(cleaned):
        raise GatewayError(ErrorCode.invalid_image, f"'{param}' is not valid base64", param=param)
    try:
        if "-" in cleaned or "_" in cleaned:
            return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise GatewayError(ErrorCode.invalid_image, f"'{param}' is not valid base64", param=param) from exc


def checked(data: bytes, param: str, policy: NetworkPolicy, source: str, url: str | None = None) -> ImageInput:
    """Size, then pixels from the header, then structure: never a decode (CPU work: run it off the loop)."""
    if len(data) > policy.max_bytes:
        raise _too_large(param, policy.max_bytes)
    info = codecs.probe(data, param, policy.max_pixels)
    return ImageInput(data=data, mime=info.mime, width=info.width, height=info.height, source=source, url=url)


def check_request_pixels(images: Iterable[tuple[str, ImageInput]], policy: NetworkPolicy) -> None:
    """Refuse a request whose input images together declare more than ``policy.max_request_pixels``.

    Each image already passed its own limit; sixteen of them at that limit would still be
    sixteen times the memory once a provider decodes them. The 400 names the parameter of
    the image that went over.
    """
    total = 0
    for param, img in images:
        total += img.width * img.height
        if total > policy.max_request_pixels:
            raise GatewayError(
                ErrorCode.invalid_image,
                f"'{param}' takes the input images over the {policy.max_request_pixels:,} pixels allowed "
                "per request, all images together",
                param=param,
            )


def _decoded(text: str, param: str, policy: NetworkPolicy, source: str) -> ImageInput:
    return checked(decode_base64(text, param), param, policy, source)


async def resolve(client: httpx.AsyncClient, value: str, policy: NetworkPolicy, param: str) -> ImageInput:
    """A URL, data URI or raw base64 string -> a checked :class:`ImageInput` (4xx naming ``param``)."""
    if not isinstance(value, str) or not value.strip():
        raise GatewayError.bad(param, f"'{param}' must be a non-empty string")
    value = value.strip()
    if value.startswith("data:"):
        m = _DATA_URI.match(value)
        if not m or not m.group("b64"):
            raise GatewayError(ErrorCode.invalid_image, f"'{param}' is not a base64 data URI", param=param)
        return await asyncio.to_thread(_decoded, m.group("data"), param, policy, "data-uri")
    if value.startswith(("http://", "https://")):
        data = await fetch_url(client, value, policy, param)
        return await asyncio.to_thread(checked, data, param, policy, "url", value)
    if "://" in value:
        raise GatewayError.bad(param, f"'{param}' must be {IMAGE_FORMS}")
    if len(value) * 3 // 4 > policy.max_bytes + 4:
        raise _too_large(param, policy.max_bytes)
    return await asyncio.to_thread(_decoded, value, param, policy, "base64")
