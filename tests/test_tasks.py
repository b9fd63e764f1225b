"""The task resource: async create + poll, cancel (queued, running, finished), list, isolation.

The slow model is the fal fake in its own process (tests/fake_server.py), behind a gateway
with one worker, so a second task stays queued while the first one runs.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.async_support import Api, FakeUpstream, make_key, slow_server, wait_until
from tests.conftest import ServerProc

HANG = 10**6  # polls before the fake finishes: never, for our purposes


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    up = FakeUpstream("fal")
    yield up
    up.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[ServerProc]:
    srv = slow_server(tmp_path_factory.mktemp("gw-tasks"), upstream, workers=1).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(gw: ServerProc) -> Api:
    return Api(gw, make_key(gw))


@pytest.fixture()
def fast(upstream: FakeUpstream) -> Iterator[None]:
    upstream.config(polls_to_finish=2, gate="open")
    yield
    upstream.config(polls_to_finish=2, gate="open")


def create_async(api: Api, prompt: str, model: str = "test/slow") -> dict:
    r = api.post("/v1/images/generations?async=true", {"model": model, "prompt": prompt, "size": "256x256"})
    assert r.status_code == 202, r.text
    return r.json()


def test_async_create_then_poll_to_success(api: Api, fast: None) -> None:
    created = create_async(api, "a red kite")
    assert created["status"] in ("queued", "running") and created["urls"]["cancel"].endswith("/cancel")
    done = api.wait_status(created["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    legacy = api.get(f"/v1/images/generations/{created['id']}").json()
    strip = lambda v: {k: x for k, x in v.items() if k != "data"}  # noqa: E731 (URLs are re-signed per call)
    assert strip(legacy) == strip(done)
    img = Image.open(io.BytesIO(httpx.get(done["data"][0]["url"], timeout=10).content))
    assert img.size == (256, 256)


def test_cancel_queued_and_running(api: Api, upstream: FakeUpstream) -> None:
    upstream.config(polls_to_finish=HANG, gate="open")
    try:
        submits, polls = upstream.calls("submit"), upstream.calls("status")
        running = create_async(api, "runs forever")
        api.wait_status(running["id"], "running")
        wait_until(lambda: upstream.calls("status") > polls, what="the upstream job to be polled")
        queued = create_async(api, "waits its turn")
        assert queued["status"] == "queued" and queued["queue_position"] == 0

        r = api.post(f"/v1/tasks/{queued['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "canceled"
        assert r.json()["error"]["code"] == "canceled"

        cancels = upstream.calls("cancel")
        r = api.post(f"/v1/tasks/{running['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "canceled"
        assert upstream.calls("cancel") == cancels + 1  # the upstream job was told to stop

        again = api.post(f"/v1/tasks/{running['id']}/cancel")
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "conflict" and again.json()["error"]["param"] == "task_id"
        # the worker is free again, and the canceled queued task never reached the upstream
        upstream.config(polls_to_finish=2)
        nxt = create_async(api, "after the cancels")
        assert api.wait_status(nxt["id"], "succeeded", "failed")["status"] == "succeeded"
        assert upstream.calls("submit") == submits + 2
        assert api.task(queued["id"])["status"] == "canceled"
    finally:
        upstream.config(polls_to_finish=2, gate="open")


def test_finished_task_cannot_be_canceled(api: Api) -> None:
    r = api.post("/v1/images/generations", {"model": "test/test", "prompt": "sync one"})
    task_id = r.headers["x-imagegate-task-id"]
    c = api.post(f"/v1/tasks/{task_id}/cancel")
    assert c.status_code == 409 and c.json()["error"]["code"] == "conflict"
    assert api.task(task_id)["status"] == "succeeded"


def test_list_filters_and_pages(gw: ServerProc, fast: None) -> None:
    api = Api(gw, make_key(gw))
    ids = [
        api.post("/v1/images/generations", {"model": "test/test", "prompt": f"p{i}"}).headers["x-imagegate-task-id"]
        for i in range(5)
    ]  # sync requests are tasks too
    bad = create_async(api, "[sandbox:moderated] upstream refuses")["id"]
    assert api.wait_status(bad, "succeeded", "failed")["status"] == "failed"
    seen, cursor = [], None
    while True:
        r = api.get("/v1/tasks", params={"limit": 2, **({"after": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["object"] == "list" and len(page["data"]) <= 2
        seen += [t["id"] for t in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    listed = [i for i in seen if i in ids]
    assert listed == list(reversed(ids)) and len(seen) == len(set(seen))  # newest first, no repeats
    ok = api.get("/v1/tasks", params={"status": "succeeded", "limit": 100}).json()["data"]
    assert {t["id"] for t in ok} >= set(ids) and all(t["status"] == "succeeded" for t in ok)
    assert seen[0] == bad and bad not in {t["id"] for t in ok}
    failed = api.get("/v1/tasks", params={"status": "failed,canceled"}).json()["data"]
    assert [t["id"] for t in failed] == [bad] and failed[0]["error"]["code"]


@pytest.mark.parametrize(
    "params,param",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"status": "done"}, "status"),
        ({"after": "img_nope"}, "after"),
    ],
)
def test_list_bad_parameters(api: Api, params: dict, param: str) -> None:
    r = api.get("/v1/tasks", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and r.json()["error"]["message"]


def test_another_keys_task_is_not_found(gw: ServerProc, api: Api) -> None:
    r = api.post("/v1/images/generations", {"model": "test/test", "prompt": "mine"})
    task_id = r.headers["x-imagegate-task-id"]
    other = Api(gw, make_key(gw))
    for resp in (
        other.get(f"/v1/tasks/{task_id}"),
        other.post(f"/v1/tasks/{task_id}/cancel"),
        other.get(f"/v1/tasks/{task_id}/deliveries"),
        other.get(f"/v1/images/generations/{task_id}"),
    ):
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    assert other.get("/v1/tasks", params={"after": task_id}).status_code == 400
    assert task_id not in [t["id"] for t in other.get("/v1/tasks").json()["data"]]
    assert api.task(task_id)["status"] == "succeeded"
