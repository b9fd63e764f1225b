"""Every example of the Omni API quickstart (seed 003), as written, against `imagegate serve --sandbox`
on loopback (only host and key replaced), plus the task types, upload slots, expiry and errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from standardwebhooks.webhooks import Webhook

from imagegate.api.dialects.omni_groups import Groups
from imagegate.catalog import Catalog
from imagegate.media import synth
from imagegate.webhooks import signing
from tests.async_support import Receiver, wait_until
from tests.conftest import ImageHost, ServerProc, decode, server_env

UPLOAD_TTL = 2  # seconds an awaiting task waits for its files (short, for the expiry test)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, image_host: ImageHost) -> Iterator[ServerProc]:
    # one worker and a small per-image delay: tasks created back to back really wait in the queue
    env = server_env(
        image_host,
        IMAGEGATE_SANDBOX_DELAY_MS="150",
        IMAGEGATE_AWAITING_UPLOAD_TTL=str(UPLOAD_TTL),
        IMAGEGATE_WEBHOOK_BACKOFF_SCALE="0.02",
    )
    slow = Path(__file__).parent / "data" / "slow-test-model.yaml"  # test/test takes 150 ms per image too
    args = ["--sandbox", "--workers", "1", "--config", str(slow)]
    srv = ServerProc(tmp_path_factory.mktemp("seed003"), env=env, args=args).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def key(sandbox: ServerProc) -> str:
    return sandbox.create_key()


def create(srv: ServerProc, key: str, body: Any) -> httpx.Response:
    return httpx.post(
        srv.url + "/api/omni/tasks/create",
        json=body,
        timeout=60,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


def status(srv: ServerProc, key: str, task_id: str) -> dict[str, Any]:
    r = httpx.get(f"{srv.url}/api/omni/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()


def finished(srv: ServerProc, key: str, task_id: str) -> dict[str, Any]:
    return wait_until(
        lambda: (t := status(srv, key, task_id))["status"] in ("succeeded", "failed") and t, 60, f"task {task_id}"
    )


def outputs(task: dict[str, Any]) -> list[Image.Image]:
    assert task["status"] == "succeeded", task
    out = []
    for item in task["outputs"]["images"]:
        r = httpx.get(item["url"], timeout=30)
        assert r.status_code == 200 and r.headers["content-type"] == item["content_type"]
        img = decode(r.content)
        assert img.size == (item["width"], item["height"])
        out.append(img)
    return out


def png(w: int = 640, h: int = 480, name: str = "input") -> bytes:
    return synth.render_bytes(f"/{name}.png", w, h, "png")


# -- 2. list models ----------------------------------------------------------------------------


def test_models_is_public_with_groups_task_types_and_schemas(sandbox: ServerProc) -> None:
    r = httpx.get(sandbox.url + "/api/omni/models")  # no key, as in the quickstart
    assert r.status_code == 200, r.text
    groups = {g["model_group"]: g for g in r.json()["model_groups"]}
    aio = groups["omni-image-aio"]
    assert aio["status"] == "ready"
    types = {t["task_type"]: t for t in aio["task_types"]}
    assert set(types) == {"text_to_image", "single_image_edit", "multi_image_edit", "inpaint", "panorama"}
    assert types["panorama"]["model"] == "Hunyuan-3d-2.0"
    assert types["text_to_image"]["model"] != "test/test"  # the sandbox serves the real models
    for t in aio["task_types"]:
        assert t["input_schema"]["type"] == "object" and "prompt" in t["input_schema"]["properties"]
        assert t["output_schema"]["properties"]["images"]["type"] == "array"
    assert [f["field"] for f in types["inpaint"]["files"]] == ["source_image", "mask"]
    assert types["multi_image_edit"]["input_schema"]["properties"]["images"]["type"] == "array"
    # enums come from the catalog's capabilities
    kling = {t["task_type"]: t for t in groups["Kling:3.0-omni"]["task_types"]}
    props = kling["text_to_image"]["input_schema"]["properties"]
    assert props["resolution"]["enum"] == ["1K", "2K", "4K"]
    assert props["aspect_ratio"]["enum"][:3] == ["16:9", "9:16", "1:1"]
    assert props["n"]["maximum"] == 9 and "inpaint" not in kling
    pano = groups["Hunyuan-3d-2.0"]["task_types"]
    assert [t["task_type"] for t in pano] == ["panorama"]
    assert pano[0]["input_schema"]["properties"]["size"]["enum"] == ["auto", "1440x720"]


def test_only_ready_groups_unless_all() -> None:
    """The real catalog with no provider keys: only the offline model is ready, and aio uses it."""
    groups = Groups(Catalog.load(env={}, sandbox=False))
    ready = {g["model_group"]: g for g in groups.describe(include_all=False)}
    assert set(ready) == {"omni-image-aio", "test/test"}
    assert {t["task_type"]: t["model"] for t in ready["omni-image-aio"]["task_types"]} == {
        "text_to_image": "test/test",
        "single_image_edit": "test/test",
        "multi_image_edit": "test/test",
        "inpaint": "test/test",
    }
    everything = {g["model_group"]: g for g in groups.describe(include_all=True)}
    assert (
        everything["GPT-image-2"]["status"] == "not_ready"
        and "OPENAI_API_KEY" in everything["GPT-image-2"]["not_ready_reason"]
    )


def test_models_all_query(sandbox: ServerProc) -> None:
    listed = httpx.get(sandbox.url + "/api/omni/models").json()["model_groups"]
    everything = httpx.get(sandbox.url + "/api/omni/models?all=true").json()["model_groups"]
    assert {g["model_group"] for g in listed} <= {g["model_group"] for g in everything}
    assert all(g["status"] == "ready" for g in listed)


# -- 3. text task ------------------------------------------------------------------------------


def test_text_task(sandbox: ServerProc, key: str) -> None:
    r = create(
        sandbox,
        key,
        {
            "model_group": "omni-image-aio",
            "task_type": "text_to_image",
            "input": {"prompt": "a clean studio product photo"},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["portal_task_id"] and body["status"] in ("queued", "running", "succeeded")
    assert body["output_access"]["poll_url"].endswith("/api/omni/tasks/" + body["portal_task_id"])
    [img] = outputs(finished(sandbox, key, body["portal_task_id"]))
    assert img.format == "PNG" and img.size == (1024, 1024)


def test_queue_position_while_queued(sandbox: ServerProc, key: str) -> None:
    body = {"model_group": "test/test", "task_type": "text_to_image", "input": {"prompt": "queue", "size": "64x64"}}
    created = [create(sandbox, key, body).json() for _ in range(4)]
    queued = [c for c in created if c["status"] == "queued"]
    assert queued, created  # one worker and 150 ms per image: the later ones wait
    positions = [c["queue_position"] for c in queued]
    assert all(isinstance(p, int) for p in positions) and positions == sorted(positions)
    assert queued[-1]["queue"]["position"] == positions[-1]
    for c in created:
        done = finished(sandbox, key, c["portal_task_id"])
        assert "queue_position" not in done and outputs(done)[0].size == (64, 64)


# -- 4. file task ------------------------------------------------------------------------------


def test_file_task_waits_for_its_upload(sandbox: ServerProc, key: str) -> None:
    r = create(
        sandbox,
        key,
        {
            "model_group": "omni-image-aio",
            "task_type": "single_image_edit",
            "input": {"prompt": "make the product photo cleaner"},
            "files_to_upload": [{"field": "source_image", "filename": "input.png", "content_type": "image/png"}],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "awaiting_upload" and "queue_position" not in body
    [slot] = body["uploads"]
    assert slot["field"] == "source_image" and slot["method"] == "PUT"
    assert status(sandbox, key, body["portal_task_id"])["status"] == "awaiting_upload"
    put = httpx.put(slot["upload_url"], content=png(), headers={"Content-Type": "image/png"})
    assert put.status_code == 200, put.text
    again = httpx.put(slot["upload_url"], content=png(), headers={"Content-Type": "image/png"})
    assert again.status_code == 409
    [img] = outputs(finished(sandbox, key, body["portal_task_id"]))
    assert img.width / img.height == pytest.approx(640 / 480, rel=0.15)  # an edit keeps the input's shape


def test_inpaint_with_uploaded_image_and_mask(sandbox: ServerProc, key: str) -> None:
    r = create(
        sandbox,
        key,
        {
            "model_group": "test/test",
            "task_type": "inpaint",
            "input": {"prompt": "a red box", "output_format": "webp"},
            "files_to_upload": [
                {"field": "source_image", "filename": "in.png", "content_type": "image/png"},
                {"field": "mask", "filename": "mask.png", "content_type": "image/png"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    slots = {s["field"]: s["upload_url"] for s in body["uploads"]}
    assert httpx.put(slots["mask"], content=png(320, 240, "mask")).status_code == 200
    assert status(sandbox, key, body["portal_task_id"])["status"] == "awaiting_upload"  # one of two
    assert httpx.put(slots["source_image"], content=png(320, 240)).status_code == 200
    [img] = outputs(finished(sandbox, key, body["portal_task_id"]))
    assert img.format == "WEBP" and img.size == (320, 240)


def credits_of_task_key(srv: ServerProc, task_id: str) -> tuple[int, int]:
    """(the task's reserved micros, its key's credits now), straight from the server's database."""
    [row] = srv.query(
        "SELECT t.reserved_micros, k.credits_micros FROM tasks t JOIN api_keys k ON k.id = t.key_id WHERE t.id = ?",
        task_id,
    )
    return int(row[0]), int(row[1])


