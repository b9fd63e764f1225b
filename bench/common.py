"""What the bench scenarios share: servers in their own process groups, /proc accounting,
a bounded asyncio load generator, percentiles and machine facts.

Every process a scenario starts is a :class:`Server` in its own session; ``stop()`` ends that
session's process group only (never anything found by name).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = Path(os.environ.get("IMAGEGATE_BENCH_RESULTS") or BENCH / "results")
VENVS = BENCH / ".venvs"
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- processes -------------------------------------------------------------------------------
class Server:
    """A child process (and its children) in a session of its own."""

    def __init__(self, name: str, cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None):
        self.name = name
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.log_path = RESULTS / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (the process's log, open for its life)
        full_env = {**os.environ, **(env or {})}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, env=full_env, cwd=str(cwd or ROOT), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.proc.pid

    def wait_http(self, url: str, timeout: float = 60.0, ok: Callable[[int], bool] = lambda s: s == 200) -> float:
        """Poll ``url`` until it answers; seconds since spawn. Raises if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log_path}:\n" + self.tail()
                )
            try:
                r = httpx.get(url, timeout=2.0)
                if ok(r.status_code):
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"{self.name} did not answer {url} within {timeout:g}s; see {self.log_path}")

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)  # our own session: pgid == pid
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        else:  # the leader is gone; children it left in our group still go
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        self._log.close()

    # accounting
    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def rss(self) -> int:
        return tree_rss(self.pid)


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from 'state' on


def descendants(pid: int) -> list[int]:
    """pid and every process below it."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st:
                parent[int(entry)] = int(st[1])
    out, frontier = [pid], [pid]
    while frontier:
        nxt = [c for c, p in parent.items() if p in frontier]
        out += nxt
        frontier = nxt
    return out


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime of the tree, plus cutime+cstime (reaped children) of each member."""
    total = 0
    for p in descendants(pid):
        st = _stat(p)
        if st:  # utime stime cutime cstime are fields 14-17 (1-based) -> 11..14 from 'state'
            total += int(st[11]) + int(st[12]) + int(st[13]) + int(st[14])
    return total / TICK


def _status_kb(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    return sum(_status_kb(p, "VmRSS") for p in descendants(pid)) * 1024


def tree_hwm(pid: int) -> int:
    """Peak RSS (VmHWM) summed over the tree's live members."""
    return sum(_status_kb(p, "VmHWM") for p in descendants(pid)) * 1024


# -- stats -----------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100.0 * (len(s) - 1)))))
    return s[k]


def median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return pct(vals, 50) if vals else None


# -- load --------------------------------------------------------------------------------------
@dataclass
class LoadResult:
    ok: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    bytes: int = 0
    first_error: str | None = None

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed, 3),
            "rps": round(self.rps, 2),
            "p50_ms": _r(pct(self.latencies_ms, 50)),
            "p99_ms": _r(pct(self.latencies_ms, 99)),
            "mb_per_resp": round(self.bytes / max(1, self.ok) / 1e6, 3),
            "first_error": self.first_error,
        }


def _r(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(v, nd)


async def closed_loop(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    expect: bytes | None = None,
    timeout: float = 60.0,
) -> LoadResult:
    """``concurrency`` workers send ``body`` back to back until ``duration`` s or ``max_requests``."""
    res = LoadResult()
    payload = json.dumps(body).encode()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
        # warm up (not counted): first-request work on the server, a few connections
        await asyncio.gather(*(client.post(url, content=payload, headers=headers) for _ in range(min(concurrency, 4))))
        started = time.perf_counter()
        deadline = started + duration
        issued = 0

        async def worker() -> None:
            nonlocal issued
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, content=payload, headers=headers)
                    data = r.content
                    good = r.status_code == 200 and (expect is None or expect in data[:400])
                except httpx.HTTPError as exc:
                    good, data = False, str(exc).encode()
                    r = None
                if good:
                    res.ok += 1
                    res.bytes += len(data)
                    res.latencies_ms.append((time.perf_counter() - t0) * 1000)
                else:
                    res.errors += 1
                    if res.first_error is None:
                        res.first_error = f"{getattr(r, 'status_code', 'exc')}: {data[:300]!r}"

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        res.elapsed = time.perf_counter() - started
    return res


def openai_sdk_headers(api_key: str) -> dict[str, str]:
    """The headers the official ``openai`` SDK sends on images.generate (captured, not guessed)."""
    import openai

    seen: dict[str, str] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update({k.lower(): v for k, v in request.headers.items()})
        return httpx.Response(200, json={"created": 0, "data": []})

    client = openai.OpenAI(
        api_key=api_key,
        base_url="http://127.0.0.1:9/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    client.images.generate(model="m", prompt="p")
    for k in ("host", "content-length"):
        seen.pop(k, None)
    return seen


# -- facts -----------------------------------------------------------------------------------
def machine_facts(extra_versions: dict[str, str] | None = None) -> dict[str, Any]:
    from importlib import metadata

    mem = 0
    cpu = ""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions = {}
    for pkg in (
        "imagegate",
        "fastapi",
        "starlette",
        "uvicorn",
        "httpx",
        "pydantic",
        "sqlalchemy",
        "aiosqlite",
        "pillow",
        "orjson",
        "uvloop",
        "httptools",
        "openai",
    ):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "-"
    versions.update(extra_versions or {})
    return {
        "nproc": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "mem_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "versions": versions,
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def make_key(data_dir: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [str(Path(PY).parent / "imagegate"), "keys", "create", "--data-dir", str(data_dir), "--name", "bench"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=str(ROOT),
    )
    return out.stdout.strip().splitlines()[-1]


def imagegate_cmd(data_dir: Path, port: int, config: Path | None = None, workers: int | None = None) -> list[str]:
    cmd = [
        str(Path(PY).parent / "imagegate"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--log-level",
        "warning",
    ]
    if config is not None:
        cmd += ["--config", str(config)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    return cmd
