"""Webhook wiring and the signing-secret endpoints.

Installs the outbox terminal hook and the delivery service, and serves the caller's
Standard Webhooks secret (``GET /v1/webhooks/secret``) and its rotation.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from imagegate.api.auth import require_key
from imagegate.webhooks.delivery import DeliveryService, write_outbox


def install(app: FastAPI, gw: Any) -> None:
    if write_outbox not in gw.engine.terminal_hooks:
        gw.engine.terminal_hooks.append(write_outbox)
    gw.webhooks = DeliveryService(gw)
    gw.background.append(gw.webhooks)

    @app.get("/v1/webhooks/secret")
    async def webhook_secret(request: Request) -> JSONResponse:
        key = await require_key(request)
        return JSONResponse({"key": key.webhook_secret})

    @app.post("/v1/webhooks/secret/rotate")
    async def rotate_webhook_secret(request: Request) -> JSONResponse:
        """A new secret; deliveries not yet sent are signed with it from now on."""
        key = await require_key(request)
        return JSONResponse({"key": await gw.db.rotate_webhook_secret(key.id)})