def test_uploaded_mask_of_another_size_fails_the_task(sandbox: ServerProc) -> None:
    key = sandbox.create_key(credits=5)
    r = create(
        sandbox,
        key,
        {
            "model_group": "omni-image-aio",
            "task_type": "inpaint",
            "input": {"prompt": "a red box"},
            "files_to_upload": [
                {"field": "source_image", "filename": "in.png", "content_type": "image/png"},
                {"field": "mask", "filename": "mask.png", "content_type": "image/png"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    task_id = body["portal_task_id"]
    reserved, held = credits_of_task_key(sandbox, task_id)
    assert reserved > 0 and held == 5_000_000 - reserved
    slots = {s["field"]: s["upload_url"] for s in body["uploads"]}
    assert httpx.put(slots["source_image"], content=png(512, 512)).status_code == 200
    assert httpx.put(slots["mask"], content=png(256, 256, "mask")).status_code == 200  # the bytes are fine
    task = finished(sandbox, key, task_id)
    assert task["status"] == "failed" and task["error"]["code"] == "invalid_image"
    assert "'mask'" in task["error"]["message"] and "512x512" in task["error"]["message"]
    assert task["started_at"] is None  # it never reached a provider
    assert credits_of_task_key(sandbox, task_id)[1] == 5_000_000  # the hold is refunded


def test_inline_mask_of_another_size_is_400(sandbox: ServerProc, key: str) -> None:
    r = create(
        sandbox,
        key,
        {
            "model_group": "omni-image-aio",
            "task_type": "inpaint",
            "input": {
                "prompt": "a red box",
                "source_image": "https://example.com/in.png?w=512&h=512",
                "mask": "https://example.com/mask.png?w=256&h=256",
            },
        },
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "input.mask"


def test_multi_image_edit_mixes_inline_and_uploaded(sandbox: ServerProc, key: str) -> None:
    r = create(
        sandbox,
        key,
        {
            "model_group": "omni-image-aio",
            "task_type": "multi_image_edit",
            "input": {"prompt": "combine", "images": ["https://example.com/first.png"]},
            "files_to_upload": [{"field": "images", "filename": "b.jpg", "content_type": "image/jpeg"}],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "GPT-image-2" and len(body["uploads"]) == 1
    jpeg = synth.render_bytes("/b.jpg", 512, 512, "jpeg")
    assert httpx.put(body["uploads"][0]["upload_url"], content=jpeg).status_code == 200
    assert len(outputs(finished(sandbox, key, body["portal_task_id"]))) == 1


def test_uploads_never_completed_expire_the_task(sandbox: ServerProc, key: str) -> None:
    r = create(
        sandbox,
        key,
        {
            "model_group": "omni-image-aio",
            "task_type": "single_image_edit",
            "input": {"prompt": "late"},
            "files_to_upload": [{"field": "source_image", "filename": "input.png", "content_type": "image/png"}],
        },
    )
    body = r.json()
    task = wait_until(
        lambda: (t := status(sandbox, key, body["portal_task_id"]))["status"] != "awaiting_upload" and t,
        UPLOAD_TTL + 30,
        "the upload deadline",
    )
    assert task["status"] == "failed" and task["error"]["code"] == "upload_expired"
    late = httpx.put(body["uploads"][0]["upload_url"], content=png(), headers={"Content-Type": "image/png"})
    assert late.status_code == 403


# -- 5. poll: panorama and the callback --------------------------------------------------------


def test_panorama_task_with_callback(sandbox: ServerProc, key: str) -> None:
    recv = Receiver()
    try:
        r = create(
            sandbox,
            key,
            {
                "model_group": "omni-image-aio",
                "task_type": "panorama",
                "input": {"prompt": "a snowy lake, 360 degrees"},
                "callback_url": recv.url + "/ok",
            },
        )
        assert r.status_code == 200, r.text
        task_id = r.json()["portal_task_id"]
        [img] = outputs(finished(sandbox, key, task_id))
        assert img.width == 2 * img.height
        hit = wait_until(
            lambda: [h for h in recv.hits if json.loads(h["body"])["portal_task_id"] == task_id], 30, "the callback"
        )[0]
    finally:
        recv.close()
    secret = httpx.get(sandbox.url + "/v1/webhooks/secret", headers={"Authorization": f"Bearer {key}"}).json()["key"]
    assert signing.verify(secret, hit["headers"], hit["body"])
    Webhook(secret).verify(hit["body"], hit["headers"])  # the reference library agrees
    payload = json.loads(hit["body"])
    assert payload["status"] == "succeeded" and payload["task_type"] == "panorama"
    assert decode(httpx.get(payload["outputs"]["images"][0]["url"]).content).size == img.size


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,param",
    [
        ({"model_group": "omni-image-aio", "task_type": "video", "input": {"prompt": "x"}}, "task_type"),
        ({"model_group": "Hunyuan-3d-2.0", "task_type": "text_to_image", "input": {"prompt": "x"}}, "task_type"),
        ({"model_group": "nope", "task_type": "text_to_image", "input": {"prompt": "x"}}, "model_group"),
        ({"task_type": "text_to_image", "input": {"prompt": "x"}}, "model_group"),
        ({"model_group": "omni-image-aio", "input": {"prompt": "x"}}, "task_type"),
        ({"model_group": "omni-image-aio", "task_type": "text_to_image", "input": "x"}, "input"),
        (
            {"model_group": "omni-image-aio", "task_type": "text_to_image", "input": {"prompt": "x", "size": "7x7"}},
            "input.size",
        ),
        (
            {"model_group": "omni-image-aio", "task_type": "text_to_image", "input": {"prompt": "x", "colour": 1}},
            "input.colour",
        ),
        ({"model_group": "Kling:3.0-omni", "task_type": "text_to_image", "input": {"prompt": "x", "n": 10}}, "input.n"),
        ({"model_group": "omni-image-aio", "task_type": "text_to_image", "input": {}}, "input.prompt"),
        (
            {"model_group": "omni-image-aio", "task_type": "single_image_edit", "input": {"prompt": "x"}},
            "input.source_image",
        ),
        (
            {
                "model_group": "omni-image-aio",
                "task_type": "single_image_edit",
                "input": {"prompt": "x"},
                "files_to_upload": [{"field": "mask", "filename": "m.png", "content_type": "image/png"}],
            },
            "files_to_upload[0].field",
        ),
        (
            {
                "model_group": "omni-image-aio",
                "task_type": "single_image_edit",
                "input": {"prompt": "x"},
                "files_to_upload": [{"field": "source_image", "filename": "a.pdf", "content_type": "application/pdf"}],
            },
            "files_to_upload[0].content_type",
        ),
        (
            {
                "model_group": "omni-image-aio",
                "task_type": "single_image_edit",
                "input": {"prompt": "x", "source_image": "https://example.com/notes.txt"},
            },
            "input.source_image",
        ),
        (
            {
                "model_group": "omni-image-aio",
                "task_type": "text_to_image",
                "input": {"prompt": "x"},
                "callback_url": "ftp://x",
            },
            "callback_url",
        ),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(sandbox: ServerProc, key: str, body: dict[str, Any], param: str) -> None:
    r = create(sandbox, key, body)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["param"] == param


def test_auth_and_unknown_task(sandbox: ServerProc, key: str) -> None:
    r = httpx.post(sandbox.url + "/api/omni/tasks/create", json={"model_group": "omni-image-aio"})
    assert r.status_code == 401
    r = httpx.get(
        sandbox.url + "/api/omni/tasks/img_000000000000000000000000", headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 404 and r.json()["error"]["param"] == "portal_task_id"
    r = httpx.post(
        sandbox.url + "/api/omni/tasks/create",
        content=b"{not json",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "body"
