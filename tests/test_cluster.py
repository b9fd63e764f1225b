"""The cluster profile under failure: 2 API + 2 worker processes on PostgreSQL, S3 and a sandbox upstream.

Every task is created through the API processes and run by the workers (the job engine);
processes are killed with SIGKILL mid-work. Nothing accepted may be lost, submitted upstream
twice, or reported to its webhook twice.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.async_support import Receiver, wait_until
from tests.cluster_support import Cluster, logs
from tests.conftest import fresh_pg_database
from tests.s3_server import S3Server

MODEL = "fal-ai/flux/dev"  # a poll-kind upstream with a cancel: the fal fake
BODY = {"model": MODEL, "prompt": "cluster", "size": "256x256"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    with fresh_pg_database() as pg_url:
        c = Cluster(root, pg_url, s3_server, config=Path(__file__).parent / "data" / "cluster-catalog.yaml")
        try:
            yield c.start()
        except Exception:
            print("\n".join(logs(root)))
            raise
        finally:
            c.stop()


@pytest.fixture(scope="module")
def key(cluster: Cluster) -> str:
    return cluster.key()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def create(cluster: Cluster, key: str, i: int, **extra: Any) -> httpx.Response:
    api = cluster.apis[i % len(cluster.apis)]
    return httpx.post(
        api.url + "/v1/images/generations?async=true",
        json={**BODY, "prompt": f"task {i}", **extra},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def create_many(cluster: Cluster, key: str, n: int, **extra: Any) -> list[str]:
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda i: create(cluster, key, i, **extra), range(n)))
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses if r.status_code != 202][:3]
    return [r.json()["id"] for r in responses]


def statuses(cluster: Cluster, ids: list[str]) -> dict[str, str]:
    rows = cluster.sql("SELECT id, status FROM tasks WHERE id = ANY(%s)", ids)
    return {r[0]: r[1] for r in rows}


def all_done(cluster: Cluster, ids: list[str], timeout: float = 120) -> dict[str, str]:
    def done() -> dict[str, str] | None:
        st = statuses(cluster, ids)
        return (
            st if len(st) == len(ids) and all(s in ("succeeded", "failed", "canceled") for s in st.values()) else None
        )

    return wait_until(done, timeout, f"{len(ids)} tasks to finish")


def submitted(cluster: Cluster, ids: list[str]) -> int:
    rows = cluster.sql("SELECT count(*) FROM tasks WHERE id = ANY(%s) AND upstream->>'stage' = 'submitted'", ids)
    return int(rows[0][0])


def test_a_tasks_over_both_apis_run_once_each(cluster: Cluster, key: str) -> None:
    before = cluster.submits("fal")
    ids = create_many(cluster, key, 200)
    final = all_done(cluster, ids, 240)
    assert set(final.values()) == {"succeeded"}, {s: list(final.values()).count(s) for s in set(final.values())}
    assert cluster.submits("fal") - before == 200  # exactly one upstream submission per task
    owners = cluster.sql("SELECT DISTINCT owner FROM tasks WHERE id = ANY(%s)", ids)
    assert len(owners) == 2  # both workers ran some


def test_e_a_link_signed_by_one_api_downloads_from_the_other(cluster: Cluster, key: str) -> None:
    [task_id] = create_many(cluster, key, 1)
    all_done(cluster, [task_id])
    a, b = cluster.apis
    task = httpx.get(f"{a.url}/v1/tasks/{task_id}", headers={"authorization": f"Bearer {key}"}, timeout=10).json()
    url = task["data"][0]["url"].replace(a.url, b.url)
    got = httpx.get(url, follow_redirects=True, timeout=30)
    assert got.status_code == 200
    assert Image.open(io.BytesIO(got.content)).size == (256, 256)
    # a sync request runs in the API process that took it, on the same shared storage and database
    r = httpx.post(
        b.url + "/v1/images/generations",
        json={"model": "test/test", "prompt": "sync", "size": "64x64"},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert httpx.get(r.json()["data"][0]["url"].replace(b.url, a.url), follow_redirects=True).status_code == 200


def test_f_cancel_on_one_api_stops_the_task_where_it_runs(cluster: Cluster, key: str) -> None:
    cluster.configure(provider="fal", polls_to_finish=100_000)
    try:
        [task_id] = create_many(cluster, key, 1)
        wait_until(lambda: submitted(cluster, [task_id]) == 1, 60, "the upstream submission")
        cancels = cluster.calls("fal", "cancel")
        other = cluster.apis[1]
        r = httpx.post(f"{other.url}/v1/tasks/{task_id}/cancel", headers={"authorization": f"Bearer {key}"}, timeout=30)
        assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
        assert cluster.calls("fal", "cancel") == cancels + 1  # the upstream job is canceled too
        time.sleep(3)  # the worker's run was aborted: nothing turns the task back into a success
        assert statuses(cluster, [task_id])[task_id] == "canceled"
        job = cluster.sql(
            "SELECT j.status FROM procrastinate_jobs j JOIN tasks t ON t.job_id = j.id WHERE t.id = %s", task_id
        )
        assert not job or job[0][0] in ("aborted", "cancelled", "failed", "succeeded"), job
    finally:
        cluster.configure(provider="fal", polls_to_finish=2)


def test_d_a_worker_started_mid_load_takes_no_task_a_live_worker_holds(cluster: Cluster, key: str) -> None:
    cluster.configure(provider="fal", polls_to_finish=20)
    third = None
    try:
        before = cluster.submits("fal")
        ids = create_many(cluster, key, 60)
        third = cluster.add_worker()
        final = all_done(cluster, ids, 240)
        assert set(final.values()) == {"succeeded"}
        attempts = cluster.sql("SELECT max(attempts) FROM tasks WHERE id = ANY(%s)", ids)[0][0]
        assert attempts == 1  # no task was claimed twice
        assert cluster.submits("fal") - before == 60
    finally:
        cluster.configure(provider="fal", polls_to_finish=2)
        if third is not None:
            assert third.stop() == 0  # SIGTERM drains and exits cleanly
            cluster.workers.remove(third)


def test_b_a_killed_worker_loses_nothing_pays_once_and_notifies_once(
    cluster: Cluster, key: str, receiver: Receiver
) -> None:
    cluster.configure(provider="fal", polls_to_finish=100_000)
    before = cluster.submits("fal")
    ids = create_many(cluster, key, 24, callback_url=receiver.url + "/ok")
    # every task submitted and its handle recorded: the kill lands while they poll
    wait_until(lambda: submitted(cluster, ids) == 24, 120, "all submissions to be recorded")
    victim = cluster.workers[0]
    victim.kill()
    cluster.configure(provider="fal", polls_to_finish=3)
    final = all_done(cluster, ids, 120)
    assert set(final.values()) == {"succeeded"}
    assert cluster.submits("fal") - before == 24  # the survivor polled the victim's jobs, never resubmitted
    taken = cluster.sql("SELECT count(*) FROM tasks WHERE id = ANY(%s) AND attempts = 2", ids)[0][0]
    assert taken > 0  # the victim held some of them
    wait_until(lambda: all(any(h["code"] < 300 for h in receiver.for_task(i)) for i in ids), 60, "webhooks")
    delivered: dict[str, set[str]] = defaultdict(set)
    for i in ids:
        for hit in receiver.for_task(i):
            assert json.loads(hit["body"])["status"] == "succeeded"
            if hit["code"] < 300:
                delivered[i].add(hit["headers"]["webhook-id"])
    assert all(len(delivered[i]) == 1 for i in ids), delivered
    cluster.workers.remove(victim)
    cluster.add_worker()


def test_c_a_killed_api_loses_no_acknowledged_task(cluster: Cluster, key: str) -> None:
    cluster.configure(provider="fal", polls_to_finish=5)
    victim = cluster.apis[0]
    acknowledged: list[str] = []
    stop = threading.Event()

    def keep_creating() -> None:
        i = 0
        while not stop.is_set():
            try:
                r = httpx.post(
                    victim.url + "/v1/images/generations?async=true",
                    json={**BODY, "prompt": f"c {i}"},
                    headers={"authorization": f"Bearer {key}"},
                    timeout=10,
                )
            except httpx.HTTPError:
                return  # the server is gone
            if r.status_code == 202:
                acknowledged.append(r.json()["id"])
            i += 1

    thread = threading.Thread(target=keep_creating)
    thread.start()
    wait_until(lambda: len(acknowledged) >= 15, 60, "some creates")
    victim.kill()
    stop.set()
    thread.join(30)
    final = all_done(cluster, acknowledged, 120)
    assert set(final.values()) == {"succeeded"}, final
    victim.start(60)
    cluster.configure(provider="fal", polls_to_finish=2)


def test_g_a_rate_limit_holds_across_api_processes(cluster: Cluster) -> None:
    limited = cluster.key("--rpm", "10")
    body = {"model": "test/test", "prompt": "rate", "size": "64x64"}

    def one(i: int) -> httpx.Response:
        api = cluster.apis[i % 2]
        return httpx.post(
            api.url + "/v1/images/generations", json=body, headers={"authorization": f"Bearer {limited}"}, timeout=30
        )

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(one, range(30)))
    codes = [r.status_code for r in answers]
    assert codes.count(200) == 10 and codes.count(429) == 20, codes
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["retry-after"]) >= 1


def test_h_a_circuit_opened_on_one_api_is_open_on_the_other(cluster: Cluster, key: str) -> None:
    a, b = cluster.apis
    auth = {"authorization": f"Bearer {key}"}
    for i in range(5):  # the breaker's threshold: five failed calls in a row (each after its retries)
        r = httpx.post(
            a.url + "/v1/images/generations",
            json={"model": "dall-e-3", "prompt": f"[sandbox:error] {i}"},
            headers=auth,
            timeout=60,
        )
        assert r.status_code >= 500, r.text
    time.sleep(2.5)  # peers adopt the shared circuits every second
    calls = cluster.calls("openai", "generations")
    r = httpx.post(
        b.url + "/v1/images/generations", json={"model": "dall-e-3", "prompt": "fine"}, headers=auth, timeout=60
    )
    assert r.status_code == 503 and "circuit open" in r.json()["error"]["message"], r.text
    assert cluster.calls("openai", "generations") == calls  # refused without calling the upstream


def test_i_a_deployment_cap_holds_across_workers(cluster: Cluster, key: str) -> None:
    cluster.configure(provider="fal", polls_to_finish=15)
    try:
        ids = create_many(cluster, key, 8, model="test/capped")
        seen: list[int] = []
        while not all(s in ("succeeded", "failed") for s in statuses(cluster, ids).values()):
            seen.append(
                int(cluster.sql("SELECT count(*) FROM deployment_slots WHERE deployment_id = 'capped-fal'")[0][0])
            )
            time.sleep(0.05)
        assert set(statuses(cluster, ids).values()) == {"succeeded"}
        assert max(seen) == 2, seen  # two workers, each of which alone would allow 2: still 2 in all
    finally:
        cluster.configure(provider="fal", polls_to_finish=2)
