"""The official `openai` SDK, unchanged, against a live `imagegate serve` on loopback."""

from __future__ import annotations

import base64
import io
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest
from PIL import Image

from imagegate.media import synth
from imagegate.storage.signing import UrlSigner
from tests.conftest import decode


def test_generate_b64_n3(openai_client: openai.OpenAI) -> None:
    resp = openai_client.images.generate(
        model="test/test", prompt="three foxes", n=3, size="512x384", response_format="b64_json"
    )
    assert len(resp.data) == 3
    imgs = [decode(base64.b64decode(d.b64_json)) for d in resp.data]
    assert all(i.size == (512, 384) and i.format == "PNG" for i in imgs)
    assert len({i.tobytes() for i in imgs}) == 3  # n really made three different pictures
    extra = resp.to_dict()
    assert extra["model"] == "test/test" and extra["size"] == "512x384" and extra["output_format"] == "png"
    assert extra["cost"] == 0 and isinstance(extra["latency"], int)


def test_generate_url_is_signed_and_downloadable(openai_client: openai.OpenAI) -> None:
    resp = openai_client.images.generate(model="test/test", prompt="a lighthouse", size="256x256")
    url = resp.data[0].url
    assert url and "sig=" in url and "expires=" in url
    got = httpx.get(url)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert decode(got.content).size == (256, 256)
    tampered = url.replace("sig=", "sig=0")
    assert httpx.get(tampered).status_code == 403
    expired = url.split("expires=")[0] + "expires=1000000000&" + url.split("&", 1)[1]
    assert httpx.get(expired).status_code == 403


@pytest.mark.parametrize("fmt,pil", [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_each_output_format(openai_client: openai.OpenAI, fmt: str, pil: str) -> None:
    resp = openai_client.images.generate(
        model="test/test",
        prompt="formats",
        size="320x200",
        response_format="b64_json",
        output_format=fmt,
        output_compression=70,
    )
    img = decode(base64.b64decode(resp.data[0].b64_json))
    assert img.format == pil and img.size == (320, 200)


def test_transparent_background_png(openai_client: openai.OpenAI) -> None:
    resp = openai_client.images.generate(
        model="test/test",
        prompt="sticker",
        size="256x256",
        background="transparent",
        output_format="png",
        response_format="b64_json",
    )
    img = decode(base64.b64decode(resp.data[0].b64_json))
    assert img.mode == "RGBA" and img.getpixel((0, 0))[3] == 0 and img.getpixel((128, 128))[3] == 255


def _png(color: tuple[int, int, int], size=(256, 256)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def test_edit_two_files_and_mask(openai_client: openai.OpenAI) -> None:
    red, blue = _png((255, 0, 0)), _png((0, 0, 255))
    mask = Image.new("RGBA", (256, 256), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 256, 128))  # top half transparent: edit there only
    mbuf = io.BytesIO()
    mask.save(mbuf, "PNG")
    resp = openai_client.images.edit(
        model="test/test",
        prompt="paint the sky",
        image=[("red.png", red, "image/png"), ("blue.png", blue, "image/png")],
        mask=("mask.png", mbuf.getvalue(), "image/png"),
        size="256x256",
        response_format="b64_json",
    )
    out = decode(base64.b64decode(resp.data[0].b64_json)).convert("RGB")
    assert out.size == (256, 256)
    # bottom half is protected by the mask: the two inputs side by side, untouched
    assert out.getpixel((40, 200)) == (255, 0, 0)
    assert out.getpixel((220, 200)) == (0, 0, 255)
    # top half was edited: the generated picture, not the inputs
    art = synth.render("paint the sky", 256, 256).convert("RGB")
    assert out.getpixel((40, 40)) == art.getpixel((40, 40)) != (255, 0, 0)


def test_error_classes(server, openai_client: openai.OpenAI) -> None:  # type: ignore[no-untyped-def]
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="ig-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.images.generate(model="test/test", prompt="x")
    assert e.value.status_code == 401
    with pytest.raises(openai.BadRequestError) as e:
        openai_client.images.generate(model="test/test", prompt="x", n=11)
    assert e.value.body["param"] == "n"
    with pytest.raises(openai.NotFoundError) as e:
        openai_client.images.generate(model="no-such-model", prompt="x")
    assert e.value.body["param"] == "model" and e.value.body["code"] == "model_not_found"
    poor = openai.OpenAI(base_url=server.url + "/v1", api_key=server.create_key(credits=0), max_retries=0)
    with pytest.raises(openai.APIStatusError) as e:
        poor.images.generate(model="test/priced", prompt="x", size="64x64")
    assert e.value.status_code == 402 and e.value.body["code"] == "insufficient_credits"


def test_revoked_key_is_401(server) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    key = server.create_key(name="to-revoke")
    ok = httpx.post(
        server.url + "/v1/images/generations",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "test/test", "prompt": "x", "size": "64x64"},
    )
    assert ok.status_code == 200
    subprocess.run(
        [sys.executable, "-m", "imagegate.cli", "keys", "revoke", "to-revoke", "--data-dir", str(server.data_dir)],
        check=True,
        capture_output=True,
        env=server.env,
    )
    again = httpx.post(
        server.url + "/v1/images/generations",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "test/test", "prompt": "x", "size": "64x64"},
    )
    assert again.status_code == 401 and again.json()["error"]["code"] == "invalid_api_key"


def test_a_validly_signed_url_past_its_expiry_is_refused(server, openai_client: openai.OpenAI) -> None:  # type: ignore[no-untyped-def]
    """Signed with the server's own secret, so only the expiry can refuse it (the tampered and the
    rewritten URLs above are refused for their signature before their expiry is looked at)."""
    url = openai_client.images.generate(model="test/test", prompt="expiring", size="64x64").data[0].url
    assert url
    parts = urlsplit(url)
    name = parts.path.rsplit("/", 1)[1]
    secret = server.env.get("IMAGEGATE_SECRET_KEY") or (server.data_dir / "secret.key").read_text().strip()
    signer = UrlSigner(secret, 3600)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    past, future = int(time.time()) - 2, int(time.time()) + 60
    assert parse_qs(parts.query)["sig"] == [signer.mac(name, int(parse_qs(parts.query)["expires"][0]))]
    assert httpx.get(base, params={"expires": past, "sig": signer.mac(name, past)}).status_code == 403
    assert httpx.get(base, params={"expires": future, "sig": signer.mac(name, future)}).status_code == 200
