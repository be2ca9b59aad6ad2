from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "dsb2018_img2d_noisy_seed0.npz").exists(), reason="needs ../shared/data")
def test_dsb_evaluation_quick_mode_runs_end_to_end(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "evaluate_dsb.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (tmp_path / "results.md").read_text()
    assert "(a) One fixed λ per method" in page and "(b) Oracle λ per crop" in page
    methods = ("otsu", "chan_vese", "tv_otsu", "n2f_threshold", "n2f_otsu", "convex_cv", "sequential")
    for method in (*methods, "self2seg_1", "self2seg_2", "self2seg_auto_1", "self2seg_auto_2"):
        assert f"| {method} |" in page
    assert "| chan_vese | 0.01, 0.25 |" in page  # the oracle table names the λ that ran (every third)
    assert (tmp_path / "images" / "dsb_methods.png").stat().st_size > 1000


@pytest.mark.slow
def test_robustness_suite_smoke_run_reports_every_column(tmp_path: Path) -> None:
    out = tmp_path / "robustness.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "robustness.py"), "--family", "shapes", "--limit", "1"]
    proc = subprocess.run(
        [*command, "--size", "64", "--seeds", "0", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "shapes (1 cases × 2 seeds) mean/worst Dice" in proc.stdout and "worst case overall" in proc.stdout
    import json

    rows = json.loads(out.read_text())
    assert [row["seed"] for row in rows] == [0, 1]
    for row in rows:
        assert {"self2seg", "otsu", "tv_otsu", "chan_vese", "flooded", "vanished", "degenerate"} <= set(row)
        assert row["self2seg"] > 0.9 and not row["degenerate"]  # a bright disk on a dark background
        assert row["tv_otsu"] == rows[0]["tv_otsu"]  # the baselines do not depend on the seed


@pytest.mark.slow
def test_classes_channels_benchmark_smoke_run_prints_every_combination() -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "classes_channels.py"), "--size", "48", "--steps", "5"]
    proc = subprocess.run(
        [*command, "--pd-iter", "20", "--outer", "1", "--classes", "2", "3", "--channels", "1", "3"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "failed" not in line]
    assert rows[0].startswith("| K | C |")
    assert [row.split("|")[1:3] for row in rows[1:]] == [[" 2 ", " 1 "], [" 3 ", " 1 "], [" 2 ", " 3 "]]
    assert rows[1].split("|")[6].strip() == "1.00"  # ratios are to K = 2, C = 1 of the same run
