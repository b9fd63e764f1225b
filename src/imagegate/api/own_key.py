"""``GET /v1/key``: the calling key's own object, so a client (or the console's header) can show its
balance, budget, this month's spend and limits without an admin key.

The answer is the admin API's key object (:func:`imagegate.api.admin_keys.shown_key`), the same
fields under the same names, and like it never the secret or its hash. The path is singular: it is
the one key the request carries, as OpenRouter's ``GET /api/v1/key`` is; ``/v1/me`` would suggest a
user account, which the gateway does not have. It is a route of its own and reads the key row and the
month's spend only when asked, so it costs the generation routes nothing.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from imagegate.api.admin_keys import shown_key
from imagegate.api.admin_schemas import KeyObject
from imagegate.api.deps import CurrentKey, GatewayDep
from imagegate.api.openapi import Operation
from imagegate.domain import ErrorCode, GatewayError

router = APIRouter()
OWN_KEY = Operation(
    id="get_own_key",
    summary="the calling key: balance, monthly budget and spend, allowlist, limits (never its secret)",
    tag="Keys",
    responses={200: (KeyObject, "the key that made this request")},
)


@router.get("/v1/key", **OWN_KEY.route_kwargs())
async def own_key(gw: GatewayDep, caller: CurrentKey) -> JSONResponse:
    key = await gw.keys.get(caller.id)  # the row as it is now: the balance moves with every request
    if key is None:  # keys are revoked, never deleted; a row gone since the check is a bad key all the same
        raise GatewayError(ErrorCode.invalid_api_key, "invalid or revoked API key")
    return JSONResponse(await shown_key(gw, key))
