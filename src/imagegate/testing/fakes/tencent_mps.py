"""A fake of Tencent Cloud MPS AIGC image tasks (mps.tencentcloudapi.com, version 2019-06-12).

Verified (official TencentCloud SDK models ``mps/v20190612`` CreateAigcImageTaskRequest,
AigcImageInfo, AigcImageExtraParam, DescribeAigcImageTaskResponse; Tencent Cloud docs
862/126966, 862/126964 and the MPS "world model" guide 862/136439):
- actions ``CreateAigcImageTask`` -> ``{TaskId, RequestId}`` and ``DescribeAigcImageTask``
  (``TaskId``) -> ``Status`` WAIT / RUN / FAIL / DONE, ``ImageUrls`` (kept 12 h), ``Message``;
- request fields ModelName (Hunyuan, Qwen, Vidu, Kling...), ModelVersion, SceneType (``3d_panorama``:
  Hunyuan only), Prompt (required without a reference image), NegativePrompt, EnhancePrompt,
  ImageInfos[{ImageUrl, ReferenceType}], OutputImageCount (1), ExtraParameters{AspectRatio,
  Resolution, LogoAdd}, AdditionalParameters (a JSON string), StoreCosParam, Operator;
- the world-model panorama takes a prompt or a reference image, not both; 20 requests/s;
- TC3-HMAC-SHA256 signing and the ``{"Response": {"Error": {Code, Message}, "RequestId"}}`` envelope
  (HTTP 200) shared with every API 3.0 product.

Assumed (not in the sources): the panorama's pixel size (drawn here at 1920x960, 2:1, the size
HunyuanWorld's open pipeline produces), the exact error codes for a bad SceneType / both inputs /
an unknown TaskId / a prompt that fails moderation (Hunyuan's ``OperationDenied.TextIllegalDetected``
here), the FAIL ``Message`` wording, and the ``4-AigcImage-...`` id shape beyond the doc's example.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response

from imagegate.testing.fakes.state import FakeState, Job, trigger
from imagegate.testing.fakes.tencent_cloud import TencentApi, tc_error, tc_response

PROVIDER = "tencent_mps"
TTL = 12 * 3600.0
MODELS = {"Hunyuan", "GEM", "Qwen", "Vidu", "Kling"}
PANORAMA = (1920, 960)


def _check_inputs(params: dict[str, Any]) -> Response | None:
    model = params.get("ModelName")
    if model is not None and model not in MODELS:
        return tc_error("InvalidParameterValue.ModelName", f"ModelName {model} is not supported.")
    scene = params.get("SceneType")
    if scene is not None and (scene != "3d_panorama" or model != "Hunyuan"):
        return tc_error("InvalidParameterValue.SceneType", f"SceneType {scene} is not supported by {model}.")
    infos = params.get("ImageInfos") or []
    if not isinstance(infos, list) or any(not isinstance(i, dict) or not i.get("ImageUrl") for i in infos):
        return tc_error("InvalidParameterValue.ImageInfos", "ImageInfos[].ImageUrl must be a public URL.")
    prompt = params.get("Prompt")
    if not prompt and not infos:
        return tc_error("MissingParameter", "Prompt is required when no reference image is given.")
    if scene == "3d_panorama" and prompt and infos:
        return tc_error("InvalidParameter", "The panorama takes a prompt or a reference image, not both.")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > 1000):
        return tc_error("InvalidParameterValue.Prompt", "Prompt must be a string of at most 1000 characters.")
    return None


def _check_options(params: dict[str, Any]) -> Response | None:
    if params.get("OutputImageCount", 1) != 1:
        return tc_error("InvalidParameterValue.OutputImageCount", "OutputImageCount supports 1 only.")
    if (extra := params.get("AdditionalParameters")) is not None:
        try:
            json.loads(extra)
        except (TypeError, ValueError):
            return tc_error("InvalidParameterValue.AdditionalParameters", "AdditionalParameters must be JSON.")
    if "EnhancePrompt" in params and not isinstance(params["EnhancePrompt"], bool):
        return tc_error("InvalidParameterValue.EnhancePrompt", "EnhancePrompt must be a Boolean.")
    return None


async def create(params: dict[str, Any], state: FakeState) -> Response:
    if (r := _check_inputs(params) or _check_options(params)) is not None:
        return r
    t = trigger(params.get("Prompt"))
    if t == "moderated":
        return tc_error("OperationDenied.TextIllegalDetected", "The prompt failed the content audit.")
    if t == "rate-limit":
        return tc_error(
            "RequestLimitExceeded",
            "Your current request times equals to `20` in a second, "
            "which exceeds the frequency limit `20` for a second.",
        )
    state.submitted()
    task_id = f"4-AigcImage-{uuid.uuid4().hex}"
    state.jobs[task_id] = {"status": "WAIT", "params": params}
    return tc_response({"TaskId": task_id})


async def _finish(state: FakeState, job: Job) -> None:
    params = job["params"]
    if trigger(params.get("Prompt")) == "error":
        job["status"], job["message"] = "FAIL", "internal error, please retry"
        return
    await state.work(1)
    w, h = PANORAMA if params.get("SceneType") == "3d_panorama" else (1024, 1024)
    data = state.image(params.get("Prompt") or "reference", w, h, "png")
    job["urls"] = [state.link(data, "image/png", ttl=TTL)]
    job["status"] = "DONE"


async def describe(params: dict[str, Any], state: FakeState) -> Response:
    state.calls["poll"] += 1
    task_id = str(params.get("TaskId", ""))
    job = state.jobs.get(task_id)
    if job is None:
        return tc_error("ResourceNotFound.TaskNotExist", "The task does not exist.")
    if job["status"] in ("WAIT", "RUN"):
        if (stage := state.advance(task_id, "WAIT", "RUN")) is None:
            await _finish(state, job)
        else:
            job["status"] = stage
    out: dict[str, Any] = {"Status": job["status"], "ImageUrls": [], "Message": ""}
    if job["status"] == "DONE":
        out["ImageUrls"], out["Message"] = job["urls"], "ok"
    if job["status"] == "FAIL":
        out["Message"] = job["message"]
    return tc_response(out)


API = TencentApi("mps", "2019-06-12", {"CreateAigcImageTask": create, "DescribeAigcImageTask": describe})


def create_app(state: FakeState) -> FastAPI:
    return API.app(state)
