"""Contract tests: the DashScope adapter against the DashScope fake."""

from __future__ import annotations

import pytest
from starlette.responses import JSONResponse

from imagegate.catalog.schema import SizeRule
from imagegate.domain import ErrorCode, ImageRequest, UpstreamError
from imagegate.providers.base import Provider
from imagegate.testing.sandbox import Sandbox

PROVIDER = "dashscope"
MODEL = "wan2.2-t2i-flash"
QWEN_SIZES = ["1664*928", "1472*1140", "1328*1328", "1140*1472", "928*1664"]


async def test_text_to_image_polls_to_completion(state, make, kit):
    state.polls_to_finish = 3
    result, seen, _ = await kit.trace(make(), ImageRequest(model="m", prompt="a temple", width=1280, height=720))
    assert [r.done for r in seen] == [False, False, True]
    assert seen[0].progress == 0  # PENDING
    assert seen[-1].progress == 100
    assert [kit.size_of(i.data) for i in result.images] == [(1280, 720)]
    assert state.calls["submit"] == 1


async def test_large_size_is_clamped_into_wan_limits(make, kit):
    result, _, _ = await kit.trace(make(), ImageRequest(model="m", prompt="x", width=2048, height=1024))
    w, h = kit.size_of(result.images[0].data)
    assert w <= 1440 and h >= 512 and w / h == pytest.approx(2.0, rel=0.03)


async def test_qwen_image_snaps_to_fixed_sizes_and_fans_out(state, make, kit):
    p = make(model="qwen-image", sizes=QWEN_SIZES, max_n=1)
    result, _, handle = await kit.trace(p, ImageRequest(model="m", prompt="poster", width=1920, height=1080, n=2))
    assert [kit.size_of(i.data) for i in result.images] == [(1664, 928), (1664, 928)]
    assert len(handle["task_ids"]) == 2
    assert state.calls["submit"] == 2


async def test_n_above_four_fans_out(state, make, kit):
    result, _, handle = await kit.trace(make(), ImageRequest(model="m", prompt="tiles", n=6, width=512, height=512))
    assert len(result.images) == 6
    assert state.calls["submit"] == 2  # 4 + 2
    assert len({i.data for i in result.images}) >= 4


async def test_partial_success_keeps_good_images(make, kit):
    result, _, _ = await kit.trace(
        make(), ImageRequest(model="m", prompt="set [dashscope:fail=0]", n=3, width=512, height=512)
    )
    assert len(result.images) == 2
    assert result.usage["failed_images"] == 1


async def test_failed_task_maps_output_code(make, kit):
    with pytest.raises(UpstreamError) as ei:
        await kit.trace(make(), ImageRequest(model="m", prompt="x [sandbox:error]"))
    assert ei.value.code == ErrorCode.upstream_error
    assert "InternalError" in ei.value.message


async def test_all_items_moderated(make, kit):
    with pytest.raises(UpstreamError) as ei:
        await kit.trace(make(), ImageRequest(model="m", prompt="x [dashscope:fail=0]", width=512, height=512))
    assert ei.value.code == ErrorCode.content_policy_violation


async def test_unknown_task(make):
    p = make()
    with pytest.raises(UpstreamError) as ei:
        await p.poll({"task_ids": ["nope"], "finished": {}})
    assert ei.value.code == ErrorCode.upstream_error and "unknown" in ei.value.message


async def test_wrong_key(make):
    with pytest.raises(UpstreamError) as ei:
        await make(key="sk-wrong").submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == ErrorCode.upstream_auth
    assert "sk-wrong" not in ei.value.message


@pytest.mark.parametrize(
    "trig,code", [("moderated", ErrorCode.content_policy_violation), ("rate-limit", ErrorCode.upstream_rate_limited)]
)
async def test_submit_triggers(state, make, trig, code):
    with pytest.raises(UpstreamError) as ei:
        await make().submit(ImageRequest(model="m", prompt=f"x [sandbox:{trig}]"))
    assert ei.value.code == code
    assert state.calls["submit"] == 0


