"""Thumbnails of a task's outputs, against a real server on either profile: WebP previews that fit the
asked size with the aspect kept, made once and kept in the gateway's store (local disk, or S3 on the
cluster profile), readable by the task's key and by an admin only, refused with a 4xx that names the
parameter, and removed with their output by retention."""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from imagegate.db.database import Database
from imagegate.db.retention import RetentionStore
from imagegate.engine.retention import RetentionPolicy, RetentionSweeper
from imagegate.settings import Settings
from imagegate.storage import open_storage
from tests.admin_support import Api, admin_api, bad_request
from tests.conftest import ServerProc
from tests.console_support import admin, gw, start_console_server
from tests.profiles import cluster_parts

__all__ = ["admin", "gw"]  # the console server (test/test, test/priced, test/slow) and its admin


@pytest.fixture(scope="module")
def owner(gw: ServerProc, admin: Api) -> Api:
    return Api(gw, admin.new_key(name="owner")[1])


@pytest.fixture(scope="module")
def task(owner: Api) -> dict[str, Any]:
    """A finished task of the owner's: two 320x192 PNGs (landscape, 5:3)."""
    r = owner.generate(prompt="a harbour at night", size="320x192", n=2)
    assert r.status_code == 200, r.text
    listing = owner.ok("GET", "/v1/tasks?limit=1")
    found: dict[str, Any] = listing["data"][0]
    assert found["status"] == "succeeded" and len(found["data"]) == 2, found
    return found


def thumb_path(task_id: str, index: int | str = 0, query: str = "") -> str:
    return f"/v1/tasks/{task_id}/images/{index}/thumbnail{query}"


def stored(srv: ServerProc, key: str) -> bytes | None:
    """An object of the server's store, read behind its back: its files dir, or its S3 bucket and prefix."""
    url = srv.env.get("IMAGEGATE_STORAGE_URL")
    if not url:
        path = srv.data_dir / "files" / key
        return path.read_bytes() if path.exists() else None
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    client = cluster_parts().s3().client()
    try:
        return bytes(client.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read())
    except client.exceptions.NoSuchKey:
        return None


def thumb_key(task: dict[str, Any], index: int, size: int) -> str:
    file_id = task["data"][index]["url"].split("/v1/files/")[1].split(".")[0]
    return f"thumbs/{file_id[5:7]}/{file_id}.{size}.webp"


def test_a_thumbnail_fits_the_size_and_keeps_the_aspect(owner: Api, task: dict[str, Any]) -> None:
    for size, expected in ((64, (64, 38)), (128, (128, 77)), (256, (256, 154)), (512, (320, 192))):
        r = owner("GET", thumb_path(task["id"], 1, f"?size={size}"))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/webp"
        img = Image.open(io.BytesIO(r.content))
        assert img.format == "WEBP" and img.size == expected, (size, img.size)  # never enlarged past 320x192
    r = owner("GET", thumb_path(task["id"]))
    assert Image.open(io.BytesIO(r.content)).size == (256, 154)  # the default size


def test_a_thumbnail_is_made_once_then_read_from_the_store(
    gw: ServerProc, owner: Api, admin: Api, task: dict[str, Any]
) -> None:
    key = thumb_key(task, 0, 128)
    assert stored(gw, key) is None
    first = owner("GET", thumb_path(task["id"], 0, "?size=128"))
    assert first.status_code == 200 and first.headers["x-imagegate-thumbnail"] == "made", first.text
    assert stored(gw, key) == first.content  # kept in the store (S3 on the cluster profile)
    again = admin("GET", thumb_path(task["id"], 0, "?size=128"))
    assert again.headers["x-imagegate-thumbnail"] == "cached" and again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]
    assert first.headers["cache-control"].startswith("private, max-age=")
    revalidate = {"authorization": f"Bearer {owner.key}", "if-none-match": first.headers["etag"]}
    same = httpx.get(owner.srv.url + thumb_path(task["id"], 0, "?size=128"), headers=revalidate, timeout=30)
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == first.headers["etag"]
    other = owner("GET", thumb_path(task["id"], 0, "?size=64"))
    assert other.headers["etag"] != first.headers["etag"]


def thumbnail_bytes_written(srv: ServerProc) -> float:
    r = httpx.get(srv.url + "/metrics", timeout=30)
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == "imagegate_stored_bytes_total" and sample.labels.get("kind") == "thumbnail":
                return float(sample.value)
    return 0.0


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_jpeg_and_webp_outputs_have_thumbnails_too(owner: Api, fmt: str) -> None:
    r = owner.generate(prompt=f"a {fmt} meadow", size="640x480", output_format=fmt)
    assert r.status_code == 200, r.text
    task_id = owner.ok("GET", "/v1/tasks?limit=1")["data"][0]["id"]
    thumb = owner("GET", thumb_path(task_id, 0, "?size=128"))
    assert thumb.status_code == 200, thumb.text
    img = Image.open(io.BytesIO(thumb.content))
    assert img.format == "WEBP" and img.size == (128, 96)


