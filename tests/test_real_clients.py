"""Real clients, unchanged, against `imagegate serve --sandbox` on loopback: the openai Node and
Python SDKs, the Vercel AI SDK, LiteLLM's ``image_generation``, LangChain's ``DallEAPIWrapper``, and
the Standard Webhooks Node library verifying a callback the gateway sent.

The Node packages are the exact versions of ``tests/clients/package-lock.json`` (see
``tests/client_support.py``); the scripts beside it print what the client returned, and the
images are decoded here with Pillow.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from tests.async_support import Receiver, wait_until
from tests.client_support import installed, langchain_python, litellm_python, run_python, run_script
from tests.conftest import ImageHost, ServerProc, decode, server_env

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def node_home() -> Path:
    return installed()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, image_host: ImageHost) -> Iterator[ServerProc]:
    env = server_env(image_host, IMAGEGATE_SANDBOX_DELAY_MS="0", IMAGEGATE_WEBHOOK_BACKOFF_SCALE="0.02")
    srv = ServerProc(tmp_path_factory.mktemp("clients"), env=env, args=["--sandbox"]).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def key(sandbox: ServerProc) -> str:
    return sandbox.create_key()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An input PNG and a mask of its size (transparent where to edit)."""
    folder = tmp_path_factory.mktemp("pictures")
    Image.new("RGB", (512, 512), (30, 120, 200)).save(folder / "in.png")
    mask = Image.new("RGBA", (512, 512), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (128, 128, 384, 384))
    mask.save(folder / "mask.png")
    return {"IG_IMAGE": str(folder / "in.png"), "IG_MASK": str(folder / "mask.png")}


def client_env(srv: ServerProc, key: str, pictures: dict[str, str]) -> dict[str, str]:
    return {"IG_BASE_URL": srv.url, "IG_API_KEY": key, **pictures}


def b64_image(data: str | None) -> Image.Image:
    assert data, "no b64_json in the answer"
    return decode(base64.b64decode(data))


def assert_openai_usage(usage: dict[str, Any]) -> None:
    """OpenAI's usage object: token counts that add up, and the input's split."""
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    details = usage["input_tokens_details"]
    assert details["image_tokens"] + details["text_tokens"] == usage["input_tokens"]


def test_openai_node_sdk(node_home: Path, sandbox: ServerProc, key: str, pictures: dict[str, str]) -> None:
    out = run_script(node_home, "openai_node.mjs", client_env(sandbox, key, pictures))
    gpt = out["gpt"]  # no response_format asked: GPT Image answers base64, as OpenAI does
    assert gpt["url"] is None and b64_image(gpt["b64_json"]).size == (1024, 1024)
    assert_openai_usage(gpt["usage"])
    dalle = out["dalle"]  # DALL-E keeps its url default
    assert dalle["b64_json"] is None and dalle["url"].startswith(sandbox.url)
    assert decode(httpx.get(dalle["url"], timeout=30).content).size == (1024, 1024)
    assert b64_image(out["edit"]["b64_json"]).size == (1024, 1024)  # auto follows the square inputs
    bad = out["badN"]
    assert bad["badRequest"] and bad["name"] == "BadRequestError" and bad["status"] == 400 and bad["param"] == "n"
    fidelity = out["badFidelity"]
    assert fidelity["badRequest"] and fidelity["param"] == "input_fidelity"
    moderated = out["moderated"]
    assert moderated["badRequest"] and moderated["code"] == "content_policy_violation"
    assert "safety system" in moderated["message"] and "content policy" in moderated["message"]


def test_vercel_ai_sdk(node_home: Path, sandbox: ServerProc, key: str, pictures: dict[str, str]) -> None:
    out = run_script(node_home, "vercel_ai.mjs", client_env(sandbox, key, pictures))
    [fox] = out["test"]["images"]  # the SDK asks for b64_json where it knows no default
    assert b64_image(fox).size == (512, 384)
    gpt = out["gpt"]  # gpt-image-2 (an alias of GPT-image-2): nothing asked, base64 answered
    assert [b64_image(i).size for i in gpt["images"]] == [(1024, 1024)]
    assert gpt["usage"]["inputTokens"] > 0 and gpt["usage"]["totalTokens"] > gpt["usage"]["outputTokens"]
    edit = out["edit"]  # two images and a mask, multipart, as the SDK sends them
    assert [b64_image(i).size for i in edit["images"]] == [(1024, 1024)]
    assert edit["usage"]["totalTokens"] > 0
    rows = sandbox.query("SELECT request, result FROM tasks WHERE model = ? ORDER BY created_at", "GPT-image-2")
    request, result = rows[-1]
    assert request["mode"] == "edit" and len(request["images"]) == 2 and request.get("mask")
    assert result["usage"]["output_tokens"] > 0 and result["provider_usage"] == result["usage"]  # OpenAI's own


