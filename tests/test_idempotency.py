"""Idempotency-Key on create: replay, mismatch (422), concurrent duplicate (409), release on bad input."""

from __future__ import annotations

import io
import secrets
import threading
from typing import Iterator

import pytest
from PIL import Image

from tests.async_support import Api, FakeUpstream, make_key, slow_server
from tests.conftest import ServerProc


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    up = FakeUpstream("fal")
    yield up
    up.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[ServerProc]:
    srv = slow_server(tmp_path_factory.mktemp("gw-idem"), upstream, workers=4).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(gw: ServerProc) -> Api:
    return Api(gw, make_key(gw))


def idem() -> dict[str, str]:
    return {"Idempotency-Key": secrets.token_hex(8)}


BODY = {"model": "test/slow", "prompt": "a paper boat", "size": "256x256"}


def test_async_replay_returns_the_same_task(api: Api, upstream: FakeUpstream) -> None:
    h = idem()
    submits = upstream.calls("submit")
    first = api.post("/v1/images/generations?async=true", BODY, headers=h)
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    api.wait_status(first.json()["id"], "succeeded")
    again = api.post("/v1/images/generations?async=true", BODY, headers=h)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["status"] == "succeeded"
    assert upstream.calls("submit") == submits + 1


def test_sync_replay_returns_the_same_images(api: Api, upstream: FakeUpstream) -> None:
    h = idem()
    submits = upstream.calls("submit")
    first = api.post("/v1/images/generations", BODY, headers=h)
    assert first.status_code == 200, first.text
    again = api.post("/v1/images/generations", BODY, headers=h)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-imagegate-task-id"] == first.headers["x-imagegate-task-id"]
    assert len(again.json()["data"]) == 1 and again.json()["data"][0]["url"]
    assert upstream.calls("submit") == submits + 1
    tasks = api.get("/v1/tasks", params={"limit": 100}).json()["data"]
    assert sum(t["id"] == first.headers["x-imagegate-task-id"] for t in tasks) == 1


def test_same_key_different_body_is_422(api: Api) -> None:
    h = idem()
    assert api.post("/v1/images/generations?async=true", BODY, headers=h).status_code == 202
    for other in ({**BODY, "prompt": "another boat"}, BODY):
        path = "/v1/images/generations" + ("?async=true" if other is not BODY else "")  # sync vs async differ too
        r = api.post(path, other, headers=h)
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "idempotency_mismatch" and err["param"] == "Idempotency-Key"


def test_concurrent_duplicate_gets_409(api: Api, upstream: FakeUpstream) -> None:
    upstream.config(polls_to_finish=60)  # ~3 s of polling: both requests overlap
    try:
        h, results = idem(), []
        submits = upstream.calls("submit")

        def fire() -> None:
            results.append(api.post("/v1/images/generations", BODY, headers=h))

        threads = [threading.Thread(target=fire) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 409], [r.text for r in results]
        conflict = next(r for r in results if r.status_code == 409).json()["error"]
        assert conflict["code"] == "conflict" and conflict["param"] == "Idempotency-Key"
        assert upstream.calls("submit") == submits + 1
    finally:
        upstream.config(polls_to_finish=2)


def test_bad_request_does_not_keep_the_key(api: Api) -> None:
    h = idem()
    bad = api.post("/v1/images/generations", {**BODY, "n": 99}, headers=h)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "n"
    # a rejected request stored nothing, so the key is free for the corrected request
    assert api.post("/v1/images/generations", {**BODY, "n": 1}, headers=h).status_code == 200


def test_failed_sync_task_replays_its_error(api: Api) -> None:
    h = idem()
    body = {**BODY, "prompt": "[sandbox:moderated] no"}
    first = api.post("/v1/images/generations", body, headers=h)
    assert 400 <= first.status_code < 600 and first.status_code != 500
    again = api.post("/v1/images/generations", body, headers=h)
    assert again.status_code == first.status_code and again.headers["idempotent-replayed"] == "true"
    assert again.json()["error"]["code"] == first.json()["error"]["code"]


def png(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buf, "PNG")
    return buf.getvalue()


def test_multipart_edit_fingerprints_file_bytes(api: Api) -> None:
    h = idem()
    form = {"model": "test/test", "prompt": "paint it"}
    first = api.post("/v1/images/edits", data=form, files={"image": ("a.png", png("red"), "image/png")}, headers=h)
    assert first.status_code == 200, first.text
    same = api.post("/v1/images/edits", data=form, files={"image": ("a.png", png("red"), "image/png")}, headers=h)
    assert same.status_code == 200 and same.headers["idempotent-replayed"] == "true"
    assert same.headers["x-imagegate-task-id"] == first.headers["x-imagegate-task-id"]
    other = api.post("/v1/images/edits", data=form, files={"image": ("a.png", png("blue"), "image/png")}, headers=h)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_mismatch"


@pytest.mark.parametrize("value", [b"x" * 256, "caf\u00e9".encode(), b""])
def test_bad_key_values(api: Api, value: bytes) -> None:
    r = api.post("/v1/images/generations", BODY, headers={"Idempotency-Key": value})  # type: ignore[dict-item]
    assert r.status_code == 400 and r.json()["error"]["param"] == "Idempotency-Key"


def test_keys_are_per_api_key(gw: ServerProc, api: Api) -> None:
    h = idem()
    mine = api.post("/v1/images/generations", BODY, headers=h)
    other = Api(gw, make_key(gw)).post("/v1/images/generations", {**BODY, "prompt": "theirs"}, headers=h)
    assert mine.status_code == other.status_code == 200 and "idempotent-replayed" not in other.headers
    assert mine.headers["x-imagegate-task-id"] != other.headers["x-imagegate-task-id"]
