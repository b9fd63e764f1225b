"""Contract tests: the Hunyuan adapter against the Tencent Cloud fake (TC3 signature recomputed)."""

from __future__ import annotations

import json
import time

import pytest
from starlette.responses import JSONResponse

from imagegate.domain import ErrorCode, ImageRequest, UpstreamError
from imagegate.providers.hunyuan import tc3_headers

PROVIDER = "hunyuan"
MODEL = "hunyuan-image"
HOST = "https://hunyuan.tencentcloudapi.com/"


def err(code: str) -> JSONResponse:
    return JSONResponse({"Response": {"Error": {"Code": code, "Message": "m"}, "RequestId": "r"}})


async def test_text_to_image_num_and_resolution(state, make, kit):
    state.polls_to_finish = 3
    result, seen, _ = await kit.trace(make(), ImageRequest(model="m", prompt="山水", n=2, width=1920, height=1080))
    assert [r.done for r in seen] == [False, False, True]
    assert seen[0].progress == 0  # queued
    assert [kit.size_of(i.data) for i in result.images] == [(1280, 720), (1280, 720)]
    assert result.images[0].revised_prompt == "山水 (revised)"
    assert state.calls["submit"] == 1


async def test_seed_turns_revise_off(state, make, kit):
    result, _, _ = await kit.trace(make(), ImageRequest(model="m", prompt="x", seed=7, width=768, height=1024))
    assert result.images[0].revised_prompt is None
    job = next(iter(state.jobs.values()))
    assert job["params"]["Revise"] == 0 and job["params"]["Seed"] == 7 and job["params"]["LogoAdd"] == 0


async def test_content_image_as_base64(state, make, kit):
    img = kit.picture(64, 64)
    result, _, _ = await kit.trace(make(), ImageRequest(model="m", prompt="x", images=[img], width=1024, height=1024))
    job = next(iter(state.jobs.values()))
    assert "ImageBase64" in job["params"]["ContentImage"]
    assert kit.size_of(result.images[0].data) == (1024, 1024)


async def test_panorama_is_two_to_one(make, kit):
    p = make(panorama=True)
    req = ImageRequest(model="m", prompt="a 360 view of a glacier", width=1024, height=1024)
    result, _, _ = await kit.trace(p, req)
    w, h = kit.size_of(result.images[0].data)
    assert w == 2 * h


async def test_panorama_output_cropped_when_upstream_is_not_2_1(make, kit):
    p = make(panorama=True, panorama_resolution="1280:720")
    result, _, _ = await kit.trace(p, ImageRequest(model="m", prompt="x"))
    assert kit.size_of(result.images[0].data) == (1280, 640)


async def test_second_job_hits_concurrency_limit(state, make):
    p = make()
    await p.submit(ImageRequest(model="m", prompt="first"))
    with pytest.raises(UpstreamError) as ei:
        await p.submit(ImageRequest(model="m", prompt="second"))
    assert ei.value.code == ErrorCode.upstream_rate_limited
    assert state.calls["submit"] == 1


async def test_bad_secret_key_is_signature_failure(make):
    with pytest.raises(UpstreamError) as ei:
        await make(credentials={"secret_key": "wrong"}).submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth and "SignatureFailure" in ei.value.message


async def test_unknown_secret_id(make):
    with pytest.raises(UpstreamError) as ei:
        await make(credentials={"secret_id": "AKIDnope"}).submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth and "SecretIdNotFound" in ei.value.message


async def test_fake_rejects_tampered_body_and_stale_timestamp(sandbox):
    client = sandbox.client("hunyuan")
    payload = json.dumps({"Prompt": "x"}).encode()
    headers = tc3_headers(
        secret_id="sandbox-key",
        secret_key="sandbox-key",
        host="hunyuan.tencentcloudapi.com",
        service="hunyuan",
        action="SubmitHunyuanImageJob",
        region="ap-guangzhou",
        payload=payload,
        timestamp=int(time.time()),
    )
    ok = await client.post(HOST, content=payload, headers=headers)
    assert "JobId" in ok.json()["Response"]
    tampered = await client.post(HOST, content=json.dumps({"Prompt": "y"}).encode(), headers=headers)
    assert tampered.json()["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"
    stale = tc3_headers(
        secret_id="sandbox-key",
        secret_key="sandbox-key",
        host="hunyuan.tencentcloudapi.com",
        service="hunyuan",
        action="QueryHunyuanImageJob",
        region="ap-guangzhou",
        payload=payload,
        timestamp=int(time.time()) - 3600,
    )
    r = await client.post(HOST, content=payload, headers=stale)
    assert r.status_code == 200 and r.json()["Response"]["Error"]["Code"] == "AuthFailure.SignatureExpire"


@pytest.mark.parametrize(
    "trig,code", [("moderated", ErrorCode.content_policy_violation), ("rate-limit", ErrorCode.upstream_rate_limited)]
)
async def test_submit_triggers(make, trig, code):
    with pytest.raises(UpstreamError) as ei:
        await make().submit(ImageRequest(model="m", prompt=f"x [sandbox:{trig}]"))
    assert ei.value.code == code


async def test_failed_job(make, kit):
    with pytest.raises(UpstreamError) as ei:
        await kit.trace(make(), ImageRequest(model="m", prompt="x [sandbox:error]"))
    assert ei.value.code == ErrorCode.upstream_error and "EngineServerError" in ei.value.message


@pytest.mark.parametrize(
    "code,expect",
    [
        ("ResourceUnavailable.LowBalance", ErrorCode.upstream_quota),
        ("ResourceInsufficient.ChargeResourceExhaust", ErrorCode.upstream_quota),
        ("OperationDenied.ImageIllegalDetected", ErrorCode.content_policy_violation),
        ("InvalidParameterValue.ParameterValueError", ErrorCode.upstream_bad_request),
        ("InternalError", ErrorCode.upstream_error),
        ("FailedOperation.EngineRequestTimeout", ErrorCode.upstream_timeout),
    ],
)
async def test_scripted_error_codes(state, make, code, expect):
    state.script.append(lambda req: err(code))
    with pytest.raises(UpstreamError) as ei:
        await make().submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == expect


async def test_unsupported_resolution_refused_upstream(make):
    with pytest.raises(UpstreamError) as ei:
        await make(panorama=True, panorama_resolution="4096:2048").submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_bad_request
