"""Bearer keys: looked up by SHA-256 hash; the plaintext never touches the DB or the logs."""

from __future__ import annotations

from fastapi import Request

from imagegate.db.tables import ApiKey
from imagegate.domain import ErrorCode, GatewayError


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


async def require_key(request: Request) -> ApiKey:
    secret = bearer(request)
    if not secret:
        raise GatewayError(ErrorCode.invalid_api_key, "missing API key: send 'Authorization: Bearer <key>'")
    key = await request.app.state.gw.db.key_by_secret(secret)
    if key is None or key.revoked_at is not None:
        raise GatewayError(ErrorCode.invalid_api_key, "invalid or revoked API key")
    request.state.key = key
    return key
