"""SIGKILL mid-work: every accepted task finishes, each is submitted upstream once, each webhook lands.

The upstream is the fal fake in its own process (it outlives the gateway, as a real provider
would). Before the kill, the fake's gate holds new submissions (uncounted) and we wait until
every submission it did count is recorded in the task table; so the kill never lands between
"the upstream accepted" and "we wrote down the handle", the one window no restart can close.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook

from tests.async_support import Api, FakeUpstream, Receiver, make_key, slow_server, wait_until

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


def db_counts(path: str) -> dict[str, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
        rows = conn.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall()
        handles = conn.execute("SELECT count(*) FROM tasks WHERE upstream IS NOT NULL AND upstream != 'null'")
        return {**dict(rows), "handles": handles.fetchone()[0]}


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
        db = str(srv.data_dir / "imagegate.db")
        wait_until(lambda: db_counts(db)["handles"] == upstream.calls("submit"), what="handles to be recorded")
        before = db_counts(db)
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