@pytest.mark.parametrize(
    "status,code,expect",
    [
        (400, "Arrearage", ErrorCode.upstream_quota),
        (429, "Throttling.AllocationQuota", ErrorCode.upstream_rate_limited),
        (500, "InternalError", ErrorCode.upstream_error),
        (400, "InvalidParameter", ErrorCode.upstream_bad_request),
    ],
)
async def test_scripted_envelopes(state, make, status, code, expect):
    state.script.append(lambda req: JSONResponse({"request_id": "r", "code": code, "message": "m"}, status))
    with pytest.raises(UpstreamError) as ei:
        await make().submit(ImageRequest(model="m", prompt="x"))
    assert ei.value.code == expect


async def test_invalid_size_upstream_is_bad_request(make, kit):
    # qwen-image without the fixed-size list configured sends a size DashScope refuses
    qwen = kit.spec_for("dashscope", "qwen-image")
    loose = qwen.model_copy(update={"sizes": None, "size_rule": SizeRule(min_side=512, max_side=2048, multiple_of=16)})
    with pytest.raises(UpstreamError) as ei:
        await make(model="qwen-image", spec=loose).submit(ImageRequest(model="m", prompt="x", width=1024, height=1024))
    assert ei.value.code == ErrorCode.upstream_bad_request


# -- edit (sync multimodal) -----------------------------------------------------------------
EDIT_OPTS = {"api": "multimodal", "max_n": 6, "min_side": 512, "max_side": 2048, "max_pixels": 4194304}


def edit_bodies(sandbox: Sandbox) -> list[dict]:
    return sandbox.fake("dashscope")[0].state.edits


async def test_edit_sends_images_then_text_and_returns_in_submit(sandbox, state, make, kit):
    p = make(model="qwen-image-edit-plus", **EDIT_OPTS)
    req = ImageRequest(
        model="m",
        prompt="make it autumn",
        mode="edit",
        n=2,
        negative_prompt="blur",
        seed=5,
        images=[kit.picture(640, 480, url="https://example.com/a.png"), kit.picture(600, 900)],
    )
    handle = await p.submit(req)
    assert len(handle["task_ids"]) == 1 and set(handle["finished"]) == set(handle["task_ids"])
    [body] = edit_bodies(sandbox)
    assert body["model"] == "qwen-image-edit-plus"
    [msg] = body["input"]["messages"]
    assert msg["role"] == "user"
    first, second, text = msg["content"]
    assert first == {"image": "https://example.com/a.png"}  # a client URL is passed through
    assert second["image"].startswith("data:image/png;base64,")  # bytes go as a data URI
    assert text == {"text": "make it autumn"}
    assert body["parameters"] == {"n": 2, "watermark": False, "negative_prompt": "blur", "seed": 5}
    got = await p.poll(handle)  # no upstream query: the URLs are in the handle already
    assert got.done and len(got.result.images) == 2
    w, h = kit.size_of(got.result.images[0].data)
    assert abs(w / h - 600 / 900) < 0.05  # auto size follows the last input (decoded by the fake)
    assert state.calls["poll"] == 0


async def test_edit_size_is_mapped_to_w_star_h(sandbox, make, kit):
    p = make(model="qwen-image-edit-plus", **EDIT_OPTS)
    result, _, _ = await kit.trace(
        p, ImageRequest(model="m", prompt="x", mode="edit", width=1536, height=1024, images=[kit.picture(512, 512)])
    )
    assert edit_bodies(sandbox)[0]["parameters"]["size"] == "1536*1024"
    assert kit.size_of(result.images[0].data) == (1536, 1024)


