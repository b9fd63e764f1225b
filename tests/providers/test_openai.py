"""Contract tests: the OpenAI adapter against the wire-faithful OpenAI fake."""

from __future__ import annotations

import pytest

from imagegate.catalog import builtin_specs
from imagegate.catalog.schema import ModelSpec
from imagegate.catalog.sizing import fit_rule
from imagegate.domain import ErrorCode, ImageRequest, UpstreamError
from imagegate.providers.openai import size_for


def spec(model_id: str) -> ModelSpec:
    """The catalog entry of an OpenAI model: its sizes and size rule are what the adapter sends by."""
    return next(s for s in builtin_specs() if s.id == model_id)


def snap_free(w: int, h: int) -> tuple[int, int]:
    """GPT-image-2's catalog size rule applied to any WxH, the way the adapter does."""
    rule = spec("GPT-image-2").size_rule
    assert rule is not None
    return fit_rule(rule, w, h, "nearest")


async def test_gpt_image_generation_returns_decodable_images_at_the_asked_size(wire, kit):
    w = wire("openai", "gpt-image-1")
    res = await w.run(
        ImageRequest(
            model="gpt-image-1",
            prompt="a red fox",
            n=3,
            width=1536,
            height=1024,
            quality="low",
            output_format="jpeg",
            output_compression=70,
        )
    )
    assert len(res.images) == 3
    for img in res.images:
        assert kit.size_of(img.data) == (1536, 1024)
        assert kit.fmt_of(img.data) == "jpeg"
        assert img.mime == "image/jpeg"
    assert w.state.calls["submit"] == 1  # n is native: one upstream call
    assert res.usage["output_tokens"] == 3 * 1056
    assert res.tokens is not None and res.tokens["total_tokens"] == 50 + 3 * 1056
    assert res.tokens["input_tokens_details"] == {"text_tokens": 50, "image_tokens": 0}


async def test_gpt_image_1_snaps_odd_sizes_to_its_three_sizes(wire, kit):
    w = wire("openai", "gpt-image-1.5")
    res = await w.run(ImageRequest(model="gpt-image-1.5", prompt="wide", width=1920, height=1080))
    assert kit.size_of(res.images[0].data) == (1536, 1024)
    assert size_for(spec("gpt-image-1"), ImageRequest(model="m", width=700, height=1000)) == "1024x1536"
    assert size_for(spec("gpt-image-1"), ImageRequest(model="m")) == "auto"


async def test_gpt_image_2_takes_free_sizes_snapped_to_its_rule(wire, kit):
    w = wire("openai", "gpt-image-2")
    res = await w.run(ImageRequest(model="gpt-image-2", prompt="banner", width=1000, height=500))
    assert kit.size_of(res.images[0].data) == (1152, 576)  # multiple of 16, lifted over the pixel floor
    assert snap_free(1920, 1080) == (1920, 1088)
    assert snap_free(8000, 1000) == (3840, 1280)  # ratio capped at 3:1, side capped at 3840
    # resolution + aspect ratio: 4K 16:9 lands on the 3840x2160 ceiling
    assert size_for(spec("GPT-image-2"), ImageRequest(model="m", resolution="4K", aspect_ratio="16:9")) == "3840x2160"


async def test_dalle3_fans_n_out_and_keeps_revised_prompt(wire, kit):
    w = wire("openai", "dall-e-3")
    res = await w.run(
        ImageRequest(
            model="dall-e-3", prompt="a lighthouse", n=2, width=1792, height=1024, quality="hd", style="natural"
        )
    )
    assert len(res.images) == 2
    assert w.state.calls["submit"] == 2  # dall-e-3 takes n=1 only
    assert kit.size_of(res.images[0].data) == (1792, 1024)
    assert res.images[0].revised_prompt and "lighthouse" in res.images[0].revised_prompt


async def test_dalle2_square_sizes(wire, kit):
    w = wire("openai", "dall-e-2")
    res = await w.run(ImageRequest(model="dall-e-2", prompt="x", n=2, width=500, height=500))
    assert [kit.size_of(i.data) for i in res.images] == [(512, 512), (512, 512)]
    assert w.state.calls["submit"] == 1


async def test_edit_sends_multipart_image_array_and_alpha_mask(wire, kit):
    w = wire("openai", "gpt-image-1")
    grey = kit.picture(600, 400)
    # a grayscale (white = edit) mask of another size: the adapter converts + resizes it
    import io

    from PIL import Image

    m = Image.new("L", (300, 200), 0)
    m.paste(255, (0, 0, 150, 200))
    buf = io.BytesIO()
    m.save(buf, "PNG")
    mask = kit.picture(300, 200)
    mask.data, mask.mime = buf.getvalue(), "image/png"
    req = ImageRequest(
        model="gpt-image-1",
        prompt="add a hat",
        mode="edit",
        images=[grey, kit.picture(256, 256)],
        mask=mask,
        input_fidelity="high",
    )
    res = await w.run(req)
    edit = w.state.jobs["last_edit"]
    assert edit["image_field"] == "image[]"
    assert edit["image_count"] == 2
    assert edit["mask"]["size"] == [600, 400]
    assert edit["mask"]["transparent_pixels"] == 300 * 400  # left half is the edit area
    assert edit["fields"]["input_fidelity"] == "high"
    assert kit.size_of(res.images[0].data) == (1536, 1024)  # auto follows the input's shape


