"""Google's own `google-genai` SDK, unchanged, against `imagegate serve --sandbox` on loopback:
the Gemini dialect (``/v1beta/models/{model}:generateContent``) end to end."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from tests.conftest import ImageHost, ServerProc, decode, server_env

NANO = "gemini-3.1-flash-image-preview"  # an alias of Nano-Banana2


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, image_host: ImageHost) -> Iterator[ServerProc]:
    srv = ServerProc(
        tmp_path_factory.mktemp("gemini"),
        env=server_env(image_host, IMAGEGATE_SANDBOX_DELAY_MS="0"),
        args=["--sandbox"],
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def key(sandbox: ServerProc) -> str:
    return sandbox.create_key()


@pytest.fixture()
def client(sandbox: ServerProc, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=sandbox.url))


@pytest.fixture()
def beta(sandbox: ServerProc, key: str) -> genai.Client:
    """api_version v1beta, as Google's own examples and older SDK releases call it."""
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=sandbox.url, api_version="v1beta"))


def _images(resp: types.GenerateContentResponse) -> list[Image.Image]:
    out = []
    for cand in resp.candidates or []:
        for part in (cand.content.parts if cand.content else None) or []:
            if part.inline_data is not None and part.inline_data.data:
                out.append(decode(part.inline_data.data))
    return out


def _png(color: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def test_generate_aspect_ratio_and_tier(client: genai.Client, sandbox: ServerProc, key: str) -> None:
    resp = client.models.generate_content(
        model=NANO,
        contents="a lighthouse at dusk",
        config=types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio="16:9", image_size="2K"),
        ),
    )
    imgs = _images(resp)
    assert len(imgs) == 1
    assert imgs[0].size == (2752, 1536)  # Gemini 3's 16:9 at 2K
    assert imgs[0].format == "PNG"
    assert resp.candidates and resp.candidates[0].finish_reason == types.FinishReason.STOP
    assert resp.model_version == "Nano-Banana2"
    usage = resp.usage_metadata
    assert usage is not None and usage.total_token_count is not None
    assert usage.total_token_count == (usage.prompt_token_count or 0) + (usage.candidates_token_count or 0)
    # the same task as any other dialect's: listed, billed and stored
    listed = httpx.get(sandbox.url + "/v1/tasks", headers={"authorization": f"Bearer {key}"}).json()["data"]
    task = next(t for t in listed if t["id"] == resp.response_id)
    assert task["status"] == "succeeded" and task["model"] == "Nano-Banana2" and task["size"] == "2752x1536"
    assert task["cost"] == pytest.approx(0.101)


def test_edit_with_input_image(beta: genai.Client) -> None:
    photo = _png((200, 30, 30), (600, 400))
    resp = beta.models.generate_content(
        model=f"models/{NANO}",
        contents=[types.Part.from_bytes(data=photo, mime_type="image/png"), "make it snow"],
        config=types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"]),
    )
    imgs = _images(resp)
    assert len(imgs) == 1
    w, h = imgs[0].size
    assert w > h  # no ratio given: shaped like the 3:2 input
    assert resp.candidates and resp.candidates[0].content and resp.candidates[0].content.role == "model"


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_stream(sandbox: ServerProc, key: str, version: str) -> None:
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=sandbox.url, api_version=version))
    chunks = list(
        client.models.generate_content_stream(
            model="gemini-3-pro-image",
            contents="a fox in the snow",
            config=types.GenerateContentConfig(
                response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio="1:1", image_size="1K")
            ),
        )
    )
    imgs = [img for c in chunks for img in _images(c)]
    assert len(imgs) == 1 and imgs[0].size == (1024, 1024)
    assert chunks[-1].model_version == "gemini-3-pro-image"


def test_stream_raw_sse_and_query_key(sandbox: ServerProc, key: str) -> None:
    body = {"contents": [{"parts": [{"text": "a boat"}]}]}
    with httpx.stream(
        "POST",
        f"{sandbox.url}/v1beta/models/{NANO}:streamGenerateContent?alt=sse&key={key}",
        json=body,
        timeout=60,
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert len(lines) == 1 and lines[0].startswith("data: {")
    assert '"inlineData"' in lines[0]


def test_bad_aspect_ratio_is_400_naming_the_field(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(
            model=NANO,
            contents="x",
            config=types.GenerateContentConfig(
                response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio="7:3")
            ),
        )
    assert exc.value.code == 400 and exc.value.status == "INVALID_ARGUMENT"
    assert "generationConfig.imageConfig.aspectRatio" in (exc.value.message or "")


def test_bad_tier_and_text_only_are_400(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(
            model=NANO,
            contents="x",
            config=types.GenerateContentConfig(image_config=types.ImageConfig(image_size="8K")),
        )
    assert exc.value.code == 400 and "generationConfig.imageConfig.imageSize" in (exc.value.message or "")
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(
            model=NANO, contents="x", config=types.GenerateContentConfig(response_modalities=["TEXT"])
        )
    assert exc.value.code == 400 and "responseModalities" in (exc.value.message or "")


def test_non_image_inline_data_is_400(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(
            model=NANO, contents=[types.Part.from_bytes(data=b"%PDF-1.4", mime_type="application/pdf"), "x"]
        )
    assert exc.value.code == 400 and "contents[0].parts[0].inlineData.mimeType" in (exc.value.message or "")


def test_unknown_model_is_404(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(model="no-such-model", contents="x")
    assert exc.value.code == 404 and exc.value.status == "NOT_FOUND"


def test_bad_key_is_401(sandbox: ServerProc) -> None:
    bad = genai.Client(api_key="ig-not-a-key", http_options=types.HttpOptions(base_url=sandbox.url))
    with pytest.raises(errors.ClientError) as exc:
        bad.models.generate_content(model=NANO, contents="x")
    assert exc.value.code == 401 and exc.value.status == "UNAUTHENTICATED"


def test_models_list_and_get(beta: genai.Client) -> None:
    client = beta
    names = {m.name for m in client.models.list()}
    assert "models/Nano-Banana2" in names and "models/gemini-3-pro-image" in names
    got = client.models.get(model=NANO)
    assert got.name == "models/Nano-Banana2"
    assert got.supported_actions and "generateContent" in got.supported_actions
    with pytest.raises(errors.ClientError) as exc:
        client.models.get(model="no-such-model")
    assert exc.value.code == 404


def test_model_outside_the_keys_allowlist_is_403(sandbox: ServerProc) -> None:
    admin = sandbox.create_key(extra=["--admin"])
    made = httpx.post(
        sandbox.url + "/admin/v1/keys",
        headers={"authorization": f"Bearer {admin}"},
        json={"name": "only-pro", "allowed_models": ["gemini-3-pro-image"]},
    )
    assert made.status_code == 201, made.text
    client = genai.Client(api_key=made.json()["secret"], http_options=types.HttpOptions(base_url=sandbox.url))
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(model=NANO, contents="x")
    assert exc.value.code == 403 and exc.value.status == "PERMISSION_DENIED"
