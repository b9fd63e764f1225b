"""What an operator sees: Prometheus metrics at /metrics, one JSON access-log line per request, request ids.

A real server (either profile) with the priced copy of the built-in model, the official ``openai``
client where it fits; the metrics are read with prometheus_client's own parser and compared
before and after, so every check is an exact difference, never a rate or a time.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from imagegate.api.access import AccessMiddleware, Note
from imagegate.observe import Metrics
from tests.async_support import wait_until
from tests.conftest import TEST_CATALOG, ServerProc

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    s = ServerProc(
        tmp_path_factory.mktemp("gw-observe"),
        env={"IMAGEGATE_LOG_FORMAT": "json"},
        args=["--config", str(TEST_CATALOG)],
    ).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def key(srv: ServerProc) -> tuple[str, str]:
    """(key id, secret) of a key with credits."""
    name = f"observe-{secrets.token_hex(3)}"
    secret = srv.create_key(credits=5.0, name=name)
    return srv.query("SELECT id FROM api_keys WHERE name = ?", name)[0][0], secret


def scrape(srv: ServerProc) -> Samples:
    r = httpx.get(srv.url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_metrics_count_requests_tasks_upstream_calls_credits_and_bytes(srv: ServerProc, key: tuple[str, str]) -> None:
    _, secret = key
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key=secret, max_retries=0)
    h = {"authorization": f"Bearer {secret}"}
    before = scrape(srv)

    img = client.images.generate(model="test/priced", prompt="a lighthouse", size="64x64", n=2)
    assert len(img.data) == 2
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="test/priced", prompt="too big", size="9999x9999")
    r = httpx.post(
        srv.url + "/v1/images/generations?async=true",
        headers=h,
        json={"model": "test/priced", "prompt": "later", "size": "64x64"},
    )
    assert r.status_code == 202, r.text
    task_id = r.json()["id"]
    polls = 0

    def done() -> bool:
        nonlocal polls
        polls += 1
        got = httpx.get(f"{srv.url}/v1/tasks/{task_id}", headers=h)
        assert got.status_code == 200, got.text
        return bool(got.json()["status"] == "succeeded")

    wait_until(done, what="the async task to succeed")
    after = scrape(srv)

    req = "imagegate_http_requests_total"
    gen = "/v1/images/generations"
    assert moved(before, after, req, method="POST", route=gen, status="200") == 1
    assert moved(before, after, req, method="POST", route=gen, status="400") == 1
    assert moved(before, after, req, method="POST", route=gen, status="202") == 1
    assert moved(before, after, req, method="GET", route="/v1/tasks/{task_id}", status="200") == polls
    assert not any("img_" in dict(labels).get("route", "") for _, labels in after)  # templates, not raw paths
    assert moved(before, after, "imagegate_http_request_seconds_count", route=gen) == 3

    assert moved(before, after, "imagegate_tasks_finished_total", model="test/priced", state="succeeded") == 2
    assert moved(before, after, "imagegate_tasks_finished_total", model="test/priced", state="failed") == 0
    assert moved(before, after, "imagegate_credits_spent_usd_total", model="test/priced") == pytest.approx(0.03)
    calls = ("imagegate_upstream_call_seconds_count", {"provider": "builtin", "deployment": "builtin-priced"})
    assert moved(before, after, calls[0], **calls[1], op="call") == 2
    assert moved(before, after, "imagegate_stored_bytes_total", kind="output") > 0
    assert value(after, "imagegate_circuit_state", deployment="builtin-priced", state="closed") == 1
    assert value(after, "imagegate_tasks_live", state="queued") == 0  # read at the scrape, nothing waits


def test_metrics_token_guards_the_endpoint(tmp_path: Path) -> None:
    s = ServerProc(tmp_path, env={"IMAGEGATE_METRICS_TOKEN": "scrape-me", "IMAGEGATE_LOG_FORMAT": "off"}).start()
    try:
        assert httpx.get(s.url + "/metrics").status_code == 401
        assert httpx.get(s.url + "/metrics", headers={"authorization": "Bearer nope"}).status_code == 401
        ok = httpx.get(s.url + "/metrics", headers={"authorization": "Bearer scrape-me"})
        assert ok.status_code == 200 and "imagegate_http_requests_total" in ok.text
    finally:
        s.stop()
    assert not [line for line in s.log.read_text().splitlines() if line.startswith('{"ts"')]  # off: no lines


# -- access log ----------------------------------------------------------------------------------------


def access_lines(srv: ServerProc) -> list[dict]:
    out = []
    for line in srv.log.read_text().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def test_one_json_line_per_request_with_its_request_id_and_no_secret(srv: ServerProc, key: tuple[str, str]) -> None:
    key_id, secret = key
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key=secret, max_retries=0)
    h = {"authorization": f"Bearer {secret}"}
    mine = "client-req-" + secrets.token_hex(4)
    raw = client.images.with_raw_response.generate(
        model="test/priced", prompt="logged", size="64x64", extra_headers={"X-Request-Id": mine}
    )
    task_id = raw.headers["x-imagegate-task-id"]
    answers = [
        (raw.headers["x-request-id"], raw.status_code),
        *(
            (r.headers["x-request-id"], r.status_code)
            for r in (
                httpx.get(f"{srv.url}/v1/tasks/{task_id}", headers=h),
                httpx.get(srv.url + "/v1/tasks", headers={"authorization": "Bearer ig-wrong"}),  # 401
                httpx.get(srv.url + "/no/such/route", headers={"x-request-id": "not a sane id\t!"}),  # 404
                httpx.post(srv.url + "/v1/images/generations", headers=h, json={"model": "test/priced"}),  # 400
            )
        ),
    ]
    assert answers[0] == (mine, 200)  # a sane incoming id is kept
    assert [s for _, s in answers] == [200, 200, 401, 404, 400]
    assert answers[3][0] != "not a sane id\t!" and answers[3][0]  # an odd one is replaced
    ids = [rid for rid, _ in answers]
    lines = wait_until(
        lambda: (got := [x for x in access_lines(srv) if x.get("request_id") in ids]) and len(got) >= len(ids) and got,
        what="the access-log lines",
    )
    by_id = {rid: [x for x in lines if x["request_id"] == rid] for rid in ids}
    assert all(len(v) == 1 for v in by_id.values()), by_id  # one line per request
    gen = by_id[mine][0]
    assert gen["method"] == "POST" and gen["route"] == "/v1/images/generations" and gen["status"] == 200
    assert gen["key_id"] == key_id and gen["model"] == "test/priced" and gen["task_id"] == task_id
    assert gen["cost"] == pytest.approx(0.01) and gen["latency_ms"] >= 0 and gen["ts"]
    poll = by_id[ids[1]][0]
    assert poll["route"] == "/v1/tasks/{task_id}" and poll["key_id"] == key_id
    assert by_id[ids[2]][0]["status"] == 401 and by_id[ids[2]][0]["key_id"] is None
    assert by_id[ids[3]][0]["route"] == "<unmatched>" and by_id[ids[3]][0]["status"] == 404
    assert by_id[ids[4]][0]["status"] == 400
    log = srv.log.read_text()
    assert secret not in log and secret.split("-", 1)[-1] not in log  # the key's secret is never logged


def test_the_text_format_is_one_plain_line() -> None:
    mw = AccessMiddleware(lambda *a: None, Metrics(), "text")  # type: ignore[arg-type,return-value]
    note = Note("rid-1", key_id="key_1", model="test/test", task_id="img_1", cost=0.02)
    line = mw._line("POST", "/v1/images/generations", 200, 0.0123, note)
    assert line == "rid-1 POST /v1/images/generations 200 12.3ms key=key_1 model=test/test task=img_1 cost=0.02"


def test_a_worker_serves_its_metrics_on_their_own_port() -> None:
    """``imagegate worker --metrics-port``: the same registry, from a thread, without the API."""
    from tests.conftest import free_port

    metrics = Metrics()
    metrics.task_finished("test/test", "succeeded", 20_000)
    port = free_port()
    stop = metrics.serve_http("127.0.0.1", port)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        stop()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }
    assert value(samples, "imagegate_tasks_finished_total", model="test/test", state="succeeded") == 1
    assert value(samples, "imagegate_credits_spent_usd_total", model="test/test") == pytest.approx(0.02)
