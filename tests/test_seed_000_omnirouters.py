"""Every request example of the OmniRouters Omni-Image page (seed 000), as written, against
`imagegate serve --sandbox` on loopback (only host and key replaced; example.com is the ImageHost)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from standardwebhooks.webhooks import Webhook

from imagegate.webhooks import signing
from tests.async_support import Receiver, wait_until
from tests.conftest import ImageHost, ServerProc, decode, server_env

PROMPT = "将图1的服装换为图2的服装,整体自然协调,时尚杂志风格"
IMAGES = ["https://example.com/image1.png", "https://example.com/image2.png"]

#: two deployments of one model in different regions, on different sandbox providers
REGION_CATALOG = {
    "models": [
        {
            "id": "region/test",
            "capabilities": ["generate"],
            "sizes": ["1024x1024"],
            "default_size": "1024x1024",
            "price": {"per_image": 0},
            "deployments": [
                {"id": "builtin-oversea", "provider": "builtin", "model": "test", "region": "Oversea"},
                {
                    "id": "openai-mainland",
                    "provider": "openai",
                    "model": "gpt-image-1",
                    "credentials": {"api_key": "OPENAI_API_KEY"},
                    "region": "Mainland",
                },
            ],
        }
    ]
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, image_host: ImageHost) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("seed000")
    config = tmp / "regions.yaml"
    config.write_text(json.dumps(REGION_CATALOG))
    env = server_env(image_host, IMAGEGATE_SANDBOX_DELAY_MS="0", IMAGEGATE_WEBHOOK_BACKOFF_SCALE="0.02")
    srv = ServerProc(tmp / "data", env=env, args=["--sandbox", "--config", str(config)]).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def key(sandbox: ServerProc) -> str:
    return sandbox.create_key()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    recv = Receiver()
    yield recv
    recv.close()


def post(srv: ServerProc, key: str, body: dict[str, Any], query: str = "") -> httpx.Response:
    return httpx.post(
        f"{srv.url}/v1/images/generations{query}",
        json=body,
        timeout=120,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


def image_bytes(item: dict[str, Any]) -> bytes:
    """A result item's bytes: GPT Image models answer b64_json on /v1/images by default, as OpenAI's do."""
    if "b64_json" in item:
        return base64.b64decode(item["b64_json"])
    r = httpx.get(item["url"], timeout=30)
    assert r.status_code == 200, r.text
    return r.content


def images_of(body: dict[str, Any]) -> list[Image.Image]:
    """Read every image; decode the first in full and check the others' structure (CRCs)."""
    out = []
    for i, item in enumerate(body["data"]):
        content = image_bytes(item)
        if i == 0:
            out.append(decode(content))
        else:
            img = Image.open(io.BytesIO(content))
            img.verify()
            out.append(img)
    return out


def assert_ratio(img: Image.Image, w: int, h: int) -> None:
    assert abs(img.width / img.height - w / h) < 0.02, img.size


def stored_task(srv: ServerProc, task_id: str) -> dict[str, Any]:
    """The task row as the gateway stored it (the running server's own database)."""
    rows = srv.query("SELECT request, result, deployment_id, provider FROM tasks WHERE id = ?", task_id)
    assert rows, task_id
    request, result, deployment_id, provider = rows[0]
    return {"request": request, "result": result, "deployment_id": deployment_id, "provider": provider}


