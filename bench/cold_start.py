"""Scenario 4, cold start: ``imagegate serve`` spawned -> first 200 from GET /health (median of N).

The data directory is created (and migrated) once beforehand, as on a restart; the first boot
on an empty directory, migrations included, is reported separately.
"""

from __future__ import annotations

import argparse
import shutil

from bench.common import RESULTS, Server, free_port, imagegate_cmd, make_key, median, write_result


def boot_once(data, name: str) -> float:  # type: ignore[no-untyped-def]
    port = free_port()
    srv = Server(name, imagegate_cmd(data, port))
    try:
        return srv.wait_http(f"http://127.0.0.1:{port}/health", 60)
    finally:
        srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=None)
    args = ap.parse_args()
    runs = args.runs or (2 if args.quick else 5)
    data = RESULTS / "cold-data"
    shutil.rmtree(data, ignore_errors=True)
    first = boot_once(data, "imagegate-cold")  # empty dir: creates the DB and runs migrations
    make_key(data)
    times = [boot_once(data, "imagegate-cold") for _ in range(runs)]
    out = {
        "scenario": "cold_start",
        "quick": args.quick,
        "runs_s": [round(t, 3) for t in times],
        "median_s": round(median(times) or 0, 3),
        "first_boot_empty_dir_s": round(first, 3),
    }
    print(out)
    print("wrote", write_result("cold_start", out))


if __name__ == "__main__":
    main()