def test_concurrent_first_requests_share_one_making(gw: ServerProc, owner: Api) -> None:
    made = owner.generate(prompt="a lighthouse in fog", size="200x300")
    assert made.status_code == 200, made.text
    task_id = owner.ok("GET", "/v1/tasks?limit=1")["data"][0]["id"]
    before = thumbnail_bytes_written(gw)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: owner("GET", thumb_path(task_id, 0, "?size=64")), range(6)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert len({a.content for a in answers}) == 1
    assert thumbnail_bytes_written(gw) - before == len(answers[0].content)  # made and written once
    assert Image.open(io.BytesIO(answers[0].content)).size == (43, 64)  # portrait: the height is the longer side


def test_only_the_tasks_key_and_admins_read_its_thumbnails(
    gw: ServerProc, owner: Api, admin: Api, task: dict[str, Any]
) -> None:
    stranger = Api(gw, admin.new_key(name="stranger")[1])
    r = stranger("GET", thumb_path(task["id"]))
    assert r.status_code == 404 and r.json()["error"]["param"] == "task_id", r.text
    assert admin("GET", thumb_path(task["id"])).status_code == 200
    assert Api(gw, None)("GET", thumb_path(task["id"])).status_code == 401


def test_bad_parameters_are_400s_that_name_them(owner: Api, task: dict[str, Any]) -> None:
    for query in ("?size=100", "?size=0", "?size=4096", "?size=big", "?size=-1"):
        bad_request(owner("GET", thumb_path(task["id"], 0, query)), "size")
    for index in ("-1", "x", "1.5", "99999"):
        bad_request(owner("GET", thumb_path(task["id"], index)), "index")
    r = owner("GET", thumb_path(task["id"], 2))
    assert r.status_code == 404 and r.json()["error"]["param"] == "index", r.text  # two images: 0 and 1


def test_unknown_and_unfinished_tasks_are_refused(owner: Api, admin: Api) -> None:
    for api in (owner, admin):
        r = api("GET", thumb_path("img_nosuchtask"))
        assert r.status_code == 404 and r.json()["error"]["param"] == "task_id", r.text
    r = admin("GET", thumb_path("not a task id!"))
    assert r.status_code == 404, r.text
    slow = owner("POST", "/v1/images/generations?async=true", json={"model": "test/slow", "prompt": "wait"})
    assert slow.status_code == 202, slow.text
    r = owner("GET", thumb_path(slow.json()["id"]))
    assert r.status_code == 409 and r.json()["error"]["param"] == "task_id", r.text
    assert "succeeded" in r.json()["error"]["message"]
    owner.ok("POST", f"/v1/tasks/{slow.json()['id']}/cancel")
    assert owner("GET", thumb_path(slow.json()["id"])).status_code == 409  # canceled: it never will


def test_an_image_not_kept_has_no_thumbnail(owner: Api) -> None:
    r = owner.generate(prompt="ephemeral", response_format="b64_ephemeral")
    assert r.status_code == 200, r.text
    task_id = owner.ok("GET", "/v1/tasks?limit=1")["data"][0]["id"]
    r = owner("GET", thumb_path(task_id))
    assert r.status_code == 404 and "b64_ephemeral" in r.json()["error"]["message"], r.text


def test_tasks_list_by_model_and_shows_their_prompt(owner: Api) -> None:
    owner.generate(model="test/priced", prompt="a red kite over dunes", size="64x64")
    listing = owner.ok("GET", "/v1/tasks?status=succeeded&model=test/priced")
    assert listing["data"] and {t["model"] for t in listing["data"]} == {"test/priced"}
    assert listing["data"][0]["prompt"] == "a red kite over dunes"


def test_retention_removes_thumbnails_with_their_output(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = start_console_server(tmp_path_factory)
    try:
        api = admin_api(srv)
        assert api.generate(prompt="soon gone", size="96x64").status_code == 200
        task = api.ok("GET", "/v1/tasks?limit=1")["data"][0]
        for size in (64, 256):
            assert api("GET", thumb_path(task["id"], 0, f"?size={size}")).status_code == 200
        keys = [thumb_key(task, 0, 64), thumb_key(task, 0, 256)]
        assert all(stored(srv, k) is not None for k in keys)
    finally:
        srv.stop()
    for name, value in srv.env.items():  # the stopped server's database and store, seen from this process
        if name.startswith(("IMAGEGATE_", "AWS_")):
            monkeypatch.setenv(name, value)
    assert asyncio.run(sweep(srv.data_dir)) == 1
    assert all(stored(srv, k) is None for k in keys)
    name = task["data"][0]["url"].split("/v1/files/")[1].split("?")[0]
    assert stored(srv, f"outputs/{name[5:7]}/{name}") is None


async def sweep(data_dir: Path) -> int:
    """One retention pass over outputs, looking from two days ahead: the outputs it removed."""
    settings = Settings(data_dir=data_dir)
    settings.prepare()
    db = Database(settings.database_url or "")
    storage = open_storage(settings)
    try:
        sweeper = RetentionSweeper(RetentionStore(db), storage, RetentionPolicy(outputs=60.0))
        return (await sweeper.sweep(datetime.now(UTC) + timedelta(days=2))).outputs
    finally:
        await storage.aclose()
        await db.close()