async def test_edit_refuses_async_header_and_bad_inputs(sandbox):
    client = sandbox.client("dashscope")
    url = "https://dashscope.aliyuncs.com/api/v1/services/aigc/multimodal-generation/generation"
    auth = {"Authorization": "Bearer sandbox-key"}
    good = {
        "model": "qwen-image-edit-plus",
        "input": {"messages": [{"role": "user", "content": [{"image": "https://e.com/a.png"}, {"text": "x"}]}]},
    }
    r = await client.post(url, json=good, headers={**auth, "X-DashScope-Async": "enable"})
    assert r.status_code == 403 and r.json()["code"] == "AccessDenied"
    no_text = {**good, "input": {"messages": [{"role": "user", "content": [{"image": "https://e.com/a.png"}]}]}}
    four = {
        **good,
        "input": {"messages": [{"role": "user", "content": [{"image": "https://e.com/a.png"}] * 4 + [{"text": "x"}]}]},
    }
    raw_b64 = {**good, "input": {"messages": [{"role": "user", "content": [{"image": "iVBORw0KGgo="}, {"text": "x"}]}]}}
    for bad in (
        no_text,
        four,
        raw_b64,
        {**good, "parameters": {"n": 7}},
        {**good, "parameters": {"size": "4096*4096"}},
    ):
        r = await client.post(url, json=bad, headers=auth)
        assert r.status_code == 400 and r.json()["code"] == "InvalidParameter", bad
    r = await client.post(url, json=good, headers=auth)
    assert r.status_code == 200 and r.json()["output"]["choices"][0]["message"]["content"][0]["image"]


@pytest.mark.parametrize(
    "trig,code",
    [
        ("moderated", ErrorCode.content_policy_violation),
        ("rate-limit", ErrorCode.upstream_rate_limited),
        ("error", ErrorCode.upstream_error),
    ],
)
async def test_edit_errors(make, kit, trig, code):
    p = make(model="qwen-image-edit-plus", **EDIT_OPTS)
    with pytest.raises(UpstreamError) as ei:
        await p.submit(
            ImageRequest(model="m", prompt=f"x [sandbox:{trig}]", mode="edit", images=[kit.picture(512, 512)])
        )
    assert ei.value.code == code


async def test_edit_n_beyond_max_n_fans_out(sandbox, make, kit):
    edit = kit.spec_for("dashscope", "qwen-image-edit-plus").model_copy(update={"images_per_call": 2})
    p = make(model="qwen-image-edit-plus", spec=edit, **EDIT_OPTS)
    result, _, handle = await kit.trace(
        p, ImageRequest(model="m", prompt="x", mode="edit", n=3, images=[kit.picture(512, 512)])
    )
    assert len(result.images) == 3 and len(handle["task_ids"]) == 2
    assert sorted(b["parameters"]["n"] for b in edit_bodies(sandbox)) == [1, 2]


# -- cancel ------------------------------------------------------------------------------------
async def test_cancel_pending_task(state, make):
    p = make()
    assert type(p).cancel is not Provider.cancel  # DashScope can cancel a PENDING task
    handle = await p.submit(ImageRequest(model="m", prompt="x", width=512, height=512))
    await p.cancel(handle)
    assert state.calls["cancel"] == 1
    with pytest.raises(UpstreamError) as ei:
        await p.poll(handle)
    assert ei.value.code == ErrorCode.canceled


async def test_cancel_running_task_is_refused_and_it_finishes(state, make):
    state.polls_to_finish = 3
    p = make()
    handle = await p.submit(ImageRequest(model="m", prompt="x", width=512, height=512))
    await p.poll(handle)
    await p.poll(handle)  # RUNNING now
    await p.cancel(handle)  # 400 UnsupportedOperation: swallowed, nothing to stop
    got = await p.poll(handle)
    assert got.done and len(got.result.images) == 1


async def test_cancel_skips_finished_and_sync_entries(state, make, kit):
    p = make(model="qwen-image-edit-plus", **EDIT_OPTS)
    handle = await p.submit(ImageRequest(model="m", prompt="x", mode="edit", images=[kit.picture(512, 512)]))
    await p.cancel(handle)
    assert state.calls["cancel"] == 0


async def test_cancel_auth_failure_raises(make):
    p = make()
    handle = await p.submit(ImageRequest(model="m", prompt="x", width=512, height=512))
    with pytest.raises(UpstreamError) as ei:
        await make(key="sk-wrong").cancel(handle)
    assert ei.value.code == ErrorCode.upstream_auth
