"""HMAC-signed, expiring download links: ``/v1/files/{id}.{ext}?expires=TS&sig=HEX``."""

from __future__ import annotations

import hashlib
import hmac
import time


class UrlSigner:
    """One signer per kind of link (``namespace``): a files signature never opens an upload slot."""

    def __init__(self, secret: str, ttl: int, namespace: str = "files") -> None:
        self._key = hashlib.sha256(f"{namespace}:{secret}".encode()).digest()
        self.ttl = ttl

    def mac(self, name: str, expires: int) -> str:
        return hmac.new(self._key, f"{name}:{expires}".encode(), hashlib.sha256).hexdigest()[:40]

    def sign(self, name: str, now: float | None = None) -> tuple[int, str]:
        expires = int((now or time.time()) + self.ttl)
        return expires, self.mac(name, expires)

    def url(self, base: str, name: str) -> str:
        expires, sig = self.sign(name)
        return f"{base.rstrip('/')}/v1/files/{name}?expires={expires}&sig={sig}"

    def matches(self, name: str, expires: str | None, sig: str | None) -> bool:
        """Whether ``sig`` is our signature of ``name`` until ``expires``, whatever the link's age.

        Anything a client can put in a query string is answered with False, never an exception:
        ``str.isdigit`` also accepts non-ASCII digits such as "²" that ``int`` refuses, and
        ``compare_digest`` raises on non-ASCII text, so both are checked as ASCII first."""
        if not expires or not sig or not expires.isascii() or not expires.isdigit() or len(expires) > 12:
            return False
        return hmac.compare_digest(self.mac(name, int(expires)).encode(), sig.encode())

    def verify(self, name: str, expires: str | None, sig: str | None) -> bool:
        """A download link: ours, and not expired."""
        return self.matches(name, expires, sig) and int(expires or 0) >= time.time()
