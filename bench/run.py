"""Run every bench scenario (each in its own process, each bounded in time) and print one table.

``python -m bench.run`` (``make bench``): the full run, ~15 min on 2 cores.
``--quick``: tiny numbers, a smoke run of about a minute.  ``--only overhead,pipeline``: a subset.
``--update-readme``: also replace the table block in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from bench.common import BENCH, PY, RESULTS, ROOT, machine_facts

SCENARIOS = {  # name -> (module, full timeout s, quick timeout s)
    "overhead": ("bench.overhead", 1200, 240),
    "async": ("bench.async_capacity", 600, 120),
    "pipeline": ("bench.pipeline", 400, 120),
    "cold_start": ("bench.cold_start", 240, 90),
    "cluster": ("bench.cluster", 900, 240),
    "thumbnails": ("bench.thumbnails", 300, 90),
}
BEGIN, END = "<!-- bench:table:begin -->", "<!-- bench:table:end -->"
MB = 2**20


def run_scenario(name: str, quick: bool) -> dict[str, Any]:
    module, full_t, quick_t = SCENARIOS[name]
    result = RESULTS / f"{name}.json"
    result.unlink(missing_ok=True)
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    cmd = [PY, "-m", module] + (["--quick"] if quick else [])
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    proc = subprocess.Popen(cmd, cwd=str(ROOT))
    try:
        rc: Any = proc.wait(quick_t if quick else full_t)
    except subprocess.TimeoutExpired:
        rc = "timeout"
        proc.send_signal(signal.SIGINT)  # the scenario's finally blocks stop the servers it started
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    meta = {
        "rc": rc,
        "seconds": round(time.monotonic() - t0, 1),
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    data = json.loads(result.read_text()) if result.exists() and rc == 0 else None
    return {"meta": meta, "data": data}


# -- rendering ----------------------------------------------------------------------------------
def f(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def goal(rows: list, name: str, value: float | None, shown: str, target: str, ok: bool | None) -> None:
    rows.append(
        f"| {name} | {shown if value is not None else 'n/a'} | {target} | "
        f"{'n/a' if ok is None or value is None else ('pass' if ok else '**miss**')} |"
    )


def render(results: dict[str, dict[str, Any]], facts: dict[str, Any], quick: bool) -> str:
    out: list[str] = []
    ov = (results.get("overhead") or {}).get("data")
    asy = (results.get("async") or {}).get("data")
    pipe = (results.get("pipeline") or {}).get("data")
    cold = (results.get("cold_start") or {}).get("data")
    clu = (results.get("cluster") or {}).get("data")
    thumbs = (results.get("thumbnails") or {}).get("data")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        rev = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=str(ROOT), capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "?"
        )
    except (OSError, subprocess.SubprocessError):
        rev = "?"
    out.append(f"Run {when} at commit {rev}{' (--quick: smoke numbers, not for quoting)' if quick else ''}.")
    v = facts["versions"]
    out.append(
        f"Machine: {facts['nproc']} cores ({facts['cpu']}), {facts['mem_gib']} GiB, Python {facts['python']}, "
        f"Linux {facts['kernel']}. imagegate {v.get('imagegate')}, fastapi {v.get('fastapi')}, "
        f"starlette {v.get('starlette')}, uvicorn {v.get('uvicorn')}, httpx {v.get('httpx')}, "
        f"pydantic {v.get('pydantic')}, sqlalchemy {v.get('sqlalchemy')}, aiosqlite {v.get('aiosqlite')}, "
        f"pillow {v.get('pillow')}, orjson {v.get('orjson')}, uvloop {v.get('uvloop')}, "
        f"openai (load headers) {v.get('openai')}, LiteLLM {(ov or {}).get('litellm_version') or 'not run'}."
    )
    loads = ", ".join(
        f"{k} {r['meta']['load_before']}->{r['meta']['load_after']} ({r['meta']['seconds']} s, rc {r['meta']['rc']})"
        for k, r in results.items()
    )
    out.append(f"Load average (1 min) before->after each scenario: {loads}.")
    out.append("")
    goals: list[str] = ["| goal | measured | target | result |", "|---|---|---|---|"]
    if ov:
        c = ov["cells"]
        has_ll = ov.get("litellm_version") is not None and any(k.startswith("litellm|") for k in c)
        out.append(
            f"### 1. Gateway overhead (median of {ov['repeats']} x {ov['duration_s']:g} s; "
            "openai SDK headers, `Accept-Encoding: gzip, deflate`; identity rows: `Accept-Encoding: identity`, one run)"
        )
        out.append("")
        out.append(
            "| case | bare req/s | imagegate req/s | LiteLLM req/s | p50 / p99 ms bare | imagegate | LiteLLM "
            "| added p50 ms imagegate | LiteLLM | server CPU ms/req bare / imagegate / LiteLLM | errors |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for fmt, conc, variant in (
            ("b64_json", 1, "sdk"),
            ("b64_json", 32, "sdk"),
            ("url", 1, "sdk"),
            ("url", 32, "sdk"),
            ("b64_json", 1, "identity"),
            ("b64_json", 32, "identity"),
        ):
            cells = {t: c.get(f"{t}|{fmt}|c{conc}|{variant}") for t in ("bare", "imagegate", "litellm")}
            if not cells["bare"]:
                continue
            b, i, l_ = cells["bare"], cells["imagegate"] or {}, cells["litellm"] or {}

            def lat(x: dict) -> str:
                return f"{f(x.get('p50_ms'))} / {f(x.get('p99_ms'))}" if x else "-"

            def added(x: dict, b: dict = b) -> str:
                return f(x["p50_ms"] - b["p50_ms"]) if x and x.get("p50_ms") is not None else "-"

            errs = "/".join(str(x.get("errors", "-")) if x else "-" for x in (b, i, l_))
            label = f"{fmt} c{conc}" + (" identity" if variant == "identity" else "")
            out.append(
                f"| {label} | {f(b['rps'])} | {f(i.get('rps'))} | {f(l_.get('rps'))} | {lat(b)} | {lat(i)} | "
                f"{lat(l_)} | {added(i)} | {added(l_)} | {f(b['cpu_ms_per_req'])} / "
                f"{f(i.get('cpu_ms_per_req'))} / {f(l_.get('cpu_ms_per_req'))} | {errs} |"
            )
        rb, ra = ov["rss_boot"], ov["rss_after"]
        out.append("")
        out.append(
            f"RSS after boot: imagegate {f(rb.get('imagegate', 0) / MB)} MB, LiteLLM "
            f"{f(rb['litellm'] / MB) if 'litellm' in rb else '-'} MB (fake upstream {f(rb['bare'] / MB)} MB); "
            f"after the overhead runs: imagegate {f(ra.get('imagegate', 0) / MB)} MB, LiteLLM "
            f"{f(ra['litellm'] / MB) if 'litellm' in ra else '-'} MB. Boot to first 200: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in ov["boot_s"].items())
            + "."
        )
        for k, note in (ov.get("notes") or {}).items():
            if note and note != "ok":
                out.append(f"Note ({k}): {note}")
        out.append("")

        def cell(t: str, fmt: str, conc: int) -> dict:
            return c.get(f"{t}|{fmt}|c{conc}|sdk") or {}

        ig32, bare32, ll32 = (cell(t, "b64_json", 32).get("rps") for t in ("imagegate", "bare", "litellm"))
        r1 = ratio(ig32, bare32)
        goal(
            goals,
            "b64_json c32: imagegate / bare",
            r1,
            f"{f(r1, 2)} ({f(ig32)} / {f(bare32)} req/s)",
            ">= 0.80",
            r1 is not None and r1 >= 0.8,
        )
        r2 = ratio(ig32, ll32) if has_ll else None
        goal(
            goals,
            "b64_json c32: imagegate / LiteLLM",
            r2,
            f"{f(r2, 2)} ({f(ig32)} / {f(ll32)} req/s)",
            ">= 3.0",
            r2 is not None and r2 >= 3.0,
        )
        for fmt in ("b64_json", "url"):
            ig1, b1 = cell("imagegate", fmt, 1).get("p50_ms"), cell("bare", fmt, 1).get("p50_ms")
            add = ig1 - b1 if ig1 is not None and b1 is not None else None
            goal(goals, f"added p50, {fmt} c1", add, f"{f(add)} ms", "<= 5 ms", add is not None and add <= 5)
        igu, llu = cell("imagegate", "url", 32).get("rps"), cell("litellm", "url", 32).get("rps")
        r3 = ratio(igu, llu) if has_ll else None
        goal(
            goals,
            "url c32: imagegate / LiteLLM",
            r3,
            f"{f(r3, 2)} ({f(igu)} / {f(llu)} req/s)",
            ">= 2.0",
            r3 is not None and r3 >= 2.0,
        )
        r4 = ratio(rb.get("imagegate"), rb.get("litellm")) if has_ll else None
        goal(goals, "RSS after boot: imagegate / LiteLLM", r4, f"{f(r4, 2)}", "<= 0.33", r4 is not None and r4 <= 1 / 3)
        rss = ra.get("imagegate")
        goal(
            goals,
            "imagegate RSS after the overhead runs",
            rss,
            f"{f((rss or 0) / MB)} MB",
            "<= 250 MB",
            rss is not None and rss <= 250 * MB,
        )
    if asy:
        out.append(
            f"### 2. Async capacity ({asy['count']} tasks at {asy['rate']:g}/s, upstream job "
            f"{asy['job_seconds']:g} s, poll every {asy['poll_interval_s']:g} s, --workers {asy['workers']})"
        )
        out.append("")
        up = asy["upstream"]
        peak = max(asy.get("rss_hwm") or 0, asy.get("rss_peak_sampled") or 0)
        out.append(
            "| created | succeeded | tasks by status | peak in flight | achieved rate/s | create p50 / p99 / max ms "
            "| GET /health p50 / p99 ms | GET task p50 / p99 ms | RSS boot / peak / end MB |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        out.append(
            f"| {asy['created']} ({asy['create_failures']} failed) | {asy['tasks'].get('succeeded', 0)} | "
            f"{json.dumps(asy['tasks'])} | {up.get('peak_in_flight')} | {asy['achieved_rate']} | "
            f"{f(asy['create_p50_ms'])} / {f(asy['create_p99_ms'])} / {f(asy['create_max_ms'])} | "
            f"{f(asy['health_p50_ms'])} / {f(asy['health_p99_ms'])} | {f(asy['get_p50_ms'])} / "
            f"{f(asy['get_p99_ms'])} | {f(asy['rss_boot'] / MB)} / {f(peak / MB)} / "
            f"{f(asy['rss_end'] / MB)} |"
        )
        if asy.get("first_failure"):
            out.append(f"First create failure: `{asy['first_failure'][:200]}`")
        out.append("")
        all_ok = asy["tasks"].get("succeeded", 0) == asy["count"] and up.get("peak_in_flight", 0) >= asy["count"]
        goal(
            goals,
            f"{asy['count']} async tasks in flight, all succeed, RSS",
            peak,
            f"{f(peak / MB)} MB; peak in flight {up.get('peak_in_flight')}; succeeded "
            f"{asy['tasks'].get('succeeded', 0)}",
            "< 1024 MB, all in flight, all succeed",
            all_ok and peak < 1024 * MB,
        )
        goal(
            goals,
            "async create p99",
            asy["create_p99_ms"],
            f"{f(asy['create_p99_ms'])} ms",
            "< 50 ms",
            asy["create_p99_ms"] is not None and asy["create_p99_ms"] < 50,
        )
    if pipe:
        out.append("### 3. Image pipeline (`imagegate.media.codecs.convert`, photo-like PNG input)")
        out.append("")
        out.append("| input | to | ms / image (median) | peak memory above baseline MB | bytes in -> out |")
        out.append("|---|---|---|---|---|")
        for r in pipe["conversions"]:
            out.append(
                f"| {r['size']} png | {r['format']} | {f(r['ms_median'])} | {f(r['peak_extra_mb'])} | "
                f"{r['input_bytes']:,} -> {r['output_bytes']:,} |"
            )
        e = pipe["event_loop"]
        out.append("")
        out.append(
            f"Event loop during a stream of 4096x2304 webp generations through the server (test/test, "
            f"{e['concurrency']} at a time, {e['images_4k']} images, {f(e['images_per_s'], 2)}/s, "
            f"errors {e['errors']}): GET /health p50 / p99 / max {f(e['health_busy_p50_ms'])} / "
            f"{f(e['health_busy_p99_ms'])} / {f(e['health_busy_max_ms'])} ms vs idle "
            f"{f(e['health_idle_p50_ms'])} / {f(e['health_idle_p99_ms'])} ms."
        )
        out.append("")
    if cold:
        out.append(
            f"### 4. Cold start: `imagegate serve` to first 200 from /health: median "
            f"{cold['median_s']:.2f} s of {len(cold['runs_s'])} ({', '.join(f'{x:.2f}' for x in cold['runs_s'])});"
            f" first boot on an empty data dir (migrations) {cold['first_boot_empty_dir_s']:.2f} s."
        )
        out.append("")
    if clu:
        out.extend(cluster_table(clu))
    if thumbs:
        out.extend(thumbnails_table(thumbs))
    for name, r in results.items():
        if r["data"] is None:
            out.append(f"Scenario {name} produced no result (rc {r['meta']['rc']}); see bench/results/*.log.")
    out.append("### Goals (one run, ratios side by side)")
    out.append("")
    out.extend(goals)
    return "\n".join(out) + "\n"


def cluster_table(clu: dict[str, Any]) -> list[str]:
    rows = [
        f"### 5. Cluster vs embedded ({clu['count']} async creates paced at {clu['rate']:g}/s, upstream jobs of "
        f"{clu['job_seconds']:g} s; every process on this same machine)",
        "",
        "| profile | created | errors | creates/s | create p50 / p99 ms | all succeeded after s "
        "| CPU s (all processes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in (("embedded", "embedded (1 serve, SQLite)"), ("cluster", "cluster (2 API + 2 workers, PG)")):
        r = clu[name]
        rows.append(
            f"| {label} | {r['created']} | {r['errors']} | {f(r['create_rate'])} | {f(r['create_p50_ms'])} / "
            f"{f(r['create_p99_ms'])} | {f(r['all_done_after_s'])} | {f(r['cpu_s'])} |"
        )
    return [*rows, ""]


def thumbnails_table(th: dict[str, Any]) -> list[str]:
    p, r = th["phases"], th["ratios"]
    rows = [
        f"### 6. Thumbnails (size={th['size']}, {th['outputs']} distinct 1024x1024 PNG outputs of test/test, "
        f"one request at a time; cached, 304 and full interleaved over {th['rounds']} rounds)",
        "",
        "| request | requests | p50 / p99 ms | req/s (c1) | body bytes / response | server CPU ms/req | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, label in (
        ("make", "first request (makes the preview)"),
        ("cached", "cached preview"),
        ("revalidate", "304 revalidation (If-None-Match)"),
        ("full", "full image via its url"),
    ):
        x = p[kind]
        rows.append(
            f"| {label} | {x['requests']} | {f(x['p50_ms'])} / {f(x['p99_ms'])} | {f(x['rps_c1'])} | "
            f"{f(x['bytes_per_response'])} | {f(x['cpu_ms_per_req'])} | {x['errors']} |"
        )
    rows += [
        "",
        f"Ratios: cached preview / full image p50 latency {f(r['cached_vs_full_p50'], 2)}; bytes full image / "
        f"preview {f(r['full_vs_thumbnail_bytes'], 1)}; making / cached p50 latency {f(r['make_vs_cached_p50'], 2)}, "
        f"CPU {f(r['make_vs_cached_cpu'], 2)}.",
        "",
    ]
    for kind in ("make", "cached", "revalidate", "full"):
        if p[kind]["first_error"]:
            rows.append(f"First error ({kind}): `{p[kind]['first_error'][:200]}`")
    return rows


def update_readme(table: str) -> None:
    path = BENCH / "README.md"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=",".join(SCENARIOS))
    ap.add_argument("--update-readme", action="store_true")
    ap.add_argument("--render-only", action="store_true", help="re-render from bench/results/*.json")
    args = ap.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown scenarios {unknown}; have {list(SCENARIOS)}")
    results: dict[str, dict[str, Any]] = {}
    if args.render_only:
        for n in names:
            p = RESULTS / f"{n}.json"
            if p.exists():
                results[n] = {
                    "meta": {"rc": 0, "seconds": 0, "load_before": "-", "load_after": "-"},
                    "data": json.loads(p.read_text()),
                }
    else:
        for n in names:
            results[n] = run_scenario(n, args.quick)
    facts = machine_facts()
    table = render(results, facts, args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text(table)
    (RESULTS / "latest.json").write_text(json.dumps({"facts": facts, "results": results}, indent=2, default=str))
    print()
    print(table)
    if args.update_readme:
        update_readme(table)


if __name__ == "__main__":
    main()
