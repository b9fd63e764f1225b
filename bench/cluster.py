"""Scenario 5, cluster vs embedded: async creates/s and their latency, the same load against the
embedded default (one `serve` on SQLite) and against 2 API processes + 2 workers on PostgreSQL,
side by side in one run, with the same fal-shaped upstream (``bench/slow_upstream.py``).

Creates are paced at ``--rate`` (at most 256 outstanding) and spread round robin over the API
processes; the table reports the achieved create rate, create p50/p99, errors, and how long until
every task succeeded (read from each profile's database), plus the processes' total CPU.
Needs PostgreSQL at 127.0.0.1:5432 (trust auth, as on the test machines).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import sqlite3
import time
from typing import Any

import httpx
import psycopg

from bench.common import PY, RESULTS, ROOT, Server, free_port, imagegate_cmd, make_key, pct, write_result

CATALOG = ROOT / "bench" / "catalog.yaml"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BODY = {"model": "bench/slow", "prompt": "a queued job", "n": 1, "size": "1024x1024"}


async def load(urls: list[str], key: str, count: int, rate: float) -> dict[str, Any]:
    """Paced creates, round robin over ``urls``; the ids created and each create's latency."""
    ms: list[float] = []
    ids: list[str] = []
    errors: list[str] = []
    gate = asyncio.Semaphore(256)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers={"authorization": f"Bearer {key}"}) as client:

        async def one(i: int) -> None:
            async with gate:
                t = time.monotonic()
                try:
                    r = await client.post(urls[i % len(urls)] + "/v1/images/generations?async=true", json=BODY)
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                    return
                ms.append((time.monotonic() - t) * 1000)
                if r.status_code == 202:
                    ids.append(r.json()["id"])
                else:
                    errors.append(f"HTTP {r.status_code}")

        started = time.monotonic()
        jobs = []
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            jobs.append(asyncio.create_task(one(i)))
        await asyncio.gather(*jobs)
        elapsed = time.monotonic() - started
    return {
        "created": len(ids),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "create_rate": round(len(ids) / elapsed, 1),
        "create_p50_ms": _r(pct(ms, 50)),
        "create_p99_ms": _r(pct(ms, 99)),
        "ids": ids,
        "load_seconds": round(elapsed, 1),
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def wait_done(count_done: Any, expected: int, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if count_done() >= expected:
            return round(time.monotonic() - started, 1)
        time.sleep(0.5)
    return None


def run_embedded(env: dict[str, str], count: int, rate: float, workers: int) -> dict[str, Any]:
    data = RESULTS / "cluster-embedded-data"
    shutil.rmtree(data, ignore_errors=True)
    port = free_port()
    srv = Server("cluster-embedded", imagegate_cmd(data, port, CATALOG, workers), env=env)
    try:
        srv.wait_http(f"http://127.0.0.1:{port}/health")
        key = make_key(data, env)
        cpu0 = srv.cpu_seconds()
        out = asyncio.run(load([f"http://127.0.0.1:{port}"], key, count, rate))

        def done() -> int:
            with sqlite3.connect(f"file:{data / 'imagegate.db'}?mode=ro", uri=True, timeout=30) as con:
                return int(con.execute("select count(*) from tasks where status = 'succeeded'").fetchone()[0])

        out["all_done_after_s"] = wait_done(done, out["created"], 600)
        out["cpu_s"] = round(srv.cpu_seconds() - cpu0, 1)
        return out
    finally:
        srv.stop()


def run_cluster(env: dict[str, str], count: int, rate: float, workers: int) -> dict[str, Any]:
    name = f"imagegate_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # a random hex name
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    cenv = {
        **env,
        "IMAGEGATE_DATABASE_URL": url,
        "IMAGEGATE_SECRET_KEY": secrets.token_urlsafe(24),
        "IMAGEGATE_MIGRATE_ON_START": "false",
    }
    root = RESULTS / "cluster-data"
    shutil.rmtree(root, ignore_errors=True)
    procs: list[Server] = []
    try:
        Server(
            "cluster-migrate", [PY, "-m", "imagegate.cli", "migrate", "--data-dir", str(root / "m")], env=cenv
        ).proc.wait(120)
        ports = [free_port(), free_port()]
        for i, port in enumerate(ports):
            cmd = imagegate_cmd(root / f"api{i}", port, CATALOG, 0)
            procs.append(Server(f"cluster-api{i}", cmd, env=cenv))
        for i in range(2):
            cmd = [
                PY,
                "-m",
                "imagegate.cli",
                "worker",
                "--concurrency",
                str(workers // 2),
                "--data-dir",
                str(root / f"worker{i}"),
                "--config",
                str(CATALOG),
                "--log-level",
                "warning",
            ]
            procs.append(Server(f"cluster-worker{i}", cmd, env=cenv))
        for p, port in zip(procs, ports, strict=False):
            p.wait_http(f"http://127.0.0.1:{port}/health")
        key = make_key(root / "api0", cenv)
        cpu0 = sum(p.cpu_seconds() for p in procs)
        out = asyncio.run(load([f"http://127.0.0.1:{p}" for p in ports], key, count, rate))

        def done() -> int:
            with psycopg.connect(url) as conn:
                row = conn.execute("select count(*) from tasks where status = 'succeeded'").fetchone()
                return int(row[0]) if row else 0

        out["all_done_after_s"] = wait_done(done, out["created"], 600)
        out["cpu_s"] = round(sum(p.cpu_seconds() for p in procs) - cpu0, 1)
        return out
    finally:
        for p in procs:
            p.stop(40)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", default="cluster")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--count", type=int, default=None)
    ap.add_argument("--rate", type=float, default=None)
    ap.add_argument("--job-seconds", type=float, default=None)
    args = ap.parse_args()
    count = args.count or (200 if args.quick else 2000)
    rate = args.rate or (100.0 if args.quick else 200.0)
    job_s = args.job_seconds or (1.0 if args.quick else 5.0)
    workers = count + 64
    slow_port = free_port()
    slow = Server(
        "cluster-slow-upstream",
        [PY, "-m", "bench.slow_upstream", "--port", str(slow_port), "--job-seconds", str(job_s)],
    )
    env = {
        "IMAGEGATE_ALLOW_PRIVATE_NETWORKS": "1",
        "BENCH_SLOW_URL": f"http://127.0.0.1:{slow_port}",
        "BENCH_UPSTREAM_KEY": "sk-upstream",
    }
    try:
        slow.wait_http(f"http://127.0.0.1:{slow_port}/stats")
        results = {
            "embedded": run_embedded(env, count, rate, workers),
            "cluster": run_cluster(env, count, rate, workers),
        }
    finally:
        slow.stop()
    for r in results.values():
        r.pop("ids", None)
    write_result(
        args.name,
        {"scenario": "cluster", "quick": args.quick, "count": count, "rate": rate, "job_seconds": job_s, **results},
    )
    for k, v in results.items():
        print(k, v)


if __name__ == "__main__":
    main()
