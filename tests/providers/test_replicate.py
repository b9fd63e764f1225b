"""Contract tests: the Replicate adapter against the predictions API fake."""

from __future__ import annotations

import pytest

from imagegate.domain import ErrorCode, ImageRequest, UpstreamError

PRO = "black-forest-labs/flux-1.1-pro"
SCHNELL = "black-forest-labs/flux-schnell"


async def test_prefer_wait_success_needs_no_polling(wire, kit):
    w = wire("replicate", PRO)
    w.state.polls_to_finish = 0
    handle = await w.adapter.submit(
        ImageRequest(model="flux-1-pro", prompt="a boat", aspect_ratio="16:9", output_format="png")
    )
    assert handle["predictions"][0]["status"] == "succeeded"
    got = await w.adapter.poll(handle)
    assert got.done and w.state.calls["poll"] == 0  # only the download, no prediction GET
    img = got.result.images[0]
    assert kit.size_of(img.data) == (1344, 768) and kit.fmt_of(img.data) == "png"


async def test_polling_to_completion_with_string_output(wire, kit):
    w = wire("replicate", PRO)
    w.state.polls_to_finish = 3
    res = await w.run(ImageRequest(model="m", prompt="p", width=1000, height=1000, output_format="jpeg"))
    assert w.state.calls["poll"] == 3
    assert kit.size_of(res.images[0].data) == (1024, 1024) and res.images[0].mime == "image/jpeg"
    assert w.state.jobs["last_input"]["aspect_ratio"] == "1:1" and w.state.jobs["last_input"]["output_format"] == "jpg"


async def test_custom_size_option(wire, kit):
    w = wire("replicate", PRO, options={"custom_size": True})
    res = await w.run(ImageRequest(model="m", prompt="p", width=1200, height=700))
    assert kit.size_of(res.images[0].data) == (1216, 704)


async def test_n_fans_out_one_prediction_per_image(wire):
    w = wire("replicate", PRO)
    res = await w.run(ImageRequest(model="m", prompt="p", n=3, seed=1))
    assert len(res.images) == 3 and w.state.calls["submit"] == 3


async def test_schnell_uses_num_outputs_and_list_output(wire, kit):
    w = wire("replicate", SCHNELL, options={"n_field": "num_outputs", "max_n": 4})
    res = await w.run(ImageRequest(model="flux-schnell", prompt="p", n=6, aspect_ratio="9:16"))
    assert len(res.images) == 6
    assert w.state.calls["submit"] == 2  # 4 + 2
    assert kit.fmt_of(res.images[0].data) == "png"


async def test_version_endpoint_and_edit_input(wire, kit):
    w = wire("replicate", "black-forest-labs/flux-kontext-pro:abc123")
    res = await w.run(ImageRequest(model="m", prompt="edit", mode="edit", images=[kit.picture(640, 480)]))
    assert w.state.jobs["last_input"]["input_image"].startswith("data:image/png;base64,")
    assert kit.size_of(res.images[0].data) == (640, 480)


async def test_cancel_posts_to_cancel_url(wire):
    w = wire("replicate", PRO)
    w.state.polls_to_finish = 5
    handle = await w.adapter.submit(ImageRequest(model="m", prompt="p", n=2))
    await w.adapter.cancel(handle)
    assert w.state.calls["cancel"] == 2
    with pytest.raises(UpstreamError) as exc:
        await w.adapter.poll(handle)
    assert exc.value.code == ErrorCode.canceled


@pytest.mark.parametrize(
    "prompt,code,retry",
    [
        ("[sandbox:moderated] x", ErrorCode.content_policy_violation, None),
        ("[sandbox:error] x", ErrorCode.upstream_error, None),
        ("[sandbox:rate-limit] x", ErrorCode.upstream_rate_limited, 1.0),
    ],
)
async def test_triggers(wire, prompt, code, retry):
    w = wire("replicate", PRO)
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt=prompt))
    assert exc.value.code == code and exc.value.retry_after == retry


async def test_wrong_token(wire):
    w = wire("replicate", PRO, key="r8_wrong")
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="p"))
    assert exc.value.code == ErrorCode.upstream_auth and "r8_" not in exc.value.message


async def test_invalid_field_is_named(wire, kit):
    eight = kit.spec_for("replicate", SCHNELL).model_copy(update={"images_per_call": 8})
    w = wire("replicate", SCHNELL, spec=eight, options={"n_field": "num_outputs"})
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="p", n=6))
    assert exc.value.code == ErrorCode.upstream_bad_request and exc.value.param == "num_outputs"


@pytest.mark.parametrize(
    "status,body,headers,code,retry",
    [
        (
            402,
            {
                "title": "Insufficient credit",
                "detail": "You have insufficient credit to run this model.",
                "status": 402,
            },
            {},
            ErrorCode.upstream_quota,
            None,
        ),
        (
            429,
            {"title": "Request was throttled", "detail": "Expected available in 4 seconds.", "status": 429},
            {"Retry-After": "4"},
            ErrorCode.upstream_rate_limited,
            4.0,
        ),
        (500, {"title": "Internal Server Error", "detail": "boom", "status": 500}, {}, ErrorCode.upstream_error, None),
    ],
)
async def test_scripted_errors(wire, kit, status, body, headers, code, retry):
    w = wire("replicate", PRO)
    w.state.script.append(kit.once(status, body, headers))
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="p"))
    assert (exc.value.code, exc.value.retry_after) == (code, retry)