def test_text_to_image_4k_16_9(sandbox: ServerProc, key: str) -> None:
    r = post(
        sandbox,
        key,
        {
            "model": "Nano-Banana2",
            "resolution": "4K",
            "prompt": "一个女孩在海边回头微笑,电影感光影,高清细节",
            "aspect_ratio": "16:9",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "Nano-Banana2" and body["provider"] == "google"
    [img] = images_of(body)
    assert_ratio(img, 16, 9)
    assert img.width >= 3840  # a 4K tier
    assert body["size"] == f"{img.width}x{img.height}"


def test_image_to_image_fetches_every_reference(sandbox: ServerProc, key: str, image_host: ImageHost) -> None:
    before = len(image_host.hits)
    r = post(
        sandbox,
        key,
        {
            "model": "Nano-Banana2",
            "resolution": "4K",
            "prompt": PROMPT,
            "images": IMAGES,
            "aspect_ratio": "16:9",
        },
    )
    assert r.status_code == 200, r.text
    assert sorted(image_host.hits[before:]) == ["/image1.png", "/image2.png"]
    task = stored_task(sandbox, r.headers["x-imagegate-task-id"])
    assert task["request"]["mode"] == "edit" and len(task["request"]["images"]) == 2
    [img] = images_of(r.json())
    assert_ratio(img, 16, 9)


def test_gpt_image_2_quality_low(sandbox: ServerProc, key: str) -> None:
    r = post(
        sandbox,
        key,
        {
            "model": "GPT-image-2",
            "quality": "low",
            "resolution": "4K",
            "prompt": PROMPT,
            "images": IMAGES,
            "aspect_ratio": "16:9",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["quality"] == "low" and body["provider"] == "openai"
    assert [i.size for i in images_of(body)] == [(3840, 2160)]


def poll(srv: ServerProc, key: str, task_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        r = httpx.get(f"{srv.url}/v1/images/generations/{task_id}", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        body = r.json()
        return body if body["status"] in ("succeeded", "failed", "canceled") else None

    return wait_until(done, 60, f"task {task_id}")


def test_async_create_then_poll(sandbox: ServerProc, key: str) -> None:
    r = post(
        sandbox,
        key,
        {
            "model": "Nano-Banana2",
            "resolution": "4K",
            "prompt": PROMPT,
            "images": IMAGES,
            "aspect_ratio": "16:9",
        },
        "?async=true",
    )
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["id"] == created["task_id"] and created["status"] in ("queued", "running")
    done = poll(sandbox, key, created["task_id"])
    assert done["id"] == done["task_id"] == created["id"]
    assert done["status"] == "succeeded" and "error" not in done
    [img] = images_of(done)
    assert_ratio(img, 16, 9)


def test_async_failure_carries_error(sandbox: ServerProc, key: str) -> None:
    r = post(
        sandbox,
        key,
        {"model": "Nano-Banana2", "resolution": "4K", "aspect_ratio": "16:9", "prompt": "一只小猫 [sandbox:moderated]"},
        "?async=true",
    )
    assert r.status_code == 202, r.text
    done = poll(sandbox, key, r.json()["task_id"])
    assert done["status"] == "failed" and not done.get("data")
    assert done["error"]["code"] == "content_policy_violation" and done["error"]["message"]


def test_input_region_accepted_and_recorded(sandbox: ServerProc, key: str) -> None:
    r = post(
        sandbox,
        key,
        {
            "model": "Nano-Banana2",
            "resolution": "4K",
            "prompt": PROMPT,
            "images": IMAGES,
            "aspect_ratio": "16:9",
            "input_region": "Mainland",
        },
    )
    assert r.status_code == 200, r.text
    assert stored_task(sandbox, r.headers["x-imagegate-task-id"])["request"]["input_region"] == "Mainland"
    bad = post(sandbox, key, {"model": "Nano-Banana2", "prompt": "x", "input_region": "Mars"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input_region"


@pytest.mark.parametrize(
    "region,provider,deployment",
    [
        (None, "builtin", "builtin-oversea"),  # catalog order
        ("Mainland", "openai", "openai-mainland"),
        ("Oversea", "builtin", "builtin-oversea"),
        ("OverseaUSWest", "builtin", "builtin-oversea"),  # no deployment there: any ready one serves
    ],
)
def test_input_region_prefers_a_deployment_in_that_region(
    sandbox: ServerProc, key: str, region: str | None, provider: str, deployment: str
) -> None:
    body: dict[str, Any] = {"model": "region/test", "prompt": "一只小猫坐在窗边"}
    if region:
        body["input_region"] = region
    r = post(sandbox, key, body)
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == provider
    task = stored_task(sandbox, r.headers["x-imagegate-task-id"])
    assert task["result"]["deployment"] == deployment and task["deployment_id"] == deployment


@pytest.mark.parametrize("region,deployment", [("Mainland", "kling-v3-omni-cn"), ("Oversea", "kling-v3-omni-global")])
def test_input_region_routes_a_real_catalog_model(sandbox: ServerProc, key: str, region: str, deployment: str) -> None:
    r = post(sandbox, key, {"model": "Kling:3.0-omni", "prompt": "一只小猫坐在窗边", "input_region": region})
    assert r.status_code == 200, r.text
    assert stored_task(sandbox, r.headers["x-imagegate-task-id"])["result"]["deployment"] == deployment


def test_kling_generates_three(sandbox: ServerProc, key: str) -> None:
    r = post(
        sandbox,
        key,
        {
            "model": "Kling:3.0-omni",
            "resolution": "4K",
            "prompt": "一只小猫坐在窗边",
            "aspect_ratio": "16:9",
            "n": 3,
        },
    )
    assert r.status_code == 200, r.text
    imgs = images_of(r.json())
    assert len(imgs) == 3 and len({i.size for i in imgs}) == 1
    assert_ratio(imgs[0], 16, 9)


def test_seedream_generates_three(sandbox: ServerProc, key: str) -> None:
    r = post(
        sandbox,
        key,
        {
            "model": "Seedream:4.5",
            "resolution": "4K",
            "prompt": "一只小猫坐在窗边",
            "n": 3,
        },
    )
    assert r.status_code == 200, r.text
    imgs = images_of(r.json())
    assert len(imgs) == 3 and all(i.width >= 3840 for i in imgs)


def test_gpt_image_2_generates_three(sandbox: ServerProc, key: str) -> None:
    r = post(
        sandbox,
        key,
        {
            "model": "GPT-image-2",
            "quality": "low",
            "resolution": "4K",
            "prompt": PROMPT,
            "images": IMAGES,
            "aspect_ratio": "16:9",
            "n": 3,
        },
    )
    assert r.status_code == 200, r.text
    assert [i.size for i in images_of(r.json())] == [(3840, 2160)] * 3


def test_hunyuan_panorama_is_2_to_1(sandbox: ServerProc, key: str) -> None:
    r = post(
        sandbox,
        key,
        {
            "model": "Hunyuan-3d-2.0",
            "prompt": "一个雪山湖泊的360度全景图,真实摄影风格",
        },
    )
    assert r.status_code == 200, r.text
    [img] = images_of(r.json())
    assert img.width == 2 * img.height


def test_async_callback_is_signed_task_view(sandbox: ServerProc, key: str, receiver: Receiver) -> None:
    r = post(
        sandbox,
        key,
        {
            "model": "Hunyuan-3d-2.0",
            "prompt": "一个雪山湖泊的360度全景图,真实摄影风格",
            "callback_url": receiver.url + "/fail2",
        },
        "?async=true",
    )
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    hits = wait_until(lambda: [h for h in receiver.for_task(task_id) if h["code"] < 300], 30, "the callback")
    attempts = receiver.for_task(task_id)
    assert [h["code"] for h in attempts] == [500, 500, 200]  # re-sent until a 2xx
    assert len({h["headers"]["webhook-id"] for h in attempts}) == 1
    hit = hits[0]
    secret = httpx.get(sandbox.url + "/v1/webhooks/secret", headers={"Authorization": f"Bearer {key}"}).json()["key"]
    assert signing.verify(secret, hit["headers"], hit["body"])
    Webhook(secret).verify(hit["body"], hit["headers"])  # the reference library agrees
    body = json.loads(hit["body"])
    assert body["task_id"] == task_id and body["status"] == "succeeded"
    [img] = images_of(body)
    assert img.width == 2 * img.height
