"""Base64 for image payloads: megabytes per response, so the SIMD codec of ``pybase64``."""

from __future__ import annotations

import pybase64


def encode(data: bytes) -> str:
    return pybase64.b64encode(data).decode("ascii")


def decode(text: str | bytes) -> bytes:
    """Strict standard-alphabet decode (raises ``binascii.Error`` on garbage)."""
    return pybase64.b64decode(text, validate=True)
