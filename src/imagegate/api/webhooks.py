"""The caller's Standard Webhooks signing secret, and its rotation."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from imagegate.api.deps import CurrentKey, GatewayDep
from imagegate.api.openapi import Operation
from imagegate.api.schemas import WebhookSecret

router = APIRouter()
SECRET = Operation(
    id="get_webhook_secret",
    summary="the key's webhook signing secret",
    tag="Webhooks",
    responses={200: (WebhookSecret, "the secret (whsec_...)")},
)
ROTATE = Operation(
    id="rotate_webhook_secret",
    summary="a new webhook signing secret",
    tag="Webhooks",
    responses={200: (WebhookSecret, "the new secret")},
)


@router.get("/v1/webhooks/secret", **SECRET.route_kwargs())
async def webhook_secret(caller: CurrentKey) -> JSONResponse:
    return JSONResponse({"key": caller.webhook_secret})


@router.post("/v1/webhooks/secret/rotate", **ROTATE.route_kwargs())
async def rotate_webhook_secret(gw: GatewayDep, caller: CurrentKey) -> JSONResponse:
    """A new secret; deliveries not yet sent are signed with it from now on."""
    return JSONResponse({"key": await gw.keys.rotate_webhook_secret(caller.id)})
