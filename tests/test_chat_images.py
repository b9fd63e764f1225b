"""Chat Completions with image output, through the official `openai` SDK, against `imagegate serve`
(``--sandbox`` for the Google models, the plain server for ``test/test``) on loopback."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from tests.conftest import ImageHost, ServerProc, decode, server_env

BANANA = "Nano-Banana2"
IMAGE_AND_TEXT = {"modalities": ["image", "text"]}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, image_host: ImageHost) -> Iterator[ServerProc]:
    srv = ServerProc(
        tmp_path_factory.mktemp("chat-sandbox"),
        env=server_env(image_host, IMAGEGATE_SANDBOX_DELAY_MS="0"),
        args=["--sandbox"],
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(sandbox: ServerProc) -> openai.OpenAI:
    return openai.OpenAI(api_key=sandbox.create_key(), base_url=sandbox.url + "/v1", max_retries=0)


def _image(url: str) -> Image.Image:
    head, data = url.split(",", 1)
    assert head == "data:image/png;base64"
    return decode(base64.b64decode(data))


def _images(message: Any) -> list[Image.Image]:
    items = message.to_dict()["images"] if hasattr(message, "to_dict") else message["images"]
    assert all(item["type"] == "image_url" for item in items)
    return [_image(item["image_url"]["url"]) for item in items]


def _png_uri(size: tuple[int, int], color: tuple[int, int, int]) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_nano_banana_16_9_at_2k(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=BANANA,
        messages=[
            {"role": "system", "content": "you draw"},
            {"role": "user", "content": [{"type": "text", "text": "a lighthouse at dusk"}]},
        ],
        extra_body={**IMAGE_AND_TEXT, "image_config": {"aspect_ratio": "16:9", "image_size": "2K"}},
    )
    assert resp.object == "chat.completion" and resp.model == BANANA and resp.id.startswith("chatcmpl-")
    choice = resp.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    (img,) = _images(choice.message)
    w, h = img.size
    assert abs(w / h - 16 / 9) < 0.02 and 1800 <= max(w, h) <= 2800  # the 2K tier, not 1K or 4K
    extra = resp.to_dict()
    assert extra["cost"] == pytest.approx(0.101)
    assert resp.usage is not None and resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_defaults_and_n(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=BANANA, messages=[{"role": "user", "content": "two cats"}], n=2, extra_body={"modalities": ["image"]}
    )
    imgs = _images(resp.choices[0].message)
    assert len(imgs) == 2 and all(i.width == i.height and 900 <= i.width <= 1100 for i in imgs)  # 1:1 at 1K


def test_edit_with_a_data_uri(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=BANANA,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "add snow"},
                    {"type": "image_url", "image_url": {"url": _png_uri((300, 200), (200, 30, 30))}},
                ],
            }
        ],
        extra_body={**IMAGE_AND_TEXT, "image_config": {"aspect_ratio": "3:2"}},
    )
    (img,) = _images(resp.choices[0].message)
    assert abs(img.width / img.height - 1.5) < 0.02
    task = httpx.get(
        f"{client.base_url}tasks", headers={"Authorization": f"Bearer {client.api_key}"}, params={"limit": 1}
    ).json()["data"][0]
    assert task["id"] == resp.id.removeprefix("chatcmpl-") and task["mode"] == "edit"


def test_stream_delta_images(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=BANANA,
        messages=[{"role": "user", "content": "a red kite"}],
        stream=True,
        extra_body={**IMAGE_AND_TEXT, "image_config": {"aspect_ratio": "9:16", "image_size": "1K"}},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    with_images = [c for c in chunks if c.choices and (c.choices[0].delta.to_dict().get("images"))]
    assert len(with_images) == 1
    (img,) = _images(with_images[0].choices[0].delta.to_dict())
    assert abs(img.width / img.height - 9 / 16) < 0.02
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_wire_has_done(sandbox: ServerProc, client: openai.OpenAI) -> None:
    body = {"model": BANANA, "messages": [{"role": "user", "content": "x"}], "stream": True, "modalities": ["image"]}
    with httpx.stream(
        "POST", sandbox.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {client.api_key}"}
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [e for e in r.read().decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith((": ", "data: ")) for e in events)


@pytest.mark.parametrize(
    "extra,param",
    [
        ({"image_config": {"aspect_ratio": "5:7"}}, "image_config.aspect_ratio"),
        ({"image_config": {"image_size": "8K"}}, "image_config.image_size"),
        ({"image_config": {"aspect_ratio": 16}}, "image_config.aspect_ratio"),
        ({"modalities": ["text"]}, "modalities"),
        ({"modalities": ["audio"]}, "modalities"),
        ({"n": 9}, "n"),
    ],
)
def test_bad_requests_name_the_parameter(client: openai.OpenAI, extra: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=BANANA, messages=[{"role": "user", "content": "x"}], extra_body={**IMAGE_AND_TEXT, **extra}
        )
    assert isinstance(e.value.body, dict) and e.value.body["param"] == param


def test_stream_refusal_is_a_400_before_the_stream(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=BANANA,
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            extra_body={"image_config": {"image_size": "3K"}},
        )
    assert isinstance(e.value.body, dict) and e.value.body["param"] == "image_config.image_size"


def test_a_text_model_is_a_400_naming_image_models(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    assert isinstance(e.value.body, dict) and e.value.body["param"] == "model"
    assert BANANA in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=BANANA, messages=[{"role": "assistant", "content": "hi"}])
    assert isinstance(e.value.body, dict) and e.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=BANANA,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "not-an-image"}}]}],
        )
    assert isinstance(e.value.body, dict) and e.value.body["param"].startswith("messages[0].content[0]")


def test_models_mark_the_route(sandbox: ServerProc) -> None:
    data = httpx.get(sandbox.url + "/v1/models").json()["data"]
    marked = {m["id"]: m["chat_completions"] for m in data}
    assert marked[BANANA] is True


def test_plain_server_test_model(openai_client: openai.OpenAI) -> None:
    resp = openai_client.chat.completions.create(
        model="test/test",
        messages=[{"role": "user", "content": "a square"}],
        extra_body={"modalities": ["image"], "image_config": {"aspect_ratio": "4:3"}},
    )
    (img,) = _images(resp.choices[0].message)
    assert abs(img.width / img.height - 4 / 3) < 0.02


def _balance(server: ServerProc, key_name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "imagegate.cli", "keys", "list", "--data-dir", str(server.data_dir)],
        env={**server.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if key_name in ln)
    return line.split("│")[4].strip()


@pytest.mark.parametrize("stream", [False, True])
def test_charged_once_with_an_idempotency_key(server: ServerProc, stream: bool) -> None:
    name = f"chat-credits-{stream}"
    key = server.create_key(credits=0.05, name=name)
    client = openai.OpenAI(api_key=key, base_url=server.url + "/v1", max_retries=0)
    ids = set()
    for _ in range(2):
        resp = client.chat.completions.with_raw_response.create(
            model="test/priced",
            messages=[{"role": "user", "content": "one"}],
            stream=stream,
            extra_body={"modalities": ["image"]},
            extra_headers={"Idempotency-Key": f"chat-{stream}"},
        )
        ids.add(resp.headers["x-imagegate-task-id"])
        if stream:
            assert any(c.choices and c.choices[0].delta.to_dict().get("images") for c in resp.parse())
        else:
            assert len(resp.parse().choices[0].message.to_dict()["images"]) == 1
    assert len(ids) == 1
    assert _balance(server, name) == "0.0400"


def test_a_failed_task_is_an_openai_error(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "[sandbox:moderated] no"}]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=BANANA, messages=messages)
    assert isinstance(e.value.body, dict) and e.value.body["code"] == "content_policy_violation"
    stream = client.chat.completions.create(model=BANANA, messages=messages, stream=True)
    with pytest.raises(openai.APIError) as streamed:  # the stream had started: its error arrives as an event
        list(stream)
    assert "content_policy_violation" in str(streamed.value.body)


def test_stream_starts_before_the_image_is_ready(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The fake takes its time: the stream opens with an SSE comment, then the image arrives."""
    srv = ServerProc(
        tmp_path_factory.mktemp("chat-slow"), env={"IMAGEGATE_SANDBOX_DELAY_MS": "1500"}, args=["--sandbox"]
    )
    srv.start()
    try:
        body = {"model": BANANA, "messages": [{"role": "user", "content": "slow"}], "stream": True}
        headers = {"Authorization": f"Bearer {srv.create_key()}"}
        with httpx.stream("POST", srv.url + "/v1/chat/completions", json=body, headers=headers, timeout=60) as r:
            events = [e for e in r.read().decode().split("\n\n") if e]
    finally:
        srv.stop()
    assert events[0] == ": keep-alive"
    assert '"images"' in events[-3] and events[-1] == "data: [DONE]"
