"""Retention: the sweeper removes old outputs, inputs, uploads, settled deliveries and expired
Idempotency-Key rows (files and rows), in bounded batches, and keeps recent ones and the inputs of
tasks that have not finished. A removed output's link answers 404, never a 500.

The gateway runs in process (SQLite file, local disk, sandbox fakes); the sweeper is driven
directly with periods of about a second.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image
from sqlalchemy import func, select

from imagegate.db.database import Database
from imagegate.db.retention import RetentionStore
from imagegate.db.tables import ApiKey, Delivery, DeliveryAttempt, IdempotencyKey, StoredFile, Task, Upload, utcnow
from imagegate.engine.retention import RetentionPolicy, RetentionSweeper
from imagegate.settings import Settings
from imagegate.storage.local import LocalStorage
from tests.async_support import Receiver
from tests.conftest import fresh_pg_database
from tests.money_support import InProcess, in_process, wait_for

PERIOD = 1.5  # seconds every kind is kept in these tests
HANG = 10**6


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def png_uri(size: tuple[int, int] = (64, 64)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def sweeper(gw: InProcess, **policy: Any) -> RetentionSweeper:
    periods = {"outputs": PERIOD, "inputs": PERIOD, "deliveries": PERIOD, "idempotency": PERIOD, **policy}
    return RetentionSweeper(RetentionStore(gw.gw.db), gw.gw.storage, RetentionPolicy(**periods))


async def count(gw: InProcess, column: Any, *where: Any) -> int:
    async with gw.gw.db.session() as s:
        return int((await s.execute(select(func.count(column)).where(*where))).scalar_one())


async def files_of(gw: InProcess, task_id: str) -> dict[str, str]:
    """A task's stored files: id -> storage key."""
    async with gw.gw.db.session() as s:
        rows = (await s.execute(select(StoredFile).where(StoredFile.task_id == task_id))).scalars()
        return {f.id: f.path for f in rows}


def on_disk(gw: InProcess, key: str) -> bool:
    return gw.gw.storage.local_path(key) is not None


async def generate(gw: InProcess, h: dict[str, str], **extra: Any) -> tuple[str, str]:
    """A sync generation: (task id, its output's signed path and query)."""
    body = {"model": "test/test", "prompt": "kept for a while", "size": "64x64", **extra}
    r = await gw.post("/v1/images/generations", h, body)
    assert r.status_code == 200, r.text
    url = urlsplit(r.json()["data"][0]["url"])
    return r.headers["x-imagegate-task-id"], f"{url.path}?{url.query}"


async def upload(gw: InProcess, h: dict[str, str]) -> str:
    r = await gw.post("/v1/uploads", h, {"filename": "a.png", "content_type": "image/png"})
    assert r.status_code in (200, 201), r.text
    slot = r.json()
    data = base64.b64decode(png_uri().split(",", 1)[1])
    put = await gw.http.put(slot["upload_url"], content=data, headers={"content-type": "image/png"})
    assert put.status_code == 200, put.text
    return str(slot["upload_id"])


async def old_things(gw: InProcess, h: dict[str, str], receiver: Receiver) -> dict[str, Any]:
    """Everything the sweep must remove, and a running task whose inputs it must keep."""
    gen_id, link = await generate(gw, h)
    idem = await gw.http.post(
        "/v1/images/generations",
        headers={**h, "Idempotency-Key": "old-one"},
        json={"model": "test/test", "prompt": "idem", "size": "64x64"},
    )
    assert idem.status_code == 200
    edit = await gw.post("/v1/images/edits", h, {"model": "test/test", "prompt": "edit", "image": png_uri()})
    assert edit.status_code == 200, edit.text
    edit_id = edit.headers["x-imagegate-task-id"]
    hooked = await gw.post(
        "/v1/images/generations?async=true",
        h,
        {"model": "test/test", "prompt": "hook", "size": "64x64", "callback_url": receiver.url + "/gone"},
    )
    hook_id = hooked.json()["id"]
    gw.fake("bfl").polls_to_finish = HANG
    running = await gw.post(
        "/v1/images/edits?async=true", h, {"model": "flux-2-pro", "prompt": "slow", "image": png_uri((256, 256))}
    )
    assert running.status_code == 202, running.text
    run_id = running.json()["id"]
    await gw.wait_status(run_id, "running")
    upload_id = await upload(gw, h)
    await wait_for(lambda: count(gw, Delivery.id, Delivery.task_id == hook_id, Delivery.status == "stopped"))
    return {"gen": gen_id, "link": link, "edit": edit_id, "hook": hook_id, "run": run_id, "upload": upload_id}


