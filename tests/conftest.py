"""Shared fixtures: a real `imagegate serve` process on loopback, keys, an image host, PostgreSQL."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegate.media import synth
from tests.profiles import CLUSTER, PG_ADMIN_DSN, cluster_parts

TEST_CATALOG = Path(__file__).parent / "data" / "catalog.yaml"


def _json(value: Any) -> Any:
    """SQLite hands JSON columns back as text, PostgreSQL as objects: tests see objects either way."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        import json

        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProc:
    """`imagegate serve` in a child process, as a user would run it."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "IMAGEGATE_LOG_LEVEL": "warning", **(env or {})}
        self.args = args or []
        if CLUSTER:  # PostgreSQL and its job engine, S3, and the fakes behind a sandbox server
            self.env, self.args = cluster_parts().server_env(self.env, self.args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / f"server-{self.port}.log"

    def start(self, timeout: float = 30.0) -> ServerProc:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "imagegate.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "warning",
            *self.args,
        ]
        self._fh = open(self.log, "ab")  # noqa: SIM115  (the server's log, open for the life of its process)
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not come up:\n{self.log.read_text()[-3000:]}")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of the server's database, whichever profile it runs (``?`` placeholders; JSON comes back parsed)."""
        url = self.env.get("IMAGEGATE_DATABASE_URL") or ""
        if url.startswith("postgres"):
            import psycopg

            with psycopg.connect(url) as conn:
                rows = conn.execute(sql.replace("?", "%s"), params).fetchall()  # a test's own query text
        else:
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.data_dir / "imagegate.db", timeout=10)) as con:
                rows = con.execute(sql, params).fetchall()
        return [tuple(_json(v) for v in row) for row in rows]

    def kill(self) -> None:
        """SIGKILL: no chance to clean up (durability tests)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_fh", None):
            self._fh.close()

    def create_key(self, credits: float | None = None, name: str | None = None, extra: list[str] | None = None) -> str:
        """Through the CLI, against the same data dir, while the server runs."""
        cmd = [
            sys.executable,
            "-m",
            "imagegate.cli",
            "keys",
            "create",
            "--data-dir",
            str(self.data_dir),
            "--name",
            name or f"k-{secrets.token_hex(3)}",
        ]
        if credits is not None:
            cmd += ["--credits", str(credits)]
        cmd += extra or []
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=True)
        return out.stdout.strip().splitlines()[-1]


class ImageHost:
    """A loopback HTTP server handing out real images: /<name>.<png|jpg|webp>?w=&h=."""

    def __init__(self) -> None:
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                path, _, query = self.path.partition("?")
                params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                if path.startswith("/status/"):
                    self.send_response(int(path.rsplit("/", 1)[1]))
                    self.end_headers()
                    return
                if path.endswith(".txt"):
                    body, ctype = b"not an image", "text/plain"
                else:
                    ext = path.rsplit(".", 1)[-1].lower() if "." in path else "png"
                    fmt = {"jpg": "jpeg", "jpeg": "jpeg", "webp": "webp"}.get(ext, "png")
                    w, h = int(params.get("w", 640)), int(params.get("h", 480))
                    body = synth.render_bytes(path, w, h, fmt)
                    ctype = f"image/{fmt}"
                host.hits.append(path)
                self.send_response(200)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                pass

        self.hits: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="session")
def image_host() -> Iterator[ImageHost]:
    host = ImageHost()
    yield host
    host.close()


def server_env(image_host: ImageHost, **extra: str) -> dict[str, str]:
    """Let the server fetch the seeds' example.com URLs from the loopback image host."""
    import json

    env = {
        "IMAGEGATE_ALLOW_PRIVATE_NETWORKS": "1",
        "IMAGEGATE_URL_REWRITES": json.dumps({"https://example.com/": image_host.url + "/"}),
    }
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, image_host: ImageHost) -> Iterator[ServerProc]:
    srv = ServerProc(
        tmp_path_factory.mktemp("gw"), env=server_env(image_host), args=["--config", str(TEST_CATALOG)]
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    """Default network policy: private addresses refused."""
    srv = ServerProc(tmp_path_factory.mktemp("gw-strict"), env={"IMAGEGATE_ALLOW_PRIVATE_NETWORKS": "0"}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def api_key(server: ServerProc) -> str:
    return server.create_key()


@pytest.fixture()
def openai_client(server: ServerProc, api_key: str):  # type: ignore[no-untyped-def]
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key=api_key, max_retries=0)


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


def pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql)  # a CREATE or DROP DATABASE of a random hex name


@contextlib.contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards); fails (never skips) under CI when PG is unreachable."""
    if not pg_reachable():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is unreachable, and CI requires the PostgreSQL tests")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable (these tests run in CI)")
    name = f"imagegate_test_{secrets.token_hex(4)}"
    pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real S3-protocol server (SeaweedFS) on loopback: a ``tests.s3_server.S3Server`` with its endpoint,
    keys and an existing bucket. Fails under CI if it cannot start; skips elsewhere, saying why."""
    from tests.s3_server import running_seaweedfs

    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as s3:
        yield s3


@pytest.fixture(scope="session", autouse=True)
def _profile_prerequisites() -> None:
    """The cluster profile needs PostgreSQL: fail under CI, skip elsewhere (saying why) when it is missing."""
    if CLUSTER and not pg_reachable():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is unreachable, and CI runs the cluster profile")
        pytest.skip("the cluster profile needs PostgreSQL at 127.0.0.1:5432")


#: modules that run in process or bring their own infrastructure: the embedded run covers them
PROFILE_FREE = {
    "test_bench_smoke",
    "test_catalog",
    "test_cluster",
    "test_money_paths",  # in process, on SQLite and local disk
    "test_retention",
    "test_router",
    "test_s3_profile",
    "test_sandbox_fidelity",
    "test_sandbox_server",
    "test_storage",
    "test_tracing",  # in process
    "test_storage_full",  # in process, a failing local store
    "test_validate",
    "test_webhook_rotation",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not CLUSTER:
        return
    once = pytest.mark.skip(reason="profile-free: it runs in the embedded profile's run")
    for item in items:
        path = item.path
        if path.stem in PROFILE_FREE or path.parent.name == "providers":
            item.add_marker(once)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keeps each phase's report on the item (``item.rep_call``): fixtures look at it to act on a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
