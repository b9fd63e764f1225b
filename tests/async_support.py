"""Test parts for async tasks: a provider fake in its own process, a webhook receiver, a catalog."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ServerProc, free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail (not hang) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.03)


class FakeUpstream:
    """``python -m tests.fake_server fal PORT``: counts submissions, holds them while gated."""

    def __init__(self, provider: str = "fal") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.fake_server", provider, str(self.port)], cwd=ROOT)
        wait_until(self._up, 20, "the fake upstream to start")

    def _up(self) -> bool:
        try:
            return httpx.get(self.url + "/_ctl/stats", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.url + "/_ctl/stats", timeout=5).json()

    def calls(self, name: str) -> int:
        return int(self.stats()["calls"].get(name, 0))

    def config(self, **cfg: Any) -> dict[str, Any]:
        return httpx.post(self.url + "/_ctl/config", json=cfg, timeout=5).json()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def write_catalog(path: Path, upstream_url: str, max_concurrency: int | None = None) -> Path:
    """``test/slow``: a poll-kind model served by the fal fake at ``upstream_url``."""
    entry = {
        "id": "test/slow",
        "description": "fal fake in its own process (tests)",
        "capabilities": ["generate"],
        "size_rule": {"min_side": 64, "max_side": 2048},
        "default_size": "256x256",
        "max_n": 4,
        "formats": ["png", "jpeg"],
        "price": {"per_image": 0.01},
        "deployments": [
            {
                "id": "slow-fal",
                "provider": "fal",
                "model": "fal-ai/flux/dev",
                "base_url": upstream_url,
                "credentials": {"api_key": "FAL_KEY"},
                "poll_interval": 0.05,
                "timeout": 120,
                **({"max_concurrency": max_concurrency} if max_concurrency else {}),
            }
        ],
    }
    path.write_text(json.dumps({"models": [entry]}))  # JSON is YAML
    return path


def slow_server(
    tmp: Path,
    upstream: FakeUpstream,
    *,
    workers: int = 4,
    env: dict[str, str] | None = None,
    max_concurrency: int | None = None,
) -> ServerProc:
    catalog = write_catalog(tmp / "catalog.yaml", upstream.url, max_concurrency)
    base_env = {
        "IMAGEGATE_ALLOW_PRIVATE_NETWORKS": "1",
        "FAL_KEY": "sandbox-key",
        "IMAGEGATE_WEBHOOK_BACKOFF_SCALE": "0.02",
        "IMAGEGATE_WEBHOOK_TIMEOUT": "1",
    }
    return ServerProc(
        tmp / "data", env={**base_env, **(env or {})}, args=["--config", str(catalog), "--workers", str(workers)]
    )


def make_key(server: ServerProc, name: str = "test") -> str:
    """A new API key written straight into the running server's database (the CLI's code path, minus
    a Python start-up per key)."""
    import asyncio

    from imagegate.db.database import Database
    from imagegate.db.keys import KeyStore

    async def go() -> str:
        url = server.env.get("IMAGEGATE_DATABASE_URL") or f"sqlite+aiosqlite:///{server.data_dir / 'imagegate.db'}"
        db = Database(url)
        try:
            return (await KeyStore(db).create(name, None))[1]
        finally:
            await db.close()

    return asyncio.run(go())


class Api:
    """A thin httpx wrapper bound to one server and key."""

    def __init__(self, server: ServerProc, key: str) -> None:
        self.server, self.key = server, key
        self.h = {"authorization": f"Bearer {key}"}

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        if body is not None:
            kw["json"] = body
        return httpx.post(self.server.url + path, headers={**self.h, **(headers or {})}, timeout=60, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.server.url + path, headers=self.h, timeout=30, **kw)

    def task(self, task_id: str) -> dict[str, Any]:
        r = self.get(f"/v1/tasks/{task_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_status(self, task_id: str, *statuses: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_until(
            lambda: (t := self.task(task_id))["status"] in statuses and t,
            timeout,
            f"task {task_id} to reach {statuses}",
        )


class Receiver:
    """A loopback webhook receiver. Path ``/<mode>``: ``ok``; ``fail2`` (500 for the first two
    attempts of each webhook-id); ``gone`` (410); ``down`` (503 while ``self.down``)."""

    def __init__(self) -> None:
        recv = self
        self.lock = threading.Lock()
        self.hits: list[dict[str, Any]] = []
        self.down = True

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                code = recv.answer(self.path.strip("/"), headers.get("webhook-id", ""))
                with recv.lock:
                    recv.hits.append({"path": self.path, "headers": headers, "body": body, "code": code})
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, mode: str, msg_id: str) -> int:
        with self.lock:
            seen = sum(1 for h in self.hits if h["headers"].get("webhook-id") == msg_id)
        if mode == "gone":
            return 410
        if mode == "fail2":
            return 500 if seen < 2 else 200
        if mode == "down":
            return 503 if self.down else 200
        return 204

    def for_task(self, task_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [h for h in self.hits if json.loads(h["body"]).get("id") == task_id]

    def close(self) -> None:
        self.server.shutdown()
