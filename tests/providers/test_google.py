"""Contract tests: the Google adapter (Gemini + Imagen) against the Gemini API fake."""

from __future__ import annotations

import pytest

from imagegate.domain import ErrorCode, ImageRequest, UpstreamError

NB2 = "gemini-3.1-flash-image-preview"


async def test_gemini_text_to_image_with_tier_and_ratio(wire, kit):
    w = wire("google", NB2)
    res = await w.run(ImageRequest(model="Nano-Banana2", prompt="a bridge", resolution="2K", aspect_ratio="16:9"))
    assert kit.size_of(res.images[0].data) == (2752, 1536)
    assert w.state.jobs["last_gemini"]["image_config"] == {"aspectRatio": "16:9", "imageSize": "2K"}
    assert res.usage["candidatesTokenCount"] == 1290
    assert res.tokens == {  # OpenAI's usage shape, which is all a response shows
        "input_tokens": 12,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 12},
        "output_tokens": 1290,
        "total_tokens": 1302,
    }


async def test_gemini_size_maps_to_nearest_ratio_and_tier(wire, kit):
    w = wire("google", NB2)
    res = await w.run(ImageRequest(model="m", prompt="p", width=1000, height=1500))
    assert w.state.jobs["last_gemini"]["image_config"] == {"aspectRatio": "2:3", "imageSize": "1K"}
    assert kit.size_of(res.images[0].data) == (848, 1264)


async def test_gemini_25_sends_no_image_size_and_fans_out_n(wire, kit):
    w = wire("google", "gemini-2.5-flash-image")
    res = await w.run(ImageRequest(model="m", prompt="p", n=3, resolution="2K", aspect_ratio="9:16", seed=7))
    assert len(res.images) == 3
    assert w.state.calls["submit"] == 3
    assert {kit.size_of(i.data) for i in res.images} == {(768, 1344)}
    assert "imageSize" not in w.state.jobs["last_gemini"]["image_config"]
    assert len({i.data for i in res.images}) == 3  # each fanned call got its own seed


async def test_gemini_edit_sends_inline_images(wire, kit):
    w = wire("google", NB2)
    res = await w.run(
        ImageRequest(model="m", prompt="combine", mode="edit", images=[kit.picture(600, 400), kit.picture(300, 300)])
    )
    assert w.state.jobs["last_gemini"]["inputs"] == 2
    assert kit.size_of(res.images[0].data) == (1264, 848)  # follows the first input's 3:2 shape
    assert res.tokens is not None and res.tokens["input_tokens_details"] == {"image_tokens": 516, "text_tokens": 12}


async def test_imagen_fans_out_beyond_four_samples(wire, kit):
    w = wire("google", "imagen-4.0-generate-001")
    res = await w.run(ImageRequest(model="imagen-4", prompt="p", n=6, aspect_ratio="16:9", resolution="2K"))
    assert len(res.images) == 6
    assert w.state.calls["submit"] == 2  # 4 + 2
    assert kit.size_of(res.images[0].data) == (2816, 1536)


async def test_imagen_fast_has_no_image_size(wire, kit):
    w = wire("google", "imagen-4.0-fast-generate-001")
    res = await w.run(ImageRequest(model="m", prompt="p", width=900, height=1200))
    assert w.state.jobs["last_imagen"]["parameters"] == {"sampleCount": 1, "aspectRatio": "3:4"}
    assert kit.size_of(res.images[0].data) == (896, 1280)


@pytest.mark.parametrize("model", [NB2, "imagen-4.0-generate-001"])
@pytest.mark.parametrize(
    "prompt,code,retry",
    [
        ("[sandbox:moderated] x", ErrorCode.content_policy_violation, None),
        ("[sandbox:error] x", ErrorCode.upstream_error, None),
        ("[sandbox:rate-limit] x", ErrorCode.upstream_rate_limited, 2.0),
    ],
)
async def test_triggers(wire, model, prompt, code, retry):
    w = wire("google", model)
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt=prompt))
    assert exc.value.code == code
    assert exc.value.retry_after == retry


async def test_output_safety_finish_reason_is_moderation(wire, kit):
    w = wire("google", NB2)
    w.state.script.append(kit.once(200, {"candidates": [{"content": {"parts": []}, "finishReason": "IMAGE_SAFETY"}]}))
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="p"))
    assert exc.value.code == ErrorCode.content_policy_violation


async def test_wrong_key_is_upstream_auth(wire):
    w = wire("google", NB2, key="AIza-wrong")
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="p"))
    assert exc.value.code == ErrorCode.upstream_auth
    assert "AIza" not in exc.value.message


@pytest.mark.parametrize(
    "status,err,code",
    [
        (
            503,
            {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"},
            ErrorCode.upstream_unavailable,
        ),
        (
            400,
            {"code": 400, "message": "Unsupported aspect ratio", "status": "INVALID_ARGUMENT"},
            ErrorCode.upstream_bad_request,
        ),
        (
            400,
            {
                "code": 400,
                "message": "User location is not supported; enable billing.",
                "status": "FAILED_PRECONDITION",
            },
            ErrorCode.upstream_quota,
        ),
        (504, {"code": 504, "message": "Deadline exceeded", "status": "DEADLINE_EXCEEDED"}, ErrorCode.upstream_timeout),
    ],
)
async def test_scripted_errors(wire, kit, status, err, code):
    w = wire("google", NB2)
    w.state.script.append(kit.once(status, {"error": err}))
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="p"))
    assert exc.value.code == code
