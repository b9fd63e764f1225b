"""SIGKILL mid-work: every accepted task finishes, each is submitted upstream once, each webhook lands.

The upstream is the fal fake in its own process (it outlives the gateway, as a real provider
would). Before the kill, the fake's gate holds new submissions (uncounted) and we wait until
every submission it did count is recorded in the task table; so the kill never lands between
"the upstream accepted" and "we wrote down the handle", the one window no restart can close.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.async_support import Api, FakeUpstream, Receiver, make_key, slow_server, wait_until
from tests.conftest import ServerProc

N_TASKS = 20


@pytest.fixture()
def upstream() -> Iterator[FakeUpstream]:
    up = FakeUpstream("fal")
    yield up
    up.close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def db_counts(srv: ServerProc) -> dict[str, int]:
    """Tasks by status, and how many have an upstream handle recorded (a submission the restart polls)."""
    rows = srv.query("SELECT status, upstream FROM tasks")
    counts: dict[str, int] = defaultdict(int)
    for status, upstream in rows:
        counts[status] += 1
        counts["handles"] += isinstance(upstream, dict) and bool(upstream.get("handle"))  # SQLite: JSON null is "null"
    return dict(counts)


def test_sigkill_mid_work_loses_nothing_and_pays_once(
    tmp_path,
    upstream: FakeUpstream,  # type: ignore[no-untyped-def]
    receiver: Receiver,
) -> None:
    # jobs never finish before the kill (however slow this machine is), so some tasks are surely
    # running and some queued when it lands; after the restart they finish in a few polls
    upstream.config(polls_to_finish=100_000)
    srv = slow_server(tmp_path, upstream, workers=5).start()
    try:
        api = Api(srv, make_key(srv))
        ids = []
        for i in range(N_TASKS):
            r = api.post(
                "/v1/images/generations?async=true",
                {
                    "model": "test/slow",
                    "prompt": f"durable {i}",
                    "size": "128x128",
                    "callback_url": receiver.url + "/ok",
                },
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        wait_until(lambda: upstream.calls("submit") >= 5, what="the first submissions")
        upstream.config(gate="closed")
        wait_until(lambda: db_counts(srv).get("handles", 0) == upstream.calls("submit"), what="handles to be recorded")
        before = db_counts(srv)
        assert before.get("queued", 0) > 0 and before.get("running", 0) > 0, before

        srv.kill()
        wait_until(lambda: upstream.stats()["waiting"] == 0, what="held submissions to be dropped")
        upstream.config(gate="open", polls_to_finish=15)
        srv.start()

        def all_done() -> bool:
            page = api.get("/v1/tasks", params={"limit": 100}).json()["data"]
            return len(page) == N_TASKS and all(t["status"] in ("succeeded", "failed") for t in page) and page

        final = wait_until(all_done, 60, "all tasks to finish after the restart")
        assert sorted(t["id"] for t in final) == sorted(ids)
        assert all(t["status"] == "succeeded" for t in final), [t.get("error") for t in final]
        assert upstream.calls("submit") == N_TASKS  # n=1 each: one upstream submission per task

        ok = lambda: all(any(h["code"] < 300 for h in receiver.for_task(i)) for i in ids)  # noqa: E731
        wait_until(ok, 60, "every webhook to arrive")
        secret = api.get("/v1/webhooks/secret").json()["key"]
        delivered: dict[str, set[str]] = defaultdict(set)
        for task_id in ids:
            for hit in receiver.for_task(task_id):
                Webhook(secret).verify(hit["body"], hit["headers"])
                assert json.loads(hit["body"])["status"] == "succeeded"
                if hit["code"] < 300:
                    delivered[task_id].add(hit["headers"]["webhook-id"])
        # a retry after the kill may repeat a message, but always under its one webhook-id
        assert all(len(delivered[i]) == 1 for i in ids), delivered
    finally:
        srv.stop()


def test_a_sync_request_cut_off_with_its_server(tmp_path, upstream: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    """The server of two sync requests dies. The one that reached the upstream is finished, charged
    once, findable in ``GET /v1/tasks``, and its ``Idempotency-Key`` retry returns it; the one that
    had not (it waited for the deployment's one slot) is canceled and refunded, never sent."""
    upstream.config(polls_to_finish=100_000)
    srv = slow_server(tmp_path, upstream, max_concurrency=1).start()
    try:
        key = srv.create_key(credits=1)  # $1; an image costs $0.01
        api = Api(srv, key)
        outcomes: dict[str, Any] = {}

        def sync_create(name: str, idem: str | None = None) -> None:
            headers = {**api.h, **({"idempotency-key": idem} if idem else {})}
            body = {"model": "test/slow", "prompt": f"cut off {name}", "size": "128x128"}
            try:
                outcomes[name] = httpx.post(srv.url + "/v1/images/generations", json=body, headers=headers, timeout=60)
            except httpx.HTTPError as exc:
                outcomes[name] = exc

        first = threading.Thread(target=sync_create, args=("first", "retry-me"))
        first.start()
        wait_until(lambda: db_counts(srv).get("handles", 0) == 1, what="the first request's upstream handle")
        second = threading.Thread(target=sync_create, args=("second",))
        second.start()
        wait_until(lambda: db_counts(srv).get("running", 0) == 2, what="the second request to wait for the slot")
        assert upstream.calls("submit") == 1

        srv.kill()
        first.join(30)
        second.join(30)
        assert isinstance(outcomes["first"], httpx.HTTPError) and isinstance(outcomes["second"], httpx.HTTPError)
        upstream.config(polls_to_finish=2)
        srv.start()

        def settled() -> list[dict[str, Any]] | None:
            page = api.get("/v1/tasks", params={"limit": 10}).json()["data"]
            return page if len(page) == 2 and all(t["status"] not in ("queued", "running") for t in page) else None

        tasks = {t["id"]: t for t in wait_until(settled, 60, "both tasks to settle")}
        done, dropped = (tasks[row[0]] for row in srv.query("SELECT id FROM tasks ORDER BY seq"))
        assert done["status"] == "succeeded", done
        assert dropped["status"] == "canceled" and dropped["error"]["code"] == "interrupted", dropped
        assert upstream.calls("submit") == 1  # the first was polled to its end, the second never sent

        [(charged,)] = srv.query("SELECT cost_micros FROM tasks WHERE id = ?", done["id"])
        [(refunded,)] = srv.query("SELECT cost_micros FROM tasks WHERE id = ?", dropped["id"])
        [(credits,)] = srv.query("SELECT credits_micros FROM api_keys")
        assert (charged, refunded, credits) == (10_000, 0, 1_000_000 - 10_000)

        # the client saw only a dropped connection; its retry with the same key gets the result
        again = httpx.post(
            srv.url + "/v1/images/generations",
            json={"model": "test/slow", "prompt": "cut off first", "size": "128x128"},
            headers={**api.h, "idempotency-key": "retry-me"},
            timeout=30,
        )
        assert again.status_code == 200, again.text
        assert [d["url"].split("?")[0] for d in again.json()["data"]] == [
            d["url"].split("?")[0] for d in api.get(f"/v1/tasks/{done['id']}").json()["data"]
        ]
        assert upstream.calls("submit") == 1
        [(credits_after,)] = srv.query("SELECT credits_micros FROM api_keys")
        assert credits_after == credits
    finally:
        srv.stop()
