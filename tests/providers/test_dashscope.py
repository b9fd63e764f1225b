"""Contract tests: the DashScope adapter against the DashScope fake."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from starlette.responses import JSONResponse

from imagegate.domain import ErrorCode, ImageRequest, UpstreamError
from imagegate.providers.base import Deployment, provider_class
from imagegate.testing.sandbox import Sandbox

QWEN_SIZES = ["1664*928", "1472*1140", "1328*1328", "1140*1472", "928*1664"]


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(delay_ms=0)


def make(sandbox: Sandbox, model: str = "wan2.2-t2i-flash", key: str = "sandbox-key", **options):
    dep = Deployment(id="ds-test", provider="dashscope", model=model, credentials={"api_key": key}, options=options)
    return provider_class("dashscope")(dep, sandbox.client("dashscope"))


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


async def test_text_to_image_polls_to_completion(sandbox):
    state = sandbox.state("dashscope")
    state.polls_to_finish = 3
    result, seen, _ = await run(make(sandbox), ImageRequest(model="m", prompt="a temple", width=1280, height=720))
    assert [r.done for r in seen] == [False, False, True]
    assert seen[0].queue_position == 0  # PENDING
    assert seen[-1].progress == 100
    assert [size(i.data) for i in result.images] == [(1280, 720)]
    assert state.calls["submit"] == 1


async def test_large_size_is_clamped_into_wan_limits(sandbox):
    result, _, _ = await run(make(sandbox), ImageRequest(model="m", prompt="x", width=2048, height=1024))
    w, h = size(result.images[0].data)
    assert w <= 1440 and h >= 512 and w / h == pytest.approx(2.0, rel=0.03)


async def test_qwen_image_snaps_to_fixed_sizes_and_fans_out(sandbox):
    p = make(sandbox, model="qwen-image", sizes=QWEN_SIZES, max_n=1)
    result, _, handle = await run(p, ImageRequest(model="m", prompt="poster", width=1920, height=1080, n=2))
    assert [size(i.data) for i in result.images] == [(1664, 928), (1664, 928)]
    assert len(handle["task_ids"]) == 2
    assert sandbox.state("dashscope").calls["submit"] == 2


async def test_n_above_four_fans_out(sandbox):
    result, _, handle = await run(make(sandbox), ImageRequest(model="m", prompt="tiles", n=6, width=512, height=512))
    assert len(result.images) == 6
    assert sandbox.state("dashscope").calls["submit"] == 2  # 4 + 2
    assert len({i.data for i in result.images}) >= 4


async def test_partial_success_keeps_good_images(sandbox):
    result, _, _ = await run(make(sandbox), ImageRequest(model="m", prompt="set [dashscope:fail=0]", n=3,
                                                          width=512, height=512))
    assert len(result.images) == 2
    assert result.usage["failed_images"] == 1


async def test_failed_task_maps_output_code(sandbox):
    with pytest.raises(UpstreamError) as ei:
        await run(make(sandbox), ImageRequest(model="m", prompt="x [sandbox:error]"))
    assert ei.value.code == ErrorCode.upstream_error
    assert "InternalError" in ei.value.message


async def test_all_items_moderated(sandbox):
    with pytest.raises(UpstreamError) as ei:
        await run(make(sandbox), ImageRequest(model="m", prompt="x [dashscope:fail=0]", width=512, height=512))
    assert ei.value.code == ErrorCode.content_policy_violation


async def test_unknown_task(sandbox):
    p = make(sandbox)
    with pytest.raises(UpstreamError) as ei:
        await p.poll({"task_ids": ["nope"], "finished": {}})
    assert ei.value.code == ErrorCode.upstream_error and "unknown" in ei.value.message


async def test_wrong_key(sandbox):
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox, key="sk-wrong").submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth
    assert "sk-wrong" not in ei.value.message


@pytest.mark.parametrize("trig,code", [("moderated", ErrorCode.content_policy_violation),
                                       ("rate-limit", ErrorCode.upstream_rate_limited)])
async def test_submit_triggers(sandbox, trig, code):
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox).submit(ImageRequest(model="m", prompt=f"x [sandbox:{trig}]"))
    assert ei.value.code == code
    assert sandbox.state("dashscope").calls["submit"] == 0


@pytest.mark.parametrize("status,code,expect", [
    (400, "Arrearage", ErrorCode.upstream_quota),
    (429, "Throttling.AllocationQuota", ErrorCode.upstream_rate_limited),
    (500, "InternalError", ErrorCode.upstream_error),
    (400, "InvalidParameter", ErrorCode.upstream_bad_request),
])
async def test_scripted_envelopes(sandbox, status, code, expect):
    sandbox.state("dashscope").script.append(
        lambda req: JSONResponse({"request_id": "r", "code": code, "message": "m"}, status))
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox).submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == expect


async def test_invalid_size_upstream_is_bad_request(sandbox):
    # qwen-image without the fixed-size list configured sends a size DashScope refuses
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox, model="qwen-image", max_n=1).submit(
            ImageRequest(model="m", prompt="x", width=1024, height=1024))
    assert ei.value.code == ErrorCode.upstream_bad_request
