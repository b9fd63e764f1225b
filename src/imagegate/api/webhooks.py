"""The caller's Standard Webhooks signing secret, and its rotation."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from imagegate.api.deps import CurrentKey, GatewayDep

router = APIRouter()


@router.get("/v1/webhooks/secret")
async def webhook_secret(caller: CurrentKey) -> JSONResponse:
    return JSONResponse({"key": caller.webhook_secret})


@router.post("/v1/webhooks/secret/rotate")
async def rotate_webhook_secret(gw: GatewayDep, caller: CurrentKey) -> JSONResponse:
    """A new secret; deliveries not yet sent are signed with it from now on."""
    return JSONResponse({"key": await gw.keys.rotate_webhook_secret(caller.id)})
