"""The prepared GPU check (benchmarks/gpu_check.sh): it parses, and its CPU smoke mode runs every
step to exit 0 (slow: ~2.5 min), so the one device run a GPU session gets is not spent on a typo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = (
    "install", "import", "pytest-gpu", "pytest-device", "bench-models", "data", "contrastive",
    "mpm", "masked-id", "finetune", "evaluate", "rates", "bench-loader", "parity",
)  # fmt: skip


def test_the_gpu_check_parses() -> None:
    res = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@pytest.mark.slow
def test_the_gpu_check_smoke_mode_runs_every_step(tmp_path: Path) -> None:
    env = {**os.environ, "GPU_CHECK_SMOKE": "1", "PYTHON": sys.executable}
    res = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "out")], env=env, capture_output=True, text=True,
        timeout=900, cwd=ROOT,
    )  # fmt: skip
    summary = (tmp_path / "out" / "gpu_check.md").read_text()
    rows = dict(re.findall(r"^\| ([a-z-]+) \| (\S+) \|", summary, flags=re.M))
    assert [s for s in STEPS if rows.get(s) != "0"] == [], (rows, res.stdout[-2000:])
