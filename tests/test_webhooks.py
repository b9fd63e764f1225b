"""Signed webhooks: Standard Webhooks signatures, retries with one webhook-id, 410, restart."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from imagegate.settings import Settings
from tests.async_support import Api, Receiver, make_key, wait_until
from tests.conftest import ServerProc
from tests.webhook_support import age_rotation_of_server

ENV = {
    "IMAGEGATE_ALLOW_PRIVATE_NETWORKS": "1",
    "IMAGEGATE_WEBHOOK_BACKOFF_SCALE": "0.02",
    "IMAGEGATE_WEBHOOK_TIMEOUT": "1",
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def hook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    srv = ServerProc(tmp_path_factory.mktemp("gw-hooks"), env=ENV).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(hook_server: ServerProc) -> Api:
    return Api(hook_server, make_key(hook_server))


def create(api: Api, callback: str, prompt: str = "a lighthouse") -> str:
    r = api.post(
        "/v1/images/generations?async=true", {"model": "test/test", "prompt": prompt, "callback_url": callback}
    )
    assert r.status_code in (200, 202), r.text
    return r.json()["id"]


def deliveries(api: Api, task_id: str) -> list[dict]:
    r = api.get(f"/v1/tasks/{task_id}/deliveries")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def settled(api: Api, task_id: str) -> dict:
    """The task's one delivery once it is no longer pending."""
    return wait_until(
        lambda: (d := deliveries(api, task_id)) and d[0]["status"] != "pending" and d[0],
        what=f"the delivery of {task_id} to settle",
    )


def test_delivery_is_signed_and_carries_the_task_view(api: Api, receiver: Receiver) -> None:
    secret = api.get("/v1/webhooks/secret").json()["key"]
    assert secret.startswith("whsec_")
    task_id = create(api, receiver.url + "/ok")
    d = settled(api, task_id)
    assert d["status"] == "delivered" and d["attempt_count"] == 1
    assert d["attempts"][0]["status_code"] == 204 and d["attempts"][0]["duration_ms"] is not None
    [hit] = receiver.for_task(task_id)
    h = hit["headers"]
    assert h["webhook-id"] == d["id"] and h["content-type"] == "application/json"
    payload = Webhook(secret).verify(hit["body"], h)  # raises on a bad signature or stale timestamp
    assert payload["id"] == task_id and payload["status"] == "succeeded" and payload["data"][0]["url"]
    assert payload == {**api.task(task_id), "data": payload["data"]}  # same view as GET (URLs re-signed)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(hit["body"] + b" ", h)


def test_failed_attempts_are_retried_with_the_same_webhook_id(api: Api, receiver: Receiver) -> None:
    task_id = create(api, receiver.url + "/fail2")
    d = settled(api, task_id)
    assert d["status"] == "delivered"
    assert [a["status_code"] for a in d["attempts"]] == [500, 500, 200]
    assert [a["error"] for a in d["attempts"]] == ["HTTP 500", "HTTP 500", None]
    hits = receiver.for_task(task_id)
    assert [h["code"] for h in hits] == [500, 500, 200]
    assert {h["headers"]["webhook-id"] for h in hits} == {d["id"]}
    secret = api.get("/v1/webhooks/secret").json()["key"]
    for h in hits:
        Webhook(secret).verify(h["body"], h["headers"])


def test_410_stops_delivery(api: Api, receiver: Receiver) -> None:
    task_id = create(api, receiver.url + "/gone")
    d = settled(api, task_id)
    assert d["status"] == "stopped" and d["attempt_count"] == 1 and d["next_attempt_at"] is None
    assert [h["code"] for h in receiver.for_task(task_id)] == [410]


def test_rotated_secret_signs_later_deliveries(api: Api, receiver: Receiver) -> None:
    old = api.get("/v1/webhooks/secret").json()["key"]
    r = api.post("/v1/webhooks/secret/rotate")
    assert r.status_code == 200
    new = r.json()["key"]
    assert new != old and api.get("/v1/webhooks/secret").json()["key"] == new
    task_id = create(api, receiver.url + "/ok")
    settled(api, task_id)
    [hit] = receiver.for_task(task_id)
    Webhook(new).verify(hit["body"], hit["headers"])
    Webhook(old).verify(hit["body"], hit["headers"])  # the grace period: both secrets sign
    # once the grace period is over, only the new secret signs
    age_rotation_of_server(api.server, api.key, Settings().webhook_secret_grace + 60)
    task_id = create(api, receiver.url + "/ok")
    settled(api, task_id)
    [hit] = receiver.for_task(task_id)
    Webhook(new).verify(hit["body"], hit["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(hit["body"], hit["headers"])


def test_tasks_without_callback_have_no_deliveries(api: Api) -> None:
    r = api.post("/v1/images/generations", {"model": "test/test", "prompt": "no hook"})
    assert r.status_code == 200
    assert deliveries(api, r.headers["x-imagegate-task-id"]) == []


def test_secret_needs_a_key(hook_server: ServerProc) -> None:
    import httpx

    r = httpx.get(hook_server.url + "/v1/webhooks/secret")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_retries_stop_after_the_window(tmp_path, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    receiver.down = True
    # a window of a few retry gaps (0.02 s, 0.04 s, ...), so even a slow machine retries within it
    srv = ServerProc(tmp_path, env={**ENV, "IMAGEGATE_WEBHOOK_RETRY_WINDOW": "3"}).start()
    try:
        api = Api(srv, make_key(srv))
        task_id = create(api, receiver.url + "/down", prompt="window")
        d = settled(api, task_id)
        assert d["status"] == "failed" and d["attempt_count"] >= 2
        assert all(a["status_code"] == 503 for a in d["attempts"])
    finally:
        srv.stop()


def test_delivery_resumes_after_a_restart(tmp_path, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    """kill -9 while the receiver is down; on restart the schedule goes on with the same webhook-id."""
    receiver.down = True
    env = {**ENV, "IMAGEGATE_WEBHOOK_BACKOFF_SCALE": "0.2"}
    srv = ServerProc(tmp_path, env=env).start()
    try:
        api = Api(srv, make_key(srv))
        task_id = create(api, receiver.url + "/down", prompt="restart")
        wait_until(lambda: len(receiver.for_task(task_id)) >= 2, what="two failed attempts")
        srv.kill()
        failed = receiver.for_task(task_id)
        receiver.down = False
        srv.start()
        hits = wait_until(
            lambda: [h for h in receiver.for_task(task_id) if h["code"] == 200], what="the delivery after the restart"
        )
        assert {h["headers"]["webhook-id"] for h in failed + hits} == {failed[0]["headers"]["webhook-id"]}
        d = settled(api, task_id)
        assert d["status"] == "delivered" and d["attempts"][-1]["status_code"] == 200
        assert json.loads(hits[0]["body"])["status"] == "succeeded"
    finally:
        receiver.down = True
        srv.stop()
