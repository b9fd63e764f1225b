"""Omni API: model groups with task types, task create (with upload slots), task status.

``POST /api/omni/tasks/create`` turns ``model_group`` + ``task_type`` + ``input`` into a
submission; an input image named in ``files_to_upload[]`` becomes an upload slot tied to the
task, which then waits in ``awaiting_upload`` until every slot is PUT or its deadline passes
(it fails with ``upload_expired``). Outputs are signed storage URLs. Parameters are named as the
client sent them: ``input.size``, ``input.source_image``, ``files_to_upload[0].field``. Unknown
fields are refused (why: :mod:`imagegate.api.dialects.omni_models`).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from imagegate.api.body import RequestBody
from imagegate.api.dialects.base import CreateRoute, ParseContext, TaskRoute
from imagegate.api.dialects.omni_groups import AIO, FileField, Groups, file_fields, input_schema
from imagegate.api.dialects.omni_models import OmniCreate, OmniFile, OmniModels, OmniModelsQuery, OmniTask
from imagegate.api.errors import gateway_response
from imagegate.api.openapi import Operation
from imagegate.api.responses import ts
from imagegate.api.uploads import slot_object
from imagegate.api.validation import check, given
from imagegate.catalog import Catalog, CatalogModel
from imagegate.domain import GatewayError, ImageRef, Outcome, PendingUpload, Submission, TaskStatus, TaskView, shown


def parse_files(files: list[OmniFile] | None, fields: list[FileField]) -> list[PendingUpload]:
    """The uploads the create asks for, each for a file input of its task type."""
    roles = {f.name: f.role for f in fields}
    out = []
    for i, item in enumerate(files or ()):
        if item.field not in roles:
            allowed = ", ".join(roles) or "none (this task type takes no files)"
            where = f"files_to_upload[{i}].field"
            raise GatewayError.bad(
                where, f"'{where}'={shown(item.field)!r} is not a file input of this task type; allowed: {allowed}"
            )
        role: Literal["image", "mask"] = "mask" if roles[item.field] == "mask" else "image"
        out.append(PendingUpload(item.field, item.filename, item.content_type, role))
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


CREATE = Operation(
    id="omni_create_task",
    summary="Omni API: create a task",
    tag="Omni API",
    responses={200: (OmniTask, "the task; with files_to_upload it waits (awaiting_upload) for the PUTs to uploads[]")},
    body=OmniCreate,
)
GET = Operation(
    id="omni_get_task",
    summary="Omni API: a task's status",
    tag="Omni API",
    responses={200: (OmniTask, "the task")},
    path={"portal_task_id": "the create answer's portal_task_id"},
)
MODELS = Operation(
    id="omni_list_models",
    summary="Omni API: model groups, task types and their schemas",
    tag="Omni API",
    description="Public (no API key). The ready groups, unless all=true.",
    responses={200: (OmniModels, "the model groups")},
    query=OmniModelsQuery,
)


class OmniDialect:
    name = "omni"

    def __init__(self, catalog: Catalog, url_ttl: int) -> None:
        self.groups = Groups(catalog)
        self.url_ttl = url_ttl
        self.create_routes = [CreateRoute("/api/omni/tasks/create", self.parse, CREATE)]
        self.task_routes = [TaskRoute("/api/omni/tasks/{portal_task_id}", GET, id_param="portal_task_id")]

    def route(self, group: str, task_type: str) -> CatalogModel:
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
        return model

    async def parse(self, request: Request, body: RequestBody, ctx: ParseContext) -> Submission:
        if body.images:
            raise GatewayError.bad(next(iter(body.images)), "put input images inside 'input'")
        sent = check(OmniCreate, body.fields)
        group, task_type, inp = sent.model_group, sent.task_type, sent.input
        model = self.route(group, task_type)
        fields = file_fields(model.spec, task_type)
        files = parse_files(sent.files_to_upload, fields)
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
            callback_url=sent.callback_url,
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

        @router.get("/api/omni/models", **MODELS.route_kwargs())
        async def omni_models(request: Request) -> JSONResponse:
            groups = self.groups.describe(check(OmniModelsQuery, given(request.query_params)).all)
            return JSONResponse({"object": "list", "model_groups": groups, "data": groups, "default_group": AIO})

        return router
