"""Standard Webhooks v1 signatures: HMAC-SHA256 over ``{id}.{timestamp}.{body}``.

The secret is shown to clients as ``whsec_<base64>``; the HMAC key is the decoded bytes.
The ``webhook-signature`` header is a space-separated list so a rotation can carry two: for a grace
period after a rotation every message is signed with the new secret and the one it replaced, and a
receiver that still holds the old one keeps verifying until it switches (:func:`signing_secrets`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

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


def signing_secrets(
    current: str, previous: str | None, rotated_at: datetime | None, grace: float, now: datetime
) -> list[str]:
    """The secrets a message is signed with: the current one, and the one it replaced while
    ``grace`` seconds have not passed since the rotation (``rotated_at`` and ``now`` in UTC)."""
    if previous and previous != current and rotated_at is not None and now < rotated_at + timedelta(seconds=grace):
        return [current, previous]
    return [current]


def headers(secret: str | Sequence[str], msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """One signature per secret: a receiver accepts the message when any of them verifies with the one
    secret it holds, so a rotation needs no coordinated switch-over."""
    ts = int(time.time()) if timestamp is None else timestamp
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise ValueError("a webhook needs at least one secret to be signed with")
    signature = " ".join(sign(s, msg_id, ts, body) for s in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def verify(secret: str, msg_headers: dict[str, str], body: bytes, now: float | None = None) -> bool:
    """Receiver side (for our own checks and docs): any listed v1 signature matches, timestamp fresh."""
    h = {k.lower(): v for k, v in msg_headers.items()}
    msg_id, ts = h.get("webhook-id", ""), h.get("webhook-timestamp", "")
    if not msg_id or not ts.isdigit() or abs((now or time.time()) - int(ts)) > TOLERANCE:
        return False
    want = sign(secret, msg_id, int(ts), body)
    return any(hmac.compare_digest(want, sig) for sig in h.get("webhook-signature", "").split())
