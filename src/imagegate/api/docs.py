"""The OpenAPI document and the page that shows it (``/docs``), with its assets served by us.

FastAPI's own page loads Swagger UI from a CDN, and is blank on a machine without Internet
access; this one loads the Swagger UI build that the ``fastapi-swagger`` package ships (5.x, the
first line to render OpenAPI 3.1), from this server.

The document is FastAPI's, finished once on first use: the request schemas that routes declare
through :class:`imagegate.api.openapi.Operation` carry their nested models in ``$defs``, which
move into ``components`` here, and every operation that needs an API key says so, so the
"Authorize" button of ``/docs`` sends one.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from imagegate.api.deps import current_key
from imagegate.api.routes import served

#: the Swagger UI build (bundle, CSS, favicon) inside the installed fastapi-swagger package
STATIC = Path(str(resources.files("fastapi_swagger") / "resources"))
ASSETS = "/docs/assets"
SECURITY = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "an imagegate API key (`imagegate keys create`)"},
    "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "the same key, another header"},
}
DESCRIPTION = """One API in front of every image-generation model, in the dialects of several services.

Request bodies are checked for their types and bounds as the schemas here say; whether a value suits
the chosen model (its sizes, qualities, number of images, input images) is checked against the model's
catalog entry, listed by `GET /v1/models` (and, per task type, by `GET /api/omni/models`). Every refusal
names the parameter at fault.

Unknown body fields: the OpenAI routes (`/v1/...`) and apimodels accept and ignore them, as OpenAI
clients and SDKs send extra fields; the Omni API refuses them (400 naming the field), at the top level,
in `files_to_upload[]` and in `input`."""
TAGS = [
    {
        "name": "OpenAI Images",
        "description": "OpenAI's Images API, with OmniRouters', OmniaKey's and ImageRouter's additions",
    },
    {
        "name": "Chat Completions",
        "description": "image output in the OpenRouter / Gemini shape: message.images, delta.images when streamed",
    },
    {"name": "Tasks", "description": "every generation is a task, sync or async"},
    {"name": "Uploads", "description": "upload slots: PUT the bytes, then use `upload://ID` as an image"},
    {"name": "Keys", "description": "the key a request carries: its balance, budget, allowlist and limits"},
    {"name": "Omni API", "description": "model groups, task types and upload slots"},
    {"name": "apimodels", "description": "the {code, msg, data} envelope"},
    {"name": "Models", "description": "the catalog"},
    {"name": "Files", "description": "signed, expiring downloads of outputs"},
    {"name": "Webhooks", "description": "the Standard Webhooks signing secret"},
    {"name": "System", "description": "liveness and readiness"},
    {"name": "Admin", "description": "keys, usage, every key's tasks and the catalog's state: an admin key only"},
]


def install_docs(app: FastAPI) -> None:
    """Call after every route is added: the document covers the routes present when first asked for."""
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]  # FastAPI's documented hook
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=DESCRIPTION,
        routes=app.routes,
        tags=TAGS,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for operation in _operations(doc):
        _lift(operation, schemas)
    components["schemas"] = dict(sorted(schemas.items()))
    components["securitySchemes"] = SECURITY
    for item in served(app.routes):
        route = item.route
        if isinstance(route, APIRoute) and route.include_in_schema and _needs_key(route):
            for method in item.methods:
                op = doc["paths"].get(item.path_format, {}).get(method.lower())
                if op is not None:
                    op["security"] = [{name: []} for name in SECURITY]
    app.openapi_schema = doc
    return doc


def _operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for item in doc.get("paths", {}).values() for op in item.values() if isinstance(op, dict)]


def _lift(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Move a request schema's ``$defs`` into ``components`` and refer to a model's schema by name."""
    for media in operation.get("requestBody", {}).get("content", {}).values():
        schema = media.get("schema", {})
        for name, sub in schema.pop("$defs", {}).items():
            _register(schemas, name, sub)
        title = schema.get("title")
        if title and schema.get("type") == "object":
            _register(schemas, title, schema)
            media["schema"] = {"$ref": f"#/components/schemas/{title}"}
    for param in operation.get("parameters", []):
        for name, sub in param.get("schema", {}).pop("$defs", {}).items():
            _register(schemas, name, sub)


def _register(schemas: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    if schemas.setdefault(name, schema) != schema:
        raise ValueError(f"two different schemas are both named {name!r} in the OpenAPI document")


def _needs_key(route: APIRoute) -> bool:
    def uses(dep: Dependant) -> bool:
        return dep.call is current_key or any(uses(sub) for sub in dep.dependencies)

    return uses(route.dependant)
