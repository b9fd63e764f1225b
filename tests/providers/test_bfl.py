"""Contract tests: the BFL adapter (submit + poll) against the FLUX API fake."""

from __future__ import annotations

import pytest

from imagegate.catalog import builtin_specs
from imagegate.catalog.schema import SizeRule
from imagegate.catalog.sizing import fit_rule
from imagegate.domain import ErrorCode, ImageRequest, UpstreamError


def rule_of(model_id: str) -> SizeRule:
    """A FLUX model's catalog size rule: the bounds the adapter fits width/height into."""
    rule = next(s for s in builtin_specs() if s.id == model_id).size_rule
    assert rule is not None
    return rule


async def test_flux2_submit_poll_download_at_requested_size(wire, kit):
    w = wire("bfl", "flux-2-pro")
    w.state.polls_to_finish = 3
    handle = await w.adapter.submit(
        ImageRequest(model="flux-2-pro", prompt="a tower", width=1000, height=760, output_format="png", seed=5)
    )
    assert handle["tasks"][0]["polling_url"].startswith("https://api.eu2.bfl.ai/")  # another host: polled as given
    first = await w.adapter.poll(handle)
    assert not first.done and first.progress is not None and 0 < first.progress < 100
    res = await w.run(ImageRequest(model="flux-2-pro", prompt="a tower", width=1000, height=760, seed=5))
    assert kit.size_of(res.images[0].data) == (992, 752)  # multiples of 16
    assert w.state.jobs["last_body"]["width"] == 992 and w.state.jobs["last_body"]["seed"] == 5
    assert res.usage == {"cost": 3.0}


async def test_n_fans_out_into_tasks(wire, kit):
    w = wire("bfl", "flux-pro-1.1")
    res = await w.run(ImageRequest(model="flux-1-pro", prompt="p", n=3, resolution="2K", aspect_ratio="16:9"))
    assert len(res.images) == 3
    assert w.state.calls["submit"] == 3
    # 2K 16:9 is beyond FLUX1.1 [pro]'s 1440 cap: scaled down, multiples of 32
    assert {kit.size_of(i.data) for i in res.images} == {(1440, 800)}


async def test_handle_survives_a_new_adapter_instance(wire, kit):
    """A restarted runner resumes polling from the stored handle without submitting again."""
    w = wire("bfl", "flux-2-pro")
    handle = await w.adapter.submit(ImageRequest(model="m", prompt="p", n=2))
    fresh = type(w.adapter)(w.adapter.deployment, w.adapter.spec, w.client)
    result, seen, _ = await kit.follow(fresh, handle, max_polls=5)
    assert seen[-1].done and len(result.images) == 2
    assert w.state.calls["submit"] == 2


async def test_kontext_edit_sends_input_images_and_aspect_ratio(wire, kit):
    w = wire("bfl", "flux-kontext-pro")
    imgs = [kit.picture(512, 512, url="https://example.com/a.png"), kit.picture(256, 256)]
    res = await w.run(ImageRequest(model="m", prompt="make it night", mode="edit", images=imgs, aspect_ratio="16:9"))
    body = w.state.jobs["last_body"]
    assert body["inputs"] == ["input_image", "input_image_2"] and body["aspect_ratio"] == "16:9"
    assert kit.size_of(res.images[0].data) == (1344, 736)  # about 1 MP at 16:9


async def test_fill_converts_mask(wire, kit):
    w = wire("bfl", "flux-pro-1.0-fill")
    res = await w.run(
        ImageRequest(
            model="m", prompt="a door", mode="edit", images=[kit.picture(400, 400)], mask=kit.alpha_mask(400, 400)
        )
    )
    assert w.state.jobs["last_mask"] == {"mode": "L", "white_pixels": 100 * 100}
    assert kit.size_of(res.images[0].data) == (400, 400)


@pytest.mark.parametrize(
    "prompt,code",
    [
        ("[sandbox:moderated] x", ErrorCode.content_policy_violation),
        ("[sandbox:error] x", ErrorCode.upstream_error),
        ("[sandbox:rate-limit] x", ErrorCode.upstream_rate_limited),
    ],
)
async def test_triggers(wire, prompt, code):
    w = wire("bfl", "flux-2-pro")
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt=prompt))
    assert exc.value.code == code


async def test_expired_sample_url_is_refused_by_the_fake(wire):
    """The fake's signed sample URLs expire: downloading late fails (why we download at once)."""
    w = wire("bfl", "flux-2-pro")
    w.state.url_ttl = -1
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="p"))
    assert exc.value.code == ErrorCode.upstream_error and "download" in exc.value.message


async def test_unknown_status_keeps_pending_and_task_not_found_fails(wire, kit):
    w = wire("bfl", "flux-2-pro")
    handle = await w.adapter.submit(ImageRequest(model="m", prompt="p"))
    w.state.script.append(kit.once(200, {"id": "x", "status": "Queued", "result": None}))
    got = await w.adapter.poll(handle)
    assert not got.done
    bogus = {"tasks": [{"id": "nope", "polling_url": "https://api.bfl.ai/v1/get_result?id=nope"}], "format": "png"}
    with pytest.raises(UpstreamError):
        await w.adapter.poll(bogus)


async def test_foreign_polling_host_is_refused(wire):
    w = wire("bfl", "flux-2-pro")
    with pytest.raises(UpstreamError) as exc:
        await w.adapter.poll({"tasks": [{"id": "a", "polling_url": "https://evil.example/get?id=a"}]})
    assert "unexpected host" in exc.value.message
    assert w.state.calls["poll"] == 0


async def test_wrong_key(wire):
    w = wire("bfl", "flux-2-pro", key="bad")
    with pytest.raises(UpstreamError) as exc:
        await w.run(ImageRequest(model="m", prompt="p"))
    assert exc.value.code == ErrorCode.upstream_auth


@pytest.mark.parametrize(
    "status,body,headers,code,retry,param",
    [
        (402, {"detail": "Insufficient credits"}, {}, ErrorCode.upstream_quota, None, None),
        (429, {"detail": "Too many active tasks"}, {"Retry-After": "9"}, ErrorCode.upstream_rate_limited, 9.0, None),
        (
            422,
            {"detail": [{"loc": ["body", "width"], "msg": "bad width", "type": "value_error"}]},
            {},
            ErrorCode.upstream_bad_request,
            None,
            "width",
        ),
        (500, {"detail": "boom"}, {}, ErrorCode.upstream_error, None, None),
        (503, {"detail": "maintenance"}, {}, ErrorCode.upstream_unavailable, None, None),
    ],
)
async def test_scripted_submit_errors(wire, kit, status, body, headers, code, retry, param):
    w = wire("bfl", "flux-2-pro")
    w.state.script.append(kit.once(status, body, headers))
    with pytest.raises(UpstreamError) as exc:
        await w.adapter.submit(ImageRequest(model="m", prompt="p"))
    assert (exc.value.code, exc.value.retry_after, exc.value.param) == (code, retry, param)


def test_fit_rules():
    assert fit_rule(rule_of("flux-2-pro"), 4096, 4096) == (2000, 2000)  # multiples of 16 up to 4 MP
    assert fit_rule(rule_of("flux-1-pro"), 2048, 256) == (1440, 256)  # multiples of 32 in 256-1440
