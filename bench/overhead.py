"""Scenario 1, gateway overhead: the same request to the bare upstream, through imagegate and
through LiteLLM's proxy, at concurrency 1 and 32, b64_json and url, with the openai SDK's headers.

All three servers run side by side for the whole scenario; repeats interleave the targets so
drift hits them alike; each figure is the median of the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
from typing import Any

from bench import litellm_env
from bench.common import (
    PY,
    RESULTS,
    ROOT,
    Server,
    closed_loop,
    free_port,
    imagegate_cmd,
    make_key,
    median,
    openai_sdk_headers,
    write_result,
)

CATALOG = ROOT / "bench" / "catalog.yaml"
MASTER = "sk-bench-master"


def request_body(fmt: str) -> dict[str, Any]:
    model = "bench/b64" if fmt == "b64_json" else "bench/url"
    return {"model": model, "prompt": "a benchmark of noise", "n": 1, "size": "1024x1024", "response_format": fmt}


def settle_rss(server: Server, seconds: float = 1.5) -> int:
    time.sleep(seconds)
    return server.rss()


def start_all(with_litellm: bool, litellm_note: str, patched_src: str | None = None) -> dict[str, Any]:
    up_port, ig_port = free_port(), free_port()
    upstream = Server("upstream", [PY, "-m", "bench.fake_upstream", "--port", str(up_port)])
    upstream.wait_http(f"http://127.0.0.1:{up_port}/health", 60)
    data = RESULTS / "overhead-data"
    shutil.rmtree(data, ignore_errors=True)
    ig_env = {
        "IMAGEGATE_ALLOW_PRIVATE_NETWORKS": "1",
        "BENCH_UPSTREAM_URL": f"http://127.0.0.1:{up_port}/v1",
        "BENCH_UPSTREAM_KEY": "sk-upstream",
    }
    key = make_key(data, ig_env)
    ig = Server("imagegate", imagegate_cmd(data, ig_port, CATALOG), env=ig_env)
    boot = {"imagegate": ig.wait_http(f"http://127.0.0.1:{ig_port}/health", 60)}
    targets: dict[str, dict[str, Any]] = {
        "bare": {"server": upstream, "url": f"http://127.0.0.1:{up_port}/v1/images/generations", "key": "sk-upstream"},
        "imagegate": {"server": ig, "url": f"http://127.0.0.1:{ig_port}/v1/images/generations", "key": key},
    }
    notes = {}
    if patched_src:  # a scratch copy of src/ with proposed changes, served side by side on the same data
        p_port = free_port()
        cmd = [PY, "-m", "imagegate.cli"] + imagegate_cmd(data, p_port, CATALOG)[1:]
        pig = Server("imagegate-patched", cmd, env={**ig_env, "PYTHONPATH": patched_src})
        boot["imagegate-patched"] = pig.wait_http(f"http://127.0.0.1:{p_port}/health", 60)
        targets["imagegate-patched"] = {
            "server": pig,
            "key": key,
            "url": f"http://127.0.0.1:{p_port}/v1/images/generations",
        }
    if with_litellm:
        ll_port = free_port()
        cfg = litellm_env.config(
            RESULTS / "litellm-config.yaml", f"http://127.0.0.1:{up_port}/v1", ["bench/b64", "bench/url"], MASTER
        )
        ll = Server("litellm", litellm_env.command(cfg, ll_port), env=litellm_env.env())
        try:
            boot["litellm"] = ll.wait_http(f"http://127.0.0.1:{ll_port}/health/liveliness", 180)
            targets["litellm"] = {
                "server": ll,
                "url": f"http://127.0.0.1:{ll_port}/v1/images/generations",
                "key": MASTER,
            }
        except (RuntimeError, TimeoutError) as exc:
            notes["litellm"] = f"LiteLLM proxy did not start: {exc}"[:400]
            ll.stop()
    else:
        notes["litellm"] = litellm_note
    rss_boot = {name: settle_rss(t["server"]) for name, t in targets.items()}
    return {"upstream": upstream, "targets": targets, "boot_s": boot, "rss_boot": rss_boot, "notes": notes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", default="overhead", help="result file name (bench/results/NAME.json)")
    ap.add_argument("--quick", action="store_true", help="tiny numbers: a smoke run")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--duration", type=float, default=None, help="seconds per measurement")
    ap.add_argument("--patched-src", default=None, help="also serve imagegate from this src/ copy (experiments)")
    ap.add_argument("--cells", default=None, help="e.g. b64_json:1,b64_json:32 (default: all)")
    args = ap.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    duration = args.duration or (1.5 if args.quick else 5.0)
    max_requests = 200 if args.quick else 5000

    version, note = (None, "skipped (--no-litellm)") if args.no_litellm else litellm_env.ensure()
    env = start_all(version is not None, note, args.patched_src)
    upstream, targets = env["upstream"], env["targets"]
    # cells: (format, concurrency, headers variant)
    cells = [("b64_json", 1, "sdk"), ("b64_json", 32, "sdk"), ("url", 1, "sdk"), ("url", 32, "sdk")]
    if not args.quick:
        cells += [("b64_json", 1, "identity"), ("b64_json", 32, "identity")]
    if args.cells:
        wanted = {(c.split(":")[0], int(c.split(":")[1])) for c in args.cells.split(",")}
        cells = [c for c in cells if (c[0], c[1]) in wanted and c[2] == "sdk"]
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        for rep in range(repeats):
            for fmt, conc, variant in cells:
                if variant == "identity" and rep > 0:
                    continue  # the identity cells are a side note: one run each keeps the total near 15 min
                for name, t in targets.items():
                    headers = openai_sdk_headers(t["key"])
                    if variant == "identity":
                        headers["accept-encoding"] = "identity"
                    expect = b'"b64_json"' if fmt == "b64_json" else b'"url"'
                    cpu0, up0 = t["server"].cpu_seconds(), upstream.cpu_seconds()
                    res = asyncio.run(
                        closed_loop(
                            t["url"],
                            request_body(fmt),
                            headers,
                            concurrency=conc,
                            duration=duration,
                            max_requests=max_requests,
                            expect=expect,
                        )
                    )
                    cpu1, up1 = t["server"].cpu_seconds(), upstream.cpu_seconds()
                    # the warm-up requests (one per connection) are in the CPU delta too
                    done = max(1, res.ok + res.errors + min(conc, 4))
                    row = {
                        **res.summary(),
                        "cpu_ms_per_req": round((cpu1 - cpu0) * 1000 / done, 2),
                        "upstream_cpu_ms_per_req": round((up1 - up0) * 1000 / done, 2),
                    }
                    runs.setdefault(f"{name}|{fmt}|c{conc}|{variant}", []).append(row)
                    print(
                        f"rep {rep + 1} {name:9s} {fmt:8s} c{conc:<2d} {variant:8s} "
                        f"{row['rps']:8.1f} req/s p50 {row['p50_ms']} p99 {row['p99_ms']} "
                        f"cpu {row['cpu_ms_per_req']} ms/req err {row['errors']} {row['first_error'] or ''}",
                        flush=True,
                    )
        rss_after = {name: t["server"].rss() for name, t in targets.items()}
    finally:
        for t in reversed(list(targets.values())):
            t["server"].stop()
        upstream.stop()
    cells_out = {}
    for cell, rows in runs.items():
        cells_out[cell] = {
            k: median([r[k] for r in rows])
            for k in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_req", "upstream_cpu_ms_per_req", "mb_per_resp")
        }
        cells_out[cell]["errors"] = sum(r["errors"] for r in rows)
        cells_out[cell]["ok"] = sum(r["ok"] for r in rows)
        cells_out[cell]["first_error"] = next((r["first_error"] for r in rows if r["first_error"]), None)
        cells_out[cell]["runs"] = rows
    out = {
        "scenario": "overhead",
        "quick": args.quick,
        "repeats": repeats,
        "duration_s": duration,
        "litellm_version": version,
        "notes": {**env["notes"], "litellm_install": note},
        "boot_s": env["boot_s"],
        "rss_boot": env["rss_boot"],
        "rss_after": rss_after,
        "sdk_headers": {k: v for k, v in openai_sdk_headers("x").items() if k != "authorization"},
        "cells": cells_out,
    }
    print("wrote", write_result(args.name, out))


if __name__ == "__main__":
    main()
