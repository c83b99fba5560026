"""The cost plan (``bench run --dry-run``): counts from the matrix, time from a probe, checked against a real run."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bench.runner.cost import format_seconds, plan_matrix, probe_passes
from bench.runner.matrix import load_matrix


@pytest.fixture
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_plan_counts_cells_and_evaluations(tiny_project, _one_thread) -> None:
    matrix = load_matrix(tiny_project["matrix"])
    plan = plan_matrix(matrix, "cpu")
    assert plan.cells == 4  # 2 methods x 2 conditions x 1 dataset x 1 seed
    assert len(plan.lines) == 4 and all(line.images == 3 and not line.error for line in plan.lines)
    rrdb = [line for line in plan.lines if line.method == "tiny-rrdb"]
    assert all(line.forwards == 3 and line.backwards == 0 for line in rrdb)  # one forward per image, no attack
    assert all(line.flops > 0 for line in rrdb)
    text = plan.format()
    assert "tiny-rrdb" in text and "total: 4 cells" in text


def test_plan_counts_attack_backwards(tiny_project, _one_thread) -> None:
    path = tiny_project["matrix"]
    data = yaml.safe_load(path.read_text())
    data.update(
        methods=["tiny-rrdb"],
        conditions=[{"name": "clean", "corruption": "clean"}],
        attacks=[{"name": "pgd", "attack": "pgd", "params": {"steps": 3}, "epsilons": ["2/255"], "loss": "l1"}],
    )
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    matrix = load_matrix(path)
    plan = plan_matrix(matrix, "cpu")
    attacked = [line for line in plan.lines if line.attack != "none"]
    assert attacked, plan.format()
    line = attacked[0]
    assert line.backwards == 3 * line.images  # 3 PGD steps per image
    assert line.forwards == (1 + 3 + 1 + 1) * line.images  # clean loss, steps, last iterate's loss, the prediction


def test_probe_times_one_pass_and_divides_smoothing_by_its_copies(_one_thread) -> None:
    """The probe measures seconds per forward and per backward (with the attack loss), not counts; a median-smoothing
    call of n copies is n passes of its base, so its per-pass FLOPs are the base's."""
    from bench.attacks import build_loss
    from bench.methods import ADAPTERS
    from bench.methods.smoothing import MedianSmoothing

    torch.manual_seed(0)
    base = ADAPTERS.get("rrdbnet")(num_block=1, num_feat=8, num_grow_ch=4, scale=4)
    device = torch.device("cpu")
    # medians of 5 timings: a backward is (forward + backward) less a forward, so one timing of each on a loaded
    # machine can leave it at its floor of 0
    plain = probe_passes(base, 12, 4, device, {"l1": build_loss("l1")}, repeats=5)
    smoothed = probe_passes(MedianSmoothing(base, sigma=0.05, n=5), 12, 4, device, {"l1": build_loss("l1")}, repeats=5)
    assert plain.lr_pixels == 144 and plain.forward_seconds > 0 and plain.backward_seconds["l1"] > 0
    assert plain.forward_flops > 0 and smoothed.forward_flops == pytest.approx(plain.forward_flops, rel=1e-6)
    assert smoothed.forward_seconds > 0 and set(smoothed.backward_seconds) == {"l1"}


@pytest.mark.slow
def test_estimate_within_30_percent_of_a_real_run(tiny_project, tmp_path, _one_thread) -> None:
    """A small matrix where the model's work dominates: tiny RRDBNet, three 96x96 HR images, clean and 3-step PGD."""
    from bench.runner.runner import run_matrix

    rng = np.random.default_rng(1)
    for path in sorted(tiny_project["hr"].glob("*.png")):
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(path)
    path = tiny_project["matrix"]
    data = yaml.safe_load(path.read_text())
    data.update(
        methods=["tiny-rrdb"],
        attacks=[
            {"name": "none"},
            {"name": "pgd", "attack": "pgd", "params": {"steps": 3}, "epsilons": ["2/255"], "loss": "l1"},
        ],
    )
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    matrix = load_matrix(path)
    plan = plan_matrix(matrix, "cpu", repeats=3)
    runs = []
    for i in range(3):  # the median of three runs: one run slowed by a busy (shared CI) machine is not the measure
        t0 = time.perf_counter()
        run_matrix(matrix, tmp_path / f"run{i}", device="cpu", progress=False)
        runs.append(time.perf_counter() - t0)
    measured = statistics.median(runs)
    each = ", ".join(f"{t:.3f}" for t in runs)
    message = f"estimated {plan.seconds:.3f} s, measured {measured:.3f} s (median of {each})"
    print(plan.format(), message, sep="\n")
    assert plan.seconds == pytest.approx(measured, rel=0.3), message


def test_format_seconds() -> None:
    assert format_seconds(12.0) == "12.0 s" and format_seconds(600) == "10.0 min"
    assert format_seconds(7200) == "2.0 h" and format_seconds(3 * 86400) == "3.0 d"
