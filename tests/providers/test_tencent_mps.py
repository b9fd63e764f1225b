"""Contract tests: the MPS panorama adapter against the MPS fake (TC3 signature recomputed, service mps)."""

from __future__ import annotations

import json
import time

import pytest
from starlette.responses import JSONResponse

from imagegate.catalog import Deployment
from imagegate.domain import ErrorCode, ImageRequest, UpstreamError
from imagegate.providers.hunyuan import tc3_headers
from imagegate.providers.registry import provider_class
from tests.providers.conftest import spec_for

PROVIDER = "tencent_mps"
MODEL = "hunyuan-3d-panorama"


def job(state) -> dict:
    return next(iter(state.jobs.values()))


async def test_panorama_scene_wire_format(state, make, kit):
    state.polls_to_finish = 3
    req = ImageRequest(model="m", prompt="一个雪山湖泊的360度全景图", negative_prompt="people")
    result, seen, handle = await kit.trace(make(), req)
    assert [r.done for r in seen] == [False, False, True]
    assert seen[0].progress == 0 and seen[1].progress == 50
    params = job(state)["params"]
    assert params == {
        "ModelName": "Hunyuan",
        "SceneType": "3d_panorama",
        "Prompt": "一个雪山湖泊的360度全景图",
        "EnhancePrompt": False,
        "OutputImageCount": 1,
        "NegativePrompt": "people",
    }
    assert handle["task_id"].startswith("4-AigcImage-")
    w, h = kit.size_of(result.images[0].data)
    assert w == 2 * h
    assert state.calls["submit"] == 1


async def test_scaled_to_the_requested_2_1_size(make, kit):
    result, _, _ = await kit.trace(make(), ImageRequest(model="m", prompt="x", width=1440, height=720))
    assert kit.size_of(result.images[0].data) == (1440, 720)


async def test_non_2_1_upstream_output_is_cropped(make, kit, monkeypatch):
    import imagegate.testing.fakes.tencent_mps as fake

    monkeypatch.setattr(fake, "PANORAMA", (1600, 900))
    result, _, _ = await kit.trace(make(), ImageRequest(model="m", prompt="x"))
    assert kit.size_of(result.images[0].data) == (1600, 800)


async def test_options_version_and_additional_parameters(state, make):
    p = make(model_version="3.0", enhance_prompt=True, additional_parameters={"size": "1440x720"})
    await p.submit(ImageRequest(model="m", prompt="x"))
    params = job(state)["params"]
    assert params["ModelVersion"] == "3.0" and params["EnhancePrompt"] is True
    assert json.loads(params["AdditionalParameters"]) == {"size": "1440x720"}


async def test_failed_task(make, kit):
    with pytest.raises(UpstreamError) as ei:
        await kit.trace(make(), ImageRequest(model="m", prompt="x [sandbox:error]"))
    assert ei.value.code == ErrorCode.upstream_error and "internal error" in ei.value.message


@pytest.mark.parametrize(
    "trig,code", [("moderated", ErrorCode.content_policy_violation), ("rate-limit", ErrorCode.upstream_rate_limited)]
)
async def test_submit_triggers(state, make, trig, code):
    with pytest.raises(UpstreamError) as ei:
        await make().submit(ImageRequest(model="m", prompt=f"x [sandbox:{trig}]"))
    assert ei.value.code == code
    assert state.calls["submit"] == 0


async def test_wrong_scene_for_model_is_bad_request(make):
    with pytest.raises(UpstreamError) as ei:
        await make(model_name="Qwen").submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_bad_request


async def test_bad_signature_and_wrong_service(sandbox, make):
    with pytest.raises(UpstreamError) as ei:
        await make(credentials={"secret_key": "wrong"}).submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth and "SignatureFailure" in ei.value.message
    # a request signed for the hunyuan service does not pass at MPS
    hy = provider_class("hunyuan")(
        Deployment(
            id="hy",
            provider="hunyuan",
            model="m",
            base_url="https://mps.tencentcloudapi.com",
            credentials={"secret_id": "sandbox-key", "secret_key": "sandbox-key"},
        ),
        spec_for("hunyuan", "m"),
        sandbox.client("tencent_mps"),
    )
    with pytest.raises(UpstreamError) as ei:
        await hy.submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth


async def test_unknown_task(make):
    with pytest.raises(UpstreamError) as ei:
        await make().poll({"task_id": "4-AigcImage-nope", "size": None})
    assert ei.value.code == ErrorCode.upstream_error and "ResourceNotFound" in ei.value.message


@pytest.mark.parametrize(
    "code,expect",
    [
        ("UnauthorizedOperation", ErrorCode.upstream_auth),
        ("RequestLimitExceeded.UinLimitExceeded", ErrorCode.upstream_rate_limited),
        ("InternalError", ErrorCode.upstream_error),
    ],
)
async def test_scripted_common_errors(state, make, code, expect):
    state.script.append(
        lambda req: JSONResponse({"Response": {"Error": {"Code": code, "Message": "m"}, "RequestId": "r"}})
    )
    with pytest.raises(UpstreamError) as ei:
        await make().submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == expect


async def test_fake_refuses_prompt_and_reference_together(sandbox):
    """The world-model panorama takes a prompt or a reference image, not both (why the adapter is text-only)."""
    payload = json.dumps(
        {
            "ModelName": "Hunyuan",
            "SceneType": "3d_panorama",
            "Prompt": "x",
            "ImageInfos": [{"ImageUrl": "https://example.com/a.png"}],
        }
    ).encode()
    headers = tc3_headers(
        secret_id="sandbox-key",
        secret_key="sandbox-key",
        host="mps.tencentcloudapi.com",
        service="mps",
        action="CreateAigcImageTask",
        region=None,
        payload=payload,
        timestamp=int(time.time()),
        version="2019-06-12",
    )
    r = await sandbox.client("tencent_mps").post("https://mps.tencentcloudapi.com/", content=payload, headers=headers)
    assert r.status_code == 200 and r.json()["Response"]["Error"]["Code"] == "InvalidParameter"
