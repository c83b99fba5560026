"""``.ci/gpu-checks`` (run on a lent GPU machine, never in CI) stays runnable: valid bash, and its ``-k`` selections
still pick the CUDA cases they are budgeted for, so a renamed benchmark cannot silently drop out of the GPU session."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "gpu-checks"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_script_is_valid_bash_and_executable() -> None:
    assert SCRIPT.stat().st_mode & 0o111, f"{SCRIPT} is not executable"
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def _collected(*args: str) -> list[str]:
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_each_benchmark_step_selects_cuda_cases() -> None:
    text = SCRIPT.read_text()
    selections = re.findall(r'-k "\$DEVICE and ([^"]+)"', text)
    assert sorted(selections) == ["fast_path", "not fast_path"], selections
    fast = _collected("-k", "cuda and fast_path", "tests/benchmarks")
    rest = _collected("-k", "cuda and not fast_path", "tests/benchmarks")
    assert len(fast) >= 4 and all("cuda" in t for t in fast), fast  # 2 sizes x fp32 / guarded / compiled
    names = " ".join(rest)
    for case in ("pgd_step", "pgd_batch", "smoothing", "training"):  # the acceptance figures of issue 13
        assert case in names, f"no CUDA benchmark case for {case!r} left in the step's selection"
