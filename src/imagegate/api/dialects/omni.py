"""Omni API: model groups with task types, task create (with upload slots), task status.

``POST /api/omni/tasks/create`` turns ``model_group`` + ``task_type`` + ``input`` into a
submission; an input image named in ``files_to_upload[]`` becomes an upload slot tied to the
task, which then waits in ``awaiting_upload`` until every slot is PUT or its deadline passes
(it fails with ``upload_expired``). Outputs are signed storage URLs. Parameters are named as the
client sent them: ``input.size``, ``input.source_image``, ``files_to_upload[0].field``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from imagegate.api.body import RequestBody, truthy
from imagegate.api.dialects.base import CreateRoute, ParseContext, TaskRoute
from imagegate.api.dialects.omni_groups import AIO, FileField, Groups, file_fields, input_schema
from imagegate.api.errors import gateway_response
from imagegate.api.responses import ts
from imagegate.api.uploads import CONTENT_TYPES, slot_object
from imagegate.catalog import Catalog, CatalogModel
from imagegate.domain import GatewayError, ImageRef, Outcome, PendingUpload, Submission, TaskStatus, TaskView, shown


def _str_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise GatewayError.bad(name, f"'{name}' is required: a non-empty string")
    return value.strip()


def parse_files(raw: Any, fields: list[FileField]) -> list[PendingUpload]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise GatewayError.bad("files_to_upload", "'files_to_upload' must be an array of objects")
    roles = {f.name: f.role for f in fields}
    out = []
    for i, item in enumerate(raw):
        where = f"files_to_upload[{i}]"
        if not isinstance(item, dict):
            raise GatewayError.bad(where, f"'{where}' must be an object with field, filename and content_type")
        fname = item.get("field")
        if fname not in roles:
            allowed = ", ".join(roles) or "none (this task type takes no files)"
            raise GatewayError.bad(
                f"{where}.field", f"'{where}.field'={fname!r} is not a file input of this task type; allowed: {allowed}"
            )
        filename = item.get("filename")
        if not isinstance(filename, str) or not 1 <= len(filename) <= 255:
            raise GatewayError.bad(f"{where}.filename", f"'{where}.filename' must be a string of 1 to 255 characters")
        ctype = item.get("content_type")
        if not isinstance(ctype, str) or ctype.lower() not in CONTENT_TYPES:
            raise GatewayError.bad(
                f"{where}.content_type", f"'{where}.content_type' must be one of {', '.join(CONTENT_TYPES)}"
            )
        out.append(PendingUpload(fname, filename, ctype.lower(), "mask" if roles[fname] == "mask" else "image"))
    return out


def image_refs(inp: dict[str, Any], fields: list[FileField], files: list[PendingUpload]) -> list[ImageRef]:
    """The inline images of each file field; with the uploads they must make the field's count."""
    refs: list[ImageRef] = []
    for f in fields:
        param = f"input.{f.name}"
        inline = inp.get(f.name)
        values: list[Any] = [] if inline is None else (inline if isinstance(inline, list) else [inline])
        if f.multiple and inline is not None and not isinstance(inline, list):
            raise GatewayError.bad(param, f"'{param}' must be an array of image URLs, data URIs or base64 strings")
        if not f.multiple and isinstance(inline, list):
            raise GatewayError.bad(param, f"'{param}' takes one image, not an array")
        count = len(values) + sum(1 for u in files if u.field == f.name)
        if count < f.min_count:
            raise GatewayError.bad(
                param,
                f"'{param}' is required: give {f.min_count if f.multiple else 'it'} "
                f"inline or list it in files_to_upload[] with field '{f.name}'",
            )
        if count > f.max_count:
            raise GatewayError.bad(
                param if values else "files_to_upload", f"'{f.name}' takes at most {f.max_count} image(s), got {count}"
            )
        if any(not isinstance(v, str) for v in values):
            raise GatewayError.bad(param, f"'{param}' must be an image URL, data URI or base64 string")
        refs += [ImageRef(v, param, "mask" if f.role == "mask" else "image") for v in values]
    return refs


