"""Contract tests: the Midjourney adapter against the midjourney-proxy fake."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from starlette.responses import JSONResponse

from imagegate.domain import ErrorCode, ImageInput, ImageRequest, UpstreamError
from imagegate.media import synth
from imagegate.providers.base import Deployment, provider_class
from imagegate.testing.sandbox import Sandbox


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(delay_ms=0)


def make(sandbox: Sandbox, secret: str = "sandbox-key", base_url: str | None = None, **options):
    dep = Deployment(id="mj-test", provider="midjourney", model="midjourney-v6", base_url=base_url,
                     credentials={"api_key": secret}, options=options)
    return provider_class("midjourney")(dep, sandbox.client("midjourney"))


async def run(p, req: ImageRequest, max_polls: int = 10):
    handle = await p.submit(req)
    seen = []
    for _ in range(max_polls):
        r = await p.poll(handle)
        seen.append(r)
        handle = r.handle or handle
        if r.done:
            return r.result, seen, handle
    raise AssertionError("never finished")


def size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


async def test_grid_split_into_four_distinct_images(sandbox):
    state = sandbox.state("midjourney")
    state.polls_to_finish = 4
    result, seen, _ = await run(make(sandbox), ImageRequest(model="m", prompt="a koi pond", n=4))
    assert [r.done for r in seen] == [False, False, False, True]
    assert seen[0].queue_position == 0
    assert 0 < seen[2].progress < 100
    assert len(result.images) == 4
    assert {size(i.data) for i in result.images} == {(1024, 1024)}
    assert len({i.data for i in result.images}) == 4  # four different quadrants, not one image four times
    assert state.calls["submit"] == 1


async def test_aspect_ratio_flag_and_n_two(sandbox):
    result, _, _ = await run(make(sandbox, suffix="--v 6.1"),
                             ImageRequest(model="m", prompt="city", n=2, width=1920, height=1080))
    job = next(iter(sandbox.state("midjourney").jobs.values()))
    assert "--ar 16:9" in job["prompt"] and job["prompt"].endswith("--v 6.1")
    assert len(result.images) == 2
    w, h = size(result.images[0].data)
    assert w / h == pytest.approx(16 / 9, rel=0.02)


async def test_more_than_four_fans_out(sandbox):
    result, _, handle = await run(make(sandbox), ImageRequest(model="m", prompt="x", n=6, aspect_ratio="1:1"))
    assert len(result.images) == 6
    assert len(handle["task_ids"]) == 2
    assert sandbox.state("midjourney").calls["submit"] == 2


async def test_image_prompt_and_negative(sandbox):
    ref = synth.render_bytes("ref", 64, 64)
    img = ImageInput(data=ref, mime="image/png", width=64, height=64)
    result, _, _ = await run(make(sandbox), ImageRequest(model="m", prompt="x", images=[img],
                                                         negative_prompt="text", seed=5))
    job = next(iter(sandbox.state("midjourney").jobs.values()))
    assert job["refs"] == 1 and "--no text" in job["prompt"] and "--seed 5" in job["prompt"]
    assert len(result.images) == 1


async def test_base_url_with_mj_suffix(sandbox):
    result, _, _ = await run(make(sandbox, base_url="http://proxy:8080/mj"), ImageRequest(model="m", prompt="x"))
    assert len(result.images) == 1


async def test_code_21_existing_task_is_accepted(sandbox):
    p = make(sandbox)
    first = await p.submit(ImageRequest(model="m", prompt="x"))
    existing = first["task_ids"][0]
    sandbox.state("midjourney").script.append(
        lambda req: JSONResponse({"code": 21, "description": "任务已存在", "result": existing, "properties": {}}))
    second = await p.submit(ImageRequest(model="m", prompt="x"))
    assert second["task_ids"] == [existing]


async def test_code_22_queued_is_accepted(sandbox):
    p = make(sandbox)
    await p.submit(ImageRequest(model="m", prompt="a"))
    handle = await p.submit(ImageRequest(model="m", prompt="b"))  # the fake answers 22 while one is running
    assert len(handle["task_ids"]) == 1


async def test_wrong_secret(sandbox):
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox, secret="nope").submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth


@pytest.mark.parametrize("trig,code", [("moderated", ErrorCode.content_policy_violation),
                                       ("rate-limit", ErrorCode.upstream_rate_limited)])
async def test_submit_codes(sandbox, trig, code):
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox).submit(ImageRequest(model="m", prompt=f"x [sandbox:{trig}]"))
    assert ei.value.code == code


async def test_failure_status(sandbox):
    with pytest.raises(UpstreamError) as ei:
        await run(make(sandbox), ImageRequest(model="m", prompt="x [sandbox:error]"))
    assert ei.value.code == ErrorCode.upstream_error


async def test_banned_failure_reason_is_moderation(sandbox):
    p = make(sandbox)
    handle = await p.submit(ImageRequest(model="m", prompt="x"))
    sandbox.state("midjourney").script.append(lambda req: JSONResponse(
        {"id": handle["task_ids"][0], "status": "FAILURE", "progress": "0%",
         "failReason": "Banned prompt detected: gore"}))
    with pytest.raises(UpstreamError) as ei:
        await p.poll(handle)
    assert ei.value.code == ErrorCode.content_policy_violation


@pytest.mark.parametrize("code,expect", [(4, ErrorCode.upstream_bad_request), (9, ErrorCode.upstream_error)])
async def test_scripted_codes(sandbox, code, expect):
    sandbox.state("midjourney").script.append(
        lambda req: JSONResponse({"code": code, "description": "d", "result": None, "properties": {}}))
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox).submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == expect


async def test_unknown_task(sandbox):
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox).poll({"task_ids": ["404"], "n": 1, "finished": {}})
    assert ei.value.code == ErrorCode.upstream_error
