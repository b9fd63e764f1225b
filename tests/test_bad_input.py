"""Bad input: each a clear 4xx with an OpenAI error object naming the parameter; never a 500."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image


def post(server, key, body=None, *, path="/v1/images/generations", **kw):  # type: ignore[no-untyped-def]
    headers = {"authorization": f"Bearer {key}", **kw.pop("headers", {})}
    if body is not None:
        kw["json"] = body
    return httpx.post(server.url + path, headers=headers, timeout=60, **kw)


def err(resp: httpx.Response) -> dict:
    body = resp.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}, body
    return body["error"]


def test_malformed_json(server, api_key) -> None:  # type: ignore[no-untyped-def]
    r = post(
        server, api_key, content=b'{"model": "test/test", "prompt": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and err(r)["param"] == "body"


def test_json_not_object_and_empty(server, api_key) -> None:  # type: ignore[no-untyped-def]
    r = post(server, api_key, content=b"[1,2]", headers={"content-type": "application/json"})
    assert r.status_code == 400 and err(r)["param"] == "body"
    r = post(server, api_key, content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 400


@pytest.mark.parametrize(
    "body,param,status",
    [
        ({"prompt": "x"}, "model", 400),
        ({"model": "nope/nothing", "prompt": "x"}, "model", 404),
        ({"model": "test/test", "prompt": "x", "n": 11}, "n", 400),
        ({"model": "test/test", "prompt": "x", "n": 0}, "n", 400),
        ({"model": "test/test", "prompt": "x", "n": "three"}, "n", 400),
        ({"model": "test/test", "prompt": "x", "size": "99999x2"}, "size", 400),
        ({"model": "test/test", "prompt": "x", "size": "big"}, "size", 400),
        ({"model": "test/test", "prompt": "x", "output_format": "gif"}, "output_format", 400),
        ({"model": "test/test", "prompt": "x", "response_format": "html"}, "response_format", 400),
        ({"model": "test/test", "prompt": "x", "quality": "ultra"}, "quality", 400),
        ({"model": "test/test", "prompt": "x", "resolution": "8K"}, "resolution", 400),
        ({"model": "test/test", "prompt": "x", "aspect_ratio": "wide"}, "aspect_ratio", 400),
        ({"model": "test/test", "prompt": "x", "input_region": "Mars"}, "input_region", 400),
        ({"model": "test/test", "prompt": "x", "output_compression": 101}, "output_compression", 400),
        (
            {"model": "test/test", "prompt": "x", "background": "transparent", "output_format": "jpeg"},
            "background",
            400,
        ),
        ({"model": "test/test", "prompt": 42}, "prompt", 400),
        ({"model": "dall-e-2", "prompt": "x", "aspect_ratio": "16:9"}, "aspect_ratio", 400),
        ({"model": "dall-e-3", "prompt": "x", "n": 2}, "n", 400),
        ({"model": "dall-e-3", "prompt": "x", "size": "512x512"}, "size", 400),
        ({"model": "dall-e-3", "prompt": "x", "quality": "low"}, "quality", 400),
    ],
)
def test_param_errors(server, api_key, body, param, status) -> None:  # type: ignore[no-untyped-def]
    r = post(server, api_key, body)
    assert r.status_code == status, r.text
    assert err(r)["param"] == param


def test_unsupported_value_lists_allowed(server, api_key) -> None:  # type: ignore[no-untyped-def]
    r = post(server, api_key, {"model": "test/test", "prompt": "x", "quality": "ultra"})
    assert "allowed" in err(r)["message"] and "high" in err(r)["message"]


def test_upload_too_large_is_413(server, api_key) -> None:  # type: ignore[no-untyped-def]
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (30 * 1024 * 1024)
    r = post(
        server,
        api_key,
        path="/v1/images/edits",
        data={"model": "test/test", "prompt": "x"},
        files={"image": ("big.png", big, "image/png")},
    )
    assert r.status_code == 413 and err(r)["param"] == "image"


def test_non_image_upload(server, api_key) -> None:  # type: ignore[no-untyped-def]
    r = post(
        server,
        api_key,
        path="/v1/images/edits",
        data={"model": "test/test", "prompt": "x"},
        files={"image": ("notes.txt", b"hello, I am text", "text/plain")},
    )
    assert r.status_code == 400 and err(r)["param"] == "image" and err(r)["code"] == "invalid_image"


def test_garbage_data_uri(server, api_key) -> None:  # type: ignore[no-untyped-def]
    for value in (
        "data:image/png;base64,!!!notbase64!!!",
        "data:image/png;base64," + base64.b64encode(b"nope").decode(),
        "data:image/png,plain",
    ):
        r = post(server, api_key, {"model": "test/test", "prompt": "x", "image": value})
        assert r.status_code == 400, (value, r.text)
        assert err(r)["param"] == "image"


def test_url_not_an_image_and_http_error(server, api_key, image_host) -> None:  # type: ignore[no-untyped-def]
    r = post(server, api_key, {"model": "test/test", "prompt": "x", "image": image_host.url + "/notes.txt"})
    assert r.status_code == 400 and err(r)["param"] == "image"
    r = post(server, api_key, {"model": "test/test", "prompt": "x", "images": [image_host.url + "/status/404"]})
    assert r.status_code == 400 and err(r)["param"] == "images"


def test_private_address_url_refused(strict_server) -> None:  # type: ignore[no-untyped-def]
    key = strict_server.create_key()
    for url in (
        "http://127.0.0.1:9/x.png",
        "http://10.0.0.1/x.png",
        "http://169.254.169.254/latest",
        "http://[::1]/x.png",
        "http://localhost/x.png",
        "file:///etc/passwd",
    ):
        r = post(strict_server, key, {"model": "test/test", "prompt": "x", "image": url})
        assert r.status_code == 400, (url, r.text)
        assert err(r)["param"] == "image"
    r = post(strict_server, key, {"model": "test/test", "prompt": "x", "callback_url": "http://127.0.0.1:1/hook"})
    assert r.status_code == 400 and err(r)["param"] == "callback_url"


def test_mask_size_mismatch(server, api_key) -> None:  # type: ignore[no-untyped-def]
    def png(size):  # type: ignore[no-untyped-def]
        b = io.BytesIO()
        Image.new("RGBA", size).save(b, "PNG")
        return b.getvalue()

    r = post(
        server,
        api_key,
        path="/v1/images/edits",
        data={"model": "test/test", "prompt": "x"},
        files=[("image", ("a.png", png((64, 64)), "image/png")), ("mask", ("m.png", png((32, 32)), "image/png"))],
    )
    assert r.status_code == 400 and err(r)["param"] == "mask"


def test_no_key_and_unknown_route(server) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(server.url + "/v1/images/generations", json={"model": "test/test", "prompt": "x"})
    assert r.status_code == 401 and err(r)["code"] == "invalid_api_key"
    r = httpx.get(server.url + "/v1/nothing-here")
    assert r.status_code == 404 and "error" in r.json()


def test_task_of_unknown_id_is_404(server, api_key) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(server.url + "/v1/images/generations/img_000", headers={"authorization": f"Bearer {api_key}"})
    assert r.status_code == 404 and err(r)["param"] == "task_id"
