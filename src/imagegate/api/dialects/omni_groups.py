"""Omni API model groups, derived from the catalog: task types and their JSON Schemas.

Every catalog model is a group of its own (named by the model id) whose task types follow
from its capabilities; ``omni-image-aio`` is one group over all of them that sends each task
type to the first ready model that can do it (real models first, the offline ``test/test``
last, so a fresh install answers every basic task type out of the box).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imagegate.catalog import Catalog, CatalogModel
from imagegate.catalog.schema import ModelSpec
from imagegate.domain import MIME

AIO = "omni-image-aio"
#: the order in which omni-image-aio tries models for a task type; then the rest of the catalog
AIO_PREFERENCE = ("GPT-image-2", "Nano-Banana2", "Seedream:4.5", "Kling:3.0-omni", "Hunyuan-3d-2.0")
FALLBACK = "test/test"
TASK_TYPES = ("text_to_image", "single_image_edit", "multi_image_edit", "inpaint", "panorama")


@dataclass(frozen=True, slots=True)
class FileField:
    """An input image a task type takes: inline in ``input`` (URL, data URI, base64) or uploaded."""

    name: str
    role: str  # "image" or "mask"
    min_count: int = 1
    max_count: int = 1

    @property
    def multiple(self) -> bool:
        return self.max_count > 1


def task_types(spec: ModelSpec) -> list[str]:
    """The Omni task types a model's capabilities allow."""
    caps = set(spec.capabilities)
    out = []
    if "generate" in caps and "panorama" not in caps:
        out.append("text_to_image")
    if caps & {"edit", "multi_image"} and spec.max_images >= 1:
        out.append("single_image_edit")
    if "multi_image" in caps and spec.max_images >= 2:
        out.append("multi_image_edit")
    if "mask" in caps and spec.max_images >= 1:
        out.append("inpaint")
    if "panorama" in caps:
        out.append("panorama")
    return out


def file_fields(spec: ModelSpec, task_type: str) -> list[FileField]:
    if task_type == "single_image_edit":
        return [FileField("source_image", "image")]
    if task_type == "multi_image_edit":
        return [FileField("images", "image", 2, spec.max_images)]
    if task_type == "inpaint":
        return [FileField("source_image", "image"), FileField("mask", "mask")]
    return []


def _enum(values: list[str] | tuple[str, ...], description: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values), "description": description}


def _size_schema(spec: ModelSpec) -> dict[str, Any] | None:
    if spec.size_rule is not None:
        r = spec.size_rule
        desc = f"WIDTHxHEIGHT, sides {r.min_side}-{r.max_side}"
        if r.multiple_of > 1:
            desc += f", multiples of {r.multiple_of}"
        if r.max_pixels:
            desc += f", at most {r.max_pixels} pixels"
        if spec.sizes:
            desc += f"; e.g. {', '.join(spec.sizes)}"
        return {
            "type": "string",
            "pattern": r"^(auto|\d+x\d+)$",
            "description": desc,
            "default": _default_size(spec, "auto"),
        }
    if spec.sizes:
        values = (["auto"] if spec.allow_auto_size else []) + list(spec.sizes)
        return {**_enum(values, "output size"), "default": _default_size(spec, values[0])}
    return None


def _default_size(spec: ModelSpec, fallback: str) -> str:
    """What an omitted size becomes (see catalog.validate.size_defaults)."""
    if spec.upstream_auto_size:
        return "auto"
    return spec.default_size or fallback


