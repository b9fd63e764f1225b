"""Contract tests: the Ark (Seedream) adapter against the Ark fake."""

from __future__ import annotations

import pytest
from starlette.responses import JSONResponse

from imagegate.domain import ErrorCode, ImageRequest, UpstreamError

SEEDREAM_40 = "doubao-seedream-4-0-250828"
SEEDREAM_45 = "doubao-seedream-4-5-251128"

PROVIDER = "ark"
MODEL = SEEDREAM_40


async def test_text_to_image_exact_size(state, make, kit):
    p = make()
    result = await p.generate(ImageRequest(model="m", prompt="a lighthouse", width=1280, height=720))
    assert len(result.images) == 1
    assert kit.size_of(result.images[0].data) == (1280, 720)
    assert state.calls["submit"] == 1


async def test_small_size_scaled_into_pixel_budget_keeps_shape(make, kit):
    p = make()
    result = await p.generate(ImageRequest(model="m", prompt="tiny", width=512, height=256))
    w, h = kit.size_of(result.images[0].data)
    assert w * h >= 1280 * 720 and w / h == pytest.approx(2.0, rel=0.02)


async def test_seedream_45_needs_2k_or_more(make, kit):
    p = make(model=SEEDREAM_45, tiers=["2K", "4K"], min_pixels=2560 * 1440)
    result = await p.generate(ImageRequest(model="m", prompt="a bay", width=1024, height=576))
    w, h = kit.size_of(result.images[0].data)
    assert w * h >= 2560 * 1440 and w / h == pytest.approx(16 / 9, rel=0.02)


async def test_seedream_45_rejects_1k_upstream(make, kit):
    # an adapter that did not map sizes would send 1K; the fake refuses it like Ark does
    # (here: a catalog entry without Seedream 4.5's pixel floor, so nothing maps 1K up)
    spec = kit.spec_for("ark", SEEDREAM_45)
    assert spec.size_rule is not None
    no_floor = spec.model_copy(update={"size_rule": spec.size_rule.model_copy(update={"min_pixels": None})})
    p = make(model=SEEDREAM_45, spec=no_floor)
    with pytest.raises(UpstreamError) as ei:
        await p.generate(ImageRequest(model="m", prompt="x", width=1024, height=1024))
    assert ei.value.code == ErrorCode.upstream_bad_request and ei.value.param == "size"


async def test_n_uses_sequential_generation(state, make):
    p = make()
    result = await p.generate(ImageRequest(model="m", prompt="a comic strip", n=3, width=1280, height=720))
    assert len(result.images) == 3
    assert state.calls["submit"] == 1  # one upstream call, not three
    assert len({img.data for img in result.images}) == 3


async def test_partial_failure_keeps_good_images(make):
    p = make()
    result = await p.generate(
        ImageRequest(model="m", prompt="set [ark:output-moderated=1]", n=3, width=1280, height=720)
    )
    assert len(result.images) == 2
    assert result.usage["failed_images"] == 1
    assert result.tokens == {  # Ark reports output tokens only: its two good images
        "input_tokens": 0,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
        "output_tokens": 2 * 16384,
        "total_tokens": 2 * 16384,
    }


async def test_all_items_failed_is_moderation(make):
    p = make()
    with pytest.raises(UpstreamError) as ei:
        await p.generate(ImageRequest(model="m", prompt="one [ark:output-moderated=0]", width=1280, height=720))
    assert ei.value.code == ErrorCode.content_policy_violation


async def test_reference_images_and_b64(make, kit):
    img = kit.picture(64, 64)
    p = make(response_format="b64_json")
    result = await p.generate(
        ImageRequest(model="m", prompt="restyle", mode="edit", images=[img, img], width=1280, height=720)
    )
    assert kit.size_of(result.images[0].data) == (1280, 720)


async def test_inputs_plus_outputs_capped_at_15(make, kit):
    imgs = [kit.picture(32, 32)] * 13
    p = make(response_format="b64_json")
    result = await p.generate(ImageRequest(model="m", prompt="x", images=imgs, n=5, width=1280, height=720))
    assert len(result.images) == 2  # 15 - 13 inputs


async def test_wrong_key_is_upstream_auth(make):
    with pytest.raises(UpstreamError) as ei:
        await make(key="bad").generate(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth
    assert "bad" not in ei.value.message.split(":")[0]


@pytest.mark.parametrize(
    "trig,code",
    [
        ("moderated", ErrorCode.content_policy_violation),
        ("rate-limit", ErrorCode.upstream_rate_limited),
        ("error", ErrorCode.upstream_error),
    ],
)
async def test_triggers(make, trig, code):
    with pytest.raises(UpstreamError) as ei:
        await make().generate(ImageRequest(model="m", prompt=f"x [sandbox:{trig}]"))
    assert ei.value.code == code


@pytest.mark.parametrize(
    "status,body,code",
    [
        (
            403,
            {"error": {"code": "AccountOverdueError", "message": "overdue", "type": "Forbidden"}},
            ErrorCode.upstream_quota,
        ),
        (
            429,
            {"error": {"code": "RateLimitExceeded.EndpointRPMExceeded", "message": "slow down"}},
            ErrorCode.upstream_rate_limited,
        ),
        (500, {"error": {"code": "InternalServiceError", "message": "oops"}}, ErrorCode.upstream_error),
        (
            400,
            {"error": {"code": "InvalidParameter", "message": "bad", "param": "watermark"}},
            ErrorCode.upstream_bad_request,
        ),
    ],
)
async def test_scripted_error_envelope(state, make, status, body, code):
    state.script.append(lambda req: JSONResponse(body, status, headers={"retry-after": "7"}))
    with pytest.raises(UpstreamError) as ei:
        await make().generate(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == code
    if code == ErrorCode.upstream_bad_request:
        assert ei.value.param == "watermark"
    if code == ErrorCode.upstream_rate_limited:
        assert ei.value.retry_after == 7.0


async def test_expired_url_is_an_error(state, make):
    # make every stored blob already expired: downloading must fail loudly, never return junk
    original = state.store
    state.store = lambda data, mime, ttl=None: original(data, mime, ttl=-10)  # type: ignore[method-assign]
    with pytest.raises(UpstreamError) as ei:
        await make().generate(ImageRequest(model="m", prompt="x", width=1280, height=720))
    assert ei.value.code == ErrorCode.upstream_error
