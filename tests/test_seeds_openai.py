"""Every request example of the OmniaKey (001) and ImageRouter (002) pages, as written, against
`imagegate serve --sandbox` on loopback (only host and key replaced)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import openai
import pytest
from PIL import Image

from imagegate.db.keys import hash_key
from tests.conftest import ImageHost, ServerProc, decode, server_env


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, image_host: ImageHost) -> Iterator[ServerProc]:
    srv = ServerProc(
        tmp_path_factory.mktemp("sandbox"),
        env=server_env(image_host, IMAGEGATE_SANDBOX_DELAY_MS="0"),
        args=["--sandbox"],
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def key(sandbox: ServerProc) -> str:
    return sandbox.create_key()


def fetch(url: str) -> Image.Image:
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200, r.text
    return decode(r.content)


# -- 001 OmniaKey: plain OpenAI SDK ------------------------------------------------------------


def test_001_dalle3_hd_url_with_revised_prompt(sandbox: ServerProc, key: str) -> None:
    client = openai.OpenAI(api_key=key, base_url=sandbox.url + "/v1")
    response = client.images.generate(
        model="dall-e-3",
        prompt="A serene mountain landscape at sunset, digital art style",
        n=1,
        size="1024x1024",
        quality="hd",
    )
    assert response.created > 0
    assert response.data[0].url and response.data[0].revised_prompt
    assert fetch(response.data[0].url).size == (1024, 1024)


def test_001_b64_and_model_limits(sandbox: ServerProc, key: str) -> None:
    client = openai.OpenAI(api_key=key, base_url=sandbox.url + "/v1", max_retries=0)
    r = client.images.generate(
        model="dall-e-3", prompt="wide", size="1792x1024", style="natural", response_format="b64_json"
    )
    assert decode(base64.b64decode(r.data[0].b64_json)).size == (1792, 1024)
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="dall-e-3", prompt="x", n=2)
    assert e.value.body["param"] == "n"
    r = client.images.generate(model="dall-e-2", prompt="batch", n=4, size="256x256", response_format="b64_json")
    assert [decode(base64.b64decode(d.b64_json)).size for d in r.data] == [(256, 256)] * 4
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="dall-e-2", prompt="x", size="1792x1024")
    assert e.value.body["param"] == "size"
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="dall-e-2", prompt="x", quality="hd")
    assert e.value.body["param"] == "quality"


@pytest.mark.parametrize(
    "model,size",
    [
        ("stable-diffusion-3", "768x1024"),
        ("stable-diffusion-3", "1024x768"),
        ("flux-1-pro", "1024x1024"),
        ("midjourney-v6", "1024x1024"),
    ],
)
def test_001_other_models(sandbox: ServerProc, key: str, model: str, size: str) -> None:
    client = openai.OpenAI(api_key=key, base_url=sandbox.url + "/v1", max_retries=0)
    r = client.images.generate(model=model, prompt="A serene mountain landscape", size=size, response_format="b64_json")
    img = decode(base64.b64decode(r.data[0].b64_json))
    w, h = map(int, size.split("x"))
    assert abs(img.size[0] / img.size[1] - w / h) < 0.05, img.size


# -- 002 ImageRouter ---------------------------------------------------------------------------


def test_002_json_generation_with_image_url(sandbox: ServerProc, key: str, image_host: ImageHost) -> None:
    r = httpx.post(
        sandbox.url + "/v1/openai/images/generations",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "prompt": "YOUR_PROMPT",
            "model": "test/test",
            "quality": "auto",
            "size": "auto",
            "response_format": "url",
            "output_format": "webp",
            "image": "https://example.com/your_image.jpg",
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"created", "data", "latency", "cost"}
    assert isinstance(body["latency"], int) and body["cost"] == 0
    img = fetch(body["data"][0]["url"])
    assert img.format == "WEBP" and img.size == (640, 480)  # auto size on an edit: the input's size
    assert "/your_image.jpg" in image_host.hits


def _webp(color: tuple[int, int, int, int], size: tuple[int, int] = (512, 512)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", size, color).save(buf, "WEBP", lossless=True)
    return buf.getvalue()


def test_002_form_data_edit(sandbox: ServerProc, key: str) -> None:
    mask = Image.new("RGBA", (512, 512), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (100, 100, 300, 300))
    mbuf = io.BytesIO()
    mask.save(mbuf, "WEBP", lossless=True)
    r = httpx.post(
        sandbox.url + "/v1/openai/images/edits",
        headers={"Authorization": f"Bearer {key}"},
        data={
            "prompt": "YOUR_PROMPT",
            "model": "openai/gpt-image-1",
            "quality": "auto",
            "size": "auto",
            "response_format": "url",
            "output_format": "webp",
        },
        files=[
            ("image[]", ("your_image1.webp", _webp((200, 0, 0, 255)), "image/webp")),
            ("image[]", ("your_image2.webp", _webp((0, 200, 0, 255)), "image/webp")),
            ("mask[]", ("your_mask.webp", mbuf.getvalue(), "image/webp")),
        ],
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"][0]["url"].split("?")[0].endswith(".webp")
    assert fetch(body["data"][0]["url"]).format == "WEBP"
    assert body["cost"] > 0 and body["latency"] >= 0


def test_002_same_handler_two_paths_and_b64_ephemeral(sandbox: ServerProc, key: str) -> None:
    for path in ("/v1/openai/images/generations", "/v1/openai/images/edits"):
        r = httpx.post(
            sandbox.url + path,
            headers={"Authorization": f"Bearer {key}"},
            json={"prompt": "p", "model": "test/test", "response_format": "b64_ephemeral", "size": "128x96"},
        )
        assert r.status_code == 200, (path, r.text)
        img = decode(base64.b64decode(r.json()["data"][0]["b64_json"]))
        assert img.format == "WEBP" and img.size == (128, 96)  # webp is the default on these paths
    # elsewhere png stays the default
    r = httpx.post(
        sandbox.url + "/v1/images/generations",
        headers={"Authorization": f"Bearer {key}"},
        json={"prompt": "p", "model": "test/test", "response_format": "b64_json", "size": "64x64"},
    )
    assert decode(base64.b64decode(r.json()["data"][0]["b64_json"])).format == "PNG"


def test_002_data_uri_and_array_of_images(sandbox: ServerProc, key: str, image_host: ImageHost) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 20, 30)).save(buf, "PNG")
    data_uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    r = httpx.post(
        sandbox.url + "/v1/openai/images/generations",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "prompt": "combine",
            "model": "test/test",
            "image": [data_uri, "https://example.com/second.png"],
            "response_format": "b64_json",
            "output_format": "png",
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert decode(base64.b64decode(r.json()["data"][0]["b64_json"])).size == (300, 200)


def test_sandbox_header_and_triggers(sandbox: ServerProc, key: str) -> None:
    h = {"Authorization": f"Bearer {key}"}
    r = httpx.post(
        sandbox.url + "/v1/images/generations",
        headers=h,
        json={"model": "gpt-image-1", "prompt": "a cat [sandbox:moderated]"},
        timeout=60,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "content_policy_violation"
    assert r.headers["x-imagegate-sandbox"] == "1"
    r = httpx.post(
        sandbox.url + "/v1/images/generations",
        headers=h,
        json={"model": "gpt-image-1", "prompt": "a cat [sandbox:error]"},
        timeout=60,
    )
    assert r.status_code in (502, 503) and r.json()["error"]["code"].startswith("upstream")


def test_sandbox_failure_is_refunded(sandbox: ServerProc) -> None:
    key = sandbox.create_key(credits=1.0, name="refund")
    h = {"Authorization": f"Bearer {key}"}
    r = httpx.post(
        sandbox.url + "/v1/images/generations",
        headers=h,
        json={"model": "gpt-image-1", "prompt": "x [sandbox:error]", "n": 2},
        timeout=60,
    )
    assert r.status_code >= 500
    r = httpx.post(
        sandbox.url + "/v1/images/generations",
        headers=h,
        json={"model": "gpt-image-1", "prompt": "x [sandbox:moderated]"},
        timeout=60,
    )
    assert r.status_code == 400
    ok = httpx.post(
        sandbox.url + "/v1/images/generations",
        headers=h,
        json={"model": "dall-e-2", "prompt": "x", "size": "256x256"},
        timeout=60,
    )
    assert ok.status_code == 200
    cost = ok.json()["cost"]
    assert 0 < cost < 1
    # only the successful request was charged
    tasks = httpx.get(sandbox.url + "/v1/models", headers=h)
    assert tasks.status_code == 200
    poor = httpx.post(
        sandbox.url + "/v1/images/generations",
        headers=h,
        json={"model": "dall-e-2", "prompt": "x", "size": "256x256", "n": int((1 - cost) / cost) + 1},
    )
    assert poor.status_code in (400, 402)  # more than the remaining balance: refused, not overdrawn


def test_sandbox_failures_leave_the_balance_exactly_as_it_was(sandbox: ServerProc) -> None:
    """The balance itself, read from the key's row: a failed or refused request costs nothing, to the micro-dollar."""
    key = sandbox.create_key(credits=0.05, name="refund-exact")
    h = {"Authorization": f"Bearer {key}"}

    def balance() -> int:
        [(micros,)] = sandbox.query("SELECT credits_micros FROM api_keys WHERE key_hash = ?", hash_key(key))
        return int(micros)

    def post(prompt: str, n: int = 1) -> httpx.Response:
        body = {"model": "dall-e-2", "prompt": prompt, "size": "256x256", "n": n}
        return httpx.post(sandbox.url + "/v1/images/generations", headers=h, json=body, timeout=60)

    failed = post("x [sandbox:error]", n=2)
    assert failed.status_code >= 500 and failed.json()["error"]["code"].startswith("upstream"), failed.text
    assert balance() == 50_000
    moderated = post("x [sandbox:moderated]", n=2)
    assert moderated.status_code == 400 and moderated.json()["error"]["code"] == "content_policy_violation"
    assert balance() == 50_000
    ok = post("x")
    assert ok.status_code == 200, ok.text
    cost = round(ok.json()["cost"] * 1_000_000)
    assert cost > 0 and balance() == 50_000 - cost
    poor = post("x", n=3)  # a valid n whose price is over what is left
    assert 3 * cost > 50_000 - cost, "the test needs a request the balance cannot pay"
    assert poor.status_code == 402 and poor.json()["error"]["code"] == "insufficient_credits", poor.text
    assert balance() == 50_000 - cost
