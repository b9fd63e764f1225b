"""Admin API, keys: create (the secret shown once), list, get, update, revoke, rotate.

Every route needs an admin key (``AdminKey``: 401 without a valid key, 403 with another). A
revoked key keeps its row, so its tasks and spend stay in the usage; a rotation changes only the
secret, so the key id, its history and its settings carry over.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from imagegate.api.admin_schemas import KeyCreate, KeyList, KeyObject, KeySettings, KeyUpdate, KeyWithSecret
from imagegate.api.body import parse_json, read_capped
from imagegate.api.deps import AdminKey, GatewayDep
from imagegate.api.openapi import Operation
from imagegate.api.validation import check
from imagegate.db.database import maybe_aware, to_micros, to_usd
from imagegate.db.keys import is_expired
from imagegate.db.tables import ApiKey, utcnow
from imagegate.domain import ErrorCode, GatewayError, shown

router = APIRouter()
TAG = "Admin"
MAX_BODY = 64 * 1024
ID = re.compile(r"[A-Za-z0-9_-]{1,40}")  # the form of every id the gateway hands out


def doc(id: str, summary: str, responses: dict[int, tuple[Any, str]], **kw: Any) -> dict[str, Any]:
    return Operation(id=id, summary=summary, tag=TAG, responses=responses, **kw).route_kwargs()


def parse_time(param: str, value: str) -> datetime:
    """An ISO 8601 date or date-time as an aware UTC datetime (naive means UTC), or a 400 naming ``param``."""
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise GatewayError.bad(
            param, f"'{param}' must be an ISO 8601 date or date-time (2026-01-31, 2026-01-31T12:00:00Z), "
                   f"not {shown(value)!r}"
        ) from None  # fmt: skip


def _ts(dt: datetime | None) -> int | None:
    aware = maybe_aware(dt)
    return int(aware.timestamp()) if aware is not None else None


def key_object(key: ApiKey, spend_micros: int = 0) -> dict[str, Any]:
    status = "revoked" if key.revoked_at is not None else "expired" if is_expired(key, utcnow()) else "active"
    return {
        "id": key.id,
        "object": "api_key",
        "name": key.name,
        "prefix": key.prefix,
        "status": status,
        "is_admin": bool(key.is_admin),
        "credits": to_usd(key.credits_micros),
        "unlimited": key.credits_micros is None,
        "expires_at": _ts(key.expires_at),
        "allowed_models": list(key.allowed_models) if key.allowed_models is not None else None,
        "monthly_budget_usd": to_usd(key.monthly_budget_micros),
        "month_spend_usd": to_usd(spend_micros) or 0.0,
        "rate_limit_rpm": key.rate_limit_rpm,
        "max_concurrent_tasks": key.max_concurrent_tasks,
        "created_at": _ts(key.created_at),
        "revoked_at": _ts(key.revoked_at),
    }


async def _body(request: Request, model: type[KeySettings]) -> KeySettings:
    raw = await read_capped(request, MAX_BODY)
    body = parse_json(raw) if raw.strip() else None
    if not isinstance(body, dict):
        raise GatewayError.bad("body", "request body must be a JSON object")
    return check(model, body)


def settings_of(sent: KeySettings) -> dict[str, Any]:
    """The columns the request sets: a field sent as null lifts that limit."""
    out: dict[str, Any] = {}
    given = sent.model_fields_set
    for name in ("rate_limit_rpm", "max_concurrent_tasks", "allowed_models"):
        if name in given:
            out[name] = getattr(sent, name)
    if "is_admin" in given:
        out["is_admin"] = bool(sent.is_admin)
    if "expires_at" in given:
        out["expires_at"] = parse_time("expires_at", sent.expires_at) if sent.expires_at is not None else None
    if "monthly_budget_usd" in given:
        budget = sent.monthly_budget_usd
        out["monthly_budget_micros"] = to_micros(budget) if budget is not None else None
    return out


def balance_of(sent: KeyUpdate) -> tuple[dict[str, Any], int]:
    """(the balance column to set, if any; the top-up in micro-dollars)."""
    given = sent.model_fields_set
    if sent.unlimited and (sent.credits is not None or sent.add_credits is not None):
        raise GatewayError.bad("unlimited", "'unlimited' cannot be combined with 'credits' or 'add_credits'")
    if sent.credits is not None and sent.add_credits is not None:
        raise GatewayError.bad("add_credits", "send 'credits' (set the balance) or 'add_credits' (top up), not both")
    if sent.unlimited:
        return {"credits_micros": None}, 0
    if "unlimited" in given and sent.unlimited is False and sent.credits is None:
        raise GatewayError.bad("unlimited", "'unlimited': false needs 'credits', the balance the key starts from")
    if sent.credits is not None:
        return {"credits_micros": to_micros(sent.credits)}, 0
    return {}, to_micros(sent.add_credits) if sent.add_credits is not None else 0


async def _key(gw: GatewayDep, key_id: str) -> ApiKey:
    key = await gw.keys.get(key_id) if ID.fullmatch(key_id) else None
    if key is None:
        raise GatewayError(ErrorCode.not_found, f"no key '{shown(key_id)}'", param="key_id")
    return key


async def shown_key(gw: GatewayDep, key: ApiKey) -> dict[str, Any]:
    """The key object, with this month's spend."""
    return key_object(key, (await gw.admin.month_spend([key.id])).get(key.id, 0))


