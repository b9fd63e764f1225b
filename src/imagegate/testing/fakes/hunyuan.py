"""A fake of Tencent Cloud's Hunyuan image API (hunyuan.tencentcloudapi.com, version 2023-09-01).

Imitates: TC3-HMAC-SHA256 authentication, verified by recomputing the signature from the
request (unknown SecretId, bad signature, stale timestamp -> ``AuthFailure.*``); the
``X-TC-Action`` dispatch of ``SubmitHunyuanImageJob`` / ``QueryHunyuanImageJob``; HTTP 200 with
``{"Response": {"Error": {Code, Message}, "RequestId"}}`` for every failure; the documented
``Resolution`` list (plus free W:H within 512-2048 and <= 1024x1024 pixels, as Hunyuan Image 3.0
allows), ``Num`` 1-4; one concurrent job per account (``LimitExceeded``); job states
"1" -> "2" -> "5" (or "4" with ``JobErrorCode``/``JobErrorMsg``) per query; one-hour result URLs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imagegate.testing.fakes.common import FakeState, mount_blobs, trigger

PROVIDER = "hunyuan"
TTL = 3600.0
DOCUMENTED = {"768:768", "768:1024", "1024:768", "1024:1024", "720:1280", "1280:720", "768:1280", "1280:768"}
_AUTH = re.compile(r"^TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([a-z0-9]+)/tc3_request, "
                   r"SignedHeaders=([a-z0-9;\-]+), Signature=([0-9a-f]{64})$")


def _resp(payload: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"Response": {**payload, "RequestId": str(uuid.uuid4())}})


def _error(code: str, message: str) -> JSONResponse:
    return _resp({"Error": {"Code": code, "Message": message}})


def _sign(secret_key: str, date: str, service: str, string_to_sign: str) -> str:
    k = hmac.new(("TC3" + secret_key).encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    k = hmac.new(k, b"tc3_request", hashlib.sha256).digest()
    return hmac.new(k, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _resolution_ok(res: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d+):(\d+)", res)
    if not m:
        return None
    w, h = int(m.group(1)), int(m.group(2))
    if res in DOCUMENTED or (512 <= w <= 2048 and 512 <= h <= 2048 and w * h <= 1024 * 1024):
        return w, h
    return None


def verify_tc3(request: Request, body: bytes, keys: dict[str, str], service: str) -> Response | None:
    """Check a TC3-HMAC-SHA256 request the way Tencent Cloud does; an error ``Response`` or None.

    Shared by every Tencent Cloud fake (Hunyuan, MPS): the signature is recomputed from the request.
    """
    m = _AUTH.match(request.headers.get("authorization", ""))
    if not m:
        return _error("AuthFailure.InvalidAuthorization", "The Authorization header is malformed.")
    secret_id, date, scope_service, signed, signature = m.groups()
    secret_key = keys.get(secret_id)
    if secret_key is None:
        return _error("AuthFailure.SecretIdNotFound", "The SecretId is not found, please check it.")
    try:
        ts = int(request.headers.get("x-tc-timestamp", ""))
    except ValueError:
        return _error("AuthFailure.InvalidAuthorization", "X-TC-Timestamp is missing.")
    if abs(time.time() - ts) > 300:
        return _error("AuthFailure.SignatureExpire", "Signature expired. Timestamp is out of the window.")
    names = signed.split(";")
    if date != time.strftime("%Y-%m-%d", time.gmtime(ts)) or "content-type" not in names or "host" not in names:
        return _error("AuthFailure.SignatureFailure", "The provided credentials could not be validated.")
    canonical_headers = "".join(f"{n}:{request.headers.get(n, '').strip().lower()}\n" for n in names)
    canonical = "\n".join([request.method, request.url.path or "/", request.url.query, canonical_headers,
                           signed, hashlib.sha256(body).hexdigest()])
    scope = f"{date}/{scope_service}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{ts}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    if scope_service != service or not hmac.compare_digest(_sign(secret_key, date, scope_service, to_sign),
                                                           signature):
        return _error("AuthFailure.SignatureFailure", "The provided credentials could not be validated. "
                                                      "Please check your signature is correct.")
    return None


Handler = Any  # async (params: dict) -> Response


def tencent_api(state: FakeState, service: str, version: str, actions: dict[str, Handler]) -> FastAPI:
    """A Tencent Cloud API 3.0 endpoint: one POST /, TC3-signed, the action named in X-TC-Action."""
    keys = {state.api_key: state.api_key}  # SecretId -> SecretKey

    async def endpoint(request: Request) -> Response:
        if (r := state.scripted(request)) is not None:
            return r
        body = await request.body()
        if (r := verify_tc3(request, body, keys, service)) is not None:
            return r
        if request.headers.get("x-tc-version") != version:
            return _error("InvalidParameterValue", "The X-TC-Version is not supported by this action.")
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return _error("InvalidParameter", "The request body is not valid JSON.")
        action = request.headers.get("x-tc-action", "")
        if action not in actions:
            return _error("InvalidAction", f"The action `{action}` is not found.")
        return await actions[action](params)

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None,
                  routes=[Route("/", endpoint, methods=["POST"])])
    mount_blobs(app, state)
    return app


def create_app(state: FakeState) -> FastAPI:
    def in_flight() -> bool:
        return any(j["status"] in ("1", "2") for j in state.jobs.values())

    async def submit(params: dict[str, Any]) -> Response:
        prompt = params.get("Prompt")
        if not prompt:
            return _error("InvalidParameter", "Prompt is required.")
        dims = _resolution_ok(str(params.get("Resolution", "1024:1024")))
        if dims is None:
            return _error("InvalidParameterValue.ParameterValueError",
                          f"Resolution {params.get('Resolution')} is not supported.")
        num = params.get("Num", 1)
        if not isinstance(num, int) or not 1 <= num <= 4:
            return _error("InvalidParameterValue.ParameterValueError", "Num must be in [1, 4].")
        if (ci := params.get("ContentImage")) is not None and not (ci.get("ImageUrl") or ci.get("ImageBase64")):
            return _error("InvalidParameterValue.ImageRequestError", "ContentImage needs ImageUrl or ImageBase64.")
        t = trigger(prompt)
        if t == "moderated":
            return _error("OperationDenied.TextIllegalDetected", "文本包含违法违规信息，审核不通过。")
        if t == "rate-limit":
            return _error("RequestLimitExceeded", "Your current request times equals to `20` in a second, "
                                                  "which exceeds the frequency limit `20` for a second.")
        if in_flight():
            return _error("LimitExceeded", "提交任务数超过最大并发，请等待上一个任务完成后再提交。")
        state.calls["submit"] += 1
        job_id = f"1{int(time.time())}{uuid.uuid4().hex[:8]}"
        state.jobs[job_id] = {"status": "1", "polls": 0, "params": params, "dims": dims}
        return _resp({"JobId": job_id})

    async def finish(job: dict[str, Any]) -> None:
        params, (w, h) = job["params"], job["dims"]
        if trigger(params["Prompt"]) == "error":
            job["status"], job["error"] = "4", ("FailedOperation.EngineServerError", "引擎层内部错误；请稍后重试。")
            return
        num = params.get("Num", 1)
        await state.work(num)
        job["images"] = [state.public_base + state.store(
            state.image(params["Prompt"], w, h, "jpeg", seed=params.get("Seed"), index=i), "image/jpeg", ttl=TTL)
            for i in range(num)]
        job["revised"] = [f"{params['Prompt']} (revised)" if params.get("Revise", 1) else ""] * num
        job["status"] = "5"

    async def query(params: dict[str, Any]) -> Response:
        state.calls["poll"] += 1
        job = state.jobs.get(str(params.get("JobId", "")))
        if job is None:
            return _error("ResourceNotFound", "The job does not exist.")
        if job["status"] in ("1", "2"):
            job["polls"] += 1
            if job["polls"] >= state.polls_to_finish:
                await finish(job)
            elif job["polls"] > 1:
                job["status"] = "2"
        msgs = {"1": "排队中", "2": "处理中", "4": "处理失败", "5": "处理完成"}
        out: dict[str, Any] = {"JobStatusCode": job["status"], "JobStatusMsg": msgs[job["status"]],
                               "JobErrorCode": "", "JobErrorMsg": "", "ResultImage": [], "ResultDetails": [],
                               "RevisedPrompt": []}
        if job["status"] == "4":
            out["JobErrorCode"], out["JobErrorMsg"] = job["error"]
        if job["status"] == "5":
            out["ResultImage"] = job["images"]
            out["ResultDetails"] = ["Success"] * len(job["images"])
            out["RevisedPrompt"] = job["revised"]
        return _resp(out)

    return tencent_api(state, "hunyuan", "2023-09-01",
                       {"SubmitHunyuanImageJob": submit, "QueryHunyuanImageJob": query})
