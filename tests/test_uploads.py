"""Upload slots: create, PUT to the signed URL, use as upload://id; refusals; awaiting_upload tasks."""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from PIL import Image

from imagegate.app import build_gateway
from imagegate.catalog.validate import build_request
from imagegate.domain import Caller
from imagegate.engine.tasks import NewTask
from imagegate.settings import Settings
from tests.async_support import Api, make_key, wait_until
from tests.conftest import ServerProc


def png(w: int = 96, h: int = 64, color: str = "teal") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    srv = ServerProc(tmp_path_factory.mktemp("gw-uploads"), env={"IMAGEGATE_UPLOAD_TTL": "2"}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(gw: ServerProc) -> Api:
    return Api(gw, make_key(gw))


def slot(api: Api, **extra: object) -> dict:
    r = api.post("/v1/uploads", {"filename": "in.png", "content_type": "image/png", **extra})
    assert r.status_code == 201, r.text
    return r.json()


def put(url: str, data: bytes) -> httpx.Response:
    return httpx.put(url, content=data, headers={"content-type": "image/png"}, timeout=30)


def test_upload_then_use_in_an_edit(api: Api) -> None:
    s = slot(api)
    assert set(s) >= {"upload_id", "upload_url", "expires_at"} and s["expires_at"] > time.time()
    r = put(s["upload_url"], png())
    assert r.status_code == 200 and r.json()["status"] == "uploaded"
    edit = api.post(
        "/v1/images/edits",
        {
            "model": "test/test",
            "prompt": "make it dusk",
            "image": f"upload://{s['upload_id']}",
            "response_format": "b64_json",
        },
    )
    assert edit.status_code == 200, edit.text
    assert edit.json()["data"][0]["b64_json"]
    again = put(s["upload_url"], png())
    assert again.status_code == 409 and again.json()["error"]["param"] == "upload_id"


def test_tampered_urls_are_403(api: Api) -> None:
    s = slot(api)
    parts = urlsplit(s["upload_url"])
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    for bad in ({**q, "sig": "0" * 40}, {**q, "expires": str(int(q["expires"]) + 3600)}, {"expires": q["expires"]}):
        r = put(f"{base}?{urlencode(bad)}", png())
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden" and r.json()["error"]["param"]
    other = base.replace(s["upload_id"], "upl_" + "0" * 24)
    assert put(f"{other}?{parts.query}", png()).status_code == 403


def test_expired_url_is_403(api: Api) -> None:
    s = slot(api)  # this server's upload_ttl is 2 s
    wait_until(lambda: time.time() > s["expires_at"] + 1, what="the upload URL to expire")
    r = put(s["upload_url"], png())
    assert r.status_code == 403 and r.json()["error"]["param"] == "expires"


def test_too_large_is_413(api: Api) -> None:
    s = slot(api, size=200)
    r = put(s["upload_url"], png(300, 300))
    assert r.status_code == 413 and r.json()["error"]["param"] == "body"
    r = api.post("/v1/uploads", {"filename": "big.png", "content_type": "image/png", "size": 26 * 2**20})
    assert r.status_code == 413 and r.json()["error"]["param"] == "size"


def test_not_an_image_is_400(api: Api) -> None:
    s = slot(api)
    r = put(s["upload_url"], b"%PDF-1.4 definitely not a picture")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_image"
    assert put(s["upload_url"], png()).status_code == 200  # the slot is still usable


@pytest.mark.parametrize(
    "body,param",
    [
        ({"content_type": "image/png"}, "filename"),
        ({"filename": "a.png", "content_type": "text/html"}, "content_type"),
        ({"filename": "a.png", "content_type": "image/png", "size": -1}, "size"),
        ({"filename": "a.png", "content_type": "image/png", "size": "big"}, "size"),
    ],
)
def test_bad_slot_requests(api: Api, body: dict, param: str) -> None:
    r = api.post("/v1/uploads", body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_uploads_are_private_and_must_be_filled(gw: ServerProc, api: Api) -> None:
    empty = slot(api)
    r = api.post("/v1/images/edits", {"model": "test/test", "prompt": "x", "image": f"upload://{empty['upload_id']}"})
    assert (
        r.status_code == 400
        and r.json()["error"]["param"] == "image"
        and "not been PUT" in r.json()["error"]["message"]
    )
    mine = slot(api)
    assert put(mine["upload_url"], png()).status_code == 200
    other = Api(gw, make_key(gw))
    r = other.post("/v1/images/edits", {"model": "test/test", "prompt": "x", "image": f"upload://{mine['upload_id']}"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "image"
    r = api.post("/v1/images/edits", {"model": "test/test", "prompt": "x", "image": "upload://upl_missing"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "image"


def test_awaiting_upload_task_starts_when_its_slots_are_filled(gw: ServerProc, api: Api) -> None:
    """How the Omni API dialect uses slots: a task waits for its inputs, then runs by itself."""
    server_env = {k: v for k, v in gw.env.items() if k.startswith(("IMAGEGATE_", "AWS_"))}
    with mock.patch.dict(os.environ, server_env):  # the same database and secret as the running server
        local = build_gateway(Settings(data_dir=Path(gw.data_dir)))

    async def make(deadline: float) -> tuple[str, list[str]]:
        key = await local.keys.by_secret(api.key)
        assert key is not None
        caller = Caller(id=key.id, name=key.name, webhook_secret=key.webhook_secret)
        model = local.catalog.get("test/test")
        assert model is not None
        req = build_request(model, {"prompt": "waits for its picture"})
        rows = [
            local.uploads.new_row(key.id, filename=f"{i}.png", content_type="image/png", field="image")
            for i in range(2)
        ]
        new = NewTask(caller, model, req, dialect="openai", is_async=True, upload_deadline=deadline)
        task = await local.tasks.create(new, None, rows)
        slots = [local.uploads.slot(r, gw.url) for r in rows]
        return task.id, [s.url for s in slots]

    async def both() -> tuple[tuple[str, list[str]], tuple[str, list[str]]]:
        try:
            return await make(600), await make(0.2)
        finally:
            await local.db.close()

    (task_id, urls), (late_id, _) = asyncio.run(both())
    assert api.task(task_id)["status"] == "awaiting_upload"
    assert put(urls[0], png()).status_code == 200
    assert api.task(task_id)["status"] == "awaiting_upload"  # one slot still empty
    assert put(urls[1], png(color="gold")).status_code == 200
    assert api.wait_status(task_id, "succeeded", "failed")["status"] == "succeeded"
    late = api.wait_status(late_id, "failed")
    assert late["error"]["code"] == "upload_expired"
