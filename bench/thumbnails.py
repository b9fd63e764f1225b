"""Scenario 6, thumbnails: GET /v1/tasks/{task_id}/images/{index}/thumbnail?size=256 against the full image.

One ``imagegate serve`` with the built-in test/test model makes ``tasks`` sync generations of ``n``
1024x1024 PNG images each (``response_format: url``), so every (task, index) is an output never
thumbnailed. Then, one request at a time on a keep-alive connection:

- make: the first thumbnail request for each output (decoded from the stored PNG, resized, WebP-encoded,
  written to the store); each output is asked once, so every one of these requests makes its preview;
- cached: the same request again (the preview read back from the store);
- 304: the same request with ``If-None-Match: <its ETag>`` (nothing read from the store, no body);
- full: the full image downloaded through the signed ``url`` the generation answered.

cached, 304 and full run in rounds that interleave them (each round: every output once per kind), so
the three share the same machine state. Server CPU per request is the server's process-tree CPU
(``/proc``) over each phase divided by its requests; bytes are response bodies.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.common import RESULTS, Server, free_port, imagegate_cmd, make_key, pct, write_result

SIZE = 256
KINDS = ("make", "cached", "revalidate", "full")


class Phase:
    """Latencies, body bytes and server CPU of one kind of request, summed over its runs."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self.bytes = 0
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self.errors: list[str] = []

    def summary(self) -> dict[str, Any]:
        n = len(self.ms)
        return {
            "requests": n,
            "errors": len(self.errors),
            "first_error": self.errors[0] if self.errors else None,
            "p50_ms": _r(pct(self.ms, 50)),
            "p99_ms": _r(pct(self.ms, 99)),
            "rps_c1": _r(n / self.wall_s) if self.wall_s else None,
            "bytes_per_response": round(self.bytes / n) if n else None,
            "cpu_ms_per_req": _r(self.cpu_s * 1000 / n) if n else None,
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def generate(client: httpx.Client, tasks: int, n: int) -> list[dict[str, Any]]:
    """``tasks`` sync generations of ``n`` images: one entry per output (task id, index, url)."""
    outputs = []
    for i in range(tasks):
        r = client.post(
            "/v1/images/generations",
            json={
                "model": "test/test",
                "prompt": f"a thumbnail bench picture {i}",
                "n": n,
                "size": "1024x1024",
                "output_format": "png",
                "response_format": "url",
            },
        )
        r.raise_for_status()
        task_id = r.headers["x-imagegate-task-id"]
        for index, item in enumerate(r.json()["data"]):
            outputs.append({"task_id": task_id, "index": index, "url": item["url"]})
    return outputs


Send = Callable[[dict[str, Any]], httpx.Response]  # one output -> its response
Check = Callable[[dict[str, Any], httpx.Response], "str | None"]  # what is wrong with the response, or None


def timed(phase: Phase, srv: Server, outputs: list[dict[str, Any]], send: Send, check: Check) -> None:
    """Each output once through ``send``; latency and body bytes of the good answers, CPU of the whole run."""
    cpu0, t0 = srv.cpu_seconds(), time.perf_counter()
    for out in outputs:
        s = time.perf_counter()
        try:
            r = send(out)
            problem = check(out, r)
        except httpx.HTTPError as exc:
            r, problem = None, f"{type(exc).__name__}: {exc}"
        if problem:
            phase.errors.append(problem)
            continue
        phase.ms.append((time.perf_counter() - s) * 1000)
        phase.bytes += len(r.content) if r is not None else 0
    phase.wall_s += time.perf_counter() - t0
    phase.cpu_s += srv.cpu_seconds() - cpu0


def measure(base: str, key: str, srv: Server, tasks: int, n: int, rounds: int) -> dict[str, Any]:
    auth = {"authorization": f"Bearer {key}"}
    phases = {k: Phase() for k in KINDS}
    with (
        httpx.Client(base_url=base, headers=auth, timeout=120, trust_env=False) as api,
        httpx.Client(timeout=120, trust_env=False) as plain,  # the signed url needs no key
    ):
        t0 = time.perf_counter()
        outputs = generate(api, tasks, n)
        gen_s = time.perf_counter() - t0
        etags: dict[tuple[str, int], str] = {}

        def path(o: dict[str, Any]) -> str:
            return f"/v1/tasks/{o['task_id']}/images/{o['index']}/thumbnail?size={SIZE}"

        def thumb(o: dict[str, Any]) -> httpx.Response:
            return api.get(path(o))

        def expect(how: str) -> Check:
            def check(o: dict[str, Any], r: httpx.Response) -> str | None:
                if r.status_code != 200 or r.headers.get("x-imagegate-thumbnail") != how:
                    return f"{r.status_code} {r.headers.get('x-imagegate-thumbnail')}: {r.text[:200]}"
                etags[(o["task_id"], o["index"])] = r.headers["etag"]
                return None

            return check

        def revalidate(o: dict[str, Any]) -> httpx.Response:
            return api.get(path(o), headers={"if-none-match": etags[(o["task_id"], o["index"])]})

        def not_modified(o: dict[str, Any], r: httpx.Response) -> str | None:
            return None if r.status_code == 304 and not r.content else f"{r.status_code}: {r.text[:200]}"

        def full(o: dict[str, Any]) -> httpx.Response:
            return plain.get(o["url"] if o["url"].startswith("http") else base + o["url"])

        def whole_png(o: dict[str, Any], r: httpx.Response) -> str | None:
            ok = r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
            return None if ok else f"{r.status_code}: {r.content[:200]!r}"

        full(outputs[0])  # warm-up, not counted: the first download's one-time work
        timed(phases["make"], srv, outputs, thumb, expect("made"))
        for _ in range(rounds):
            timed(phases["cached"], srv, outputs, thumb, expect("cached"))
            timed(phases["revalidate"], srv, outputs, revalidate, not_modified)
            timed(phases["full"], srv, outputs, full, whole_png)
    res = {k: p.summary() for k, p in phases.items()}
    mk, ca, fu = res["make"], res["cached"], res["full"]
    return {
        "phases": res,
        "outputs": len(outputs),
        "generate_s": round(gen_s, 2),
        "ratios": {
            "cached_vs_full_p50": _ratio(ca["p50_ms"], fu["p50_ms"]),
            "full_vs_thumbnail_bytes": _ratio(fu["bytes_per_response"], ca["bytes_per_response"]),
            "make_vs_cached_p50": _ratio(mk["p50_ms"], ca["p50_ms"]),
            "make_vs_cached_cpu": _ratio(mk["cpu_ms_per_req"], ca["cpu_ms_per_req"]),
        },
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    tasks, n, rounds = (3, 4, 3) if args.quick else (15, 4, 10)
    data = RESULTS / "thumbnails-data"
    shutil.rmtree(data, ignore_errors=True)
    key = make_key(data)
    port = free_port()
    ig = Server("imagegate-thumbnails", imagegate_cmd(data, port))
    try:
        ig.wait_http(f"http://127.0.0.1:{port}/health", 60)
        out = measure(f"http://127.0.0.1:{port}", key, ig, tasks, n, rounds)
        out["server_rss_after_mb"] = round(ig.rss() / 2**20, 1)
    finally:
        ig.stop()
    out.update({"scenario": "thumbnails", "quick": args.quick, "size": SIZE, "tasks": tasks, "n": n, "rounds": rounds})
    print(out)
    print("wrote", write_result("thumbnails", out))


if __name__ == "__main__":
    main()
