"""Errors a client or an upstream can cause, each with a stable code and one HTTP status.

``GatewayError`` is what a client sees (dialects render it in their own envelope);
``UpstreamError`` is what an adapter raises, and carries what the router needs to decide
whether to retry or fall back.
"""

from __future__ import annotations

import enum
from typing import Any

ECHO_LIMIT = 64  # characters of a client's value an error message quotes


def shown(value: str, limit: int = ECHO_LIMIT) -> str:
    """A client's value as an error quotes it: whole when short, else its start and its length."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value):,} characters)"


class ErrorCode(enum.StrEnum):
    """Stable machine-readable error codes; each maps to one HTTP status."""

    invalid_request = "invalid_request"
    invalid_image = "invalid_image"
    unsupported_value = "unsupported_value"
    payload_too_large = "payload_too_large"
    invalid_api_key = "invalid_api_key"
    insufficient_credits = "insufficient_credits"
    budget_exceeded = "budget_exceeded"  # the key's monthly budget (USD) would be passed
    model_not_found = "model_not_found"
    model_not_ready = "model_not_ready"
    not_found = "not_found"
    forbidden = "forbidden"
    model_not_allowed = "model_not_allowed"  # outside the key's model allowlist
    conflict = "conflict"
    idempotency_mismatch = "idempotency_mismatch"
    rate_limited = "rate_limited"
    content_policy_violation = "content_policy_violation"
    upstream_auth = "upstream_auth_error"
    upstream_quota = "upstream_quota_exceeded"
    upstream_rate_limited = "upstream_rate_limited"
    upstream_timeout = "upstream_timeout"
    upstream_error = "upstream_error"
    upstream_unavailable = "upstream_unavailable"
    upstream_bad_request = "upstream_bad_request"
    canceled = "canceled"
    interrupted = "interrupted"  # the process running the task stopped; see the message for what was done
    overloaded = "server_overloaded"
    storage_full = "storage_full"  # the disk (or quota) under the image store is full
    storage_error = "storage_error"  # the image store refused a write for another reason
    internal = "internal_error"


STATUS_BY_CODE: dict[ErrorCode, int] = {
    ErrorCode.invalid_request: 400,
    ErrorCode.invalid_image: 400,
    ErrorCode.unsupported_value: 400,
    ErrorCode.payload_too_large: 413,
    ErrorCode.invalid_api_key: 401,
    ErrorCode.insufficient_credits: 402,
    ErrorCode.budget_exceeded: 402,
    ErrorCode.model_not_found: 404,
    ErrorCode.model_not_ready: 503,
    ErrorCode.not_found: 404,
    ErrorCode.forbidden: 403,
    ErrorCode.model_not_allowed: 403,
    ErrorCode.conflict: 409,
    ErrorCode.idempotency_mismatch: 422,
    ErrorCode.rate_limited: 429,
    ErrorCode.content_policy_violation: 400,
    ErrorCode.upstream_auth: 502,
    ErrorCode.upstream_quota: 502,
    ErrorCode.upstream_rate_limited: 429,
    ErrorCode.upstream_timeout: 504,
    ErrorCode.upstream_error: 502,
    ErrorCode.upstream_unavailable: 503,
    ErrorCode.upstream_bad_request: 400,
    ErrorCode.canceled: 409,
    ErrorCode.interrupted: 503,
    ErrorCode.overloaded: 503,
    ErrorCode.storage_full: 507,
    ErrorCode.storage_error: 503,
    ErrorCode.internal: 500,
}

#: seconds a client is told to wait (Retry-After) after a failure of the gateway's own that passes: the
#: store's refused write, whether the request meets it or its task does (and a sync answer reports it)
RETRY_AFTER: dict[ErrorCode, float] = {ErrorCode.storage_error: 5.0}

TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    507: "server_error",
}


def policy_message(message: str) -> str:
    """A moderation outcome in OpenAI's words. Clients such as LiteLLM tell moderation from other
    400s by the message alone ("content policy", "safety system"), so every upstream's own
    wording is kept after OpenAI's."""
    low = message.lower()
    if "content policy" in low and "safety system" in low:
        return message
    return f"Your request was rejected as a result of the safety system: it may violate the content policy ({message})"


class GatewayError(Exception):
    """An error a client should see, with a code, a message and the parameter at fault."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        param: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        if code == ErrorCode.content_policy_violation:
            message = policy_message(message)
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.status = status or STATUS_BY_CODE[code]
        self.retry_after = retry_after

    @property
    def type(self) -> str:
        return TYPE_BY_STATUS.get(self.status, "api_error" if self.status < 500 else "upstream_error")

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code.value}

    @classmethod
    def bad(cls, param: str, message: str) -> GatewayError:
        return cls(ErrorCode.invalid_request, message, param=param)


class UpstreamError(Exception):
    """Raised by a provider adapter; the router decides whether to retry or fall back."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        param: str | None = None,
    ) -> None:
        if code == ErrorCode.content_policy_violation:
            message = policy_message(message)
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.param = param

    @property
    def retryable(self) -> bool:
        return self.code in (
            ErrorCode.upstream_rate_limited,
            ErrorCode.upstream_timeout,
            ErrorCode.upstream_error,
            ErrorCode.upstream_unavailable,
        )

    @property
    def may_fall_back(self) -> bool:
        """Caller mistakes and moderation outcomes are final; everything else may try another deployment."""
        return self.code not in (ErrorCode.upstream_bad_request, ErrorCode.content_policy_violation)

    def to_gateway(self) -> GatewayError:
        return GatewayError(self.code, self.message, param=self.param, retry_after=self.retry_after)
