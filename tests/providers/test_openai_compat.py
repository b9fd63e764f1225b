"""Contract tests: the OpenAI-compatible adapter against a lenient OpenAI-shaped gateway fake."""

from __future__ import annotations

import pytest

from imagegate.domain import ErrorCode, ImageRequest, UpstreamError

BASE = "https://lite.example.com/v1"


async def test_generation_downloads_url_results_at_the_asked_size(wire, kit):
    w = wire("openai_compat", "gpt-image-2", base_url=BASE)
    res = await w.run(
        ImageRequest(
            model="gpt-image-2-lite", prompt="a kite", n=2, width=768, height=512, quality="low", moderation="low"
        )
    )
    assert [kit.size_of(i.data) for i in res.images] == [(768, 512), (768, 512)]
    assert all(i.url is None and i.data for i in res.images)  # downloaded, not handed on
    body = w.state.jobs["last_body"]
    assert body["size"] == "768x512" and body["quality"] == "low" and body["moderation"] == "low"
    assert w.state.calls["submit"] == 1


async def test_options_rename_drop_extra_body_and_fan_out(wire, kit):
    w = wire(
        "openai_compat",
        "grok-2-image",
        base_url=BASE,
        options={
            "size_field": "none",
            "drop": ["quality"],
            "rename": {"user": "end_user"},
            "extra_body": {"watermark": False},
            "n_field": "none",
            "response_format": "b64_json",
        },
    )
    res = await w.run(ImageRequest(model="x", prompt="p", n=3, width=640, height=640, quality="high", user="u1"))
    body = w.state.jobs["last_body"]
    assert "size" not in body and "quality" not in body and "n" not in body
    assert body["end_user"] == "u1" and body["watermark"] is False
    assert body["response_format"] == "b64_json"
    assert w.state.calls["submit"] == 3  # n fanned out
    assert [kit.size_of(i.data) for i in res.images] == [(1024, 1024)] * 3  # upstream default


async def test_sizes_option_snaps(wire, kit):
    w = wire("openai_compat", "m", base_url=BASE, options={"sizes": ["1024x1024", "1792x1024"]})
    res = await w.run(ImageRequest(model="m", prompt="p", width=1600, height=900))
    assert kit.size_of(res.images[0].data) == (1792, 1024)


async def test_edit_multipart_with_converted_mask(wire, kit):
    w = wire("openai_compat", "m", base_url=BASE)
    res = await w.run(
        ImageRequest(
            model="m", prompt="edit", mode="edit", images=[kit.picture(400, 400)], mask=kit.alpha_mask(200, 200)
        )
    )
    edit = w.state.jobs["last_edit"]
    assert edit["image_field"] == "image[]" and edit["mask"]["size"] == [400, 400]
    assert res.images[0].data


async def test_wrong_key_and_errors(wire, kit):
    w = wire("openai_compat", "m", base_url=BASE, key="bad")
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="p"))
    assert exc.value.code == ErrorCode.upstream_auth
    w = wire("openai_compat", "m", base_url=BASE)
    w.state.script.append(
        kit.once(429, {"error": {"message": "slow", "type": "rate", "code": None}}, {"retry-after": "3"})
    )
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="p"))
    assert exc.value.code == ErrorCode.upstream_rate_limited and exc.value.retry_after == 3.0
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="[sandbox:error] p"))
    assert exc.value.code == ErrorCode.upstream_error


async def test_custom_auth_header(wire):
    w = wire("openai_compat", "m", base_url=BASE, options={"auth_header": "X-Api-Key", "auth_scheme": ""})
    with pytest.raises(UpstreamError) as exc:  # the fake wants Bearer: a custom header is refused
        await w.run(ImageRequest(model="m", prompt="p"))
    assert exc.value.code == ErrorCode.upstream_auth
