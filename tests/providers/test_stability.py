"""Contract tests: the Stability adapter against the v2beta multipart fake."""

from __future__ import annotations

import base64

import pytest

from imagegate.domain import ErrorCode, ImageRequest, UpstreamError


@pytest.mark.parametrize("accept", ["image/*", "application/json"])
async def test_sd3_generation_both_accept_modes(wire, kit, accept):
    w = wire("stability", "sd3.5-large", options={"accept": accept})
    res = await w.run(
        ImageRequest(
            model="stable-diffusion-3",
            prompt="a castle",
            width=1024,
            height=768,
            output_format="jpeg",
            negative_prompt="fog",
        )
    )
    assert kit.size_of(res.images[0].data) == (1152, 896)  # 1024x768 -> nearest ratio 5:4
    assert kit.fmt_of(res.images[0].data) == "jpeg" and res.images[0].mime == "image/jpeg"
    last = w.state.jobs["last"]
    assert last["kind"] == "sd3"
    assert last["fields"]["model"] == "sd3.5-large" and last["fields"]["aspect_ratio"] == "5:4"
    assert last["fields"]["negative_prompt"] == "fog" and last["fields"]["mode"] == "text-to-image"


async def test_ultra_fans_out_n_with_distinct_seeds(wire, kit):
    w = wire("stability", "ultra")
    res = await w.run(ImageRequest(model="stable-image-ultra", prompt="p", n=3, aspect_ratio="16:9", seed=41))
    assert w.state.calls["submit"] == 3
    assert [kit.size_of(i.data) for i in res.images] == [(1344, 768)] * 3
    assert len({i.data for i in res.images}) == 3
    assert w.state.jobs["last"]["kind"] == "ultra"


async def test_core_aspect_ratio_snaps(wire, kit):
    w = wire("stability", "core")
    res = await w.run(ImageRequest(model="stable-image-core", prompt="p", aspect_ratio="2:1"))
    assert w.state.jobs["last"]["fields"]["aspect_ratio"] == "16:9"
    assert kit.size_of(res.images[0].data) == (1344, 768)


async def test_inpaint_converts_alpha_mask_to_white_means_edit(wire, kit):
    w = wire("stability", "ultra")
    img = kit.picture(640, 480)
    res = await w.run(ImageRequest(model="m", prompt="a hat", mode="edit", images=[img], mask=kit.alpha_mask(320, 240)))
    last = w.state.jobs["last"]
    assert last["kind"] == "inpaint" and last["files"] == ["image", "mask"]
    assert last["mask"]["mode"] == "L"
    assert last["mask"]["white_pixels"] == 160 * 120  # the transparent square, scaled to 640x480
    assert kit.size_of(res.images[0].data) == (640, 480)


async def test_sd3_image_to_image(wire, kit):
    w = wire("stability", "sd3.5-large", options={"strength": 0.5})
    res = await w.run(ImageRequest(model="m", prompt="p", mode="edit", images=[kit.picture(512, 768)]))
    f = w.state.jobs["last"]["fields"]
    assert f["mode"] == "image-to-image" and f["strength"] == "0.5" and "aspect_ratio" not in f
    assert kit.size_of(res.images[0].data) == (512, 768)


@pytest.mark.parametrize(
    "prompt,code,retry",
    [
        ("[sandbox:moderated] x", ErrorCode.content_policy_violation, None),
        ("[sandbox:error] x", ErrorCode.upstream_error, None),
        ("[sandbox:rate-limit] x", ErrorCode.upstream_rate_limited, 60.0),
    ],
)
async def test_triggers(wire, prompt, code, retry):
    w = wire("stability", "core")
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt=prompt))
    assert exc.value.code == code and exc.value.retry_after == retry


@pytest.mark.parametrize("accept", ["image/*", "application/json"])
async def test_content_filtered_finish_reason_is_moderation(wire, kit, accept):
    w = wire("stability", "core", options={"accept": accept})
    blurred = b"\x89PNG\r\n\x1a\n fake"
    if accept == "image/*":
        w.state.script.append(
            kit.once(200, raw=blurred, headers={"finish-reason": "CONTENT_FILTERED", "content-type": "image/png"})
        )
    else:
        w.state.script.append(
            kit.once(200, {"image": base64.b64encode(blurred).decode(), "finish_reason": "CONTENT_FILTERED", "seed": 1})
        )
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="p"))
    assert exc.value.code == ErrorCode.content_policy_violation


async def test_wrong_key(wire):
    w = wire("stability", "core", key="sk-wrong")
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="p"))
    assert exc.value.code == ErrorCode.upstream_auth and "sk-wrong" not in exc.value.message


@pytest.mark.parametrize(
    "status,body,headers,code,retry,param",
    [
        (
            402,
            {"id": "x", "name": "payment_required", "errors": ["lacks sufficient credits"]},
            {},
            ErrorCode.upstream_quota,
            None,
            None,
        ),
        (
            429,
            {"id": "x", "name": "rate_limit_exceeded", "errors": ["slow"]},
            {"retry-after": "12"},
            ErrorCode.upstream_rate_limited,
            12.0,
            None,
        ),
        (
            400,
            {"id": "x", "name": "bad_request", "errors": ["aspect_ratio: must be one of ..."]},
            {},
            ErrorCode.upstream_bad_request,
            None,
            "aspect_ratio",
        ),
        (
            413,
            {"id": "x", "name": "payload_too_large", "errors": ["body too large"]},
            {},
            ErrorCode.upstream_bad_request,
            None,
            None,
        ),
        (
            503,
            {"id": "x", "name": "service_unavailable", "errors": ["down"]},
            {},
            ErrorCode.upstream_unavailable,
            None,
            None,
        ),
    ],
)
async def test_scripted_errors(wire, kit, status, body, headers, code, retry, param):
    w = wire("stability", "core")
    w.state.script.append(kit.once(status, body, headers))
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="p"))
    assert (exc.value.code, exc.value.retry_after, exc.value.param) == (code, retry, param)
