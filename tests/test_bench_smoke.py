"""Smoke test of the bench harness: one real cold-start measurement, rendered into the table.

Runs ``python -m bench.run --quick --only cold_start`` (two boots of ``imagegate serve``, ~10 s)
into a temporary results directory and checks that the table carries a measured number, so a
broken ``serve`` or a broken harness fails here rather than in the next ``make bench``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_cold_start_renders_a_number(tmp_path: Path) -> None:
    env = {**os.environ, "IMAGEGATE_BENCH_RESULTS": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "cold_start"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    table = (tmp_path / "latest.md").read_text()
    m = re.search(r"Cold start: .* median (\d+\.\d+) s of 2", table)
    assert m, table
    assert 0 < float(m.group(1)) < 60
    assert "Machine: " in table and "Python " in table
