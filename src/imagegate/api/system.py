"""Liveness, readiness, metrics and the model list."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from imagegate.api.deps import GatewayDep, bearer
from imagegate.api.dialects.chat import makes_images
from imagegate.api.openapi import Operation
from imagegate.api.schemas import Health, ModelEntry, ModelList, Readiness
from imagegate.catalog import CatalogModel
from imagegate.db.database import BUSY
from imagegate.domain import ErrorCode, GatewayError, shown
from imagegate.observe.metrics import CONTENT_TYPE
from imagegate.providers.registry import resubmit_of

log = logging.getLogger("imagegate.api")


def model_entry(m: CatalogModel) -> dict[str, Any]:
    s = m.spec
    caps: dict[str, Any] = {
        "modes": s.capabilities,
        "max_n": s.max_n,
        "formats": s.formats,
        "max_input_images": s.max_images,
    }
    if s.sizes:
        caps["sizes"] = (["auto"] if s.allow_auto_size else []) + s.sizes
    if s.size_rule:
        caps["size_rule"] = s.size_rule.model_dump(exclude_none=True)
    if s.resolutions:
        caps["resolutions"] = s.resolutions
    if s.aspect_ratios:
        caps["aspect_ratios"] = s.aspect_ratios
    for name in ("qualities", "styles", "backgrounds", "moderations", "input_fidelities"):
        if getattr(s, name):
            caps[name] = getattr(s, name)
    caps["openai_response_format"] = s.default_response_format  # an omitted one on /v1/images/*
    caps["seed"] = s.supports_seed
    caps["negative_prompt"] = s.supports_negative_prompt
    entry: dict[str, Any] = {
        "id": s.id,
        "object": "model",
        "created": 0,
        "owned_by": s.owned_by,
        "description": s.description,
        "aliases": s.aliases,
        "capabilities": caps,
        "pricing": s.price.describe(),
        "ready": m.ready,
        "providers": sorted({d.provider for d in m.deployments}),
        "resubmit": resubmit_of(m.deployments),
        "chat_completions": makes_images(s),
    }
    if not m.ready:
        entry["not_ready_reason"] = m.not_ready_reason
    return entry


router = APIRouter()


def _doc(id: str, summary: str, tag: str, responses: dict[int, tuple[Any, str]]) -> dict[str, Any]:
    return Operation(id=id, summary=summary, tag=tag, responses=responses).route_kwargs()


@router.get("/health", **_doc("health", "liveness", "System", {200: (Health, "the process answers")}))
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    **_doc(
        "ready",
        "readiness: the database and the storage answer",
        "System",
        {200: (Readiness, "ready"), 503: (Readiness, "not ready: checks says which part failed")},
    ),
)
async def ready(gw: GatewayDep) -> JSONResponse:
    checks: dict[str, str] = {}
    for name, probe in (("database", gw.db.ping), ("storage", gw.storage.ping)):
        try:
            await probe()
            checks[name] = "ok"
        except Exception as exc:  # readiness reports, it does not raise
            checks[name] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, gw: GatewayDep) -> Response:
    """This process's Prometheus metrics (text format); the live-task gauge is read from the database now.

    Open unless ``IMAGEGATE_METRICS_TOKEN`` is set; then ``Authorization: Bearer <token>`` is required."""
    token = gw.settings.metrics_token
    if token and not hmac.compare_digest((bearer(request) or "").encode(), token.encode()):
        raise GatewayError(ErrorCode.invalid_api_key, "metrics need 'Authorization: Bearer <IMAGEGATE_METRICS_TOKEN>'")
    try:
        gw.metrics.set_live(await gw.tasks.store.count_live())
    except BUSY:  # the counters are still worth a scrape when the database is not
        log.warning("metrics: could not count live tasks", exc_info=True)
    return Response(gw.metrics.exposition(), media_type=CONTENT_TYPE)


@router.get("/v1/models", **_doc("list_models", "the catalog", "Models", {200: (ModelList, "the models")}))
async def models(
    gw: GatewayDep,
    all: bool = Query(False, description="true: models lacking credentials too, with the reason"),  # noqa: A002
) -> dict[str, Any]:
    items = [model_entry(m) for m in gw.catalog.all() if all or m.ready]
    return {"object": "list", "data": items}


@router.get("/v1/models/{model_id:path}", **_doc("get_model", "one model", "Models", {200: (ModelEntry, "the model")}))
async def model(model_id: str, gw: GatewayDep) -> dict[str, Any]:
    m = gw.catalog.get(model_id)
    if m is None:
        raise GatewayError(ErrorCode.model_not_found, f"model '{shown(model_id)}' does not exist", param="model")
    return model_entry(m)
