"""Contract tests: the Midjourney adapter against the midjourney-proxy fake."""

from __future__ import annotations

import pytest
from starlette.responses import JSONResponse

from imagegate.domain import ErrorCode, ImageRequest, UpstreamError

PROVIDER = "midjourney"
MODEL = "midjourney-v6"


async def test_grid_split_into_four_distinct_images(state, make, kit):
    state.polls_to_finish = 4
    result, seen, _ = await kit.trace(make(), ImageRequest(model="m", prompt="a koi pond", n=4))
    assert [r.done for r in seen] == [False, False, False, True]
    assert seen[0].progress == 0  # NOT_START
    assert 0 < seen[2].progress < 100
    assert len(result.images) == 4
    assert {kit.size_of(i.data) for i in result.images} == {(1024, 1024)}
    assert len({i.data for i in result.images}) == 4  # four different quadrants, not one image four times
    assert state.calls["submit"] == 1


async def test_aspect_ratio_flag_and_n_two(state, make, kit):
    result, _, _ = await kit.trace(
        make(suffix="--v 6.1"), ImageRequest(model="m", prompt="city", n=2, width=1920, height=1080)
    )
    job = next(iter(state.jobs.values()))
    assert "--ar 16:9" in job["prompt"] and job["prompt"].endswith("--v 6.1")
    assert len(result.images) == 2
    w, h = kit.size_of(result.images[0].data)
    assert w / h == pytest.approx(16 / 9, rel=0.02)


async def test_more_than_four_fans_out(state, make, kit):
    result, _, handle = await kit.trace(make(), ImageRequest(model="m", prompt="x", n=6, aspect_ratio="1:1"))
    assert len(result.images) == 6
    assert len(handle["task_ids"]) == 2
    assert state.calls["submit"] == 2


async def test_image_prompt_and_negative(state, make, kit):
    img = kit.picture(64, 64)
    result, _, _ = await kit.trace(
        make(), ImageRequest(model="m", prompt="x", images=[img], negative_prompt="text", seed=5)
    )
    job = next(iter(state.jobs.values()))
    assert job["refs"] == 1 and "--no text" in job["prompt"] and "--seed 5" in job["prompt"]
    assert len(result.images) == 1


async def test_base_url_with_mj_suffix(make, kit):
    result, _, _ = await kit.trace(make(base_url="http://proxy:8080/mj"), ImageRequest(model="m", prompt="x"))
    assert len(result.images) == 1


async def test_code_21_existing_task_is_accepted(state, make):
    p = make()
    first = await p.submit(ImageRequest(model="m", prompt="x"))
    existing = first["task_ids"][0]
    state.script.append(
        lambda req: JSONResponse({"code": 21, "description": "任务已存在", "result": existing, "properties": {}})
    )
    second = await p.submit(ImageRequest(model="m", prompt="x"))
    assert second["task_ids"] == [existing]


async def test_code_22_queued_is_accepted(make):
    p = make()
    await p.submit(ImageRequest(model="m", prompt="a"))
    handle = await p.submit(ImageRequest(model="m", prompt="b"))  # the fake answers 22 while one is running
    assert len(handle["task_ids"]) == 1


async def test_wrong_secret(make):
    with pytest.raises(UpstreamError) as ei:
        await make(key="nope").submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth


@pytest.mark.parametrize(
    "trig,code", [("moderated", ErrorCode.content_policy_violation), ("rate-limit", ErrorCode.upstream_rate_limited)]
)
async def test_submit_codes(make, trig, code):
    with pytest.raises(UpstreamError) as ei:
        await make().submit(ImageRequest(model="m", prompt=f"x [sandbox:{trig}]"))
    assert ei.value.code == code


async def test_failure_status(make, kit):
    with pytest.raises(UpstreamError) as ei:
        await kit.trace(make(), ImageRequest(model="m", prompt="x [sandbox:error]"))
    assert ei.value.code == ErrorCode.upstream_error


async def test_banned_failure_reason_is_moderation(state, make):
    p = make()
    handle = await p.submit(ImageRequest(model="m", prompt="x"))
    state.script.append(
        lambda req: JSONResponse(
            {
                "id": handle["task_ids"][0],
                "status": "FAILURE",
                "progress": "0%",
                "failReason": "Banned prompt detected: gore",
            }
        )
    )
    with pytest.raises(UpstreamError) as ei:
        await p.poll(handle)
    assert ei.value.code == ErrorCode.content_policy_violation


@pytest.mark.parametrize("code,expect", [(4, ErrorCode.upstream_bad_request), (9, ErrorCode.upstream_error)])
async def test_scripted_codes(state, make, code, expect):
    state.script.append(lambda req: JSONResponse({"code": code, "description": "d", "result": None, "properties": {}}))
    with pytest.raises(UpstreamError) as ei:
        await make().submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == expect


async def test_unknown_task(make):
    with pytest.raises(UpstreamError) as ei:
        await make().poll({"task_ids": ["404"], "n": 1, "finished": {}})
    assert ei.value.code == ErrorCode.upstream_error
