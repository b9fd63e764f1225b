"""Request and response models of the admin API (``/admin/v1/``).

Requests are checked with these models (a 400 names the parameter); answers are built as dicts
and held to the response models by the tests, like the other routes' (see :mod:`imagegate.api.schemas`).
Money is in USD: a key's credits are a USD balance, so "credits" and "USD" are the same amount.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from imagegate.api.schemas import TaskObject

#: printable text: no control characters (PostgreSQL refuses NUL in text, and names show in tables)
TEXT = r"^[^\x00-\x1f\x7f]*$"
MAX_USD = 1_000_000_000.0
MAX_LIMIT = 1_000_000
Usd = float
Pattern = Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT)]
PATTERNS_DOC = "fnmatch patterns of catalog model ids, e.g. ['openai/*', 'test/test']; null or left out: every model"


class KeySettings(BaseModel):
    """What both a create and an update may set."""

    model_config = ConfigDict(extra="forbid")

    is_admin: bool | None = Field(None, description="may call /admin/v1/")
    expires_at: str | None = Field(
        None, description="ISO 8601 date or date-time (UTC unless it says otherwise); 401 from then on; null: never"
    )
    allowed_models: list[Pattern] | None = Field(None, min_length=1, max_length=100, description=PATTERNS_DOC)
    monthly_budget_usd: Usd | None = Field(
        None, ge=0, le=MAX_USD, allow_inf_nan=False, description="spend per calendar month (UTC); null: no budget"
    )
    rate_limit_rpm: int | None = Field(None, ge=1, le=MAX_LIMIT, description="requests per minute; null: no limit")
    max_concurrent_tasks: int | None = Field(
        None, ge=1, le=MAX_LIMIT, description="tasks queued or running at once; null: no limit"
    )


class KeyCreate(KeySettings):
    name: str = Field(min_length=1, max_length=200, pattern=TEXT, description="a label")
    credits: Usd | None = Field(
        None, ge=0, le=MAX_USD, allow_inf_nan=False, description="balance in USD; left out: unlimited"
    )


class KeyUpdate(KeySettings):
    """Fields left out stay as they are; a null lifts a limit (expiry, allowlist, budget, rates)."""

    name: str | None = Field(None, min_length=1, max_length=200, pattern=TEXT)
    credits: Usd | None = Field(None, ge=0, le=MAX_USD, allow_inf_nan=False, description="set the balance (USD)")
    add_credits: Usd | None = Field(
        None, gt=0, le=MAX_USD, allow_inf_nan=False, description="top the balance up by this much (USD)"
    )
    unlimited: bool | None = Field(None, description="true: no balance at all (credits and add_credits then refused)")


class KeyObject(BaseModel):
    id: str
    object: Literal["api_key"]
    name: str
    prefix: str = Field(description="the secret's first characters, to recognize it; never enough to use it")
    status: Literal["active", "revoked", "expired"]
    is_admin: bool
    credits: Usd | None = Field(description="the balance in USD; null: unlimited")
    unlimited: bool
    expires_at: int | None
    allowed_models: list[str] | None
    monthly_budget_usd: Usd | None
    month_spend_usd: Usd = Field(description="spent or held this calendar month (UTC), as the budget counts it")
    rate_limit_rpm: int | None
    max_concurrent_tasks: int | None
    created_at: int | None
    revoked_at: int | None


class KeyWithSecret(KeyObject):
    secret: str = Field(description="the API key itself: shown in this answer only")


class KeyList(BaseModel):
    object: Literal["list"]
    data: list[KeyObject]


class UsageQuery(BaseModel):
    start: str | None = Field(
        None, alias="from", description="ISO 8601 date or date-time; default: the start of this month (UTC)"
    )
    end: str | None = Field(None, alias="to", description="exclusive; ISO 8601 date or date-time; default: now")
    group_by: Literal["key", "model", "day"] = Field("key", description="one row per key, model or day (UTC)")
    key_id: str | None = Field(None, max_length=200, pattern=TEXT, description="only this key's tasks")
    format: Literal["json", "csv"] = Field("json", description="csv: the rows as text/csv")


class UsageEntry(BaseModel):
    group: str = Field(description="the key id, the model id or the day (YYYY-MM-DD)")
    key_name: str | None = Field(description="when grouped by key")
    tasks: int
    succeeded: int
    errors: int = Field(description="tasks that failed")
    images: int = Field(description="images delivered")
    spend_usd: Usd = Field(description="credits spent (USD) by tasks that succeeded")


class UsageReport(BaseModel):
    object: Literal["usage"]
    start: int = Field(alias="from")
    end: int = Field(alias="to")
    group_by: str
    data: list[UsageEntry]
    total: UsageEntry


class AdminTaskQuery(BaseModel):
    key_id: str | None = Field(None, max_length=200, pattern=TEXT, description="only this key's tasks")
    model: str | None = Field(None, max_length=200, pattern=TEXT, description="only this model's (catalog id)")
    status: str | None = Field(None, pattern=TEXT, description="only tasks in these states, comma-separated")
    start: str | None = Field(None, alias="from", description="created at or after (ISO 8601)")
    end: str | None = Field(None, alias="to", description="created before (ISO 8601)")
    after: str | None = Field(None, max_length=200, pattern=TEXT, description="the next_cursor of the previous page")
    limit: int = Field(20, ge=1, le=100, description="tasks per page")


class AdminTask(TaskObject):
    key_id: str
    key_name: str | None
    dialect: str
    request: dict[str, Any] = Field(description="the validated request, as the task recorded it")
    deployment: str | None = Field(None, description="the upstream deployment that served it")
    attempts: int
    cost_usd: Usd = Field(description="settled (0 until it succeeds)")
    reserved_usd: Usd = Field(description="held while it ran")


class AdminTaskList(BaseModel):
    object: Literal["list"]
    data: list[AdminTask]
    has_more: bool
    next_cursor: str | None


class DeploymentState(BaseModel):
    id: str
    provider: str
    upstream_model: str
    ready: bool
    missing_env: list[str] = Field(description="environment variables it still needs")
    region: str | None
    weight: int
    max_concurrency: int | None
    breaker: Literal["closed", "open", "half_open"] = Field(description="its circuit, as this process sees it")
    consecutive_failures: int


class AdminModel(BaseModel):
    id: str
    object: Literal["model"]
    ready: bool
    not_ready_reason: str | None
    missing_env: list[str]
    deployments: list[DeploymentState]


class AdminModelList(BaseModel):
    object: Literal["list"]
    data: list[AdminModel]
