"""Signed, expiring downloads of stored images."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response

from imagegate.domain import ErrorCode, GatewayError

_NAME = re.compile(r"^(file_[0-9a-f]{24})\.(png|jpeg|webp)$")


def output_path(name: str) -> str:
    return f"outputs/{name[5:7]}/{name}"


def install(app: FastAPI, gw: Any) -> None:
    @app.get("/v1/files/{name}")
    async def download(name: str, request: Request) -> Response:
        q = request.query_params
        if not _NAME.match(name):
            raise GatewayError(ErrorCode.not_found, "no such file", param="name")
        if not gw.signer.verify(name, q.get("expires"), q.get("sig")):
            raise GatewayError(ErrorCode.forbidden, "the link is invalid or has expired", param="sig")
        path = gw.storage.local_path(output_path(name))
        if path is None:
            raise GatewayError(ErrorCode.not_found, "no such file", param="name")
        ext = name.rsplit(".", 1)[1]
        return FileResponse(path, media_type=f"image/{ext}",
                            headers={"cache-control": "private, max-age=3600"})
