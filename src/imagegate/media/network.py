"""Where the gateway may connect on a client's behalf: the address rules and the pinned target.

A client hands us URLs (input images, callback URLs) and we connect to them from inside the
operator's network, so every URL is checked before any byte is sent: http(s) only, and no
address that is not plainly on the public internet: private, loopback, link-local, carrier-grade
NAT, site-local, reserved, multicast, and IPv6 forms that wrap such an IPv4 address (mapped,
6to4, Teredo, NAT64).

A check is only worth something if the connection goes where the check looked. Resolving the
name again at connect time (what an HTTP client does by itself) leaves a window for DNS
rebinding: a name answers a public address to the check and 127.0.0.1 to the connect. So a check
returns a :class:`Target` that resolved the name once and connects to that address, keeping the
name in the Host header and as the TLS server name (certificates are still verified against it).
Each redirect hop is a new URL and gets its own check and its own pinned address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from imagegate.domain import ErrorCode, GatewayError, shown
from imagegate.media.codecs import DEFAULT_MAX_PIXELS

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: host, port -> the addresses the host name stands for (a seam: tests answer as a rebinding DNS would)
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
HTTP_URL = "an http(s) URL"
#: all input images of one request together: two and a half images at the per-image default
DEFAULT_MAX_REQUEST_PIXELS = 100_000_000

# Python's is_private / is_global tables change between releases; these hold whatever the release.
_BLOCKED_NETS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7",
        "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def embedded_v4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address delivers to: what the rules must judge, not the wrapper."""
    out = [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour) if v4 is not None]
    if ip.teredo is not None:
        out.extend(ip.teredo)  # (server, client): the client is where the packets end up
    if ip in _NAT64 or (ip in _V4_COMPATIBLE and int(ip) > 1):
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def blocked(ip: IPAddress) -> bool:
    """True when ``ip`` is not plainly a public internet address (or wraps one that is not)."""
    if isinstance(ip, ipaddress.IPv6Address) and (ip.scope_id or any(blocked(v4) for v4 in embedded_v4(ip))):
        return True
    if any(ip in net for net in _BLOCKED_NETS if net.version == ip.version):
        return True
    flags = (ip.is_private, ip.is_loopback, ip.is_link_local, ip.is_reserved, ip.is_multicast, ip.is_unspecified)
    return any(flags) or not ip.is_global


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass
class NetworkPolicy:
    """What clients' URLs may reach and how much they may send; one per gateway (``app.network_policy``)."""

    allow_private: bool = False
    max_bytes: int = 25 * 1024 * 1024
    timeout: float = 20.0
    max_redirects: int = 3
    #: URL prefix -> replacement (an internal mirror for a public CDN, say); applied before the checks
    rewrites: dict[str, str] = field(default_factory=dict)
    #: pixels one input image may declare in its header (``Settings.max_image_pixels``)
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: pixels all the input images of one request may declare together
    max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS
    resolver: Resolver = system_resolver

    def rewrite(self, url: str) -> str:
        for prefix, repl in self.rewrites.items():
            if url.startswith(prefix):
                return repl + url[len(prefix) :]
        return url


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL and the address its check approved: connect there and nowhere else.

    ``address`` is None only when the policy allows private networks, where there is nothing
    to pin: the name is resolved at connect time as usual.
    """

    url: httpx.URL
    address: str | None

    @property
    def connect_url(self) -> httpx.URL:
        return self.url if self.address is None else self.url.copy_with(host=self.address)

    def build(self, client: httpx.AsyncClient, method: str, **kwargs: Any) -> httpx.Request:
        """A request for ``client.send`` that connects to the pinned address and still names the host.

        The Host header and the TLS server name (``sni_hostname``, which the certificate is
        checked against) carry the name; only the TCP connection uses the address.
        """
        if self.address is None:
            return client.build_request(method, self.url, **kwargs)
        headers = httpx.Headers(kwargs.pop("headers", None))
        headers["Host"] = self.url.netloc.decode("ascii")
        extensions = dict(kwargs.pop("extensions", None) or {})
        if self.url.scheme == "https":
            extensions["sni_hostname"] = self.url.raw_host.decode("ascii")
        return client.build_request(method, self.connect_url, headers=headers, extensions=extensions, **kwargs)


async def check_url(url: str, policy: NetworkPolicy, param: str, *, what: str = HTTP_URL) -> Target:
    """Resolve ``url``'s host once and refuse it (400 naming ``param``) unless every address is allowed.

    ``what`` is how the refusal describes the values ``param`` accepts ("an http(s) URL", or
    for an input image also a data URI or base64).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise GatewayError.bad(param, f"'{param}' must be {what}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise GatewayError.bad(param, f"'{param}' must be {what}")
    if policy.allow_private:
        return Target(parsed, None)
    addresses = await _addresses(parsed, policy, param)
    if not addresses or any(blocked(ip) for ip in addresses):
        raise GatewayError(
            ErrorCode.forbidden, f"'{param}' points to a private or local network address", param=param, status=400
        )
    return Target(parsed, str(addresses[0]))


async def _addresses(url: httpx.URL, policy: NetworkPolicy, param: str) -> list[IPAddress]:
    host = url.raw_host.decode("ascii")  # IDNA-encoded: what DNS is asked
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        answers = await asyncio.wait_for(policy.resolver(host, port), policy.timeout)
        return [ipaddress.ip_address(a) for a in answers]
    except (OSError, ValueError, TimeoutError) as exc:
        raise GatewayError.bad(param, f"'{param}' host {shown(host)!r} cannot be resolved") from exc
