"""Scenario 3, image pipeline: ``imagegate.media.codecs.convert`` on a 4096x2304 PNG and a
1024x1024 PNG to webp and jpeg (ms per image; peak memory above the process's baseline, each
conversion kind in a fresh child process), then proof that image work stays off the event loop:
GET /health p99 on an idle server and during a stream of 4K webp generations through it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import PY, RESULTS, Server, free_port, imagegate_cmd, make_key, pct, write_result

INPUTS = RESULTS / "pipeline-inputs"
KINDS = [("4096x2304", "webp"), ("4096x2304", "jpeg"), ("1024x1024", "webp"), ("1024x1024", "jpeg")]


def photo_like_png(w: int, h: int) -> bytes:
    """A gradient with a band (imagegate's synth) plus grain: compresses like a photo, not like a flat fill."""
    from PIL import Image

    from imagegate.media import codecs, synth

    base = synth.render("bench pipeline", w, h)
    grain = Image.effect_noise((w, h), 24).convert("RGB")
    return codecs.encode(Image.blend(base, grain, 0.2), "png")


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def child(size: str, fmt: str, iterations: int) -> None:
    """Runs in a fresh process: time ``convert`` and report peak RSS growth as JSON on stdout."""
    from imagegate.media import codecs

    data = (INPUTS / f"{size}.png").read_bytes()
    base = _vm("VmRSS")
    out = codecs.convert(data, fmt)  # warm-up (also the first peak)
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        out = codecs.convert(data, fmt)
        times.append((time.perf_counter() - t0) * 1000)
    peak = _vm("VmHWM")  # not ru_maxrss: that survives exec and would show the parent's peak
    print(
        json.dumps(
            {
                "size": size,
                "format": fmt,
                "input_bytes": len(data),
                "output_bytes": len(out),
                "ms_median": round(sorted(times)[len(times) // 2], 1),
                "ms_min": round(min(times), 1),
                "peak_extra_mb": round((peak - base) / 2**20, 1),
                "iterations": iterations,
            }
        )
    )


def conversions(iterations: int) -> list[dict[str, Any]]:
    INPUTS.mkdir(parents=True, exist_ok=True)
    for size in {s for s, _ in KINDS}:
        path = INPUTS / f"{size}.png"
        if not path.exists():
            w, h = (int(x) for x in size.split("x"))
            path.write_bytes(photo_like_png(w, h))
    rows = []
    for size, fmt in KINDS:
        n = iterations if size == "1024x1024" else max(1, iterations // 2)
        out = subprocess.run(
            [PY, "-m", "bench.pipeline", "--child", size, fmt, str(n)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    return rows


async def probe_health(url: str, stop: asyncio.Event, out: list[float]) -> None:
    async with httpx.AsyncClient(timeout=30, trust_env=False) as c:
        while not stop.is_set():
            t0 = time.perf_counter()
            r = await c.get(url)
            if r.status_code == 200:
                out.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.02)


async def loop_blocking(
    base: str, key: str, idle_s: float, stream_s: float, concurrency: int, max_images: int
) -> dict[str, Any]:
    idle: list[float] = []
    busy: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(probe_health(f"{base}/health", stop, idle))
    await asyncio.sleep(idle_s)
    stop.set()
    await task
    stop = asyncio.Event()
    task = asyncio.create_task(probe_health(f"{base}/health", stop, busy))
    body = {
        "model": "test/test",
        "prompt": "a 4K picture",
        "size": "4096x2304",
        "output_format": "webp",
        "response_format": "url",
    }
    done, errors, gen_ms = 0, [], []
    deadline = time.perf_counter() + stream_s

    async with httpx.AsyncClient(
        base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=120, trust_env=False
    ) as c:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline and done + len(errors) < max_images:
                t0 = time.perf_counter()
                r = await c.post("/v1/images/generations", json=body)
                if r.status_code == 200:
                    done += 1
                    gen_ms.append((time.perf_counter() - t0) * 1000)
                else:
                    errors.append(f"{r.status_code}: {r.text[:200]}")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        span = time.perf_counter() - t0
    stop.set()
    await task
    return {
        "health_idle_p50_ms": _r(pct(idle, 50)),
        "health_idle_p99_ms": _r(pct(idle, 99)),
        "health_busy_p50_ms": _r(pct(busy, 50)),
        "health_busy_p99_ms": _r(pct(busy, 99)),
        "health_busy_max_ms": _r(max(busy) if busy else None),
        "health_busy_n": len(busy),
        "images_4k": done,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "images_per_s": round(done / span, 2) if span else None,
        "gen_p50_ms": _r(pct(gen_ms, 50)),
        "concurrency": concurrency,
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rows = conversions(2 if args.quick else 8)
    data = RESULTS / "pipeline-data"
    shutil.rmtree(data, ignore_errors=True)
    key = make_key(data)
    port = free_port()
    ig = Server("imagegate-pipeline", imagegate_cmd(data, port))
    try:
        ig.wait_http(f"http://127.0.0.1:{port}/health", 60)
        blocking = asyncio.run(
            loop_blocking(
                f"http://127.0.0.1:{port}",
                key,
                2.0 if args.quick else 5.0,
                4.0 if args.quick else 20.0,
                2,
                6 if args.quick else 200,
            )
        )
        blocking["server_rss_after_mb"] = round(ig.rss() / 2**20, 1)
    finally:
        ig.stop()
    print(blocking)
    print(
        "wrote",
        write_result(
            "pipeline", {"scenario": "pipeline", "quick": args.quick, "conversions": rows, "event_loop": blocking}
        ),
    )


if __name__ == "__main__":
    main()
