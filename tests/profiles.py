"""Which profile a test server runs: embedded (SQLite, local disk, in-process fakes) or cluster.

``IMAGEGATE_TEST_PROFILE=cluster`` runs every server test against the cluster code paths:
PostgreSQL (a fresh database per server) with the job engine, S3 (one SeaweedFS per test
process, a prefix per server) and provider fakes behind ``imagegate sandbox-server`` in its own
process (one per simulated delay). `make test` runs the suite once per profile.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

PROFILE = os.environ.get("IMAGEGATE_TEST_PROFILE", "embedded")
CLUSTER = PROFILE == "cluster"
PG_ADMIN_DSN = os.environ.get("IMAGEGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ClusterParts:
    """What cluster-profile servers share in one test process, started on first use, stopped at exit."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="imagegate-cluster-profile-"))
        self._exits = contextlib.ExitStack()
        self._s3: Any = None
        self._sandboxes: dict[str, str] = {}
        atexit.register(self._exits.close)

    def database(self) -> str:
        import psycopg

        name = f"imagegate_profile_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # a random hex name

        def drop() -> None:
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        self._exits.callback(drop)
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    def s3(self) -> Any:
        if self._s3 is None:
            from tests.s3_server import running_seaweedfs

            self._s3 = self._exits.enter_context(running_seaweedfs(self.root / "seaweedfs"))
        return self._s3

    def sandbox(self, delay_ms: str | None) -> str:
        """The URL of a sandbox server whose fakes take ``delay_ms`` per image (the fakes' default if None)."""
        key = delay_ms or ""
        if key not in self._sandboxes:
            port = _free_port()
            env = {**os.environ, **({"IMAGEGATE_SANDBOX_DELAY_MS": delay_ms} if delay_ms else {})}
            log = open(self.root / f"sandbox-{port}.log", "ab")  # noqa: SIM115  (open for the process's life)
            cmd = [sys.executable, "-m", "imagegate.cli", "sandbox-server", "--port", str(port)]
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            self._exits.callback(log.close)
            self._exits.callback(proc.kill)
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "/_sandbox/stats", timeout=1).status_code == 200:
                        break
                time.sleep(0.05)
            self._sandboxes[key] = url
        return self._sandboxes[key]

    def server_env(self, env: dict[str, str], args: list[str]) -> tuple[dict[str, str], list[str]]:
        """A server's environment and arguments, moved onto the cluster profile."""
        s3 = self.s3()
        out = {**env, **s3.env()}
        out.setdefault("IMAGEGATE_DATABASE_URL", self.database())
        out.setdefault("IMAGEGATE_SECRET_KEY", secrets.token_urlsafe(24))
        out["IMAGEGATE_STORAGE_URL"] = f"s3://{s3.bucket}/profile-{secrets.token_hex(4)}"
        out["IMAGEGATE_S3_ENDPOINT_URL"] = s3.endpoint
        if "--sandbox" in args:
            args = [a for a in args if a != "--sandbox"]
            out["IMAGEGATE_SANDBOX_URL"] = self.sandbox(env.get("IMAGEGATE_SANDBOX_DELAY_MS"))
        return out, args


_parts: ClusterParts | None = None


def cluster_parts() -> ClusterParts:
    global _parts
    if _parts is None:
        _parts = ClusterParts()
    return _parts
