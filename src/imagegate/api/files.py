"""Signed, expiring downloads of stored images.

Our link is the one clients keep: it is checked here by any API process, then the bytes come
from local disk, or from the object store through a redirect to a presigned URL that lives a few
minutes at most and never past our own link's ``expires``, so the object store grants nothing
our link no longer does.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from imagegate.api.deps import GatewayDep
from imagegate.domain import ErrorCode, GatewayError
from imagegate.storage.layout import OUTPUT_NAME, output_key

router = APIRouter()

#: a redirect is followed at once; a few minutes absorb clock skew between us and the object store
REDIRECT_TTL = 300


@router.get("/v1/files/{name}")
async def download(name: str, request: Request, gw: GatewayDep) -> Response:
    q = request.query_params
    if not OUTPUT_NAME.match(name):
        raise GatewayError(ErrorCode.not_found, "no such file", param="name")
    expires = q.get("expires")
    if expires is None or not gw.signer.verify(name, expires, q.get("sig")):
        raise GatewayError(ErrorCode.forbidden, "the link is invalid or has expired", param="sig")
    key = output_key(name)
    media_type = f"image/{name.rsplit('.', 1)[1]}"
    path = gw.storage.local_path(key)
    if path is not None:
        return FileResponse(path, media_type=media_type, headers={"cache-control": "private, max-age=3600"})
    ttl = max(1, min(REDIRECT_TTL, int(expires) - int(time.time())))
    url = await gw.storage.presigned_url(key, expires_in=ttl, content_type=media_type)
    if url is None:
        raise GatewayError(ErrorCode.not_found, "no such file", param="name")
    # the target expires soon: caches must come back to us rather than replay a dead redirect
    return RedirectResponse(url, status_code=307, headers={"cache-control": "no-store"})