class OmniDialect:
    name = "omni"

    def __init__(self, catalog: Catalog, url_ttl: int) -> None:
        self.groups = Groups(catalog)
        self.url_ttl = url_ttl
        self.create_routes = [CreateRoute("/api/omni/tasks/create", self.parse)]
        self.task_routes = [TaskRoute("/api/omni/tasks/{task_id}", id_param="portal_task_id")]

    def route(self, body: dict[str, Any]) -> tuple[str, str, CatalogModel]:
        group = _str_field(body, "model_group")
        task_type = _str_field(body, "task_type")
        offered = self.groups.offered(group)
        if offered is None:
            raise GatewayError.bad("model_group", f"no model group '{shown(group)}'; see GET /api/omni/models")
        model = self.groups.resolve(group, task_type)
        if model is None:
            raise GatewayError.bad(
                "task_type",
                f"model group '{shown(group)}' does not offer task type '{shown(task_type)}'; "
                f"offered: {', '.join(offered) or 'none'}",
            )
        return group, task_type, model

    async def parse(self, request: Request, body: RequestBody, ctx: ParseContext) -> Submission:
        if body.images:
            raise GatewayError.bad(next(iter(body.images)), "put input images inside 'input'")
        group, task_type, model = self.route(body.fields)
        inp = body.fields.get("input", {})
        if not isinstance(inp, dict):
            raise GatewayError.bad("input", "'input' must be an object")
        fields = file_fields(model.spec, task_type)
        files = parse_files(body.fields.get("files_to_upload"), fields)
        callback_url = body.fields.get("callback_url")
        if callback_url is not None and not isinstance(callback_url, str):
            raise GatewayError.bad("callback_url", "'callback_url' must be a string")
        known = input_schema(model.spec, task_type)["properties"]
        for name in inp:
            if name not in known:
                raise GatewayError.bad(
                    f"input.{name}",
                    f"'input.{name}' is not an input of {group}/{task_type}; allowed: {', '.join(known)}",
                )
        names = {f.name for f in fields}
        first_image = next((f.name for f in fields if f.role == "image"), "image")
        return Submission(
            dialect=self.name,
            caller=ctx.caller,
            model=model.id,
            base_url=ctx.base_url,
            params={k: v for k, v in inp.items() if k not in names},
            images=image_refs(inp, fields, files),
            uploads=files,
            run="async",
            callback_url=callback_url,
            record={"omni": {"model_group": group, "task_type": task_type}},
            param_names={"image": first_image},
            param_prefix="input.",
        )

    def view(self, view: TaskView) -> dict[str, Any]:
        """The task as Omni API shows it (GET, the create answer and the webhook body)."""
        omni = view.extra.get("omni") or {}
        out: dict[str, Any] = {
            "portal_task_id": view.id,
            "status": view.status.value,
            "model_group": omni.get("model_group", view.model),
            "task_type": omni.get("task_type"),
            "model": view.model,
            "created_at": ts(view.created_at),
            "started_at": ts(view.started_at),
            "completed_at": ts(view.completed_at),
            "poll_url": f"{view.base_url}/api/omni/tasks/{view.id}",
            "cost": view.cost_usd,
        }
        if view.status == TaskStatus.queued:
            out["queue_position"] = view.queue_position
            out["queue"] = {"position": view.queue_position, "state": "queued"}
        if view.upload_deadline is not None:
            out["upload_deadline"] = ts(view.upload_deadline)
        if view.progress is not None:
            out["progress"] = view.progress
        if view.status == TaskStatus.succeeded:
            out["outputs"] = {
                "images": [
                    {"url": img.url, "width": img.width, "height": img.height, "content_type": img.content_type}
                    for img in view.images
                    if img.url
                ]
            }
        if view.error is not None:
            out["error"] = {"code": view.error.code, "message": view.error.message}
        return out

    def render(self, outcome: Outcome) -> Response:
        """The create answer: the task, its upload slots, and where the outputs will be."""
        out = self.view(outcome.task)
        if outcome.uploads:
            out["uploads"] = [{"field": slot.field, **slot_object(slot)} for slot in outcome.uploads]
        out["output_access"] = {
            "poll_url": out["poll_url"],
            "outputs": "outputs.images[].url on success",
            "url_ttl_seconds": self.url_ttl,
        }
        return JSONResponse(out)

    def render_task(self, view: TaskView) -> Response:
        return JSONResponse(self.view(view))

    def render_error(self, exc: GatewayError) -> Response:
        return gateway_response(exc)

    def webhook_body(self, view: TaskView) -> bytes:
        return json.dumps(self.view(view), separators=(",", ":")).encode()

    def extra_routes(self) -> APIRouter | None:
        router = APIRouter()

        @router.get("/api/omni/models")
        async def omni_models(request: Request) -> JSONResponse:
            """Public: the model groups, their task types and schemas (ready groups unless ?all=true)."""
            groups = self.groups.describe(truthy(request.query_params.get("all")))
            return JSONResponse({"object": "list", "model_groups": groups, "data": groups, "default_group": AIO})

        return router