def test_openai_python_sdk_sees_openais_usage_defaults_and_moderation(sandbox: ServerProc, key: str) -> None:
    client = openai.OpenAI(base_url=sandbox.url + "/v1", api_key=key, max_retries=0)
    gemini = client.images.generate(model="Nano-Banana2", prompt="a bridge", size="1024x1024")
    assert gemini.usage is not None and gemini.usage.output_tokens == 1290  # Gemini's counts, OpenAI's names
    assert gemini.usage.input_tokens_details.text_tokens == gemini.usage.input_tokens
    assert gemini.data and gemini.data[0].url  # not a GPT Image model: url stays the default
    flux = client.images.generate(model="flux-1-pro", prompt="a bridge", size="1024x1024")
    assert flux.usage is None and "usage" not in flux.model_dump(exclude_none=True)  # BFL reports credits only
    router = openai.OpenAI(base_url=sandbox.url + "/v1/openai", api_key=key, max_retries=0)
    routed = router.images.generate(model="openai/gpt-image-1", prompt="a bridge", quality="low")
    assert routed.data and routed.data[0].url and not routed.data[0].b64_json  # ImageRouter's url default
    with pytest.raises(openai.BadRequestError) as exc:
        client.images.generate(model="Nano-Banana2", prompt="a bridge [sandbox:moderated]")
    assert exc.value.code == "content_policy_violation"
    assert "request was rejected as a result of the safety system" in exc.value.message  # LiteLLM's own test
    assert "content policy" in exc.value.message
    with pytest.raises(openai.BadRequestError) as exc:
        client.images.generate(model="dall-e-3", prompt="x", extra_body={"moderation": "low"})
    assert exc.value.param == "moderation"  # a GPT Image parameter: DALL-E refuses it by name


def test_litellm_image_generation(sandbox: ServerProc, key: str) -> None:
    out = run_python(litellm_python(), "litellm_client.py", {"IG_BASE_URL": sandbox.url, "IG_API_KEY": key})
    assert out["gpt"]["url"] is None and b64_image(out["gpt"]["b64_json"]).size == (1024, 1024)
    assert out["dalle"]["b64_json"] is None and out["dalle"]["url"].startswith(sandbox.url)
    assert out["moderated"] == {"name": "ContentPolicyViolationError", "content_policy": True}


def test_langchain_dalle_wrapper(sandbox: ServerProc, key: str) -> None:
    out = run_python(langchain_python(), "langchain_client.py", {"IG_BASE_URL": sandbox.url, "IG_API_KEY": key})
    [url] = out["urls"]  # dall-e-3 makes one image; the wrapper hands back its url
    assert url.startswith(sandbox.url)
    assert decode(httpx.get(url, timeout=30).content).size == (1792, 1024)
    request = sandbox.query("SELECT request FROM tasks WHERE model = ? ORDER BY created_at", "dall-e-3")[-1][0]
    assert request["quality"] == "hd"  # the wrapper's own field, sent as OpenAI's
    assert out["moderated"] == {"name": "BadRequestError", "code": "content_policy_violation"}


def test_standard_webhooks_node_verifies_a_callback(
    node_home: Path, sandbox: ServerProc, key: str, pictures: dict[str, str]
) -> None:
    receiver = Receiver()
    try:
        r = httpx.post(
            f"{sandbox.url}/v1/images/generations?async=true",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "test/test", "prompt": "a kite", "size": "64x64", "callback_url": receiver.url + "/ok"},
            timeout=60,
        )
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        [hit] = wait_until(lambda: receiver.for_task(task_id), 30, "the callback")
    finally:
        receiver.close()
    secret = httpx.get(sandbox.url + "/v1/webhooks/secret", headers={"Authorization": f"Bearer {key}"}).json()["key"]
    stdin = json.dumps({"secret": secret, "headers": hit["headers"], "body": hit["body"].decode()})
    out = run_script(node_home, "standard_webhooks.mjs", {}, stdin=stdin)
    assert out["payload"]["task_id"] == task_id and out["payload"]["status"] == "succeeded"
    assert out["tampered"] == "WebhookVerificationError"
    url = out["payload"]["data"][0]["url"]
    assert Image.open(io.BytesIO(httpx.get(url, timeout=30).content)).size == (64, 64)


def test_openai_node_sdk_streams_previews_then_the_image(
    node_home: Path, sandbox: ServerProc, key: str, pictures: dict[str, str]
) -> None:
    out = run_script(node_home, "openai_node_stream.mjs", client_env(sandbox, key, pictures))
    gen = out["generate"]
    assert [e["type"] for e in gen] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert [e["index"] for e in gen[:2]] == [0, 1]
    assert all(b64_image(e["b64_json"]).size == (1024, 1024) for e in gen)  # previews and the final image
    assert_openai_usage(gen[-1]["usage"])
    edit = out["edit"]
    assert [e["type"] for e in edit] == ["image_edit.partial_image", "image_edit.completed"]
    assert b64_image(edit[-1]["b64_json"]).size == (1024, 1024)  # GPT Image's square for a square input
