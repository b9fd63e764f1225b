"""A real `imagegate serve` on S3 storage (SeaweedFS on loopback): outputs, inputs and uploads go to the
bucket under the configured prefix, downloads redirect to presigned URLs, and nothing touches local disk."""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest
from PIL import Image

from tests.async_support import Api, make_key
from tests.conftest import ServerProc, decode
from tests.s3_server import S3Server

PREFIX = f"gw-{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def gw(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    env = {
        **s3_server.env(),
        "IMAGEGATE_STORAGE_URL": f"s3://{s3_server.bucket}/{PREFIX}",
        "IMAGEGATE_S3_ENDPOINT_URL": s3_server.endpoint,
        "IMAGEGATE_S3_REGION": s3_server.region,
        "IMAGEGATE_S3_PUBLIC_URL": s3_server.endpoint,  # clients can reach the store: redirect to it
        "IMAGEGATE_URL_TTL_SECONDS": "120",  # shorter than the redirect's own cap: our link's expiry binds
    }
    srv = ServerProc(tmp_path_factory.mktemp("gw-s3"), env=env).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(gw: ServerProc) -> Api:
    return Api(gw, make_key(gw))


def objects(s3: S3Server, under: str) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=f"{PREFIX}/{under}")
    return [o["Key"] for o in listed.get("Contents", [])]


def nothing_on_disk(data_dir: Path) -> bool:
    files = data_dir / "files"
    return not files.exists() or not [p for p in files.rglob("*") if p.is_file()]


def png(w: int, h: int, color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, "PNG")
    return buf.getvalue()


def test_ready_checks_the_bucket(gw: ServerProc) -> None:
    r = httpx.get(gw.url + "/ready", timeout=30)
    assert r.status_code == 200 and r.json()["checks"]["storage"] == "ok", r.text


def test_generate_then_download_through_a_presigned_redirect(gw: ServerProc, api: Api, s3_server: S3Server) -> None:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=api.key, max_retries=0)
    resp = client.images.generate(model="test/test", prompt="a harbour at night", size="320x192")
    url = resp.data[0].url
    assert url and url.startswith(gw.url + "/v1/files/") and "sig=" in url

    hop = httpx.get(url, timeout=10)
    assert hop.status_code == 307 and hop.headers["cache-control"] == "no-store"
    target = hop.headers["location"]
    assert target.startswith(f"{s3_server.endpoint}/{s3_server.bucket}/{PREFIX}/outputs/")
    ours = int(parse_qs(urlsplit(url).query)["expires"][0])
    lifetime = int(parse_qs(urlsplit(target).query)["X-Amz-Expires"][0])
    assert 100 < lifetime <= ours - int(time.time()) + 1  # never outlives our own link

    got = httpx.get(url, follow_redirects=True, timeout=10)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert decode(got.content).size == (320, 192)
    name = urlsplit(url).path.rsplit("/", 1)[1]
    assert f"{PREFIX}/outputs/{name[5:7]}/{name}" in objects(s3_server, "outputs/")
    assert nothing_on_disk(gw.data_dir)


def test_a_private_store_is_streamed_by_the_api(s3_server: S3Server, tmp_path: Path) -> None:
    """No public address: the link answers with the bytes itself, never with a redirect clients cannot follow."""
    env = {
        **s3_server.env(),
        "IMAGEGATE_STORAGE_URL": f"s3://{s3_server.bucket}/{PREFIX}",
        "IMAGEGATE_S3_ENDPOINT_URL": s3_server.endpoint,
        "IMAGEGATE_S3_REGION": s3_server.region,
    }
    srv = ServerProc(tmp_path, env=env).start()
    try:
        api = Api(srv, make_key(srv))
        r = api.post("/v1/images/generations", {"model": "test/test", "prompt": "x", "size": "256x128"})
        assert r.status_code == 200, r.text
        got = httpx.get(r.json()["data"][0]["url"], timeout=10)
        assert got.status_code == 200 and "location" not in got.headers
        assert got.headers["content-type"] == "image/png" and decode(got.content).size == (256, 128)
        assert httpx.get(r.json()["data"][0]["url"].replace("sig=", "sig=0"), timeout=10).status_code == 403
        assert nothing_on_disk(srv.data_dir)
    finally:
        srv.stop()


def test_bad_links_are_refused_before_any_redirect(gw: ServerProc, api: Api) -> None:
    r = api.post("/v1/images/generations", {"model": "test/test", "prompt": "x", "size": "256x256"})
    url = r.json()["data"][0]["url"]
    tampered = httpx.get(url.replace("sig=", "sig=0"), timeout=10)
    assert tampered.status_code == 403 and "location" not in tampered.headers
    expired = url.split("expires=")[0] + "expires=1000000000&" + url.split("&", 1)[1]
    assert httpx.get(expired, timeout=10).status_code == 403


def test_uploaded_input_edit_goes_through_the_bucket(gw: ServerProc, api: Api, s3_server: S3Server) -> None:
    before = set(objects(s3_server, "inputs/"))
    slot = api.post("/v1/uploads", {"filename": "in.png", "content_type": "image/png"})
    assert slot.status_code == 201, slot.text
    put = httpx.put(slot.json()["upload_url"], content=png(160, 96, "teal"), headers={"content-type": "image/png"})
    assert put.status_code == 200, put.text
    body = {"model": "test/test", "prompt": "make it dusk", "image": f"upload://{slot.json()['upload_id']}"}
    edit = api.post("/v1/images/edits", body)
    assert edit.status_code == 200, edit.text
    got = httpx.get(edit.json()["data"][0]["url"], follow_redirects=True, timeout=10)
    assert got.status_code == 200 and decode(got.content).format == "PNG"
    assert set(objects(s3_server, "inputs/")) - before  # the upload was stored in the bucket
    assert nothing_on_disk(gw.data_dir)


def test_queued_edit_reads_its_input_back_from_the_bucket(gw: ServerProc, api: Api, s3_server: S3Server) -> None:
    """An async task runs from its stored row: its input image is read back from S3, not memory."""
    before = set(objects(s3_server, "inputs/"))
    slot = api.post("/v1/uploads", {"filename": "in.png", "content_type": "image/png"}).json()
    httpx.put(slot["upload_url"], content=png(128, 128, "orange"), headers={"content-type": "image/png"})
    body = {"model": "test/test", "prompt": "later", "image": f"upload://{slot['upload_id']}", "size": "256x256"}
    created = api.post("/v1/images/edits?async=true", body)
    assert created.status_code == 202, created.text
    done = api.wait_status(created.json()["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    got = httpx.get(done["data"][0]["url"], follow_redirects=True, timeout=10)
    assert decode(got.content).size == (256, 256)
    assert set(objects(s3_server, "inputs/")) - before
