"""Contract tests: the fal adapter against the fal queue fake."""

from __future__ import annotations

import pytest
from starlette.responses import JSONResponse

from imagegate.domain import ErrorCode, ImageRequest, UpstreamError

PROVIDER = "fal"
MODEL = "fal-ai/flux/dev"


async def test_text_to_image_with_custom_size_and_queue(state, make, kit):
    state.polls_to_finish = 3
    p = make()
    result, seen, handle = await kit.trace(p, ImageRequest(model="m", prompt="a fox", width=768, height=512, n=1))
    assert [r.done for r in seen] == [False, False, True]
    assert seen[0].progress == 0  # IN_QUEUE
    assert len(result.images) == 1
    assert kit.size_of(result.images[0].data) == (768, 512)
    # the queue URLs drop the subpath of fal-ai/flux/dev
    assert "/fal-ai/flux/requests/" in handle["status_url"]
    assert "/dev/" not in handle["status_url"]
    assert state.calls["submit"] == 1


async def test_num_images_in_one_job(state, make, kit):
    p = make()
    result, _, _ = await kit.trace(p, ImageRequest(model="m", prompt="three cats", n=3))
    assert len(result.images) == 3
    assert state.calls["submit"] == 1
    assert len({img.data for img in result.images}) == 3
    assert kit.size_of(result.images[0].data) == (1024, 768)  # fal's default landscape_4_3


async def test_preset_sizes_when_configured(make, kit):
    p = make(image_size="preset")
    result, _, _ = await kit.trace(p, ImageRequest(model="m", prompt="wide", width=1920, height=1080))
    assert kit.size_of(result.images[0].data) == (1024, 576)  # landscape_16_9


async def test_aspect_ratio_maps_to_pixels(make, kit):
    p = make()
    result, _, _ = await kit.trace(p, ImageRequest(model="m", prompt="tall", aspect_ratio="9:16", resolution="1K"))
    w, h = kit.size_of(result.images[0].data)
    assert h == 1024 and abs(w / h - 9 / 16) < 0.02


async def test_submit_falls_back_to_built_urls_without_subpath(state, make):
    state.script.append(lambda req: JSONResponse({"request_id": "abc"}))
    p = make()
    handle = await p.submit(ImageRequest(model="m", prompt="x"))
    assert handle["response_url"] == "https://queue.fal.run/fal-ai/flux/requests/abc"
    assert handle["status_url"] == "https://queue.fal.run/fal-ai/flux/requests/abc/status"


async def test_wrong_key_is_upstream_auth(make):
    p = make(key="nope")
    with pytest.raises(UpstreamError) as ei:
        await p.submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth
    assert "nope" not in ei.value.message


async def test_moderation_is_content_policy(make, kit):
    p = make()
    with pytest.raises(UpstreamError) as ei:
        await kit.trace(p, ImageRequest(model="m", prompt="bad [sandbox:moderated]"))
    assert ei.value.code == ErrorCode.content_policy_violation


async def test_rate_limit_carries_retry_after(state, make):
    p = make()
    with pytest.raises(UpstreamError) as ei:
        await p.submit(ImageRequest(model="m", prompt="x [sandbox:rate-limit]"))
    assert ei.value.code == ErrorCode.upstream_rate_limited
    assert ei.value.retry_after == 3.0
    assert state.calls["submit"] == 0


async def test_runner_error_is_upstream_error(make, kit):
    p = make()
    with pytest.raises(UpstreamError) as ei:
        await kit.trace(p, ImageRequest(model="m", prompt="x [sandbox:error]"))
    assert ei.value.code == ErrorCode.upstream_error


async def test_validation_error_names_param(make):
    p = make()
    with pytest.raises(UpstreamError) as ei:
        await p.submit(ImageRequest(model="m", prompt="x", n=9))
    assert ei.value.code == ErrorCode.upstream_bad_request
    assert ei.value.param == "num_images"


@pytest.mark.parametrize(
    "status,code",
    [(500, ErrorCode.upstream_error), (503, ErrorCode.upstream_unavailable), (504, ErrorCode.upstream_timeout)],
)
async def test_scripted_5xx(state, make, status, code):
    state.script.append(lambda req: JSONResponse({"detail": "boom"}, status))
    p = make()
    with pytest.raises(UpstreamError) as ei:
        await p.submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == code


async def test_cancel_queued_then_already_completed(state, make):
    state.polls_to_finish = 5
    p = make()
    handle = await p.submit(ImageRequest(model="m", prompt="x"))
    await p.cancel(handle)
    await p.cancel(handle)  # 400 ALREADY_COMPLETED is not an error for us
    assert state.calls["cancel"] == 2
    assert state.jobs[handle["request_id"]]["status"] == "CANCELLED"
