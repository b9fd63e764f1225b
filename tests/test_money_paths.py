"""Money and security paths, each checked so that breaking it fails a test: refunds on failure and cancel,
a cancel that really stops the run, fewer (or more) images than asked, expired links, API keys.

Balances are read to the micro-dollar from the key's row. The gateway runs in process on SQLite and
local disk with every upstream its provider's fake (``tests/money_support.py``), so a test can hold an
upstream job open or script its answer. ``scripts/mutation_check.py`` runs these tests against
deliberately broken copies of the code.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from PIL import Image
from starlette.responses import JSONResponse

from imagegate.storage.signing import UrlSigner
from tests.money_support import InProcess, in_process, openai_answer, wait_for

HANG = 10**6  # polls before a fake job finishes: never, for these tests


@pytest.fixture()
async def gw(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with in_process(tmp_path) as g:
        yield g


# -- a failed generation costs nothing ---------------------------------------------------------------


async def test_failed_sync_generation_is_refunded_to_the_micro(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    r = await gw.post("/v1/images/generations", h, {"model": "dall-e-2", "prompt": "x [sandbox:error]", "n": 2})
    assert r.status_code >= 500 and r.json()["error"]["code"].startswith("upstream"), r.text
    task = await gw.task(r.headers["x-imagegate-task-id"])
    assert task.status == "failed" and task.reserved_micros > 0 and task.cost_micros == 0
    assert await gw.balance(key_id) == 1_000_000


async def test_failed_async_generation_is_refunded(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    body = {"model": "flux-2-pro", "prompt": "y [sandbox:moderated]", "n": 2, "size": "1024x1024"}
    r = await gw.post("/v1/images/generations?async=true", h, body)
    assert r.status_code == 202, r.text
    task = await gw.wait_status(r.json()["id"], "failed", "succeeded")
    assert task.status == "failed" and task.error_code == "content_policy_violation"
    assert await gw.balance(key_id) == 1_000_000


async def test_a_success_is_charged_its_price_and_no_more(gw: InProcess) -> None:
    """The control for the refund tests: the same path does take money when it delivers."""
    key_id, h = await gw.key(credits=1.0)
    r = await gw.post("/v1/images/generations", h, {"model": "flux-2-pro", "prompt": "ok", "n": 2})
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2 and r.json()["cost"] == pytest.approx(0.06)
    assert await gw.balance(key_id) == 1_000_000 - 60_000


# -- cancel: refunded, and the run really stops --------------------------------------------------------


async def _running_job(gw: InProcess, h: dict[str, str], provider: str, model: str) -> str:
    """An async task whose upstream job never finishes, once the upstream has been polled."""
    state = gw.fake(provider)
    state.polls_to_finish = HANG
    r = await gw.post("/v1/images/generations?async=true", h, {"model": model, "prompt": "forever", "n": 2})
    assert r.status_code == 202, r.text
    task_id: str = r.json()["id"]
    await gw.wait_status(task_id, "running")
    await wait_for(lambda: sum(state.polled.values()) > 0, what="the upstream job to be polled")
    return task_id


async def test_cancel_refunds_the_reservation(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    task_id = await _running_job(gw, h, "bfl", "flux-2-pro")
    assert await gw.balance(key_id) == 1_000_000 - 60_000  # reserved while it runs
    r = await gw.http.post(f"/v1/tasks/{task_id}/cancel", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
    assert await gw.balance(key_id) == 1_000_000
    assert (await gw.task(task_id)).cost_micros == 0


async def test_cancel_of_a_queued_task_refunds_it(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    running = await _running_job(gw, h, "bfl", "flux-2-pro")  # the one worker is busy with it
    r = await gw.post("/v1/images/generations?async=true", h, {"model": "flux-2-pro", "prompt": "waits", "n": 1})
    queued = r.json()["id"]
    assert (await gw.task(queued)).status == "queued"
    assert await gw.balance(key_id) == 1_000_000 - 90_000
    for task_id in (queued, running):
        assert (await gw.http.post(f"/v1/tasks/{task_id}/cancel", headers=h)).status_code == 200
    assert await gw.balance(key_id) == 1_000_000


async def test_cancel_stops_a_run_whose_upstream_has_no_cancel(gw: InProcess) -> None:
    """BFL offers no cancel: only our side can stop the run. It must stop polling and free its worker."""
    _, h = await gw.key(credits=None)
    bfl = gw.fake("bfl")
    task_id = await _running_job(gw, h, "bfl", "flux-2-pro")
    assert (await gw.http.post(f"/v1/tasks/{task_id}/cancel", headers=h)).status_code == 200
    await asyncio.sleep(0.2)  # a poll already on the wire may land
    polls = sum(bfl.polled.values())
    await asyncio.sleep(0.5)  # ten poll intervals of the sandbox router
    assert sum(bfl.polled.values()) == polls, "the canceled task is still polling its upstream"
    bfl.polls_to_finish = 2
    r = await gw.post("/v1/images/generations?async=true", h, {"model": "flux-2-pro", "prompt": "next", "n": 1})
    nxt = await gw.wait_status(r.json()["id"], "succeeded", "failed", timeout=10)
    assert nxt.status == "succeeded"  # the only worker was freed by the cancel
    assert (await gw.task(task_id)).status == "canceled"


# -- the images delivered are the images charged ------------------------------------------------------


async def _unit_cost(gw: InProcess, h: dict[str, str], body: dict[str, object]) -> float:
    r = await gw.post("/v1/images/generations", h, {**body, "n": 1})
    assert r.status_code == 200, r.text
    cost = r.json()["cost"]
    assert isinstance(cost, float) and cost > 0
    return cost


async def test_fewer_images_than_asked_are_charged_as_delivered(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    body = {"model": "dall-e-2", "prompt": "three cats", "size": "256x256", "response_format": "b64_json"}
    unit = await _unit_cost(gw, h, body)
    gw.fake("openai").script.append(openai_answer(1, 256, 256))  # the upstream makes one of the three
    r = await gw.post("/v1/images/generations", h, {**body, "n": 3})
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 1 and r.json()["cost"] == pytest.approx(unit)
    task = await gw.task(r.headers["x-imagegate-task-id"])
    assert task.result is not None and task.result["shortfall"] == {"requested": 3, "delivered": 1}
    assert task.cost_micros == round(unit * 1e6) and task.reserved_micros == 3 * task.cost_micros
    assert await gw.balance(key_id) == 1_000_000 - 2 * round(unit * 1e6)  # the control and the one image


async def test_more_images_than_asked_are_neither_kept_nor_charged(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    body = {"model": "dall-e-2", "prompt": "two cats", "size": "256x256", "response_format": "b64_json"}
    unit = await _unit_cost(gw, h, body)
    gw.fake("openai").script.append(openai_answer(4, 256, 256))
    r = await gw.post("/v1/images/generations", h, {**body, "n": 2})
    assert r.status_code == 200 and len(r.json()["data"]) == 2
    assert r.json()["cost"] == pytest.approx(2 * unit)
    assert "shortfall" not in ((await gw.task(r.headers["x-imagegate-task-id"])).result or {})
    assert await gw.balance(key_id) == 1_000_000 - 3 * round(unit * 1e6)


async def test_no_image_at_all_fails_refunded(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    gw.fake("openai").script.extend([openai_answer(0, 256, 256)] * 3)  # the first try and both retries
    r = await gw.post("/v1/images/generations", h, {"model": "dall-e-2", "prompt": "none", "size": "256x256"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error", r.text
    assert await gw.balance(key_id) == 1_000_000


async def test_credits_are_never_overdrawn(gw: InProcess) -> None:
    """Five requests that each cost $0.06 against $0.20: three pass, two are refused before any upstream call."""
    key_id, h = await gw.key(credits=0.2)
    body = {"model": "flux-2-pro", "prompt": "race", "n": 2}
    calls = gw.fake("bfl").calls["requests"]
    codes = sorted(
        r.status_code for r in await asyncio.gather(*(gw.post("/v1/images/generations", h, body) for _ in range(5)))
    )
    assert codes == [200, 200, 200, 402, 402]
    assert await gw.balance(key_id) == 200_000 - 3 * 60_000
    assert gw.fake("bfl").calls["requests"] == calls + 3 * 2  # BFL makes one image per request


# -- signed links expire ----------------------------------------------------------------------------


def _link(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path.rsplit("/", 1)[1], {k: v[0] for k, v in parse_qs(parts.query).items()}


async def test_a_link_past_its_expiry_is_refused_though_its_signature_is_good(gw: InProcess) -> None:
    _, h = await gw.key(credits=None)
    r = await gw.post("/v1/images/generations", h, {"model": "test/test", "prompt": "link", "size": "64x64"})
    name, q = _link(r.json()["data"][0]["url"])
    assert (await gw.http.get(f"/v1/files/{name}", params=q)).status_code == 200
    signer = UrlSigner("money-tests-secret", 3600)
    past = int(time.time()) - 5
    expired = {"expires": str(past), "sig": signer.mac(name, past)}
    got = await gw.http.get(f"/v1/files/{name}", params=expired)
    assert got.status_code == 403 and got.json()["error"]["param"] == "sig"
    future = int(time.time()) + 60
    fresh = await gw.http.get(f"/v1/files/{name}", params={"expires": str(future), "sig": signer.mac(name, future)})
    assert fresh.status_code == 200  # the signature scheme is right: only the expiry refused the first
    assert Image.open(io.BytesIO(fresh.content)).size == (64, 64)


def test_url_signer_refuses_expired_and_foreign_signatures() -> None:
    signer = UrlSigner("s3cret", 60)
    expires, sig = signer.sign("file_x.png", now=time.time() - 120)  # signed two minutes ago, for one
    assert signer.mac("file_x.png", expires) == sig and not signer.verify("file_x.png", str(expires), sig)
    expires, sig = signer.sign("file_x.png")
    assert signer.verify("file_x.png", str(expires), sig)
    assert not signer.verify("file_y.png", str(expires), sig)
    assert not UrlSigner("other", 60).verify("file_x.png", str(expires), sig)
    assert not UrlSigner("s3cret", 60, namespace="uploads").verify("file_x.png", str(expires), sig)


# -- API keys ---------------------------------------------------------------------------------------


async def test_requests_without_a_valid_live_key_are_401(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=None)
    body = {"model": "test/test", "prompt": "k", "size": "64x64"}
    assert (await gw.post("/v1/images/generations", h, body)).status_code == 200
    for headers in ({}, {"authorization": "Bearer ig-wrong"}, {"authorization": h["authorization"] + "x"}):
        r = await gw.post("/v1/images/generations", headers, body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert await gw.gw.keys.revoke(key_id)
    r = await gw.post("/v1/images/generations", h, body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


# -- what is not kept leaves no files behind ----------------------------------------------------------


def _outputs(gw: InProcess) -> list[Path]:
    root = gw.gw.settings.files_dir / "outputs"
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")] if root.exists() else []


async def test_a_run_that_fails_part_way_leaves_no_output_behind(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    good = openai_answer(1, 256, 256)

    def one_good_one_broken(request):  # type: ignore[no-untyped-def]
        answer = good(request)
        assert answer is not None
        data = orjson.loads(answer.body)
        data["data"].append({"b64_json": base64.b64encode(b"not an image").decode()})
        return JSONResponse(data)

    gw.fake("openai").script.append(one_good_one_broken)
    body = {"model": "dall-e-2", "prompt": "two cats", "size": "256x256", "n": 2, "response_format": "b64_json"}
    r = await gw.post("/v1/images/generations", h, body)
    assert r.status_code >= 500, r.text  # the second image cannot be decoded: the run fails, refunded
    assert await gw.balance(key_id) == 1_000_000
    assert _outputs(gw) == []  # the first image, stored before the second failed, is removed


async def test_a_run_canceled_before_it_settles_leaves_no_output_behind(
    gw: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id, h = await gw.key(credits=1.0)
    store = gw.gw.tasks.store
    real_succeed = store.succeed

    async def canceled_first(task, values, outputs):  # type: ignore[no-untyped-def]
        await store.cancel(task)  # a cancel lands between storing and settling
        return await real_succeed(task, values, outputs)

    monkeypatch.setattr(store, "succeed", canceled_first)
    body = {"model": "dall-e-2", "prompt": "a cat", "size": "256x256", "response_format": "b64_json"}
    r = await gw.post("/v1/images/generations?async=true", h, body)
    assert r.status_code == 202, r.text
    task = await gw.wait_status(r.json()["id"], "canceled")
    await wait_for(lambda: not _outputs(gw), what="the stored images to be removed")
    assert task.reserved_micros and await gw.balance(key_id) == 1_000_000


# -- billed by token ----------------------------------------------------------------------------------


async def test_a_model_billed_by_token_is_charged_the_tokens_it_used(gw: InProcess) -> None:
    """gemini-2.5-flash-image reserves its per-image price and settles what Google's usage says it cost."""
    key_id, h = await gw.key(credits=1.0)
    body = {"model": "gemini-2.5-flash-image", "prompt": "a lighthouse", "response_format": "b64_json"}
    r = await gw.post("/v1/images/generations", h, body)
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]  # the fake reports Google's counts: 12 prompt tokens, 1290 for the image
    assert (usage["input_tokens"], usage["output_tokens"]) == (12, 1290)
    spent = round((12 * 0.30 + 1290 * 30.0) / 1_000_000 * 1e6)  # micro-dollars: 38,704, not the listed 39,000
    task = await gw.task(r.headers["x-imagegate-task-id"])
    assert task.reserved_micros == 39_000 and task.cost_micros == spent
    assert r.json()["cost"] == pytest.approx(spent / 1e6)
    assert await gw.balance(key_id) == 1_000_000 - spent
    models = (await gw.http.get("/v1/models")).json()["data"]
    [entry] = [m for m in models if m["id"] == "gemini-2.5-flash-image"]
    assert entry["pricing"]["per_million_tokens"]["output"] == 30.0
