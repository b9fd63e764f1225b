"""Thumbnails of a task's outputs, for galleries: small WebP previews, made once and kept.

The caller's key reads its own tasks' previews (another key's task is a 404, as on every task
route); an admin key reads any task's. A preview is private to whoever may read the task, so it
is cached by the browser only (``private``), revalidated by its ETag (a 304 reads nothing from the
store). Sizes are a short ladder: each output has at most that many previews kept, and they are
removed with it (:mod:`imagegate.engine.thumbnails`).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field, field_validator

from imagegate.api.admin_ops import any_task
from imagegate.api.deps import CurrentKey, GatewayDep
from imagegate.api.openapi import Operation
from imagegate.api.validation import check, given
from imagegate.db.tables import Task
from imagegate.domain import Caller, GatewayError, shown
from imagegate.storage.layout import THUMB_SIZES

router = APIRouter()

#: a browser keeps a preview this long before it asks again (with If-None-Match)
MAX_AGE = 3600
INDEX = re.compile(r"[0-9]{1,4}")
SIZES = ", ".join(str(s) for s in THUMB_SIZES)


class ThumbnailQuery(BaseModel):
    size: int = Field(
        256,
        description=f"the longest side in pixels, at most: one of {SIZES} (the image is never enlarged)",
        json_schema_extra={"enum": list(THUMB_SIZES)},
    )

    @field_validator("size")
    @classmethod
    def _on_the_ladder(cls, size: int) -> int:
        if size not in THUMB_SIZES:
            raise ValueError(f"must be one of {SIZES}")
        return size


WEBP = {"schema": {"type": "string", "format": "binary"}}
THUMBNAIL = Operation(
    id="get_task_thumbnail",
    summary="a small WebP preview of one of a task's images",
    tag="Tasks",
    description=(
        "The task's own key, or an admin key for any task's. Made on the first request and kept beside the "
        "image; 409 for a task that has not succeeded, 404 for an image that is not (or no longer) stored."
    ),
    responses={},
    query=ThumbnailQuery,
    raw_responses={
        200: {"description": "the preview (aspect kept)", "content": {"image/webp": WEBP}},
        304: {"description": "If-None-Match named this preview's ETag: the client's copy is current"},
    },
)


async def readable_task(gw: GatewayDep, caller: Caller, task_id: str) -> Task:
    """The caller's task; any key's for an admin. A task the caller may not read is a 404, as a missing one."""
    return await any_task(gw, task_id) if caller.is_admin else await gw.tasks.get(task_id, caller)


def parse_index(raw: str) -> int:
    if not INDEX.fullmatch(raw):
        raise GatewayError.bad(
            "index", f"'index' must be a whole number from 0 (the image's place in the task's data), not {shown(raw)!r}"
        )
    return int(raw)


@router.get("/v1/tasks/{task_id}/images/{index}/thumbnail", response_class=Response, **THUMBNAIL.route_kwargs())
async def thumbnail(
    task_id: Annotated[str, Path(description="the task's id")],
    index: Annotated[str, Path(description="the image's place in the task's data, from 0")],
    request: Request,
    gw: GatewayDep,
    caller: CurrentKey,
) -> Response:
    at = parse_index(index)
    q = check(ThumbnailQuery, given(request.query_params))
    task = await readable_task(gw, caller, task_id)
    wanted = gw.thumbnails.wanted(task, at, q.size)
    headers = {"etag": wanted.etag, "cache-control": f"private, max-age={MAX_AGE}", "vary": "authorization"}
    if wanted.matches(request.headers.get("if-none-match")):
        return Response(status_code=304, headers=headers)
    data, cached = await gw.thumbnails.read(wanted)
    headers["x-imagegate-thumbnail"] = "cached" if cached else "made"
    return Response(data, media_type="image/webp", headers=headers)
