"""Omni API: model groups with task types, task create (with upload slots), task status.

Translation only. ``POST /api/omni/tasks/create`` turns ``model_group`` + ``task_type`` +
``input`` into the same :class:`ImageRequest` and Task as every other dialect; an input image
named in ``files_to_upload[]`` becomes an upload slot tied to the task, which then waits in
``awaiting_upload`` until every slot is PUT (the uploads module queues it) or its deadline
passes (it fails with ``upload_expired``). Outputs are signed storage URLs. An
``Idempotency-Key`` replays the first create answer, its ``uploads[]`` slots included.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.api import idempotency
from imagegate.api.auth import require_key
from imagegate.api.dialects.omni_groups import AIO, FileField, Groups, file_fields, input_schema
from imagegate.api.dialects.openai import read_body, resolve_image
from imagegate.api.render import error_of, ts
from imagegate.api.uploads import CONTENT_TYPES, UPLOAD_EXPIRED, Slot, create_slot, upload_url
from imagegate.catalog import CatalogModel
from imagegate.catalog.validate import build_request
from imagegate.db.repo import aware, to_usd
from imagegate.db.tables import ApiKey, Task, Upload, utcnow
from imagegate.domain import MIME, ErrorCode, GatewayError, ImageInput, TaskStatus
from imagegate.media import fetch
from imagegate.webhooks.delivery import Payload, register_payload

DIALECT = "omni"
PLACEHOLDER = "upload-slot"  # source of a stand-in image whose bytes arrive later by PUT


@dataclass
class FileSpec:
    field: str
    filename: str
    content_type: str


@dataclass
class Inputs:
    """The images of a task: resolved inline ones, stand-ins for the uploads, and the slots to open."""

    images: list[ImageInput] = field(default_factory=list)
    mask: ImageInput | None = None
    uploads: list[FileSpec] = field(default_factory=list)


def _str_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise GatewayError.bad(name, f"'{name}' is required: a non-empty string")
    return value.strip()


def parse_files(raw: Any, fields: list[FileField]) -> list[FileSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise GatewayError.bad("files_to_upload", "'files_to_upload' must be an array of objects")
    names = [f.name for f in fields]
    out = []
    for i, item in enumerate(raw):
        where = f"files_to_upload[{i}]"
        if not isinstance(item, dict):
            raise GatewayError.bad(where, f"'{where}' must be an object with field, filename and content_type")
        fname = item.get("field")
        if fname not in names:
            allowed = ", ".join(names) or "none (this task type takes no files)"
            raise GatewayError.bad(f"{where}.field", f"'{where}.field'={fname!r} is not a file input of this "
                                   f"task type; allowed: {allowed}")
        filename = item.get("filename")
        if not isinstance(filename, str) or not 1 <= len(filename) <= 255:
            raise GatewayError.bad(f"{where}.filename", f"'{where}.filename' must be a string of 1 to 255 characters")
        ctype = item.get("content_type")
        if not isinstance(ctype, str) or ctype.lower() not in CONTENT_TYPES:
            raise GatewayError.bad(f"{where}.content_type",
                                   f"'{where}.content_type' must be one of {', '.join(CONTENT_TYPES)}")
        out.append(FileSpec(fname, filename, ctype.lower()))
    return out


async def collect_inputs(gw: Any, key: ApiKey, inp: dict[str, Any], fields: list[FileField],
                         files: list[FileSpec]) -> Inputs:
    """Inline images are fetched now; each file to upload gets a stand-in so validation sees it."""
    result = Inputs(uploads=files)
    for f in fields:
        param = f"input.{f.name}"
        inline = inp.get(f.name)
        values: list[Any] = [] if inline is None else (inline if isinstance(inline, list) else [inline])
        if f.multiple and inline is not None and not isinstance(inline, list):
            raise GatewayError.bad(param, f"'{param}' must be an array of image URLs, data URIs or base64 strings")
        if not f.multiple and isinstance(inline, list):
            raise GatewayError.bad(param, f"'{param}' takes one image, not an array")
        uploaded = [u for u in files if u.field == f.name]
        count = len(values) + len(uploaded)
        if count < f.min_count:
            raise GatewayError.bad(param, f"'{param}' is required: give {f.min_count if f.multiple else 'it'} "
                                   f"inline or list it in files_to_upload[] with field '{f.name}'")
        if count > f.max_count:
            raise GatewayError.bad(param if values else "files_to_upload",
                                   f"'{f.name}' takes at most {f.max_count} image(s), got {count}")
        resolved = await asyncio.gather(*(resolve_image(gw, key, v, param) for v in values))
        stand_ins = [ImageInput(data=b"", mime=u.content_type, width=1, height=1, source=PLACEHOLDER)
                     for u in uploaded]
        if f.role == "mask":
            result.mask = (list(resolved) + stand_ins)[0]
        else:
            result.images.extend([*resolved, *stand_ins])
    _check_mask(result, fields)
    return result


def _check_mask(inputs: Inputs, fields: list[FileField]) -> None:
    """An inline mask must fit the first inline image (an uploaded one is checked when it arrives)."""
    mask, first = inputs.mask, inputs.images[0] if inputs.images else None
    if mask is None or first is None or PLACEHOLDER in (mask.source, first.source):
        return
    if (mask.width, mask.height) != (first.width, first.height):
        param = "input." + next(f.name for f in fields if f.role == "mask")
        raise GatewayError.bad(param, f"'{param}' must have the same dimensions as the first image "
                               f"({first.width}x{first.height}), got {mask.width}x{mask.height}")


def _input_param(exc: GatewayError, fields: list[FileField]) -> GatewayError:
    """Name the parameter as the client sent it: ``input.size``, ``input.source_image``."""
    if exc.param is None or exc.param.startswith(("input.", "files_to_upload")):
        return exc
    param = exc.param
    if param == "image":
        param = next((f.name for f in fields if f.role == "image"), "image")
    exc.param = f"input.{param}"
    return exc


class OmniDialect:
    def __init__(self, gw: Any) -> None:
        self.gw = gw
        self.groups = Groups(gw.catalog)

    def route(self, body: dict[str, Any]) -> tuple[str, str, CatalogModel]:
        group = _str_field(body, "model_group")
        task_type = _str_field(body, "task_type")
        offered = self.groups.offered(group)
        if offered is None:
            raise GatewayError.bad("model_group", f"no model group '{group}'; see GET /api/omni/models")
        model = self.groups.resolve(group, task_type)
        if model is None:
            raise GatewayError.bad("task_type", f"model group '{group}' does not offer task type '{task_type}'; "
                                   f"offered: {', '.join(offered) or 'none'}")
        return group, task_type, model

    async def create(self, request: Request) -> JSONResponse:
        key = await require_key(request)
        body, multi = await read_body(request, self.gw.settings.max_request_bytes)
        if multi:
            raise GatewayError.bad(next(iter(multi)), "put input images inside 'input'")
        group, task_type, model = self.route(body)
        inp = body.get("input", {})
        if not isinstance(inp, dict):
            raise GatewayError.bad("input", "'input' must be an object")
        fields = file_fields(model.spec, task_type)
        files = parse_files(body.get("files_to_upload"), fields)
        callback_url = body.get("callback_url")
        if callback_url is not None:
            if not isinstance(callback_url, str):
                raise GatewayError.bad("callback_url", "'callback_url' must be a string")
            await fetch.check_url(callback_url, self.gw.policy, "callback_url")
        async with idempotency.guard(self.gw, request, key, body, {}) as claim:
            base = self.gw.base_url(request)
            if claim is not None and claim.replay is not None:
                resp = await self.created(claim.replay, base, await self.slots_of(claim.replay, base))
                resp.headers[idempotency.REPLAYED] = "true"
                return resp
            return await self._create(request, key, group, task_type, model, inp, fields, files, callback_url,
                                      claim)

    async def _create(self, request: Request, key: ApiKey, group: str, task_type: str, model: CatalogModel,
                      inp: dict[str, Any], fields: list[FileField], files: list[FileSpec],
                      callback_url: str | None, claim: idempotency.Claim | None) -> JSONResponse:
        known = input_schema(model.spec, task_type)["properties"]
        for name in inp:
            if name not in known:
                raise GatewayError.bad(f"input.{name}", f"'input.{name}' is not an input of {group}/{task_type}; "
                                       f"allowed: {', '.join(known)}")
        images = await collect_inputs(self.gw, key, inp, fields, files)
        params = {k: v for k, v in inp.items() if k not in {f.name for f in fields}}
        try:
            req = build_request(model, params, mode="edit" if fields else "generate", images=images.images,
                                mask=images.mask)
        except GatewayError as exc:
            raise _input_param(exc, fields) from exc
        req.images = [i for i in req.images if i.source != PLACEHOLDER]
        if req.mask is not None and req.mask.source == PLACEHOLDER:
            req.mask = None
        base = self.gw.base_url(request)
        req.extra.update(base_url=base, omni={"model_group": group, "task_type": task_type})
        ttl = float(self.gw.settings.awaiting_upload_ttl)
        slots: list[Slot] = []

        async def write(s: AsyncSession) -> Task:
            """The task and its slots in one transaction (the idempotency claim's, when there is one)."""
            task = await self.gw.engine.create(key, model, req, dialect=DIALECT, is_async=True,
                                               callback_url=callback_url, awaiting_upload=bool(files),
                                               upload_deadline=ttl if files else None, session=s)
            slots.extend([await create_slot(self.gw, key.id, base, filename=f.filename, content_type=f.content_type,
                                            task_id=task.id, field=f.field, ttl=ttl, session=s) for f in files])
            return task

        async def make(s: AsyncSession | None) -> Task:
            if s is not None:
                return await write(s)
            async with self.gw.db.session.begin() as own:
                return await write(own)

        task = await idempotency.create_bound(self.gw, claim, make)
        if not files:
            await self.gw.queue.enqueue(task.id)
        return await self.created(task, base, slots)

    async def slots_of(self, task: Task, base: str) -> list[Slot]:
        """A task's upload slots as its create answer listed them (same order, same signed URLs)."""
        async with self.gw.db.session() as s:
            rows = (await s.execute(select(Upload).where(Upload.task_id == task.id)
                                    .order_by(Upload.created_at, Upload.id))).scalars()
            return [Slot(u, upload_url(self.gw, base, u)) for u in rows]

    async def created(self, task: Task, base: str, slots: list[Slot]) -> JSONResponse:
        """The create answer: the task's view, its upload slots, where the outputs will be."""
        view = await self.view(task, base)
        if slots:
            view["uploads"] = [{"field": slot.upload.field, **slot.view()} for slot in slots]
        view["output_access"] = {"poll_url": view["poll_url"], "outputs": "outputs.images[].url on success",
                                 "url_ttl_seconds": self.gw.signer.ttl}
        return JSONResponse(view)

    async def get(self, task_id: str, request: Request) -> JSONResponse:
        key = await require_key(request)
        task = await self.gw.engine.get(task_id, key.id)
        if task is None:
            raise GatewayError(ErrorCode.not_found, f"no task '{task_id}'", param="portal_task_id")
        if task.status == TaskStatus.awaiting_upload.value and task.expires_at is not None \
                and aware(task.expires_at) <= utcnow():  # type: ignore[operator]
            await self.gw.engine.expire_waiting(task.id, UPLOAD_EXPIRED,
                                                "the files were not uploaded before the deadline")
            task = await self.gw.engine.get(task_id, key.id) or task
        return JSONResponse(await self.view(task, self.gw.base_url(request)))

    async def view(self, task: Task, base: str) -> dict[str, Any]:
        """The task as Omni API shows it (GET, the create response and the webhook body)."""
        omni = ((task.request or {}).get("extra") or {}).get("omni") or {}
        out: dict[str, Any] = {
            "portal_task_id": task.id, "status": task.status, "model_group": omni.get("model_group", task.model),
            "task_type": omni.get("task_type"), "model": task.model, "created_at": ts(task.created_at),
            "started_at": ts(task.started_at), "completed_at": ts(task.completed_at),
            "poll_url": f"{base}/api/omni/tasks/{task.id}", "cost": to_usd(task.cost_micros),
        }
        if task.status == TaskStatus.queued.value:
            position = await self.gw.engine.queue_position(task)
            out["queue_position"] = position
            out["queue"] = {"position": position, "state": "queued"}
        if task.status == TaskStatus.awaiting_upload.value and task.expires_at is not None:
            out["upload_deadline"] = ts(task.expires_at)
        if task.progress is not None:
            out["progress"] = task.progress
        if task.status == TaskStatus.succeeded.value:
            out["outputs"] = {"images": [
                {"url": self.gw.signer.url(base, img["name"]), "width": img.get("width"),
                 "height": img.get("height"), "content_type": MIME.get(img["name"].rsplit(".", 1)[-1])}
                for img in (task.result or {}).get("images", []) if "name" in img]}
        err = error_of(task)
        if err:
            out["error"] = err
        return out


def install(app: FastAPI, gw: Any) -> None:
    omni = OmniDialect(gw)

    async def webhook_body(gw_: Any, task: Task, base: str) -> Payload:
        return Payload(json.dumps(await omni.view(task, base), separators=(",", ":")).encode())

    register_payload(DIALECT, webhook_body)

    @app.get("/api/omni/models")
    async def omni_models(request: Request) -> JSONResponse:
        """Public: the model groups, their task types and schemas (ready groups unless ?all=true)."""
        include_all = request.query_params.get("all", "").lower() in ("1", "true", "yes")
        groups = omni.groups.describe(include_all)
        return JSONResponse({"object": "list", "model_groups": groups, "data": groups, "default_group": AIO})

    app.add_api_route("/api/omni/tasks/create", omni.create, methods=["POST"])
    app.add_api_route("/api/omni/tasks/{task_id}", omni.get, methods=["GET"])
