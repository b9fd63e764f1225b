"""Profile imagegate on the b64_json c32 path with py-spy (not part of ``make bench``).

Needs ``py-spy`` in the venv (``.venv/bin/pip install py-spy``; not a project dependency).
Starts the fake upstream and imagegate, attaches ``py-spy record`` for ``--seconds`` while the
load runs, and prints where the samples fall: the top functions by own time and by inclusive
time, plus buckets (JSON, base64, DB, HTTP client, response writing, ...).
Run: ``.venv/bin/python -m bench.profile --seconds 15 --format b64_json --concurrency 32``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from bench.common import (
    PY,
    RESULTS,
    ROOT,
    Server,
    closed_loop,
    free_port,
    imagegate_cmd,
    make_key,
    openai_sdk_headers,
)
from bench.overhead import CATALOG, request_body

BUCKETS = [  # (label, substrings of a frame; the first bucket a stack matches from its leaf up wins)
    ("base64 decode (upstream answer)", ("b64decode",)),
    ("base64 encode (response)", ("b64encode",)),
    ("JSON decode", ("json/decoder.py", "json/__init__.py:loads", "(json/__init__.py)", "orjson", "raw_decode")),
    ("JSON encode (response)", ("json/encoder.py", "JSONResponse.render", "render (starlette")),
    ("PNG probe / convert", ("PIL/",)),
    ("DB (sqlalchemy/aiosqlite/sqlite3)", ("sqlalchemy/", "aiosqlite/", "sqlite3")),
    ("upstream HTTP client (httpx/httpcore/h11)", ("httpx/", "httpcore/", "h11/")),
    ("storage (files)", ("storage/local.py",)),
    ("server HTTP (uvicorn/httptools)", ("uvicorn/", "httptools")),
    ("framework (starlette/fastapi/pydantic)", ("starlette/", "fastapi/", "pydantic")),
    ("asyncio / anyio machinery", ("asyncio/", "anyio/", "uvloop")),
]


def analyse(raw: Path, top: int = 25) -> str:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        if frames and frames[0].startswith(("thread", "process")):
            main_thread = any("imagegate/cli.py" in fr for fr in frames)
            threads["event loop thread" if main_thread else "worker threads (to_thread, aiosqlite)"] += count
            frames = frames[1:] or frames
        total += count
        own[frames[-1]] += count
        for fr in set(frames):
            incl[fr] += count
        label = "other"
        for fr in reversed(frames):
            hit = next((b for b, keys in BUCKETS if any(k in fr for k in keys)), None)
            if hit:
                label = hit
                break
        buckets[label] += count
    lines = [f"samples: {total}", "", "threads:"]
    for t, c in threads.most_common():
        lines.append(f"  {100 * c / total:5.1f}%  {t}")
    lines += ["", "buckets (by the innermost recognised frame):"]
    for b, c in buckets.most_common():
        lines.append(f"  {100 * c / total:5.1f}%  {b}")
    lines += ["", f"top {top} by own time:"]
    for fr, c in own.most_common(top):
        lines.append(f"  {100 * c / total:5.1f}%  {fr}")
    lines += ["", f"top {top} by inclusive time (imagegate frames):"]
    for fr, c in [x for x in incl.most_common() if "imagegate" in x[0]][:top]:
        lines.append(f"  {100 * c / total:5.1f}%  {fr}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--format", default="b64_json", choices=["b64_json", "url"])
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    args = ap.parse_args()
    spy = Path(PY).parent / "py-spy"
    if not spy.exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    up_port, ig_port = free_port(), free_port()
    upstream = Server("profile-upstream", [PY, "-m", "bench.fake_upstream", "--port", str(up_port)])
    data = RESULTS / "profile-data"
    shutil.rmtree(data, ignore_errors=True)
    env = {
        "IMAGEGATE_ALLOW_PRIVATE_NETWORKS": "1",
        "BENCH_UPSTREAM_URL": f"http://127.0.0.1:{up_port}/v1",
        "BENCH_UPSTREAM_KEY": "sk-upstream",
    }
    ig = None
    raw = RESULTS / f"profile-{args.format}-c{args.concurrency}.txt"
    try:
        upstream.wait_http(f"http://127.0.0.1:{up_port}/health", 60)
        key = make_key(data, env)
        ig = Server("profile-imagegate", imagegate_cmd(data, ig_port, CATALOG), env=env)
        ig.wait_http(f"http://127.0.0.1:{ig_port}/health", 60)
        rec = subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(ig.pid),
                "--duration",
                str(args.seconds),
                "--rate",
                str(args.rate),
                "--format",
                "raw",
                "--nonblocking",
                "--threads",
                "-o",
                str(raw),
            ],
            cwd=str(ROOT),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        res = asyncio.run(
            closed_loop(
                f"http://127.0.0.1:{ig_port}/v1/images/generations",
                request_body(args.format),
                openai_sdk_headers(key),
                concurrency=args.concurrency,
                duration=args.seconds + 2,
                max_requests=100_000,
                expect=b'"b64_json"' if args.format == "b64_json" else b'"url"',
            )
        )
        _, err = rec.communicate(timeout=120)
        print("load:", res.summary())
        if rec.returncode != 0:
            print("py-spy failed:", err.decode()[-1000:])
            return
    finally:
        if ig is not None:
            ig.stop()
        upstream.stop()
    report = analyse(raw)
    (RESULTS / f"profile-{args.format}-c{args.concurrency}.report.txt").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
