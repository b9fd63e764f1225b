"""Signed, expiring downloads of stored images.

Our link is the one clients keep: it is checked here by any API process, then the bytes come
from local disk; from an object store that clients can reach, through a redirect to a presigned
URL that lives a few minutes at most and never past our own link's ``expires`` (so the store
grants nothing our link no longer does); or from a private object store, streamed by us.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from imagegate.api.deps import GatewayDep
from imagegate.api.openapi import Operation
from imagegate.api.uploads import SignedLink, signed_link
from imagegate.domain import ErrorCode, GatewayError
from imagegate.storage.layout import OUTPUT_NAME, output_key

router = APIRouter()

#: a redirect is followed at once; a few minutes absorb clock skew between us and the object store
REDIRECT_TTL = 300
IMAGE = {"schema": {"type": "string", "format": "binary"}}
DOWNLOAD = Operation(
    id="download_file",
    summary="download an output (a signed link from an answer)",
    tag="Files",
    description="No API key: the signature is the credential; a missing, wrong or expired one is a 403.",
    responses={},
    query=SignedLink,
    raw_responses={
        200: {"description": "the image", "content": {f"image/{f}": IMAGE for f in ("png", "jpeg", "webp")}},
        307: {"description": "in an object store clients can reach: a presigned link that lives a few minutes"},
    },
)


@router.get("/v1/files/{name}", response_class=Response, **DOWNLOAD.route_kwargs())
async def download(name: str, request: Request, gw: GatewayDep) -> Response:
    if not OUTPUT_NAME.match(name):
        raise GatewayError(ErrorCode.not_found, "no such file", param="name")
    link = signed_link(request)
    expires = link.expires
    if not gw.signer.verify(name, expires, link.sig):
        raise GatewayError(ErrorCode.forbidden, "the link is invalid or has expired", param="sig")
    key = output_key(name)
    media_type = f"image/{name.rsplit('.', 1)[1]}"
    path = gw.storage.local_path(key)
    if path is not None:
        return FileResponse(path, media_type=media_type, headers={"cache-control": "private, max-age=3600"})
    ttl = max(1, min(REDIRECT_TTL, int(expires) - int(time.time())))
    url = await gw.storage.presigned_url(key, expires_in=ttl, content_type=media_type)
    if url is not None:
        # the target expires soon: caches must come back to us rather than replay a dead redirect
        return RedirectResponse(url, status_code=307, headers={"cache-control": "no-store"})
    data = await gw.storage.get(key)
    if data is None:
        raise GatewayError(ErrorCode.not_found, "no such file", param="name")
    return Response(data, media_type=media_type, headers={"cache-control": "private, max-age=3600"})
