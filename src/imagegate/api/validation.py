"""Request models checked once, refused as a 400 that names the client's own parameter.

Every route's body and query parameters are a Pydantic model; the same model is the route's
schema in the OpenAPI document (:mod:`imagegate.api.openapi`), so what the document promises is
what the check enforces. Only types and bounds that hold for every model live here: whether a
size, a quality or a number of images suits the chosen model is the core's check
(:mod:`imagegate.catalog.validate`), which reads the same request afterwards.

A parameter is named down to the innermost object key (``files_to_upload[0].field``); an index
into an array of plain values is left to the message, so ``image_urls: [7]`` names
``image_urls`` and says which element is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from imagegate.domain import GatewayError, shown

M = TypeVar("M", bound=BaseModel)

#: what a value of the wrong type should have been, by the error's type (prefix)
KINDS = {
    "string": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list": "an array",
    "dict": "an object",
    "model": "an object",
}
#: union members as Pydantic names them in an error's location
MEMBERS = {"str": "a string", "int": "an integer", "bool": "true or false", "list[str]": "an array of strings"}


def given(data: Mapping[str, Any]) -> dict[str, Any]:
    """The fields given a value. An empty form field or a null reads as not given, as the core reads
    them (a form cannot leave a field out as easily as JSON can)."""
    return {k: v for k, v in data.items() if v is not None and v != ""}


def check(model: type[M], data: Mapping[str, Any]) -> M:
    """``data`` as ``model``, or a 400 naming the first parameter at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise refusal(model, exc.errors(include_url=False), data) from None


def refusal(model: type[BaseModel], errors: Sequence[ErrorDetails], data: Any) -> GatewayError:
    first = errors[0]
    param, element = _names(first["loc"], data)
    same = [e for e in errors if _names(e["loc"], data)[0] == param]
    message = _message(first, element or "body", same)
    if first["type"] == "extra_forbidden" and len(first["loc"]) == 1:
        message += f"; the parameters are: {', '.join(f.alias or n for n, f in model.model_fields.items())}"
    return GatewayError.bad(param or "body", message)


def _names(loc: tuple[int | str, ...], data: Any) -> tuple[str, str]:
    """(the parameter, the element at fault) from an error's location, read along the client's data.

    A location also holds the names of union members (``str``, ``list[str]``); only the steps
    that exist in the data, and a missing key at the end, are the client's.
    """
    path, param, node = "", "", data
    for i, part in enumerate(loc):
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            path, node = f"{path}[{part}]", node[part]
        elif isinstance(part, str) and isinstance(node, Mapping) and (part in node or i == len(loc) - 1):
            path = f"{path}.{part}" if path else part
            param, node = path, node.get(part)
    return param or path, path


def _message(error: ErrorDetails, name: str, same_field: Sequence[ErrorDetails]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return f"'{name}' is required"
    if kind == "extra_forbidden":
        return f"'{name}' is not a parameter here"
    members = [str(e["loc"][1]) for e in same_field if len(e["loc"]) > 1 and str(e["loc"][1]) in MEMBERS]
    if len(members) > 1:
        return f"'{name}' must be {' or '.join(MEMBERS[m] for m in dict.fromkeys(members))}"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return f"'{name}' must not be empty"
    bounds = {
        "greater_than_equal": "at least {ge}",
        "less_than_equal": "at most {le}",
        "greater_than": "more than {gt}",
        "less_than": "less than {lt}",
        "string_too_short": "at least {min_length} characters long",
        "string_too_long": "at most {max_length} characters long",
        "too_long": "at most {max_length} items",
    }
    if kind in bounds:
        return f"'{name}' must be {bounds[kind].format(**ctx)}"
    prefix = kind.split("_", 1)[0]
    if kind.endswith(("_type", "_parsing")) or kind == "int_from_float":
        return f"'{name}' must be {KINDS.get(prefix, 'of another type')}"
    if kind in ("enum", "literal_error"):
        return f"'{name}' must be {ctx.get('expected', 'one of the documented values')}"
    if kind == "value_error":  # our validators word their errors to follow the name
        return f"'{name}' {shown(str(ctx.get('error', error['msg'])), 200)}"
    return f"'{name}': {error['msg']}"
