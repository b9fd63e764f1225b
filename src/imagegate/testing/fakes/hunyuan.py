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

import re
import time
import uuid
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response

from imagegate.testing.fakes.state import FakeState, Job, trigger
from imagegate.testing.fakes.tencent_cloud import TencentApi, tc_error, tc_response

PROVIDER = "hunyuan"
TTL = 3600.0
DOCUMENTED = {"768:768", "768:1024", "1024:768", "1024:1024", "720:1280", "1280:720", "768:1280", "1280:768"}
STATUS_MSG = {"1": "排队中", "2": "处理中", "4": "处理失败", "5": "处理完成"}


def _resolution_ok(res: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d+):(\d+)", res)
    if not m:
        return None
    w, h = int(m.group(1)), int(m.group(2))
    if res in DOCUMENTED or (512 <= w <= 2048 and 512 <= h <= 2048 and w * h <= 1024 * 1024):
        return w, h
    return None


def _invalid(params: dict[str, Any]) -> Response | None:
    if not params.get("Prompt"):
        return tc_error("InvalidParameter", "Prompt is required.")
    if _resolution_ok(str(params.get("Resolution", "1024:1024"))) is None:
        return tc_error(
            "InvalidParameterValue.ParameterValueError", f"Resolution {params.get('Resolution')} is not supported."
        )
    num = params.get("Num", 1)
    if not isinstance(num, int) or not 1 <= num <= 4:
        return tc_error("InvalidParameterValue.ParameterValueError", "Num must be in [1, 4].")
    if (ci := params.get("ContentImage")) is not None and not (ci.get("ImageUrl") or ci.get("ImageBase64")):
        return tc_error("InvalidParameterValue.ImageRequestError", "ContentImage needs ImageUrl or ImageBase64.")
    return None


async def submit(params: dict[str, Any], state: FakeState) -> Response:
    if (bad := _invalid(params)) is not None:
        return bad
    t = trigger(params["Prompt"])
    if t == "moderated":
        return tc_error("OperationDenied.TextIllegalDetected", "文本包含违法违规信息，审核不通过。")
    if t == "rate-limit":
        return tc_error(
            "RequestLimitExceeded",
            "Your current request times equals to `20` in a second, "
            "which exceeds the frequency limit `20` for a second.",
        )
    if any(j["status"] in ("1", "2") for j in state.jobs.values()):  # one job in flight per account
        return tc_error("LimitExceeded", "提交任务数超过最大并发，请等待上一个任务完成后再提交。")
    state.submitted()
    job_id = f"1{int(time.time())}{uuid.uuid4().hex[:8]}"
    state.jobs[job_id] = {
        "status": "1",
        "params": params,
        "dims": _resolution_ok(str(params.get("Resolution", "1024:1024"))),
    }
    return tc_response({"JobId": job_id})


async def _finish(state: FakeState, job: Job) -> None:
    params, (w, h) = job["params"], job["dims"]
    if trigger(params["Prompt"]) == "error":
        job["status"], job["error"] = "4", ("FailedOperation.EngineServerError", "引擎层内部错误；请稍后重试。")
        return
    num = params.get("Num", 1)
    await state.work(num)
    job["images"] = [
        state.link(state.image(params["Prompt"], w, h, "jpeg", seed=params.get("Seed"), index=i), "image/jpeg", ttl=TTL)
        for i in range(num)
    ]
    job["revised"] = [f"{params['Prompt']} (revised)" if params.get("Revise", 1) else ""] * num
    job["status"] = "5"


async def query(params: dict[str, Any], state: FakeState) -> Response:
    state.calls["poll"] += 1
    job_id = str(params.get("JobId", ""))
    job = state.jobs.get(job_id)
    if job is None:
        return tc_error("ResourceNotFound", "The job does not exist.")
    if job["status"] in ("1", "2"):
        if (stage := state.advance(job_id, "1", "2")) is None:
            await _finish(state, job)
        else:
            job["status"] = stage
    out: dict[str, Any] = {
        "JobStatusCode": job["status"],
        "JobStatusMsg": STATUS_MSG[job["status"]],
        "JobErrorCode": "",
        "JobErrorMsg": "",
        "ResultImage": [],
        "ResultDetails": [],
        "RevisedPrompt": [],
    }
    if job["status"] == "4":
        out["JobErrorCode"], out["JobErrorMsg"] = job["error"]
    if job["status"] == "5":
        out["ResultImage"] = job["images"]
        out["ResultDetails"] = ["Success"] * len(job["images"])
        out["RevisedPrompt"] = job["revised"]
    return tc_response(out)


API = TencentApi("hunyuan", "2023-09-01", {"SubmitHunyuanImageJob": submit, "QueryHunyuanImageJob": query})


def create_app(state: FakeState) -> FastAPI:
    return API.app(state)
