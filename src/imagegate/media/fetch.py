"""Turn the image strings clients send (URL, data URI, raw base64) into checked bytes.

URLs are fetched with httpx under a network policy: http/https only; private, loopback,
link-local and reserved addresses refused unless allowed; every redirect hop re-checked;
a byte cap and a time limit. The same policy guards webhook targets.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from imagegate.domain import ErrorCode, GatewayError, ImageInput
from imagegate.media import codecs

_DATA_URI = re.compile(r"^data:(?P<mime>[\w/+.-]*)?(?P<params>(;[\w=.-]+)*?)(?P<b64>;base64)?,(?P<data>.*)$", re.S)
_B64_CHARS = re.compile(r"^[A-Za-z0-9+/=\s_-]+$")


@dataclass
class NetworkPolicy:
    allow_private: bool = False
    max_bytes: int = 25 * 1024 * 1024
    timeout: float = 20.0
    max_redirects: int = 3
    #: URL prefix -> replacement (an internal mirror for a public CDN, say); applied before the checks
    rewrites: dict[str, str] = field(default_factory=dict)

    def rewrite(self, url: str) -> str:
        for prefix, repl in self.rewrites.items():
            if url.startswith(prefix):
                return repl + url[len(prefix) :]
        return url


def _blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified


async def check_url(url: str, policy: NetworkPolicy, param: str) -> None:
    """Raise a 400 naming ``param`` when ``url`` may not be fetched under ``policy``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GatewayError.bad(param, f"'{param}' must be an http(s) URL, a data URI or base64 image data")
    if policy.allow_private:
        return
    host = parts.hostname
    try:
        ips = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise GatewayError.bad(param, f"'{param}' host {host!r} cannot be resolved") from exc
        ips = [ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos]
    if any(_blocked(ip) for ip in ips):
        raise GatewayError(
            ErrorCode.forbidden, f"'{param}' points to a private or local network address", param=param, status=400
        )


async def fetch_url(client: httpx.AsyncClient, url: str, policy: NetworkPolicy, param: str) -> bytes:
    url = policy.rewrite(url)
    for _ in range(policy.max_redirects + 1):
        await check_url(url, policy, param)
        try:
            async with client.stream("GET", url, timeout=policy.timeout, follow_redirects=False) as resp:
                if resp.is_redirect and resp.headers.get("location"):
                    url = urljoin(url, resp.headers["location"])
                    continue
                if resp.status_code != 200:
                    raise GatewayError(
                        ErrorCode.invalid_image, f"'{param}' URL answered HTTP {resp.status_code}", param=param
                    )
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
        except httpx.TimeoutException as exc:
            raise GatewayError.bad(param, f"'{param}' URL timed out after {policy.timeout:g}s") from exc
        except httpx.HTTPError as exc:
            raise GatewayError.bad(param, f"'{param}' URL could not be fetched ({type(exc).__name__})") from exc
    raise GatewayError.bad(param, f"'{param}' URL redirected too many times")


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
    if len(data) > policy.max_bytes:
        raise _too_large(param, policy.max_bytes)
    info = codecs.probe(data, param)
    return ImageInput(data=data, mime=info.mime, width=info.width, height=info.height, source=source, url=url)


async def resolve(client: httpx.AsyncClient, value: str, policy: NetworkPolicy, param: str) -> ImageInput:
    """A URL, data URI or raw base64 string -> a checked :class:`ImageInput` (4xx naming ``param``)."""
    if not isinstance(value, str) or not value.strip():
        raise GatewayError.bad(param, f"'{param}' must be a non-empty string")
    value = value.strip()
    if value.startswith("data:"):
        m = _DATA_URI.match(value)
        if not m or not m.group("b64"):
            raise GatewayError(ErrorCode.invalid_image, f"'{param}' is not a base64 data URI", param=param)
        return checked(decode_base64(m.group("data"), param), param, policy, "data-uri")
    if value.startswith(("http://", "https://")):
        data = await fetch_url(client, value, policy, param)
        return checked(data, param, policy, "url", url=value)
    if "://" in value:
        raise GatewayError.bad(param, f"'{param}' must be an http(s) URL, a data URI or base64 image data")
    if len(value) * 3 // 4 > policy.max_bytes + 4:
        raise _too_large(param, policy.max_bytes)
    return checked(decode_base64(value, param), param, policy, "base64")
