"""An in-process gateway for the money and security tests: the real app on a real SQLite file and local
disk, every upstream its provider's in-process fake (the sandbox), reached over ASGI.

In process, so a test can turn the fakes' knobs (``polls_to_finish``, scripted replies) and read a
key's balance to the micro-dollar, and so the whole file runs in seconds: the mutation check
(``scripts/mutation_check.py``) runs these tests once per mutant.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.api.deps import Gateway
from imagegate.app import create_app, running
from imagegate.db.tables import Task
from imagegate.settings import Settings
from imagegate.testing.fakes.state import FakeState
from imagegate.testing.sandbox import Sandbox


@dataclass
class InProcess:
    app: FastAPI
    gw: Gateway
    http: httpx.AsyncClient
    sandbox: Sandbox

    async def key(self, credits: float | None = 10.0, name: str = "money") -> tuple[str, dict[str, str]]:
        """A new key's id and its auth header."""
        row, secret = await self.gw.keys.create(name, credits)
        return row.id, {"authorization": f"Bearer {secret}"}

    async def balance(self, key_id: str) -> int | None:
        """The key's balance in micro-dollars, read from its row."""
        row = await self.gw.keys.find(key_id)
        assert row is not None
        return row.credits_micros

    async def task(self, task_id: str) -> Task:
        row = await self.gw.tasks.store.get(task_id)
        assert row is not None
        return row

    def fake(self, provider: str) -> FakeState:
        return self.sandbox.state(provider)

    async def post(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(path, headers=headers, json=body)

    async def wait_status(self, task_id: str, *statuses: str, timeout: float = 20.0) -> Task:
        return await wait_for(lambda: self._in(task_id, statuses), timeout, f"task {task_id} to reach {statuses}")

    async def _in(self, task_id: str, statuses: tuple[str, ...]) -> Task | None:
        row = await self.task(task_id)
        return row if row.status in statuses else None


async def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Await ``check()`` until it returns something truthy; fail (never hang) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def sandbox_of(gw: Gateway) -> Sandbox:
    """The fakes this gateway's upstream clients talk to (the app builds its own sandbox)."""
    fakes = gw.tasks.runner.router.clients.fakes
    assert isinstance(fakes, Sandbox)
    return fakes


@contextlib.asynccontextmanager
async def in_process(tmp: Path, **settings: Any) -> AsyncIterator[InProcess]:
    """The gateway with its services running (one worker unless told), torn down on exit."""
    data = tmp / "data"
    config = dict(  # explicit, so no IMAGEGATE_* variable of a test profile moves it elsewhere
        data_dir=data,
        database_url=f"sqlite+aiosqlite:///{data / 'imagegate.db'}",
        storage_url=None,
        sandbox_url=None,
        public_base_url=None,
        sandbox=True,
        sandbox_delay_ms=0,
        workers=1,
        allow_private_networks=True,
        secret_key="money-tests-secret",
    )
    config.update(settings)
    app = create_app(Settings(**config))
    gw: Gateway = app.state.gateway
    async with running(gw):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=30) as http:
            yield InProcess(app, gw, http, sandbox_of(gw))


def png_b64(width: int, height: int, color: tuple[int, int, int] = (40, 90, 160)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def openai_answer(images: int, width: int, height: int) -> Callable[[Request], Response | None]:
    """A scripted OpenAI Images reply with exactly ``images`` pictures, whatever ``n`` asked for."""

    def reply(request: Request) -> Response | None:
        data = [{"b64_json": png_b64(width, height, (40 * i % 255, 90, 160))} for i in range(images)]
        return JSONResponse({"created": int(time.time()), "data": data})

    return reply
