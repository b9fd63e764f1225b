"""Input images as clients send them -> checked :class:`ImageInput` bytes, once for every dialect.

A reference is a URL (fetched under the network policy), a data URI, raw base64, uploaded
file bytes, or ``upload://<id>`` naming an upload slot of the same key. Every refusal is a 4xx
naming the client's own parameter.
"""

from __future__ import annotations

import asyncio

import httpx

from imagegate.db.uploads import UploadStore
from imagegate.domain import Caller, ErrorCode, GatewayError, ImageInput, ImageRef, shown
from imagegate.media import fetch
from imagegate.storage.base import Storage

MAX_IMAGES = 16
UPLOAD_SCHEME = "upload://"


class InputResolver:
    def __init__(
        self, client: httpx.AsyncClient, policy: fetch.NetworkPolicy, uploads: UploadStore, storage: Storage
    ) -> None:
        self.client = client
        self.policy = policy
        self.uploads = uploads
        self.storage = storage

    async def resolve(self, caller: Caller, refs: list[ImageRef]) -> tuple[list[ImageInput], ImageInput | None]:
        """(images in order, mask) from the client's references; the mask must fit the first image."""
        sources = [r for r in refs if r.role == "image"]
        masks = [r for r in refs if r.role == "mask"]
        if len(sources) > MAX_IMAGES:
            raise GatewayError.bad(sources[MAX_IMAGES].param, f"at most {MAX_IMAGES} input images")
        if len(masks) > 1:
            raise GatewayError.bad(masks[1].param, "send one mask")
        images = list(await asyncio.gather(*(self.one(caller, r) for r in sources)))
        mask = await self.one(caller, masks[0]) if masks else None
        named = [(r.param, i) for r, i in zip(sources, images, strict=True)]
        fetch.check_request_pixels(named + ([(masks[0].param, mask)] if mask else []), self.policy)
        if mask is not None and images:
            check_mask(mask, images[0], masks[0].param)
        return images, mask

    async def one(self, caller: Caller, ref: ImageRef) -> ImageInput:
        if isinstance(ref.value, bytes):
            return await asyncio.to_thread(fetch.checked, ref.value, ref.param, self.policy, "upload")
        if ref.value.startswith(UPLOAD_SCHEME):
            return await self._upload(caller, ref.value[len(UPLOAD_SCHEME) :], ref.param)
        return await fetch.resolve(self.client, ref.value, self.policy, ref.param)

    async def _upload(self, caller: Caller, upload_id: str, param: str) -> ImageInput:
        """``upload://<id>`` -> the uploaded image (400 naming ``param`` otherwise)."""
        up, f = await self.uploads.owned_file(caller.id, upload_id)
        if up is None:
            raise GatewayError.bad(param, f"'{param}' names upload '{shown(upload_id)}', which does not exist")
        if f is None:
            raise GatewayError.bad(
                param, f"'{param}' names upload '{shown(upload_id)}', whose bytes have not been PUT yet"
            )
        data = await self.storage.get(f.path)
        if data is None:
            raise GatewayError.bad(
                param, f"'{param}' names upload '{shown(upload_id)}', whose bytes are no longer stored"
            )
        return ImageInput(data=data, mime=f.mime, width=f.width, height=f.height, source="upload")


def check_mask(mask: ImageInput, first: ImageInput, param: str) -> None:
    if (mask.width, mask.height) != (first.width, first.height):
        raise GatewayError(
            ErrorCode.invalid_request,
            f"'{param}' must have the same dimensions as the first image ({first.width}x{first.height}), "
            f"got {mask.width}x{mask.height}",
            param=param,
        )
