"""Contract tests: the Kling adapter against the Kling fake (JWT auth checked for real)."""

from __future__ import annotations

import time

import jwt
import pytest
from starlette.responses import JSONResponse

from imagegate.domain import ErrorCode, ImageRequest, UpstreamError

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

PROVIDER = "kling"
MODEL = "kling-v3-omni"


async def test_omni_text_to_image_n_and_aspect(state, make, kit):
    state.polls_to_finish = 3
    result, seen, handle = await kit.trace(
        make(), ImageRequest(model="m", prompt="a harbour", n=3, width=1920, height=1080)
    )
    assert handle["path"] == "/v1/images/omni-image"
    assert [r.done for r in seen] == [False, False, True]
    assert seen[0].progress == 0 and seen[1].progress == 50
    assert len(result.images) == 3
    assert state.calls["submit"] == 1  # n travels in one task
    w, h = kit.size_of(result.images[0].data)
    assert w / h == pytest.approx(16 / 9, rel=0.03)


async def test_resolution_2k(make, kit):
    result, _, _ = await kit.trace(make(), ImageRequest(model="m", prompt="x", resolution="2K", aspect_ratio="1:1"))
    assert kit.size_of(result.images[0].data) == (2048, 2048)


async def test_aspect_snaps_to_supported(make, kit):
    result, _, _ = await kit.trace(make(), ImageRequest(model="m", prompt="x", width=1000, height=1500))
    w, h = kit.size_of(result.images[0].data)
    assert w / h == pytest.approx(2 / 3, rel=0.02)


async def test_reference_images_raw_base64(state, make, kit):
    img = kit.picture(320, 320)
    result, _, _ = await kit.trace(
        make(), ImageRequest(model="m", prompt="keep the subject", mode="edit", images=[img, img], aspect_ratio="1:1")
    )
    assert len(result.images) == 1
    job = next(iter(state.jobs.values()))
    assert all(not i["image"].startswith("data:") for i in job["body"]["image_list"])


async def test_generations_endpoint_for_older_models(state, make, kit):
    img = kit.picture(320, 320, url="https://example.com/ref.png")
    result, _, handle = await kit.trace(
        make(model="kling-v2-1"), ImageRequest(model="m", prompt="x", images=[img], aspect_ratio="4:3")
    )
    assert handle["path"] == "/v1/images/generations"
    job = next(iter(state.jobs.values()))
    assert job["body"]["image"] == "https://example.com/ref.png"
    assert kit.size_of(result.images[0].data) == (1168, 880)


async def test_bad_secret_is_upstream_auth(make):
    with pytest.raises(UpstreamError) as ei:
        await make(credentials={"secret_key": "wrong-secret"}).submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth
    assert "wrong-secret" not in ei.value.message


async def test_unknown_access_key_is_upstream_auth(make):
    with pytest.raises(UpstreamError) as ei:
        await make(credentials={"access_key": "other"}).submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth


async def test_fake_rejects_expired_and_immature_tokens(sandbox):
    client = sandbox.client("kling")
    now = int(time.time())
    for claims, code in [({"exp": now - 10, "nbf": now - 100}, 1004), ({"exp": now + 100, "nbf": now + 60}, 1003)]:
        token = jwt.encode({"iss": "sandbox-key", **claims}, "sandbox-key", algorithm="HS256")
        resp = await client.post(
            "https://api-singapore.klingai.com/v1/images/omni-image",
            json={"model_name": "kling-v3-omni", "prompt": "x"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 401 and resp.json()["code"] == code


@pytest.mark.parametrize(
    "trig,code", [("moderated", ErrorCode.content_policy_violation), ("rate-limit", ErrorCode.upstream_rate_limited)]
)
async def test_submit_triggers(make, trig, code):
    with pytest.raises(UpstreamError) as ei:
        await make().submit(ImageRequest(model="m", prompt=f"x [sandbox:{trig}]"))
    assert ei.value.code == code


async def test_failed_task(make, kit):
    with pytest.raises(UpstreamError) as ei:
        await kit.trace(make(), ImageRequest(model="m", prompt="x [sandbox:error]"))
    assert ei.value.code == ErrorCode.upstream_error


@pytest.mark.parametrize(
    "status,code,expect",
    [
        (429, 1102, ErrorCode.upstream_quota),
        (429, 1303, ErrorCode.upstream_rate_limited),
        (500, 5000, ErrorCode.upstream_error),
        (503, 5001, ErrorCode.upstream_unavailable),
        (400, 1201, ErrorCode.upstream_bad_request),
    ],
)
async def test_scripted_codes(state, make, status, code, expect):
    state.script.append(lambda req: JSONResponse({"code": code, "message": "m", "request_id": "r"}, status))
    with pytest.raises(UpstreamError) as ei:
        await make().submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == expect


async def test_4k_refused_on_older_model_upstream(make):
    with pytest.raises(UpstreamError) as ei:
        await make(model="kling-image-o1", resolutions=["1K", "2K", "4K"]).submit(
            ImageRequest(model="m", prompt="x", resolution="4K")
        )
    assert ei.value.code == ErrorCode.upstream_bad_request


# -- submit exactly once: external_task_id and the lookup -------------------------------------------


async def test_submit_sends_the_reference_and_find_returns_the_same_job(state, make, kit):
    p = make(model="kling-v2-1")
    req = ImageRequest(model="m", prompt="x", aspect_ratio="1:1")
    handle = await p.submit(req, "ig-task_1")
    job = state.jobs[handle["task_id"]]
    assert job["body"]["external_task_id"] == "ig-task_1"
    assert await p.find("ig-task_1", req) == handle
    assert state.calls["list"] == 0  # the single query by external id answered
    result, _, _ = await kit.follow(p, handle)
    assert len(result.images) == 1 and state.calls["submit"] == 1


async def test_find_of_an_unknown_reference_is_none_after_the_list(state, make):
    p = make()
    await p.submit(ImageRequest(model="m", prompt="x"), "ig-other")
    assert await p.find("ig-never-sent", ImageRequest(model="m", prompt="x")) is None
    assert state.calls["list"] == 1  # confirmed in the list before saying "never received"


async def test_find_confirms_in_the_list_when_the_query_does_not_know_the_reference(state, make, kit):
    p = make()
    handle = await p.submit(ImageRequest(model="m", prompt="x"), "ig-task_2")
    state.script.append(kit.once(404, {"code": 1203, "message": "The requested resource does not exist"}))
    assert await p.find("ig-task_2", ImageRequest(model="m", prompt="x")) == handle
    assert state.calls["list"] == 1


async def test_find_errors_are_not_a_miss(state, make):
    state.script.append(lambda req: JSONResponse({"code": 5001, "message": "unavailable", "request_id": "r"}, 503))
    with pytest.raises(UpstreamError) as ei:
        await make().find("ig-x", ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_unavailable


async def test_the_fake_refuses_a_second_create_with_the_same_reference(make):
    p = make()
    await p.submit(ImageRequest(model="m", prompt="x"), "ig-dup")
    with pytest.raises(UpstreamError) as ei:
        await p.submit(ImageRequest(model="m", prompt="x"), "ig-dup")
    assert ei.value.code == ErrorCode.upstream_bad_request


def test_kling_reconciles_and_the_sync_providers_do_not():
    from imagegate.providers.registry import provider_class

    assert provider_class("kling").resubmit() == "lookup"
    assert provider_class("openai").resubmit() == "none"
    assert provider_class("bfl").resubmit() == "none"
    assert provider_class("builtin").resubmit() == "replay"