def _answer(data: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


@router.post(
    "/admin/v1/keys",
    status_code=201,
    **doc("admin_create_key", "create a key", {201: (KeyWithSecret, "the key, with its secret (shown once)")},
          body=KeyCreate),
)  # fmt: skip
async def create_key(request: Request, gw: GatewayDep, admin: AdminKey) -> JSONResponse:
    sent = await _body(request, KeyCreate)
    assert isinstance(sent, KeyCreate)
    values = settings_of(sent)
    is_admin = bool(values.pop("is_admin", False))
    rpm, live = values.pop("rate_limit_rpm", None), values.pop("max_concurrent_tasks", None)
    row, secret = await gw.keys.create(
        sent.name, sent.credits, rate_limit_rpm=rpm, max_concurrent_tasks=live, is_admin=is_admin, settings=values
    )
    return _answer({**key_object(row), "secret": secret}, 201)


@router.get("/admin/v1/keys", **doc("admin_list_keys", "every key (never a secret)", {200: (KeyList, "the keys")}))
async def list_keys(gw: GatewayDep, admin: AdminKey) -> JSONResponse:
    rows = await gw.keys.all()
    spend = await gw.admin.month_spend([r.id for r in rows])
    return _answer({"object": "list", "data": [key_object(r, spend.get(r.id, 0)) for r in rows]})


@router.get("/admin/v1/keys/{key_id}", **doc("admin_get_key", "one key", {200: (KeyObject, "the key")}))
async def get_key(key_id: str, gw: GatewayDep, admin: AdminKey) -> JSONResponse:
    return _answer(await shown_key(gw, await _key(gw, key_id)))


@router.patch(
    "/admin/v1/keys/{key_id}",
    **doc("admin_update_key", "change a key: name, credits, limits, expiry, allowlist, budget",
          {200: (KeyObject, "the key as it now is")}, body=KeyUpdate),
)  # fmt: skip
async def update_key(key_id: str, request: Request, gw: GatewayDep, admin: AdminKey) -> JSONResponse:
    sent = await _body(request, KeyUpdate)
    assert isinstance(sent, KeyUpdate)
    await _key(gw, key_id)
    values = settings_of(sent)
    if sent.name is not None:
        values["name"] = sent.name
    balance, add = balance_of(sent)
    row = await gw.keys.update(key_id, {**values, **balance}, add)
    if row is None:
        raise GatewayError(ErrorCode.not_found, f"no key '{shown(key_id)}'", param="key_id")
    return _answer(await shown_key(gw, row))


@router.delete(
    "/admin/v1/keys/{key_id}",
    **doc("admin_revoke_key", "revoke a key (its tasks and usage are kept)",
          {200: (KeyObject, "the key, revoked")}),
)  # fmt: skip
async def revoke_key(key_id: str, gw: GatewayDep, admin: AdminKey) -> JSONResponse:
    key = await _key(gw, key_id)
    await gw.keys.revoke(key.id)
    return _answer(await shown_key(gw, await _key(gw, key_id)))


@router.post(
    "/admin/v1/keys/{key_id}/rotate",
    **doc("admin_rotate_key", "a new secret for the same key (the old one stops working)",
          {200: (KeyWithSecret, "the key, with its new secret (shown once)")}),
)  # fmt: skip
async def rotate_key(key_id: str, gw: GatewayDep, admin: AdminKey) -> JSONResponse:
    key = await _key(gw, key_id)
    rotated = await gw.keys.rotate(key.id)
    if rotated is None:
        raise GatewayError(ErrorCode.conflict, f"key '{key.id}' is revoked; a revoked key cannot be rotated",
                           param="key_id")  # fmt: skip
    row, secret = rotated
    return _answer({**(await shown_key(gw, row)), "secret": secret})
