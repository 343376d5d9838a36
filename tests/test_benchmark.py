"""The benchmark runs and its numbers hang together (it proves the speed targets, so it must not rot unnoticed).
Its timings are reported, never asserted: these machines are shared."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from tests.conftest import subprocess_timeout

BENCHMARK = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"


def test_quick_benchmark_of_overhead_and_large_matrices(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, BENCHMARK, "--quick", "--skip", "c,d", "--repeats", "1", "--size", "300x200", "--json", out],
        cwd=tmp_path, capture_output=True, text=True, timeout=4 * subprocess_timeout(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "## (a) and (a') Lightning against the lab's plain loops" in done.stdout
    assert "## (b) 300×200" in done.stdout
    results = json.loads(out.read_text())

    rows = results["overhead"]
    assert [(row["experiment"].split(",")[0], row["seeds"]) for row in rows] == [
        ("factorisation", 1), ("MLP", 1), ("factorisation", 10), ("MLP", 10)
    ]  # fmt: skip
    for row in rows:
        assert row["plain_s"] > 0 and row["lightning_s"] > 0
        assert math.isclose(row["ratio"], row["lightning_s"] / row["plain_s"])
        low, high = row["lightning_s_min_max"]
        assert low <= row["lightning_s"] <= high
        assert row["fit_seconds_with_final_figures"] >= row["lightning_s"]  # the loop is part of the fit
    floor = results["lightning_floor_ms"]  # ms per step at 1 and at 10 steps per batch
    assert floor.keys() == {"1", "10"} and min(floor.values()) > 0

    (large,) = results["large"]
    assert large["size"] == [300, 200] and len(large["rows"]) == 9
    for row in large["rows"]:
        assert math.isclose(row["fraction_of_one_pass"], row["one_pass_ms"] / row["ms_per_step"])
        assert math.isclose(row["five_pass_ms"], 5 * row["one_pass_ms"])
