"""How a route appears in the OpenAPI document, written from the models that check its requests.

Endpoints read their requests themselves (bodies are bounded while they stream in, multipart
carries image parts, and errors leave in each dialect's envelope), so FastAPI sees no body or
query parameters in their signatures. An :class:`Operation` gives FastAPI the same models
instead: its request schemas go into ``openapi_extra`` and its responses into ``responses``.
A request model's nested schemas are lifted into ``components`` when the document is built
(:func:`imagegate.api.docs.build_openapi`).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from imagegate.api.schemas import ErrorResponse

REF = "#/components/schemas/{model}"
#: what each error status means, for every operation's ``4XX`` / ``5XX`` entries
CLIENT_ERRORS = (
    "400 a parameter is wrong (`param` names it), 401 no, a bad or an expired API key, 402 not enough credits "
    "or the key's monthly budget is spent, 403 a signed link is wrong or expired, the model is outside the "
    "key's allowlist, or an admin route was called without an admin key, 404 no such model or task, "
    "409 a conflict (a duplicate "
    "Idempotency-Key in flight, a task that cannot be canceled), 413 too large, 422 an Idempotency-Key "
    "reused with another body, 429 a rate or concurrency limit (see Retry-After)"
)
SERVER_ERRORS = (
    "502 the upstream failed, 503 overloaded, the model is not ready or the store refused a write "
    "(see Retry-After), 504 it timed out, 507 the gateway's storage is full"
)


@dataclass(frozen=True, slots=True)
class Operation:
    """One route's entry in the document. ``responses`` maps a status to its model (or a union of
    models) and description; ``path`` names the path parameters an endpoint reads from the request
    itself, with their descriptions."""

    id: str
    summary: str
    tag: str
    responses: Mapping[int, tuple[Any, str]]
    body: type[BaseModel] | None = None  # application/json
    form: type[BaseModel] | None = None  # multipart/form-data
    query: type[BaseModel] | None = None
    path: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # optional request headers, with descriptions
    error: Any = ErrorResponse  # a model, or a union of models
    description: str = ""
    raw_body: Mapping[str, Any] | None = None  # content types of a body that is no JSON object (bytes)
    raw_responses: Mapping[int, dict[str, Any]] = field(default_factory=dict)  # answers that are no JSON

    def route_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``add_api_route`` (or a route decorator)."""
        responses: dict[int | str, dict[str, Any]] = {
            status: {"model": model, "description": text} for status, (model, text) in self.responses.items()
        }
        for status, answer in self.raw_responses.items():  # beside a model's JSON at the same status: merged
            entry = responses.setdefault(status, {})
            content = {**entry.get("content", {}), **copy.deepcopy(answer).get("content", {})}
            entry.update(copy.deepcopy(answer))
            if content:
                entry["content"] = content
        responses["4XX"] = {"model": self.error, "description": CLIENT_ERRORS}
        responses["5XX"] = {"model": self.error, "description": SERVER_ERRORS}
        return {
            "operation_id": self.id,
            "summary": self.summary,
            "description": self.description,
            "tags": [self.tag],
            "responses": responses,
            "openapi_extra": self.extra(),
        }

    def extra(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        content: dict[str, Any] = {}
        if self.body is not None:
            content["application/json"] = {"schema": copy.deepcopy(json_schema(self.body))}
        if self.form is not None:
            content["multipart/form-data"] = {"schema": copy.deepcopy(json_schema(self.form))}
        content.update(copy.deepcopy(dict(self.raw_body or {})))
        if content:
            out["requestBody"] = {"required": True, "content": content}
        params = [path_parameter(name, text) for name, text in self.path.items()]
        params += [
            {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": text}
            for name, text in self.headers.items()
        ]
        if self.query is not None:
            params += query_parameters(self.query)
        if params:
            out["parameters"] = params
        return out


class RequestSchema(GenerateJsonSchema):
    """Optional request fields as a client sends them: left out, never null.

    The checks read a null or an empty form field as left out, so a null is accepted; but a
    schema that offers it makes clients send ``"n": null`` and makes Swagger UI draw a file field
    of a multipart body as a text box."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        if schema.get("default", ...) is None:
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # a property's title only repeats its name


@functools.cache
def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's schema, its nested models referred to in ``components`` (and kept in ``$defs``
    until the document lifts them there)."""
    return model.model_json_schema(ref_template=REF, schema_generator=RequestSchema)


def path_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = json_schema(model)
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        prop = copy.deepcopy({k: v for k, v in prop.items() if k not in ("title", "description")})
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        description = schema["properties"][name].get("description")
        if description:
            param["description"] = description
        out.append(param)
    return out
