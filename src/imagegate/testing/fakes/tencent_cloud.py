"""What every Tencent Cloud API 3.0 fake shares (Hunyuan, MPS): TC3 signing, one endpoint, the envelope.

Tencent Cloud serves every product as one ``POST /`` whose action is named in ``X-TC-Action``,
signed with TC3-HMAC-SHA256, and answers every failure with HTTP 200 and
``{"Response": {"Error": {Code, Message}, "RequestId"}}``; a product fake lists its actions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.testing.fakes.server import Endpoint, fake_app, local_path
from imagegate.testing.fakes.state import FakeState

_AUTH = re.compile(
    r"^TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([a-z0-9]+)/tc3_request, "
    r"SignedHeaders=([a-z0-9;\-]+), Signature=([0-9a-f]{64})$"
)
#: one API action: the request's JSON parameters -> the answer
Action = Callable[[dict[str, Any], FakeState], Awaitable[Response]]


def tc_response(payload: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"Response": {**payload, "RequestId": str(uuid.uuid4())}})


def tc_error(code: str, message: str) -> JSONResponse:
    return tc_response({"Error": {"Code": code, "Message": message}})


def _sign(secret_key: str, date: str, service: str, string_to_sign: str) -> str:
    k = hmac.new(("TC3" + secret_key).encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    k = hmac.new(k, b"tc3_request", hashlib.sha256).digest()
    return hmac.new(k, string_to_sign.encode(), hashlib.sha256).hexdigest()


def verify_tc3(request: Request, body: bytes, keys: dict[str, str], service: str) -> Response | None:
    """Check a TC3-HMAC-SHA256 request the way Tencent Cloud does; an error ``Response`` or None.

    The signature is recomputed from the request, so an adapter that signs the wrong bytes fails
    here as it would against the real host.
    """
    m = _AUTH.match(request.headers.get("authorization", ""))
    if not m:
        return tc_error("AuthFailure.InvalidAuthorization", "The Authorization header is malformed.")
    secret_id, date, scope_service, signed, signature = m.groups()
    secret_key = keys.get(secret_id)
    if secret_key is None:
        return tc_error("AuthFailure.SecretIdNotFound", "The SecretId is not found, please check it.")
    try:
        ts = int(request.headers.get("x-tc-timestamp", ""))
    except ValueError:
        return tc_error("AuthFailure.InvalidAuthorization", "X-TC-Timestamp is missing.")
    if abs(time.time() - ts) > 300:
        return tc_error("AuthFailure.SignatureExpire", "Signature expired. Timestamp is out of the window.")
    names = signed.split(";")
    if date != time.strftime("%Y-%m-%d", time.gmtime(ts)) or "content-type" not in names or "host" not in names:
        return tc_error("AuthFailure.SignatureFailure", "The provided credentials could not be validated.")
    canonical_headers = "".join(f"{n}:{request.headers.get(n, '').strip().lower()}\n" for n in names)
    canonical = "\n".join(
        [
            request.method,
            local_path(request.scope),
            request.url.query,
            canonical_headers,
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{scope_service}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{ts}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    if scope_service != service or not hmac.compare_digest(_sign(secret_key, date, scope_service, to_sign), signature):
        return tc_error(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is correct.",
        )
    return None


@dataclass(frozen=True)
class TencentApi:
    """One Tencent Cloud product endpoint: its signing service name, API version and actions."""

    service: str
    version: str
    actions: Mapping[str, Action]

    async def auth(self, request: Request, state: FakeState) -> Response | None:
        return verify_tc3(request, await request.body(), {state.api_key: state.api_key}, self.service)

    async def endpoint(self, request: Request, state: FakeState) -> Response:
        if request.headers.get("x-tc-version") != self.version:
            return tc_error("InvalidParameterValue", "The X-TC-Version is not supported by this action.")
        try:
            params = json.loads(await request.body() or b"{}")
        except ValueError:
            return tc_error("InvalidParameter", "The request body is not valid JSON.")
        action = self.actions.get(request.headers.get("x-tc-action", ""))
        if action is None:
            return tc_error("InvalidAction", f"The action `{request.headers.get('x-tc-action', '')}` is not found.")
        return await action(params, state)

    def app(self, state: FakeState) -> FastAPI:
        return fake_app(state, [Endpoint("POST", "/", self.endpoint)], auth=self.auth)