async def test_the_sweeper_removes_what_is_old_and_keeps_the_rest(tmp_path: Path, receiver: Receiver) -> None:
    async with in_process(tmp_path, upload_ttl=1.0, workers=2) as gw:
        _, h = await gw.key(credits=None)
        old = await old_things(gw, h, receiver)
        run_inputs = await files_of(gw, old["run"])
        async with gw.gw.db.session() as s:
            rows = (await s.execute(select(StoredFile.id, StoredFile.path, StoredFile.role))).all()
        old_files = {r.id: r.path for r in rows if r.id not in run_inputs and r.role != "upload"}
        roles = sorted(r.role for r in rows if r.id in old_files)
        assert roles == ["input"] + ["output"] * 4 and len(run_inputs) == 1  # generate, idempotent, edit, hook
        assert all(on_disk(gw, k) for k in [*old_files.values(), *run_inputs.values()])
        async with gw.gw.db.session() as s:
            upload_file = (await s.execute(select(Upload.file_id).where(Upload.id == old["upload"]))).scalar_one()
            upload_path = (await s.execute(select(StoredFile.path).where(StoredFile.id == upload_file))).scalar_one()
        await asyncio.sleep(1.0 + PERIOD + 0.2)  # the upload slot expired more than a period ago
        new_id, new_link = await generate(gw, h)
        recent = await gw.http.post(
            "/v1/images/generations",
            headers={**h, "Idempotency-Key": "recent-one"},
            json={"model": "test/test", "prompt": "idem", "size": "64x64"},
        )
        assert recent.status_code == 200

        swept = await sweeper(gw).sweep()

        assert (swept.outputs, swept.inputs, swept.uploads, swept.deliveries) == (4, 1, 1, 1), swept
        assert swept.idempotency == 1 and not swept.failed_deletes
        assert await count(gw, StoredFile.id, StoredFile.id.in_(old_files)) == 0
        assert not any(on_disk(gw, k) for k in old_files.values())
        assert (await gw.http.get(old["link"])).status_code == 404  # the link is still validly signed
        assert (await gw.http.get(new_link)).status_code == 200
        assert await files_of(gw, new_id) and all(on_disk(gw, k) for k in (await files_of(gw, new_id)).values())
        assert await files_of(gw, old["run"]) == run_inputs and all(on_disk(gw, k) for k in run_inputs.values())
        assert await count(gw, Upload.id, Upload.id == old["upload"]) == 0 and not on_disk(gw, upload_path)
        assert await count(gw, StoredFile.id, StoredFile.id == upload_file) == 0
        assert await count(gw, Delivery.id) == 0 and await count(gw, DeliveryAttempt.id) == 0
        assert await count(gw, IdempotencyKey.id, IdempotencyKey.idem_key == "old-one") == 0
        assert await count(gw, IdempotencyKey.id, IdempotencyKey.idem_key == "recent-one") == 1
        # the task rows stay, and showing them with their files gone is no error
        for task_id in (old["gen"], old["edit"], old["hook"]):
            r = await gw.http.get(f"/v1/tasks/{task_id}", headers=h)
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
        assert (await gw.http.get(f"/v1/tasks/{old['hook']}/deliveries", headers=h)).json()["data"] == []
        assert (await sweeper(gw).sweep()).outputs == 0  # nothing left that old


async def test_sweeps_go_in_bounded_batches_and_none_keeps_a_kind(tmp_path: Path) -> None:
    async with in_process(tmp_path) as gw:
        _, h = await gw.key(credits=None)
        r = await gw.post(
            "/v1/images/generations", h, {"model": "test/test", "prompt": "five", "size": "64x64", "n": 5}
        )
        assert r.status_code == 200
        task_id = r.headers["x-imagegate-task-id"]
        await asyncio.sleep(0.1)
        keep = await sweeper(gw, outputs=None, batch=2, max_batches=1).sweep()
        assert keep.outputs == 0 and len(await files_of(gw, task_id)) == 5
        small = sweeper(gw, outputs=0.05, batch=2, max_batches=1)
        assert [(await small.sweep()).outputs for _ in range(4)] == [2, 2, 1, 0]
        assert await files_of(gw, task_id) == {}


async def test_a_file_whose_delete_fails_keeps_its_row_for_the_next_sweep(tmp_path: Path) -> None:
    async with in_process(tmp_path) as gw:
        _, h = await gw.key(credits=None)
        task_id, _ = await generate(gw, h)
        [(file_id, path)] = (await files_of(gw, task_id)).items()

        class Failing:
            async def delete(self, key: str) -> None:
                raise OSError("the store is down")

        await asyncio.sleep(0.1)
        broken = RetentionSweeper(RetentionStore(gw.gw.db), Failing(), RetentionPolicy(outputs=0.05))
        swept = await broken.sweep()
        assert swept.outputs == 0 and swept.failed_deletes == [path]
        assert await files_of(gw, task_id) == {file_id: path}
        assert (await sweeper(gw, outputs=0.05).sweep()).outputs == 1 and not on_disk(gw, path)


