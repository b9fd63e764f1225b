"""The cluster profile as real processes: API and worker processes on one PostgreSQL database, one
S3 bucket (SeaweedFS) and one standalone sandbox upstream, each process with its own data dir."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.async_support import wait_until
from tests.conftest import ServerProc, free_port
from tests.s3_server import S3Server

ROOT = Path(__file__).resolve().parent.parent


class Proc:
    """A CLI process (worker, sandbox server) in its own process group, with its log kept."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as fh:
            cmd = [sys.executable, "-m", "imagegate.cli", *self.args]
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 40.0) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else None


class Cluster:
    def __init__(
        self, root: Path, pg_url: str, s3: S3Server, *, env: dict[str, str] | None = None, config: Path | None = None
    ) -> None:
        self.root, self.pg_url, self.s3 = root, pg_url, s3
        self.config_args = ["--config", str(config)] if config else []
        port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
        self.env = {
            **base,
            **s3.env(),
            "IMAGEGATE_DATABASE_URL": pg_url,
            "IMAGEGATE_SECRET_KEY": secrets.token_urlsafe(24),
            "IMAGEGATE_STORAGE_URL": f"s3://{s3.bucket}/cluster-{secrets.token_hex(3)}",
            "IMAGEGATE_S3_ENDPOINT_URL": s3.endpoint,
            "IMAGEGATE_SANDBOX_URL": self.sandbox_url,
            "IMAGEGATE_MIGRATE_ON_START": "false",
            "IMAGEGATE_STALE_AFTER": "4",
            "IMAGEGATE_HEARTBEAT_INTERVAL": "0.5",
            "IMAGEGATE_SWEEP_INTERVAL": "1",
            "IMAGEGATE_ALLOW_PRIVATE_NETWORKS": "1",
            "IMAGEGATE_WEBHOOK_BACKOFF_SCALE": "0.02",
            "IMAGEGATE_WEBHOOK_TIMEOUT": "2",
            "IMAGEGATE_DB_POOL_SIZE": "5",
            **(env or {}),
        }
        self.sandbox = Proc(["sandbox-server", "--port", str(port)], self.env, root / "sandbox.log")
        self.apis: list[ServerProc] = []
        self.workers: list[Proc] = []

    def start(self, apis: int = 2, workers: int = 2, concurrency: int = 16) -> Cluster:
        self.sandbox.start()
        wait_until(self._sandbox_up, 30, "the sandbox server")
        subprocess.run(
            [sys.executable, "-m", "imagegate.cli", "migrate", "--data-dir", str(self.root / "migrate")],
            env=self.env,
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        for _ in range(workers):
            self.add_worker(concurrency)
        for i in range(apis):
            srv = ServerProc(self.root / f"api{i}", env=self.env, args=["--workers", "0", *self.config_args])
            self.apis.append(srv.start(60))
        wait_until(lambda: self.live("worker") >= workers, 60, "the workers to register")
        return self

    def add_worker(self, concurrency: int = 16) -> Proc:
        n = len(self.workers)
        proc = Proc(
            [
                "worker",
                "--concurrency",
                str(concurrency),
                "--data-dir",
                str(self.root / f"worker{n}"),
                "--log-level",
                "warning",
                *self.config_args,
            ],
            self.env,
            self.root / f"worker{n}.log",
        )
        self.workers.append(proc.start())
        return proc

    def _sandbox_up(self) -> bool:
        try:
            return httpx.get(self.sandbox_url + "/_sandbox/stats", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.sandbox_url + "/_sandbox/stats", timeout=10).json()

    def submits(self, provider: str) -> int:
        return int(self.stats()["submits"].get(provider, 0))

    def calls(self, provider: str, name: str) -> int:
        return int(self.stats()["calls"].get(provider, {}).get(name, 0))

    def configure(self, **cfg: Any) -> None:
        httpx.post(self.sandbox_url + "/_sandbox/config", json=cfg, timeout=10).raise_for_status()

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg_url) as conn:
            return list(conn.execute(query, params).fetchall())

    def live(self, role: str) -> int:
        rows = self.sql("SELECT count(*) FROM processes WHERE role = %s AND stopped_at IS NULL", role)
        return int(rows[0][0])

    def key(self, *extra: str) -> str:
        return self.apis[0].create_key(extra=list(extra))

    def stop(self) -> None:
        for srv in self.apis:
            srv.stop()
        for w in self.workers:
            w.stop()
        self.sandbox.stop(10)


def logs(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*.log")):
        yield f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
