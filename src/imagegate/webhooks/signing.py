"""Standard Webhooks v1 signatures: HMAC-SHA256 over ``{id}.{timestamp}.{body}``.

The secret is shown to clients as ``whsec_<base64>``; the HMAC key is the decoded bytes.
The ``webhook-signature`` header is a space-separated list so a rotation can carry two.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

PREFIX = "whsec_"
TOLERANCE = 300  # seconds either side, as the reference receivers use


def secret_bytes(secret: str) -> bytes:
    raw = secret[len(PREFIX) :] if secret.startswith(PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("webhook secret is not whsec_<base64>") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one message."""
    mac = hmac.new(secret_bytes(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sign(secret, msg_id, ts, body)}


def verify(secret: str, msg_headers: dict[str, str], body: bytes, now: float | None = None) -> bool:
    """Receiver side (for our own checks and docs): any listed v1 signature matches, timestamp fresh."""
    h = {k.lower(): v for k, v in msg_headers.items()}
    msg_id, ts = h.get("webhook-id", ""), h.get("webhook-timestamp", "")
    if not msg_id or not ts.isdigit() or abs((now or time.time()) - int(ts)) > TOLERANCE:
        return False
    want = sign(secret, msg_id, int(ts), body)
    return any(hmac.compare_digest(want, sig) for sig in h.get("webhook-signature", "").split())