async def test_gpt_image_levels_reach_the_upstream_as_the_catalog_allows(wire, kit):
    w = wire("openai", "gpt-image-1-mini")
    req = ImageRequest(
        model="gpt-image-1-mini",
        prompt="add a hat",
        mode="edit",
        images=[kit.picture(256, 256)],
        moderation="low",
        input_fidelity="low",
    )
    await w.run(req)
    assert w.state.jobs["last_body"]["moderation"] == "low"
    assert w.state.jobs["last_body"]["input_fidelity"] == "low"
    assert spec("gpt-image-1-mini").input_fidelities == ["low"]  # OpenAI: high is not for mini
    assert spec("GPT-image-2").input_fidelities is None  # OpenAI: omit it for gpt-image-2
    req.input_fidelity = "high"
    with pytest.raises(UpstreamError) as exc:  # the fake refuses what OpenAI refuses
        await w.run(req)
    assert exc.value.param == "input_fidelity"


async def test_dalle2_edit_uses_single_image_field(wire, kit):
    w = wire("openai", "dall-e-2")
    req = ImageRequest(
        model="dall-e-2",
        prompt="edit",
        mode="edit",
        images=[kit.picture(512, 512)],
        mask=kit.alpha_mask(512, 512),
        width=256,
        height=256,
    )
    res = await w.run(req)
    assert w.state.jobs["last_edit"]["image_field"] == "image"
    assert kit.size_of(res.images[0].data) == (256, 256)


@pytest.mark.parametrize(
    "prompt,code",
    [
        ("[sandbox:moderated] x", ErrorCode.content_policy_violation),
        ("[sandbox:error] x", ErrorCode.upstream_error),
        ("[sandbox:rate-limit] x", ErrorCode.upstream_rate_limited),
    ],
)
async def test_triggers_map_to_error_classes(wire, prompt, code):
    w = wire("openai", "gpt-image-1")
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="gpt-image-1", prompt=prompt))
    assert exc.value.code == code
    if code == ErrorCode.upstream_rate_limited:
        assert exc.value.retry_after == 1.0


async def test_wrong_key_is_upstream_auth_and_the_key_is_not_echoed(wire):
    w = wire("openai", "gpt-image-1", key="sk-proj-SECRETSECRETSECRET1234")
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="gpt-image-1", prompt="x"))
    assert exc.value.code == ErrorCode.upstream_auth
    assert "1234" not in exc.value.message and "SECRET" not in exc.value.message


@pytest.mark.parametrize(
    "status,body,headers,code,retry,param",
    [
        (
            429,
            {
                "error": {
                    "message": "You exceeded your current quota",
                    "type": "insufficient_quota",
                    "param": None,
                    "code": "insufficient_quota",
                }
            },
            {},
            ErrorCode.upstream_quota,
            None,
            None,
        ),
        (
            429,
            {"error": {"message": "slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"}},
            {"retry-after": "7"},
            ErrorCode.upstream_rate_limited,
            7.0,
            None,
        ),
        (
            400,
            {
                "error": {
                    "message": "Invalid value",
                    "type": "invalid_request_error",
                    "param": "size",
                    "code": "invalid_value",
                }
            },
            {},
            ErrorCode.upstream_bad_request,
            None,
            "size",
        ),
        (
            503,
            {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}},
            {},
            ErrorCode.upstream_unavailable,
            None,
            None,
        ),
        (
            402,
            {"error": {"message": "pay", "type": "billing", "param": None, "code": None}},
            {},
            ErrorCode.upstream_quota,
            None,
            None,
        ),
    ],
)
async def test_scripted_errors(wire, kit, status, body, headers, code, retry, param):
    w = wire("openai", "gpt-image-1")
    w.state.script.append(kit.once(status, body, headers))
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="gpt-image-1", prompt="x"))
    assert exc.value.code == code
    assert exc.value.retry_after == retry
    assert exc.value.param == param


async def test_gpt_image_previews_stream_through_the_progress_callback(wire, kit):
    import base64

    w = wire("openai", "gpt-image-2")
    seen = []

    async def on_progress(p):
        seen.append(p.partial)

    req = ImageRequest(model="gpt-image-2", prompt="dawn", width=1024, height=1024, partial_images=3)
    res = await w.adapter.generate_live(req, on_progress)
    assert [p.index for p in seen] == [0, 1, 2]
    assert all(kit.size_of(base64.b64decode(p.b64_json)) == (1024, 1024) for p in seen)
    assert kit.size_of(res.images[0].data) == (1024, 1024) and res.usage["total_tokens"] > 0
    sent = w.state.jobs["last_body"]
    assert sent["stream"] is True and sent["partial_images"] == 3


async def test_without_previews_or_with_n_over_1_nothing_is_streamed(wire):
    w = wire("openai", "gpt-image-2")
    seen = []

    async def on_progress(p):
        seen.append(p)

    res = await w.adapter.generate_live(ImageRequest(model="gpt-image-2", prompt="plain"), on_progress)
    assert len(res.images) == 1 and "stream" not in w.state.jobs["last_body"]
    req = ImageRequest(model="gpt-image-2", prompt="two", n=2, partial_images=2)
    res = await w.adapter.generate_live(req, on_progress)
    assert len(res.images) == 2 and "stream" not in w.state.jobs["last_body"] and seen == []