def input_schema(spec: ModelSpec, task_type: str) -> dict[str, Any]:
    """JSON Schema of ``input`` for one task type of one model, from its catalog capabilities."""
    props: dict[str, Any] = {
        "prompt": {
            "type": "string",
            "maxLength": spec.max_prompt_chars,
            "description": "what to generate or how to change the input",
        }
    }
    required = ["prompt"] if spec.prompt_required else []
    size = _size_schema(spec)
    if size is not None:
        props["size"] = size
    if spec.aspect_ratios:
        props["aspect_ratio"] = _enum(spec.aspect_ratios, "output aspect ratio")
    if spec.resolutions:
        props["resolution"] = _enum(spec.resolutions, "output size tier")
    if spec.qualities:
        props["quality"] = _enum(spec.qualities, "quality tier")
    if spec.styles:
        props["style"] = _enum(spec.styles, "style")
    if spec.backgrounds:
        props["background"] = _enum(spec.backgrounds, "background transparency")
    props["n"] = {"type": "integer", "minimum": 1, "maximum": spec.max_n, "default": 1}
    props["output_format"] = {**_enum(spec.formats, "image format of the outputs"), "default": "png"}
    if spec.supports_seed:
        props["seed"] = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
    if spec.supports_negative_prompt:
        props["negative_prompt"] = {"type": "string"}
    for f in file_fields(spec, task_type):
        one = {
            "type": "string",
            "contentMediaType": "image/*",
            "description": f"http(s) URL, data URI or base64; or upload it with files_to_upload[] (field '{f.name}')",
        }
        props[f.name] = (
            {"type": "array", "items": one, "minItems": f.min_count, "maxItems": f.max_count} if f.multiple else one
        )
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def output_schema(spec: ModelSpec) -> dict[str, Any]:
    image = {
        "type": "object",
        "required": ["url", "content_type"],
        "properties": {
            "url": {"type": "string", "format": "uri", "description": "signed object-storage URL (expires)"},
            "content_type": {"type": "string", "enum": [MIME[f] for f in spec.formats if f in MIME]},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
        },
    }
    return {
        "type": "object",
        "required": ["images"],
        "properties": {"images": {"type": "array", "items": image, "minItems": 1, "maxItems": spec.max_n}},
    }


class Groups:
    """The groups of one catalog (built once per app: the catalog does not change while serving)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.aio = self._aio_routes()

    def _aio_routes(self) -> dict[str, CatalogModel]:
        models = self.catalog.all()
        order = {name: i for i, name in enumerate(AIO_PREFERENCE)}
        ranked = sorted(models, key=lambda m: (m.id == FALLBACK, order.get(m.id, len(order))))
        routes: dict[str, CatalogModel] = {}
        for tt in TASK_TYPES:
            pick = next((m for m in ranked if m.ready and tt in task_types(m.spec)), None)
            if pick is not None:
                routes[tt] = pick
        return routes

    def resolve(self, group: str, task_type: str) -> CatalogModel | None:
        """The model a (group, task type) runs on; None when the group does not offer it."""
        if group == AIO:
            return self.aio.get(task_type)
        model = self.catalog.get(group)
        if model is None or task_type not in task_types(model.spec):
            return None
        return model

    def offered(self, group: str) -> list[str] | None:
        """The task types of a group; None when no such group exists."""
        if group == AIO:
            return [tt for tt in TASK_TYPES if tt in self.aio]
        model = self.catalog.get(group)
        return task_types(model.spec) if model is not None else None

    def describe(self, include_all: bool) -> list[dict[str, Any]]:
        out = []
        if self.aio or include_all:
            out.append(self._describe_aio())
        for m in self.catalog.all():
            if (m.ready or include_all) and task_types(m.spec):
                out.append(self._describe_model(m))
        return out

    def _task_entry(self, m: CatalogModel, tt: str) -> dict[str, Any]:
        return {
            "task_type": tt,
            "model": m.id,
            "input_schema": input_schema(m.spec, tt),
            "output_schema": output_schema(m.spec),
            "files": [
                {"field": f.name, "role": f.role, "min": f.min_count, "max": f.max_count}
                for f in file_fields(m.spec, tt)
            ],
            "price": m.price_for(next((d for d in m.deployments if d.ready), None)).describe(),
        }

    def _describe_aio(self) -> dict[str, Any]:
        return {
            "model_group": AIO,
            "name": "Omni Image All-in-One",
            "description": "each task type runs on the best ready model for it",
            "status": "ready" if self.aio else "not_ready",
            "task_types": [self._task_entry(m, tt) for tt, m in self.aio.items()],
        }

    def _describe_model(self, m: CatalogModel) -> dict[str, Any]:
        group: dict[str, Any] = {
            "model_group": m.id,
            "name": m.id,
            "description": m.spec.description,
            "owned_by": m.spec.owned_by,
            "status": "ready" if m.ready else "not_ready",
            "task_types": [self._task_entry(m, tt) for tt in task_types(m.spec)],
        }
        if not m.ready:
            group["not_ready_reason"] = m.not_ready_reason
        return group
