"""Contract tests: the Hunyuan adapter against the Tencent Cloud fake (TC3 signature recomputed)."""

from __future__ import annotations

import io
import json
import time

import pytest
from PIL import Image
from starlette.responses import JSONResponse

from imagegate.domain import ErrorCode, ImageInput, ImageRequest, UpstreamError
from imagegate.media import synth
from imagegate.providers.base import Deployment, provider_class
from imagegate.providers.hunyuan import tc3_headers
from imagegate.testing.sandbox import Sandbox

HOST = "https://hunyuan.tencentcloudapi.com/"


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(delay_ms=0)


def make(sandbox: Sandbox, sid: str = "sandbox-key", skey: str = "sandbox-key", **options):
    dep = Deployment(id="hy-test", provider="hunyuan", model="hunyuan-image",
                     credentials={"secret_id": sid, "secret_key": skey}, options=options)
    return provider_class("hunyuan")(dep, sandbox.client("hunyuan"))


async def run(p, req: ImageRequest, max_polls: int = 10):
    handle = await p.submit(req)
    seen = []
    for _ in range(max_polls):
        r = await p.poll(handle)
        seen.append(r)
        if r.done:
            return r.result, seen, handle
    raise AssertionError("never finished")


def size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def err(code: str) -> JSONResponse:
    return JSONResponse({"Response": {"Error": {"Code": code, "Message": "m"}, "RequestId": "r"}})


async def test_text_to_image_num_and_resolution(sandbox):
    state = sandbox.state("hunyuan")
    state.polls_to_finish = 3
    result, seen, _ = await run(make(sandbox), ImageRequest(model="m", prompt="山水", n=2, width=1920, height=1080))
    assert [r.done for r in seen] == [False, False, True]
    assert seen[0].queue_position == 0
    assert [size(i.data) for i in result.images] == [(1280, 720), (1280, 720)]
    assert result.revised_prompt == "山水 (revised)"
    assert state.calls["submit"] == 1


async def test_seed_turns_revise_off(sandbox):
    result, _, _ = await run(make(sandbox), ImageRequest(model="m", prompt="x", seed=7, width=768, height=1024))
    assert result.revised_prompt is None
    job = next(iter(sandbox.state("hunyuan").jobs.values()))
    assert job["params"]["Revise"] == 0 and job["params"]["Seed"] == 7 and job["params"]["LogoAdd"] == 0


async def test_content_image_as_base64(sandbox):
    ref = synth.render_bytes("ref", 64, 64)
    img = ImageInput(data=ref, mime="image/png", width=64, height=64)
    result, _, _ = await run(make(sandbox), ImageRequest(model="m", prompt="x", images=[img], width=1024, height=1024))
    job = next(iter(sandbox.state("hunyuan").jobs.values()))
    assert "ImageBase64" in job["params"]["ContentImage"]
    assert size(result.images[0].data) == (1024, 1024)


async def test_panorama_is_two_to_one(sandbox):
    p = make(sandbox, panorama=True)
    result, _, _ = await run(p, ImageRequest(model="m", prompt="a 360 view of a glacier", width=1024, height=1024))
    w, h = size(result.images[0].data)
    assert w == 2 * h


async def test_panorama_output_cropped_when_upstream_is_not_2_1(sandbox):
    p = make(sandbox, panorama=True, panorama_resolution="1280:720")
    result, _, _ = await run(p, ImageRequest(model="m", prompt="x"))
    assert size(result.images[0].data) == (1280, 640)


async def test_second_job_hits_concurrency_limit(sandbox):
    p = make(sandbox)
    await p.submit(ImageRequest(model="m", prompt="first"))
    with pytest.raises(UpstreamError) as ei:
        await p.submit(ImageRequest(model="m", prompt="second"))
    assert ei.value.code == ErrorCode.upstream_rate_limited
    assert sandbox.state("hunyuan").calls["submit"] == 1


async def test_bad_secret_key_is_signature_failure(sandbox):
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox, skey="wrong").submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth and "SignatureFailure" in ei.value.message


async def test_unknown_secret_id(sandbox):
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox, sid="AKIDnope").submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth and "SecretIdNotFound" in ei.value.message


async def test_fake_rejects_tampered_body_and_stale_timestamp(sandbox):
    client = sandbox.client("hunyuan")
    payload = json.dumps({"Prompt": "x"}).encode()
    headers = tc3_headers(secret_id="sandbox-key", secret_key="sandbox-key", host="hunyuan.tencentcloudapi.com",
                          service="hunyuan", action="SubmitHunyuanImageJob", region="ap-guangzhou",
                          payload=payload, timestamp=int(time.time()))
    ok = await client.post(HOST, content=payload, headers=headers)
    assert "JobId" in ok.json()["Response"]
    tampered = await client.post(HOST, content=json.dumps({"Prompt": "y"}).encode(), headers=headers)
    assert tampered.json()["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"
    stale = tc3_headers(secret_id="sandbox-key", secret_key="sandbox-key", host="hunyuan.tencentcloudapi.com",
                        service="hunyuan", action="QueryHunyuanImageJob", region="ap-guangzhou",
                        payload=payload, timestamp=int(time.time()) - 3600)
    r = await client.post(HOST, content=payload, headers=stale)
    assert r.status_code == 200 and r.json()["Response"]["Error"]["Code"] == "AuthFailure.SignatureExpire"


@pytest.mark.parametrize("trig,code", [("moderated", ErrorCode.content_policy_violation),
                                       ("rate-limit", ErrorCode.upstream_rate_limited)])
async def test_submit_triggers(sandbox, trig, code):
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox).submit(ImageRequest(model="m", prompt=f"x [sandbox:{trig}]"))
    assert ei.value.code == code


async def test_failed_job(sandbox):
    with pytest.raises(UpstreamError) as ei:
        await run(make(sandbox), ImageRequest(model="m", prompt="x [sandbox:error]"))
    assert ei.value.code == ErrorCode.upstream_error and "EngineServerError" in ei.value.message


@pytest.mark.parametrize("code,expect", [
    ("ResourceUnavailable.LowBalance", ErrorCode.upstream_quota),
    ("ResourceInsufficient.ChargeResourceExhaust", ErrorCode.upstream_quota),
    ("OperationDenied.ImageIllegalDetected", ErrorCode.content_policy_violation),
    ("InvalidParameterValue.ParameterValueError", ErrorCode.upstream_bad_request),
    ("InternalError", ErrorCode.upstream_error),
    ("FailedOperation.EngineRequestTimeout", ErrorCode.upstream_timeout),
])
async def test_scripted_error_codes(sandbox, code, expect):
    sandbox.state("hunyuan").script.append(lambda req: err(code))
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox).submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == expect


async def test_unsupported_resolution_refused_upstream(sandbox):
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox, panorama=True, panorama_resolution="4096:2048").submit(
            ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_bad_request
