"""Scenario 2, async capacity: N async tasks (``POST /v1/images/generations?async=true``) created
at a fixed rate against a queue upstream whose jobs take ``--job-seconds``; task-create p50/p99,
GET /health and GET task p99 while they run, peak RSS, tasks in flight at the upstream, and
whether every task succeeded (read from imagegate's database at the end).

The job time defaults to 60 s, not 30 s: at 200 creates/s the 10,000 creates take 50 s, so a
30 s job could never have more than ~6,000 in flight at once; 60 s puts all 10,000 in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import time
from typing import Any

import httpx

from bench.common import (
    PY,
    RESULTS,
    ROOT,
    Server,
    free_port,
    imagegate_cmd,
    make_key,
    pct,
    tree_hwm,
    write_result,
)

CATALOG = ROOT / "bench" / "catalog.yaml"


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


async def drive(
    ig_url: str,
    key: str,
    ig: Server,
    slow_url: str,
    count: int,
    rate: float,
    finish_within: float,
    create_budget: float,
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    body = {"model": "bench/slow", "prompt": "a long job", "n": 1, "size": "1024x1024"}
    create_ms: list[float] = []
    create_lag_ms: list[float] = []  # sent later than scheduled: the generator (or its pool) fell behind
    failures: list[str] = []
    ids: list[str] = []
    health_ms: list[float] = []
    get_ms: list[float] = []
    rss_peak = 0
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with (
        httpx.AsyncClient(base_url=ig_url, headers=headers, limits=limits, timeout=60, trust_env=False) as client,
        httpx.AsyncClient(base_url=ig_url, headers=headers, timeout=30, trust_env=False) as probe,
        httpx.AsyncClient(timeout=10, trust_env=False) as side,
    ):

        async def create(i: int, at: float) -> None:
            t0 = time.perf_counter()
            create_lag_ms.append((t0 - at) * 1000)
            try:
                r = await client.post("/v1/images/generations", params={"async": "true"}, json=body)
                ms = (time.perf_counter() - t0) * 1000
                if r.status_code == 202:
                    create_ms.append(ms)
                    ids.append(r.json()["id"])
                else:
                    failures.append(f"{r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

        async def probes() -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    r = await probe.get("/health")
                    if r.status_code == 200:
                        health_ms.append((time.perf_counter() - t0) * 1000)
                    if ids:
                        t1 = time.perf_counter()
                        r = await probe.get(f"/v1/images/generations/{random.choice(ids)}")
                        if r.status_code == 200:
                            get_ms.append((time.perf_counter() - t1) * 1000)
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)

        async def sampler() -> None:
            nonlocal rss_peak
            while not stop.is_set():
                rss_peak = max(rss_peak, ig.rss())
                await asyncio.sleep(0.5)

        bg = [asyncio.create_task(probes()), asyncio.create_task(sampler())]
        loop = asyncio.get_running_loop()
        start = loop.time()
        pending = []
        outstanding = asyncio.Semaphore(256)  # the client's connection pool; beyond it the pacer falls behind
        attempted = 0

        async def paced(i: int, at: float) -> None:
            try:
                await create(i, at)
            finally:
                outstanding.release()

        for i in range(count):
            at = start + i / rate
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if loop.time() - start > create_budget:
                break  # the server cannot keep up: stop creating, report what it did
            await outstanding.acquire()
            attempted += 1
            pending.append(asyncio.create_task(paced(i, time.perf_counter() + (at - loop.time()))))
        await asyncio.gather(*pending)
        create_span = loop.time() - start
        # wait until the upstream handed out every result (or time is up)
        deadline = loop.time() + finish_within
        stats: dict[str, Any] = {}
        while loop.time() < deadline:
            stats = (await side.get(f"{slow_url}/stats")).json()
            if stats.get("finished", 0) >= len(ids):
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(3.0)  # let the runner store and settle the last results
        total_span = loop.time() - start
        stop.set()
        await asyncio.gather(*bg)
        stats = (await side.get(f"{slow_url}/stats")).json()
    return {
        "attempted": attempted,
        "created": len(ids),
        "create_failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "achieved_rate": round(attempted / create_span, 1),
        "create_span_s": round(create_span, 1),
        "total_span_s": round(total_span, 1),
        "create_p50_ms": _r(pct(create_ms, 50)),
        "create_p99_ms": _r(pct(create_ms, 99)),
        "create_max_ms": _r(max(create_ms) if create_ms else None),
        "send_lag_p99_ms": _r(pct(create_lag_ms, 99)),
        "health_p50_ms": _r(pct(health_ms, 50)),
        "health_p99_ms": _r(pct(health_ms, 99)),
        "health_n": len(health_ms),
        "get_p50_ms": _r(pct(get_ms, 50)),
        "get_p99_ms": _r(pct(get_ms, 99)),
        "get_n": len(get_ms),
        "rss_peak_sampled": rss_peak,
        "upstream": stats,
    }


def task_counts(db_path: Any) -> dict[str, int]:
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return dict(con.execute("select status, count(*) from tasks group by status").fetchall())
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", default="async", help="result file name (bench/results/NAME.json)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--count", type=int, default=None)
    ap.add_argument("--rate", type=float, default=None, help="creates per second")
    ap.add_argument("--job-seconds", type=float, default=None)
    ap.add_argument("--workers", type=int, default=None, help="IMAGEGATE_WORKERS (default: count + 64)")
    ap.add_argument("--imagegate-src", default=None, help="serve imagegate from this src/ copy (experiments)")
    args = ap.parse_args()
    count = args.count or (200 if args.quick else 10_000)
    rate = args.rate or (100.0 if args.quick else 200.0)
    job_s = args.job_seconds or (2.0 if args.quick else 60.0)
    workers = args.workers or count + 64

    slow_port, ig_port = free_port(), free_port()
    slow = Server(
        "slow-upstream", [PY, "-m", "bench.slow_upstream", "--port", str(slow_port), "--job-seconds", str(job_s)]
    )
    data = RESULTS / "async-data"
    shutil.rmtree(data, ignore_errors=True)
    env = {
        "IMAGEGATE_ALLOW_PRIVATE_NETWORKS": "1",
        "BENCH_SLOW_URL": f"http://127.0.0.1:{slow_port}",
        "BENCH_UPSTREAM_KEY": "sk-upstream",
    }
    ig = None
    try:
        slow.wait_http(f"http://127.0.0.1:{slow_port}/stats", 60)
        key = make_key(data, env)
        cmd = imagegate_cmd(data, ig_port, CATALOG, workers=workers)
        if args.imagegate_src:
            cmd = [PY, "-m", "imagegate.cli"] + cmd[1:]
            env["PYTHONPATH"] = args.imagegate_src
        ig = Server("imagegate-async", cmd, env=env)
        ig.wait_http(f"http://127.0.0.1:{ig_port}/health", 60)
        time.sleep(1.0)
        rss_boot = ig.rss()
        # poll interval 10 s: a task can finish up to 10 s after its job; allow that twice over
        out = asyncio.run(
            drive(
                f"http://127.0.0.1:{ig_port}",
                key,
                ig,
                f"http://127.0.0.1:{slow_port}",
                count,
                rate,
                finish_within=job_s + 60,
                create_budget=count / rate * 1.5 + 15,
            )
        )
        out["rss_boot"] = rss_boot
        out["rss_hwm"] = tree_hwm(ig.pid)
        out["rss_end"] = ig.rss()
        out["tasks"] = task_counts(data / "imagegate.db")
    finally:
        if ig is not None:
            ig.stop()
        slow.stop()
    out.update(
        {
            "scenario": "async",
            "quick": args.quick,
            "count": count,
            "rate": rate,
            "job_seconds": job_s,
            "workers": workers,
            "poll_interval_s": 10.0,
        }
    )
    print({k: v for k, v in out.items()})
    print("wrote", write_result(args.name, out))


if __name__ == "__main__":
    main()
