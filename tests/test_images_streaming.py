"""Images API streaming (``stream: true``) with the official `openai` SDK against a sandbox server.

The OpenAI fake streams previews as the real API does; other providers' tasks stream their
finished images when they end. A streamed task is an ordinary durable task: stored, billed once,
listed, and finished even when its client leaves.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types import ImageGenCompletedEvent, ImageGenPartialImageEvent

from tests.conftest import ImageHost, ServerProc, decode, server_env

FLUX_PRICE_MICROS = 40_000  # flux-1-pro: $0.04 per image (catalog)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, image_host: ImageHost) -> Iterator[ServerProc]:
    env = server_env(image_host, IMAGEGATE_SANDBOX_DELAY_MS="300")
    srv = ServerProc(tmp_path_factory.mktemp("streaming"), env=env, args=["--sandbox"]).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def key(sandbox: ServerProc) -> str:
    return sandbox.create_key()


@pytest.fixture()
def client(sandbox: ServerProc, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=sandbox.url + "/v1", api_key=key, max_retries=0)


def _task(srv: ServerProc, key: str, task_id: str) -> dict[str, Any]:
    r = httpx.get(f"{srv.url}/v1/tasks/{task_id}", headers={"authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 200
    return dict(r.json())


def _wait_terminal(srv: ServerProc, key: str, task_id: str) -> dict[str, Any]:
    for _ in range(600):
        task = _task(srv, key, task_id)
        if task["status"] in ("succeeded", "failed", "canceled"):
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not end")


def test_generate_streams_previews_then_the_image(client: openai.OpenAI) -> None:
    events = list(
        client.images.generate(
            model="GPT-image-2",
            prompt="a lighthouse at dusk",
            size="1024x768",
            stream=True,
            partial_images=2,
            output_format="webp",
        )
    )
    types = [e.type for e in events]
    assert types == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    partials, done = events[:2], events[2]
    assert [p.partial_image_index for p in partials if isinstance(p, ImageGenPartialImageEvent)] == [0, 1]
    for e in events:
        img = decode(base64.b64decode(e.b64_json))
        assert img.size == (1024, 768) and img.format == "WEBP"
        assert e.size == "1024x768" and e.output_format == "webp" and isinstance(e.created_at, int)
    assert isinstance(done, ImageGenCompletedEvent) and done.usage.total_tokens > 0
    assert done.usage.input_tokens_details.text_tokens > 0


def test_a_model_without_previews_streams_each_image_when_done(client: openai.OpenAI) -> None:
    events = list(
        client.images.generate(
            model="flux-1-pro", prompt="two foxes", n=2, size="512x384", stream=True, partial_images=2
        )
    )
    assert [e.type for e in events] == ["image_generation.completed"] * 2
    imgs = [decode(base64.b64decode(e.b64_json)) for e in events]
    assert all(i.size == (512, 384) for i in imgs)


def test_edit_streams_image_edit_events(client: openai.OpenAI) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1024, 1024), (200, 30, 30)).save(buf, "PNG")
    events = list(
        client.images.edit(
            model="GPT-image-2",
            image=("red.png", buf.getvalue(), "image/png"),
            prompt="add snow",
            size="1024x1024",
            stream=True,
            partial_images=1,
        )
    )
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert decode(base64.b64decode(events[-1].b64_json)).size == (1024, 1024)


def test_the_streamed_task_is_stored_and_listed(sandbox: ServerProc, key: str) -> None:
    body = {"model": "flux-1-pro", "prompt": "a listed fox", "size": "512x512", "stream": True}
    with httpx.stream(
        "POST", sandbox.url + "/v1/images/generations", json=body, headers={"authorization": f"Bearer {key}"}
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        task_id = r.headers["x-imagegate-task-id"]
        text = r.read().decode()
    assert "event: image_generation.completed\ndata: " in text
    task = _task(sandbox, key, task_id)
    assert task["status"] == "succeeded" and "sig=" in task["data"][0]["url"]
    assert httpx.get(task["data"][0]["url"]).status_code == 200
    listed = httpx.get(sandbox.url + "/v1/tasks", headers={"authorization": f"Bearer {key}"}).json()
    assert task_id in [t["id"] for t in listed["data"]]


def test_client_leaving_mid_stream_the_task_ends_once_and_is_charged_once(sandbox: ServerProc) -> None:
    name = "stream-leaver"
    key = sandbox.create_key(credits=1.0, name=name)
    body = {"model": "flux-1-pro", "prompt": "a fox who leaves", "size": "512x512", "stream": True}
    with httpx.stream(
        "POST", sandbox.url + "/v1/images/generations", json=body, headers={"authorization": f"Bearer {key}"}
    ) as r:
        task_id = r.headers["x-imagegate-task-id"]
        first = next(r.iter_raw())
        assert first.startswith(b":")  # a keep-alive comment while the upstream works
    task = _wait_terminal(sandbox, key, task_id)  # the connection is closed: the task runs on
    assert task["status"] == "succeeded" and len(task["data"]) == 1
    rows = sandbox.query("SELECT status, cost_micros FROM tasks WHERE id = ?", task_id)
    assert rows == [("succeeded", FLUX_PRICE_MICROS)]
    (balance,) = sandbox.query("SELECT credits_micros FROM api_keys WHERE name = ?", name)[0]
    assert balance == 1_000_000 - FLUX_PRICE_MICROS


@pytest.mark.parametrize(
    "extra,param",
    [
        ({"partial_images": 4}, "partial_images"),
        ({"partial_images": "two"}, "partial_images"),
        ({"async": True}, "stream"),
        ({"size": "10x10"}, "size"),
        ({"response_format": "b64_ephemeral"}, "response_format"),
    ],
)
def test_a_bad_streaming_request_is_a_json_4xx(
    sandbox: ServerProc, key: str, extra: dict[str, Any], param: str
) -> None:
    body = {"model": "GPT-image-2", "prompt": "x", "stream": True, **extra}
    r = httpx.post(sandbox.url + "/v1/images/generations", json=body, headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["param"] == param


def test_a_bad_multipart_stream_field_names_it(sandbox: ServerProc, key: str) -> None:
    files = {"image": ("a.png", b"\x89PNG\r\n", "image/png")}
    r = httpx.post(
        sandbox.url + "/v1/images/edits",
        data={"model": "GPT-image-2", "prompt": "x", "stream": "maybe"},
        files=files,
        headers={"authorization": f"Bearer {key}"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream"


def test_a_failure_after_the_stream_started_is_an_error_event(client: openai.OpenAI) -> None:
    stream = client.images.generate(
        model="GPT-image-2", prompt="[sandbox:moderated] a thing", size="1024x1024", stream=True, partial_images=1
    )
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "content_policy_violation" and body["message"]


def test_imagerouter_paths_do_not_stream(sandbox: ServerProc, key: str) -> None:
    body = {"model": "flux-1-pro", "prompt": "unchanged", "size": "512x512", "stream": True}
    r = httpx.post(sandbox.url + "/v1/openai/images/generations", json=body, headers={"authorization": f"Bearer {key}"})
    assert r.status_code in (200, 202) and r.headers["content-type"].startswith("application/json")


def test_a_replayed_streaming_request_streams_the_same_task(sandbox: ServerProc, key: str) -> None:
    body = {"model": "flux-1-pro", "prompt": "a fox, once", "size": "512x512", "stream": True}
    headers = {"authorization": f"Bearer {key}", "Idempotency-Key": "stream-once-1"}
    first = httpx.post(sandbox.url + "/v1/images/generations", json=body, headers=headers, timeout=60)
    again = httpx.post(sandbox.url + "/v1/images/generations", json=body, headers=headers, timeout=60)
    assert first.headers["x-imagegate-task-id"] == again.headers["x-imagegate-task-id"]
    assert again.headers["idempotent-replayed"] == "true"
    for r in (first, again):
        assert r.text.count("event: image_generation.completed\n") == 1


def test_a_quiet_stream_is_kept_alive(tmp_path: Any, image_host: ImageHost) -> None:
    """The upstream takes 1.5 s; with a keep-alive due every 0.1 s of silence, several come first."""
    env = server_env(image_host, IMAGEGATE_SANDBOX_DELAY_MS="1500", IMAGEGATE_STREAM_KEEP_ALIVE="0.1")
    srv = ServerProc(tmp_path, env=env, args=["--sandbox"]).start()
    try:
        key = srv.create_key()
        body = {"model": "flux-1-pro", "prompt": "a slow fox", "size": "512x512", "stream": True}
        r = httpx.post(
            srv.url + "/v1/images/generations", json=body, headers={"authorization": f"Bearer {key}"}, timeout=60
        )
        before, _, after = r.text.partition("event: image_generation.completed")
        assert before.count(": keep-alive\n\n") >= 3 and after
    finally:
        srv.stop()
