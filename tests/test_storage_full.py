"""A store that cannot write: a full disk is a 507 ``storage_full`` that says so, any other refused write a
503 ``storage_error``; the task that was running ends failed and refunded, never stuck in ``running``.

In process (``tests/money_support.py``) with the real local store wrapped so that writes fail the way a
full disk fails (``OSError(ENOSPC)``): no test machine has a disk to fill.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imagegate.storage.base import Storage
from tests.money_support import InProcess, in_process, png_b64


class FailingWrites:
    """The real store, except that writes under ``prefix`` raise ``OSError(code)``."""

    def __init__(self, real: Storage, prefix: str, code: int) -> None:
        self.real, self.prefix, self.code = real, prefix, code
        self.refused = 0

    async def put(self, key: str, data: bytes, mime: str) -> None:
        if key.startswith(self.prefix):
            self.refused += 1
            raise OSError(self.code, "No space left on device" if self.code == errno.ENOSPC else "I/O error")
        await self.real.put(key, data, mime)

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


@pytest.fixture()
async def gw(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process(tmp_path) as g:
        yield g


def fill_disk(gw: InProcess, prefix: str = "outputs/", code: int = errno.ENOSPC) -> FailingWrites:
    outputs = gw.gw.tasks.runner.outputs
    failing = FailingWrites(outputs.storage, prefix, code)
    outputs.storage = failing  # type: ignore[assignment]  (a test double of the Storage protocol)
    return failing


async def test_a_full_disk_is_a_507_and_the_sync_task_is_failed_and_refunded(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    failing = fill_disk(gw)
    r = await gw.post("/v1/images/generations", h, {"model": "flux-2-pro", "prompt": "full", "n": 2})
    assert r.status_code == 507, r.text
    err = r.json()["error"]
    assert err["code"] == "storage_full" and "storage is full" in err["message"]
    assert failing.refused == 1
    task = await gw.task(r.headers["x-imagegate-task-id"])
    assert task.status == "failed" and task.error_code == "storage_full" and task.cost_micros == 0
    assert await gw.balance(key_id) == 1_000_000


async def test_an_async_task_running_when_the_disk_fills_ends_failed_and_refunded(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    fill_disk(gw)
    body = {"model": "flux-2-pro", "prompt": "later", "n": 2, "size": "1024x1024"}
    r = await gw.post("/v1/images/generations?async=true", h, body)
    assert r.status_code == 202, r.text
    task = await gw.wait_status(r.json()["id"], "failed", "succeeded", "canceled")
    assert task.status == "failed" and task.error_code == "storage_full"
    assert await gw.balance(key_id) == 1_000_000
    shown = await gw.http.get(f"/v1/tasks/{task.id}", headers=h)
    assert shown.json()["error"]["code"] == "storage_full", shown.text


async def test_another_write_failure_is_a_503_storage_error(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    fill_disk(gw, code=errno.EIO)
    r = await gw.post("/v1/images/generations", h, {"model": "flux-2-pro", "prompt": "io", "n": 1})
    assert r.status_code == 503 and r.json()["error"]["code"] == "storage_error", r.text
    assert r.headers["retry-after"] == "5"  # the task failed in the runner; its answer keeps the hint
    assert await gw.balance(key_id) == 1_000_000


async def test_an_input_that_cannot_be_kept_is_a_507_before_anything_is_reserved(gw: InProcess) -> None:
    key_id, h = await gw.key(credits=1.0)
    fill_disk(gw, prefix="inputs/")
    body = {"model": "gpt-image-1", "prompt": "edit", "image": "data:image/png;base64," + png_b64(64, 64)}
    r = await gw.post("/v1/images/edits", h, body)
    assert r.status_code == 507 and r.json()["error"]["code"] == "storage_full", r.text
    assert await gw.balance(key_id) == 1_000_000
