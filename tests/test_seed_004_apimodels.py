"""Every example of the apimodels page (seed 004), as written, against `imagegate serve --sandbox` on
loopback (only host, key and the BASE64 placeholders replaced), the envelope's error codes and the
callback payload."""

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

from imagegate.media import synth
from imagegate.webhooks import signing
from tests.async_support import Receiver, wait_until
from tests.conftest import ImageHost, ServerProc, decode, server_env

URL = "/api/v1/images/generations"
SEED_CALLBACK_KEYS = {
    "taskId",
    "model",
    "state",
    "param",
    "resultJson",
    "failCode",
    "failMsg",
    "costTime",
    "completeTime",
    "createTime",
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, image_host: ImageHost) -> Iterator[ServerProc]:
    env = server_env(image_host, IMAGEGATE_SANDBOX_DELAY_MS="0", IMAGEGATE_WEBHOOK_BACKOFF_SCALE="0.02")
    srv = ServerProc(tmp_path_factory.mktemp("seed004"), env=env, args=["--sandbox"]).start()
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


def post(srv: ServerProc, key: str, body: Any) -> dict[str, Any]:
    r = httpx.post(
        srv.url + URL,
        json=body,
        timeout=60,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    out = r.json()
    assert r.status_code == out["code"], (r.status_code, out)  # the HTTP status is the envelope's code
    return out


def query(srv: ServerProc, key: str, task_id: str | None) -> dict[str, Any]:
    params = {"task_id": task_id} if task_id is not None else {}
    r = httpx.get(srv.url + URL, params=params, headers={"Authorization": f"Bearer {key}"})
    out = r.json()
    assert r.status_code == out["code"], (r.status_code, out)
    return out


def settled(srv: ServerProc, key: str, task_id: str) -> dict[str, Any]:
    seen: set[str] = set()

    def done() -> dict[str, Any] | None:
        data = query(srv, key, task_id)["data"]
        seen.add(data["state"])
        return data if data["state"] in ("completed", "failed") else None

    data = wait_until(done, 60, f"task {task_id}")
    assert seen <= {"pending", "processing", "completed", "failed"}
    return data


def results(data: dict[str, Any]) -> list[Image.Image]:
    assert data["state"] == "completed", data
    out = []
    for url in data["resultUrls"]:
        r = httpx.get(url, timeout=30)
        assert r.status_code == 200
        out.append(decode(r.content))
    return out


def b64_png(w: int, h: int, name: str = "model") -> str:
    return base64.b64encode(synth.render_bytes(f"/{name}.png", w, h, "png")).decode()


def b64_mask(w: int, h: int) -> str:
    mask = Image.new("RGBA", (w, h), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (w // 4, h // 4, w // 2, h // 2))
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def stored_request(srv: ServerProc, task_id: str) -> dict[str, Any]:
    [(request,)] = srv.query("SELECT request FROM tasks WHERE id = ?", task_id)
    return dict(request)


def test_1_text_to_image_sync_jpeg(sandbox: ServerProc, key: str) -> None:
    out = post(
        sandbox,
        key,
        {
            "model": "gpt-image-2-lite",
            "prompt": "A children's book drawing of a veterinarian using a stethoscope to listen to the heartbeat "
            "of a baby otter.",
            "size": "1024x1024",
            "quality": "low",
            "output_format": "jpeg",
        },
    )
    assert out["code"] == 200 and out["msg"] == "success"
    data = out["data"]
    assert data["taskId"] and data["state"] == "completed"
    [img] = results(data)
    assert img.format == "JPEG" and img.size == (1024, 1024)
    assert data["resultUrls"][0].split("?")[0].endswith(".jpeg")
    assert 1e12 < data["createTime"] <= data["completeTime"]  # ms epochs


def test_2_edit_with_reference_url(sandbox: ServerProc, key: str, image_host: ImageHost) -> None:
    out = post(
        sandbox,
        key,
        {
            "model": "gpt-image-2-lite",
            "prompt": "Change the season to winter with snow",
            "image_url": "https://example.com/landscape.jpg",
            "size": "1536x1024",
        },
    )
    assert "/landscape.jpg" in image_host.hits
    [img] = results(out["data"])
    assert img.size == (1536, 1024) and img.format == "PNG"
    assert stored_request(sandbox, out["data"]["taskId"])["mode"] == "edit"


def test_3_multi_image_fusion_base64_then_urls(sandbox: ServerProc, key: str) -> None:
    out = post(
        sandbox,
        key,
        {
            "model": "gpt-image-2-lite",
            "prompt": "Combine the model from image 1 with the outfit from image 2",
            "image_base64": b64_png(600, 800),
            "image_urls": ["https://example.com/outfit.jpg"],
            "size": "1024x1536",
        },
    )
    [img] = results(out["data"])
    assert img.size == (1024, 1536)
    images = stored_request(sandbox, out["data"]["taskId"])["images"]
    assert [(i["source"], i["width"]) for i in images] == [("base64", 600), ("url", 640)]  # image 1, image 2


def test_4_mask_inpainting(sandbox: ServerProc, key: str) -> None:
    out = post(
        sandbox,
        key,
        {
            "model": "gpt-image-2-lite",
            "prompt": "Replace the logo on the box",
            "image_base64": b64_png(1024, 1024, "box"),
            "mask_base64": b64_mask(1024, 1024),
            "size": "1024x1024",
        },
    )
    [img] = results(out["data"])
    assert img.size == (1024, 1024)
    assert "mask" in stored_request(sandbox, out["data"]["taskId"])


def test_5_poll_a_sync_task_returns_completed(sandbox: ServerProc, key: str) -> None:
    created = post(sandbox, key, {"model": "gpt-image-2-lite", "prompt": "otter", "size": "1024x1024"})["data"]
    out = query(sandbox, key, created["taskId"])
    assert out["code"] == 200 and out["msg"] == "success"
    data = out["data"]
    assert data["taskId"] == created["taskId"] and data["state"] == "completed"
    assert data["createTime"] == created["createTime"] and data["completeTime"] == created["completeTime"]
    assert results(data)[0].size == (1024, 1024)


def test_results_are_always_urls(sandbox: ServerProc, key: str) -> None:
    data = post(
        sandbox, key, {"model": "test/test", "prompt": "p", "size": "64x48", "response_format": "b64_ephemeral"}
    )["data"]
    assert [i.size for i in results(data)] == [(64, 48)]


def test_async_model_answers_pending_then_completes(sandbox: ServerProc, key: str) -> None:
    out = post(sandbox, key, {"model": "Kling:3.0-omni", "prompt": "a cat by the window", "aspect_ratio": "16:9"})
    data = out["data"]
    assert data["state"] in ("pending", "processing") and "resultUrls" not in data and "completeTime" not in data
    done = settled(sandbox, key, data["taskId"])
    [img] = results(done)
    assert abs(img.width / img.height - 16 / 9) < 0.02


def test_failed_task_has_fail_msg(sandbox: ServerProc, key: str) -> None:
    data = post(sandbox, key, {"model": "Kling:3.0-omni", "prompt": "x [sandbox:moderated]"})["data"]
    done = settled(sandbox, key, data["taskId"])
    assert done["state"] == "failed" and done["failMsg"] and "resultUrls" not in done
    # a sync model's failure is answered with its code, and the task can still be queried
    out = post(sandbox, key, {"model": "gpt-image-2-lite", "prompt": "x [sandbox:moderated]"})
    assert out["code"] == 400 and out["data"]["state"] == "failed" and out["msg"] == out["data"]["failMsg"]
    assert query(sandbox, key, out["data"]["taskId"])["data"]["state"] == "failed"
    out = post(sandbox, key, {"model": "gpt-image-2-lite", "prompt": "x [sandbox:error]"})
    assert out["code"] == 500 and out["data"]["state"] == "failed"


@pytest.mark.parametrize(
    "body,param",
    [
        ({"prompt": "x"}, "model"),
        ({"model": "no-such-model", "prompt": "x"}, "model"),
        ({"model": "gpt-image-2-lite"}, "prompt"),
        ({"model": "gpt-image-2-lite", "prompt": "x", "size": "1000x1000"}, "size"),
        ({"model": "gpt-image-2-lite", "prompt": "x", "quality": "ultra"}, "quality"),
        ({"model": "gpt-image-2-lite", "prompt": "x", "output_format": "bmp"}, "output_format"),
        ({"model": "gpt-image-2-lite", "prompt": "x", "image_url": ["https://example.com/a.png"]}, "image_url"),
        ({"model": "gpt-image-2-lite", "prompt": "x", "image_urls": [7]}, "image_urls"),
        ({"model": "gpt-image-2-lite", "prompt": "x", "image_url": "https://example.com/a.txt"}, "image_url"),
        ({"model": "gpt-image-2-lite", "prompt": "x", "image_base64": "!!!not base64!!!"}, "image_base64"),
        ({"model": "gpt-image-2-lite", "prompt": "x", "mask_base64": "AAAA"}, "mask_base64"),
        ({"model": "Hunyuan-3d-2.0", "prompt": "x", "image_url": "https://example.com/a.png"}, "image_url"),
        ({"model": "gpt-image-2-lite", "prompt": "x", "callback_url": "not a url"}, "callback_url"),
    ],
)
def test_400_names_the_parameter(sandbox: ServerProc, key: str, body: dict[str, Any], param: str) -> None:
    out = post(sandbox, key, body)
    assert out["code"] == 400 and out["param"] == param and out["msg"] and out["data"] is None


def test_mask_must_match_image_1(sandbox: ServerProc, key: str) -> None:
    out = post(
        sandbox,
        key,
        {
            "model": "gpt-image-2-lite",
            "prompt": "x",
            "image_base64": b64_png(512, 512),
            "mask_base64": b64_mask(256, 256),
        },
    )
    assert out["code"] == 400 and out["param"] == "mask_base64"


def test_401_402_404(sandbox: ServerProc, key: str) -> None:
    assert post(sandbox, "sk-wrong", {"model": "gpt-image-2-lite", "prompt": "x"})["code"] == 401
    assert query(sandbox, "sk-wrong", "anything")["code"] == 401
    broke = sandbox.create_key(credits=0.01, name="broke")
    out = post(sandbox, broke, {"model": "gpt-image-2-lite", "prompt": "x"})
    assert out["code"] == 402 and out["data"] is None
    out = query(sandbox, key, "img_000000000000000000000000")
    assert out["code"] == 404 and out["param"] == "task_id"
    assert query(sandbox, key, None)["param"] == "task_id"


def test_callback_payload_as_documented(sandbox: ServerProc, key: str, receiver: Receiver) -> None:
    sent = {
        "model": "gpt-image-2-lite",
        "prompt": "otter",
        "size": "1024x1024",
        "output_format": "png",
        "image_base64": b64_png(256, 256),
        "callback_url": receiver.url + "/fail2",
    }
    task_id = post(sandbox, key, sent)["data"]["taskId"]

    def attempts() -> list[dict[str, Any]]:
        return [h for h in receiver.hits if json.loads(h["body"])["data"]["taskId"] == task_id]

    wait_until(lambda: any(h["code"] < 300 for h in attempts()), 30, "the callback")
    hits = attempts()
    assert [h["code"] for h in hits] == [500, 500, 200]  # retried until a 2xx, as the same message
    assert len({h["headers"]["webhook-id"] for h in hits}) == 1  # (rendered afresh: the URLs are re-signed)
    hit = hits[-1]
    assert hit["headers"]["content-type"] == "application/json"
    secret = httpx.get(sandbox.url + "/v1/webhooks/secret", headers={"Authorization": f"Bearer {key}"}).json()["key"]
    assert signing.verify(secret, hit["headers"], hit["body"])
    Webhook(secret).verify(hit["body"], hit["headers"])  # the reference library agrees
    payload = json.loads(hit["body"])
    assert payload["code"] == 200 and payload["msg"] == "success"
    data = payload["data"]
    assert set(data) == SEED_CALLBACK_KEYS
    assert data["model"] == "openai/gpt-image-2-lite" and data["state"] == "completed"
    param = json.loads(data["param"])  # JSON strings: parsed once
    assert param["prompt"] == "otter" and param["size"] == "1024x1024" and param["callback_url"] == sent["callback_url"]
    result = json.loads(data["resultJson"])
    assert [decode(httpx.get(u).content).size for u in result["resultUrls"]] == [(1024, 1024)]
    assert data["failCode"] is None and data["failMsg"] is None
    assert isinstance(data["costTime"], int) and 1e12 < data["createTime"] <= data["completeTime"]


def test_failed_callback(sandbox: ServerProc, key: str, receiver: Receiver) -> None:
    task_id = post(
        sandbox,
        key,
        {"model": "Kling:3.0-omni", "prompt": "x [sandbox:moderated]", "callback_url": receiver.url + "/ok"},
    )["data"]["taskId"]
    hit = wait_until(
        lambda: [h for h in receiver.hits if json.loads(h["body"])["data"]["taskId"] == task_id], 30, "the callback"
    )[0]
    data = json.loads(hit["body"])["data"]
    assert data["state"] == "failed" and data["resultJson"] is None
    assert data["failCode"] == "content_policy_violation" and data["failMsg"]
    assert data["model"] == "kuaishou/Kling:3.0-omni" and json.loads(data["param"])["prompt"].startswith("x ")
