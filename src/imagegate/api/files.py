"""Signed, expiring downloads of stored images."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from imagegate.api.deps import GatewayDep
from imagegate.domain import ErrorCode, GatewayError
from imagegate.storage.layout import OUTPUT_NAME, output_key

router = APIRouter()


@router.get("/v1/files/{name}")
async def download(name: str, request: Request, gw: GatewayDep) -> FileResponse:
    q = request.query_params
    if not OUTPUT_NAME.match(name):
        raise GatewayError(ErrorCode.not_found, "no such file", param="name")
    if not gw.signer.verify(name, q.get("expires"), q.get("sig")):
        raise GatewayError(ErrorCode.forbidden, "the link is invalid or has expired", param="sig")
    path = gw.storage.local_path(output_key(name))
    if path is None:
        raise GatewayError(ErrorCode.not_found, "no such file", param="name")
    ext = name.rsplit(".", 1)[1]
    return FileResponse(path, media_type=f"image/{ext}", headers={"cache-control": "private, max-age=3600"})
