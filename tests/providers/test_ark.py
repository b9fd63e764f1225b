"""Contract tests: the Ark (Seedream) adapter against the Ark fake."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from starlette.responses import JSONResponse

from imagegate.domain import ErrorCode, ImageInput, ImageRequest, UpstreamError
from imagegate.media import synth
from imagegate.providers.base import Deployment, provider_class
from imagegate.testing.sandbox import Sandbox

SEEDREAM_40 = "doubao-seedream-4-0-250828"
SEEDREAM_45 = "doubao-seedream-4-5-251128"


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(delay_ms=0)


def make(sandbox: Sandbox, model: str = SEEDREAM_40, key: str = "sandbox-key", **options):
    dep = Deployment(id="ark-test", provider="ark", model=model, credentials={"api_key": key}, options=options)
    return provider_class("ark")(dep, sandbox.client("ark"))


def size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


async def test_text_to_image_exact_size(sandbox):
    p = make(sandbox)
    result = await p.generate(ImageRequest(model="m", prompt="a lighthouse", width=1280, height=720))
    assert len(result.images) == 1
    assert size(result.images[0].data) == (1280, 720)
    assert sandbox.state("ark").calls["submit"] == 1


async def test_small_size_scaled_into_pixel_budget_keeps_shape(sandbox):
    p = make(sandbox)
    result = await p.generate(ImageRequest(model="m", prompt="tiny", width=512, height=256))
    w, h = size(result.images[0].data)
    assert w * h >= 1280 * 720 and w / h == pytest.approx(2.0, rel=0.02)


async def test_seedream_45_needs_2k_or_more(sandbox):
    p = make(sandbox, model=SEEDREAM_45, tiers=["2K", "4K"], min_pixels=2560 * 1440)
    result = await p.generate(ImageRequest(model="m", prompt="a bay", width=1024, height=576))
    w, h = size(result.images[0].data)
    assert w * h >= 2560 * 1440 and w / h == pytest.approx(16 / 9, rel=0.02)


async def test_seedream_45_rejects_1k_upstream(sandbox):
    # an adapter that did not map sizes would send 1K; the fake refuses it like Ark does
    p = make(sandbox, model=SEEDREAM_45)
    with pytest.raises(UpstreamError) as ei:
        await p.generate(ImageRequest(model="m", prompt="x", width=1024, height=1024))
    assert ei.value.code == ErrorCode.upstream_bad_request and ei.value.param == "size"


async def test_n_uses_sequential_generation(sandbox):
    p = make(sandbox)
    result = await p.generate(ImageRequest(model="m", prompt="a comic strip", n=3, width=1280, height=720))
    assert len(result.images) == 3
    assert sandbox.state("ark").calls["submit"] == 1  # one upstream call, not three
    assert len({img.data for img in result.images}) == 3


async def test_partial_failure_keeps_good_images(sandbox):
    p = make(sandbox)
    result = await p.generate(ImageRequest(model="m", prompt="set [ark:output-moderated=1]", n=3,
                                           width=1280, height=720))
    assert len(result.images) == 2
    assert result.usage["failed_images"] == 1


async def test_all_items_failed_is_moderation(sandbox):
    p = make(sandbox)
    with pytest.raises(UpstreamError) as ei:
        await p.generate(ImageRequest(model="m", prompt="one [ark:output-moderated=0]", width=1280, height=720))
    assert ei.value.code == ErrorCode.content_policy_violation


async def test_reference_images_and_b64(sandbox):
    ref = synth.render_bytes("ref", 64, 64)
    img = ImageInput(data=ref, mime="image/png", width=64, height=64)
    p = make(sandbox, response_format="b64_json")
    result = await p.generate(ImageRequest(model="m", prompt="restyle", mode="edit", images=[img, img],
                                           width=1280, height=720))
    assert size(result.images[0].data) == (1280, 720)


async def test_inputs_plus_outputs_capped_at_15(sandbox):
    ref = synth.render_bytes("ref", 32, 32)
    imgs = [ImageInput(data=ref, mime="image/png", width=32, height=32)] * 13
    p = make(sandbox, response_format="b64_json")
    result = await p.generate(ImageRequest(model="m", prompt="x", images=imgs, n=5, width=1280, height=720))
    assert len(result.images) == 2  # 15 - 13 inputs


async def test_wrong_key_is_upstream_auth(sandbox):
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox, key="bad").generate(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth
    assert "bad" not in ei.value.message.split(":")[0]


@pytest.mark.parametrize("trig,code", [("moderated", ErrorCode.content_policy_violation),
                                       ("rate-limit", ErrorCode.upstream_rate_limited),
                                       ("error", ErrorCode.upstream_error)])
async def test_triggers(sandbox, trig, code):
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox).generate(ImageRequest(model="m", prompt=f"x [sandbox:{trig}]"))
    assert ei.value.code == code


@pytest.mark.parametrize("status,body,code", [
    (403, {"error": {"code": "AccountOverdueError", "message": "overdue", "type": "Forbidden"}},
     ErrorCode.upstream_quota),
    (429, {"error": {"code": "RateLimitExceeded.EndpointRPMExceeded", "message": "slow down"}},
     ErrorCode.upstream_rate_limited),
    (500, {"error": {"code": "InternalServiceError", "message": "oops"}}, ErrorCode.upstream_error),
    (400, {"error": {"code": "InvalidParameter", "message": "bad", "param": "watermark"}},
     ErrorCode.upstream_bad_request),
])
async def test_scripted_error_envelope(sandbox, status, body, code):
    sandbox.state("ark").script.append(lambda req: JSONResponse(body, status, headers={"retry-after": "7"}))
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox).generate(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == code
    if code == ErrorCode.upstream_bad_request:
        assert ei.value.param == "watermark"
    if code == ErrorCode.upstream_rate_limited:
        assert ei.value.retry_after == 7.0


async def test_expired_url_is_an_error(sandbox):
    state = sandbox.state("ark")
    # make every stored blob already expired: downloading must fail loudly, never return junk
    original = state.store
    state.store = lambda data, mime, ttl=None: original(data, mime, ttl=-10)  # type: ignore[method-assign]
    with pytest.raises(UpstreamError) as ei:
        await make(sandbox).generate(ImageRequest(model="m", prompt="x", width=1280, height=720))
    assert ei.value.code == ErrorCode.upstream_error