def test_the_policy_reads_the_settings() -> None:
    s = Settings(retain_outputs=10.0, retain_inputs=None, retain_deliveries=30.0, idempotency_ttl=40.0)
    p = RetentionPolicy.from_settings(s)
    assert (p.outputs, p.inputs, p.deliveries, p.idempotency) == (10.0, None, 30.0, 40.0)


# -- the sweep's SQL on both databases --------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
        return
    with fresh_pg_database() as url:
        yield url


async def test_the_sweep_sql_on_both_databases(database_url: str, tmp_path: Path) -> None:
    """Rows written as the gateway writes them, aged by their timestamps: what goes and what stays."""
    db = Database(database_url)
    storage = LocalStorage(tmp_path / "files")
    try:
        await db.migrate()
        old, now = utcnow() - timedelta(days=3), utcnow()
        ended, live = _task("img_ended", "succeeded", old), _task("img_live", "running", None)
        files = [
            _file("file_old", "output", ended.id, old),
            _file("file_new", "output", ended.id, now),
            _file("in_ended", "input", ended.id, old),
            _file("in_live", "mask", live.id, old),
            _file("in_upl", "upload", None, old),
        ]
        for f in files:
            await storage.put(f.path, b"bytes", f.mime)
        async with db.session.begin() as s:
            s.add(ApiKey(id="key_r", name="r", prefix="ig-r", key_hash="h", webhook_secret="whsec_x", created_at=old))
            s.add_all([ended, live, *files])
            s.add(Upload(id="upl_old", key_id="key_r", filename="a.png", content_type="image/png", max_bytes=9,
                         file_id="in_upl", created_at=old, expires_at=old))  # fmt: skip
            s.add(Upload(id="upl_live", key_id="key_r", filename="b.png", content_type="image/png", max_bytes=9,
                         task_id=live.id, created_at=old, expires_at=old))  # fmt: skip
            for i, status in enumerate(("delivered", "failed", "pending")):
                s.add(Delivery(id=f"msg_{status}", task_id=ended.id, key_id="key_r", url="http://x", payload="",
                               status=status, attempts=1, next_at=old, created_at=old))  # fmt: skip
                s.add(DeliveryAttempt(delivery_id=f"msg_{status}", at=old, status_code=500 + i))
            s.add(IdempotencyKey(key_id="key_r", idem_key="old", fingerprint="f", task_id=ended.id, created_at=old))
            s.add(IdempotencyKey(key_id="key_r", idem_key="new", fingerprint="f", task_id=ended.id, created_at=now))
        policy = RetentionPolicy(outputs=86400, inputs=86400, deliveries=86400, idempotency=86400, batch=1)
        swept = await RetentionSweeper(RetentionStore(db), storage, policy).sweep()
        assert (swept.outputs, swept.inputs, swept.uploads, swept.deliveries, swept.idempotency) == (1, 1, 1, 2, 1)
        async with db.session() as s:
            left = set((await s.execute(select(StoredFile.id))).scalars())
            uploads = set((await s.execute(select(Upload.id))).scalars())
            deliveries = set((await s.execute(select(Delivery.id))).scalars())
            attempts = len((await s.execute(select(DeliveryAttempt.id))).all())
            idem = set((await s.execute(select(IdempotencyKey.idem_key))).scalars())
        assert left == {"file_new", "in_live"} and uploads == {"upl_live"}
        assert deliveries == {"msg_pending"} and attempts == 1 and idem == {"new"}
        assert {f.id for f in files if storage.local_path(f.path)} == left
    finally:
        await db.close()


def _task(task_id: str, status: str, completed: datetime | None) -> Task:
    return Task(id=task_id, seq=1, key_id="key_r", model="test/test", mode="generate", status=status, request={},
                inputs=[], created_at=utcnow() - timedelta(days=4), completed_at=completed)  # fmt: skip


def _file(file_id: str, role: str, task_id: str | None, created: datetime) -> StoredFile:
    path = f"{'outputs' if role == 'output' else 'inputs'}/{file_id[-2:]}/{file_id}.png"
    return StoredFile(id=file_id, key_id="key_r", task_id=task_id, role=role, path=path, mime="image/png", bytes=5,
                      width=1, height=1, created_at=created)  # fmt: skip
