"""A killed ``python -m bench run`` resumes: finished cells are never recomputed, the final tables equal those of an
uninterrupted run -- for a matrix of corruption conditions and for a matrix with an attack axis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.report.html import write_report
from bench.runner.matrix import load_matrix
from bench.runner.runner import run_matrix

# Used only while ``python -m bench`` cannot build its parser (a command module of another area missing).
_DRIVER = (
    "import argparse, logging, sys\n"
    "from bench.runner.commands import add_parser\n"
    "p = argparse.ArgumentParser(); add_parser(p.add_subparsers())\n"
    "a = p.parse_args(sys.argv[1:]); logging.basicConfig(level=logging.INFO)\n"
    "sys.exit(a.func(a))\n"
)


def _bench_argv() -> list[str]:
    try:
        from bench.cli import build_parser

        build_parser()
    except ImportError:
        return [sys.executable, "-c", _DRIVER]
    return [sys.executable, "-m", "bench"]


def _cell_files(cells: Path) -> list[Path]:
    """Stored cell files; hidden files (temporaries, the start-up write probe) are not cells."""
    return [p for p in cells.glob("*.json") if not p.name.startswith(".")]


def _snapshot(cells: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in _cell_files(cells)}


def _conditions_matrix(data: dict) -> tuple[int, int]:
    """8 conditions x 2 methods; returns (cells, tables)."""
    data["conditions"] += [
        {"name": f"noise{i}", "corruption": "gaussian_noise", "params": {"sigma": 0.01 * i}} for i in range(1, 7)
    ]
    return 2 * 8, 8


def _attacks_matrix(data: dict) -> tuple[int, int]:
    """2 conditions x (none + FGSM at 4 budgets + PGD at 2) x 2 methods, attacks on 2 images; (cells, tables)."""
    data["attacks"] = [
        {"name": "none"},
        {"name": "fgsm", "attack": "fgsm", "epsilons": ["1/255", "2/255", "4/255", "8/255"], "loss": "l1"},
        {"name": "pgd", "attack": "pgd", "params": {"steps": 2}, "epsilons": ["2/255", "8/255"], "loss": "l1"},
    ]
    data["attack_images"] = 2
    return 2 * 2 * 7, 2 * 7


@pytest.mark.skipif(os.name != "posix", reason="uses SIGKILL")
@pytest.mark.parametrize("make_matrix", [_conditions_matrix, _attacks_matrix], ids=["conditions", "attacks"])
def test_killed_run_resumes_without_recomputing(tiny_project, tmp_path, make_matrix):
    # enough cells that the run is still going when the first one is stored
    data = yaml.safe_load(tiny_project["matrix"].read_text())
    total, n_tables = make_matrix(data)
    tiny_project["matrix"].write_text(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "reports"
    argv = [*_bench_argv(), "run", "--matrix", str(tiny_project["matrix"]), "--out", str(out), "--run", "r"]
    argv += ["--device", "cpu", "--no-progress"]
    cells = out / "r" / "cells"

    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not _cell_files(cells) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stored = _snapshot(cells)
    assert 0 < len(stored) < total, f"the kill should land mid-run; {len(stored)} of {total} cells stored"
    assert not list(cells.glob(".*")) or all(p.suffix == ".tmp" for p in cells.glob(".*"))

    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{len(stored)} already stored (skipped)" in rerun.stderr + rerun.stdout
    assert str(out / "r" / "index.html") in rerun.stdout
    after = _snapshot(cells)
    assert len(after) == total
    for name, (content, mtime) in stored.items():
        assert after[name] == (content, mtime), f"{name} was recomputed"

    reference = tmp_path / "reference" / "r"
    run_matrix(load_matrix(tiny_project["matrix"]), reference, device="cpu", progress=False)
    write_report(reference)
    tables = sorted(p.name for p in (out / "r" / "tables").glob("*.csv"))
    assert len(tables) == n_tables and tables == sorted(p.name for p in (reference / "tables").glob("*.csv"))
    for name in tables:
        assert (out / "r" / "tables" / name).read_text() == (reference / "tables" / name).read_text(), name
