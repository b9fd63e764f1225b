"""Idempotency-Key on create: replay, mismatch (422), concurrent duplicate (409), release on bad input;
on the OpenAI routes, apimodels' and Omni API's."""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from PIL import Image

from tests.async_support import Api, FakeUpstream, make_key, slow_server, wait_until
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
    assert first.status_code == 400 and first.json()["error"]["code"] == "content_policy_violation", first.text
    again = api.post("/v1/images/generations", body, headers=h)
    assert again.status_code == first.status_code and again.headers["idempotent-replayed"] == "true"
    assert again.json()["error"]["code"] == first.json()["error"]["code"]
    assert again.json() == first.json() and again.headers["x-imagegate-task-id"] == first.headers["x-imagegate-task-id"]


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


# -- the apimodels dialect: the same key rules, in its {code, msg, data} envelope ------------------

APIMODELS = "/api/v1/images/generations"


def envelope(r: httpx.Response) -> dict:
    out = r.json()
    assert r.status_code == out["code"], (r.status_code, out)  # the HTTP status is the envelope's code
    return out


def test_apimodels_replay_returns_the_same_task(api: Api, upstream: FakeUpstream) -> None:
    h = idem()
    submits = upstream.calls("submit")
    first = envelope(api.post(APIMODELS, BODY, headers=h))
    assert first["code"] == 200 and first["data"]["state"] == "completed", first
    again = api.post(APIMODELS, BODY, headers=h)
    assert again.headers["idempotent-replayed"] == "true"
    out = envelope(again)
    assert out["code"] == 200 and out["data"]["taskId"] == first["data"]["taskId"]
    assert out["data"]["state"] == "completed" and len(out["data"]["resultUrls"]) == 1
    assert upstream.calls("submit") == submits + 1
    tasks = api.get("/v1/tasks", params={"limit": 100}).json()["data"]
    assert sum(t["id"] == first["data"]["taskId"] for t in tasks) == 1


def test_apimodels_same_key_other_body_is_422(api: Api) -> None:
    h = idem()
    assert envelope(api.post(APIMODELS, BODY, headers=h))["code"] == 200
    out = envelope(api.post(APIMODELS, {**BODY, "prompt": "another boat"}, headers=h))
    assert out["code"] == 422 and out["error"] == "idempotency_mismatch"
    assert out["param"] == "Idempotency-Key" and out["data"] is None


def test_apimodels_duplicate_while_running_is_409(api: Api, upstream: FakeUpstream) -> None:
    h, results = idem(), []
    submits = upstream.calls("submit")
    upstream.config(gate="closed")  # the first request's submission is held at the fake
    try:
        first = threading.Thread(target=lambda: results.append(api.post(APIMODELS, BODY, headers=h)))
        first.start()
        wait_until(lambda: upstream.stats()["waiting"] >= 1, 30, "the first submission to reach the fake")
        out = envelope(api.post(APIMODELS, BODY, headers=h))
        assert out["code"] == 409 and out["error"] == "conflict" and out["param"] == "Idempotency-Key"
    finally:
        upstream.config(gate="open")
    first.join(60)
    assert envelope(results[0])["data"]["state"] == "completed"
    assert upstream.calls("submit") == submits + 1


# -- the Omni API dialect: replays carry the same upload slots ------------------------------------

OMNI = "/api/omni/tasks/create"
OMNI_BODY = {"model_group": "test/slow", "task_type": "text_to_image", "input": {"prompt": "a paper boat"}}


def test_omni_replay_returns_the_same_task(api: Api, upstream: FakeUpstream) -> None:
    h = idem()
    submits = upstream.calls("submit")
    first = api.post(OMNI, OMNI_BODY, headers=h)
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers, first.text
    task_id = first.json()["portal_task_id"]
    api.wait_status(task_id, "succeeded")
    again = api.post(OMNI, OMNI_BODY, headers=h)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["portal_task_id"] == task_id and again.json()["status"] == "succeeded"
    assert upstream.calls("submit") == submits + 1


def test_omni_replay_lists_the_same_upload_slots(api: Api) -> None:
    h = idem()
    body = {
        "model_group": "test/test",
        "task_type": "inpaint",
        "input": {"prompt": "fill it"},
        "files_to_upload": [
            {"field": "source_image", "filename": "in.png", "content_type": "image/png"},
            {"field": "mask", "filename": "mask.png", "content_type": "image/png"},
        ],
    }
    first = api.post(OMNI, body, headers=h)
    assert first.status_code == 200, first.text
    slots = first.json()["uploads"]
    assert [s["field"] for s in slots] == ["source_image", "mask"]
    again = api.post(OMNI, body, headers=h)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["portal_task_id"] == first.json()["portal_task_id"]
    assert again.json()["status"] == "awaiting_upload" and again.json()["uploads"] == slots
    # the replayed URLs are the working ones: the task starts once both are PUT
    for s, data in zip(again.json()["uploads"], (png("red"), png("white")), strict=True):
        assert httpx.put(s["upload_url"], content=data, headers={"content-type": "image/png"}).status_code == 200
    done = api.wait_status(first.json()["portal_task_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    later = api.post(OMNI, body, headers=h)
    assert later.json()["uploads"] == slots and later.json()["status"] == "succeeded"


def test_omni_same_key_other_body_is_422(api: Api) -> None:
    h = idem()
    assert api.post(OMNI, OMNI_BODY, headers=h).status_code == 200
    r = api.post(OMNI, {**OMNI_BODY, "input": {"prompt": "another boat"}}, headers=h)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "idempotency_mismatch" and r.json()["error"]["param"] == "Idempotency-Key"


class GatedImage:
    """A loopback image host whose answers wait until ``release()``: holds a create mid-way."""

    def __init__(self) -> None:
        gate = self
        self.opened, self.asked = threading.Event(), threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                gate.asked.set()
                gate.opened.wait(30)
                body = png("green")
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/in.png"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.opened.set()
        self.server.shutdown()


def test_omni_duplicate_while_creating_is_409(api: Api) -> None:
    gate, h, results = GatedImage(), idem(), []
    body = {
        "model_group": "test/test",
        "task_type": "single_image_edit",
        "input": {"prompt": "paint it", "source_image": gate.url},
    }
    try:
        first = threading.Thread(target=lambda: results.append(api.post(OMNI, body, headers=h)))
        first.start()
        assert gate.asked.wait(30), "the first create never fetched its input"
        r = api.post(OMNI, body, headers=h)  # the first holds the key, its task not yet created
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "conflict" and r.json()["error"]["param"] == "Idempotency-Key"
        gate.opened.set()
        first.join(60)
    finally:
        gate.close()
    assert results[0].status_code == 200, results[0].text
    again = api.post(OMNI, body, headers=h)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["portal_task_id"] == results[0].json()["portal_task_id"]
