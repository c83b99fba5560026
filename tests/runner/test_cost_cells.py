"""The cost plan tells the truth about every kind of cell: a ``refused`` attack setting is listed as refused (no pass,
its failure rows' reason and fix, not an error of the plan), and a ``sigma: auto`` median-smoothing card is timed as
the run makes it (n copies per call, batched) with its sigma selection (per grid value, on the validation images,
with the selection metric), checked against the counted network calls and the measured time of real runs."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bench.runner import probe
from bench.runner.cost import plan_matrix
from bench.runner.matrix import load_matrix
from bench.runner.runner import run_matrix

# a loss the refused cells never build (no 'vgg19' asset): building it is an error, refusing is not
UNBUILDABLE_LOSS = {"name": "l1_perceptual", "backbone": "vgg19"}


@pytest.fixture
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _images(folder: Path, n: int, size: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        base = (np.sin(xx / (3 + i)) + np.cos(yy / (5 + i))) * 60 + 128
        img = np.clip(base[..., None] + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{folder.name}{i}.png")


def _smoothing(val: Path, grid: list[float | None], images: int) -> dict:
    validation = {"dataset": "folder", "path": str(val), "crop": None, "images": images}
    return {"sigma_grid": grid, "validation": validation, "metric": "psnr"}


# ----------------------------------------------------------------------------------------------------- refused
@pytest.fixture
def frozen_project(tiny_project, monkeypatch):
    """The tiny project with ``frozen`` (bicubic declaring itself non-differentiable) and ``frozen-auto`` (median
    smoothing of it, ``sigma: auto``), FGSM without a surrogate (refused for both) and a clean column."""
    from bench.methods import ADAPTERS
    from bench.methods.bicubic import Bicubic

    ADAPTERS.load()
    monkeypatch.setitem(
        ADAPTERS._entries, "frozen_bicubic", type("FrozenBicubic", (Bicubic,), {"differentiable": False})
    )
    methods = tiny_project["methods"]
    (methods / "frozen.yaml").write_text("title: Frozen\nadapter: frozen_bicubic\ntile: null\n")
    auto = {"title": "Frozen auto", "adapter": "median_smoothing", "tile": None}
    (methods / "frozen-auto.yaml").write_text(
        yaml.safe_dump({**auto, "args": {"base": "frozen", "sigma": "auto", "n": 3}})
    )
    _images(tiny_project["root"] / "val", 1, 32, 5)
    data = yaml.safe_load(tiny_project["matrix"].read_text())
    fgsm = {"name": "fgsm", "attack": "fgsm", "epsilons": ["8/255"], "loss": UNBUILDABLE_LOSS}
    data.update(
        methods=["frozen", "frozen-auto"],
        conditions=data["conditions"][:1],
        attacks=[{"name": "none"}, fgsm],
        metrics=["psnr"],
        smoothing=_smoothing(tiny_project["root"] / "val", [None, 0.05], 1),
    )
    tiny_project["matrix"].write_text(yaml.safe_dump(data, sort_keys=False))
    return tiny_project


def test_a_refused_attack_is_listed_as_refused_with_its_failure_rows_text(frozen_project, tmp_path, _one_thread):
    """Both FGSM cells are planned ``refused``: the dry-run lists them with no pass, no FLOP and the text (reason and
    fix) their failure rows then carry -- not "cannot probe" (their attack loss cannot even be built, and need not
    be) -- and the plan has no error. A refused ``sigma: auto`` cell runs no sigma selection (none counted, none
    run)."""
    from bench.report.tables import load_run

    matrix = load_matrix(frozen_project["matrix"])
    plan = plan_matrix(matrix, "cpu")
    text = plan.format()
    refused = [line for line in plan.lines if line.refused]
    assert {line.method for line in refused} == {"frozen", "frozen-auto"}, text
    for line in refused:
        assert (line.forwards, line.backwards, line.flops) == (0, 0, 0) and not line.error
        assert line.refused.startswith("AttackRefused: fgsm needs gradients") and "surrogate: CARD" in line.fix
        assert line.cells == 1 and line.images == 3 and 0 < line.seconds < 1.0  # the reads and the cell's write
    assert plan.errors == [] and plan.refused_cells == 2
    assert "cannot probe" not in text and "refused, never attempted: AttackRefused:" in text
    assert "2 cells refused: failure rows with the fix, no model pass" in text
    clean = {line.method: line for line in plan.lines if line.attack == "none"}
    assert clean["frozen"].forwards == 3 and clean["frozen-auto"].forwards == 3 * 3 + (1 + 3)  # its selection

    summary = run_matrix(matrix, tmp_path / "run", device="cpu", progress=False)
    assert len(summary.failed) == 2
    rows = load_run(tmp_path / "run").records
    for line in refused:
        mine = rows[(rows["method"] == line.method) & (rows["attack"] != "none")]
        assert len(mine) == 3 and (mine["status"] == "failed").all()
        assert set(mine["error"]) == {line.refused}  # the plan shows what the rows say
        assert mine["sigma"].isna().all()  # no sigma chosen for an attack never attempted
    assert len(list((tmp_path / "run" / "sigma").glob("*.json"))) == 1  # the clean cell's selection only


# ---------------------------------------------------------------------------------------------------- sigma: auto
def _auto_project(project: dict[str, Path], n: int, size: int, grid: list[float | None]) -> Path:
    """A ``sigma: auto`` card of ``n`` copies over the tiny RRDB, the project's 3 images and 2 validation images of
    ``size``² HR, the clean condition."""
    auto = {"title": "Tiny auto", "adapter": "median_smoothing", "tile": None}
    auto["args"] = {"base": "tiny-rrdb", "sigma": "auto", "n": n}
    (project["methods"] / "tiny-auto.yaml").write_text(yaml.safe_dump(auto))
    for path in sorted(project["hr"].glob("*.png")):
        path.unlink()
    _images(project["hr"], 3, size, 1)
    _images(project["root"] / "val", 2, size, 2)
    data = yaml.safe_load(project["matrix"].read_text())
    data.update(
        methods=["tiny-auto"],
        conditions=data["conditions"][:1],
        metrics=["psnr"],
        smoothing=_smoothing(project["root"] / "val", grid, 2),
    )
    data.pop("gallery")
    project["matrix"].write_text(yaml.safe_dump(data, sort_keys=False))
    return project["matrix"]


def test_a_sigma_auto_card_is_probed_with_its_copies_and_its_selection_counted(
    tiny_project, tmp_path, monkeypatch, _one_thread
):
    """The card has no sigma until the run's selection sets one: the probe still times its n copies (not the base
    alone), and the plan's FLOPs are those of every counted pass -- the cell's and the selection's, both at one base
    forward each (validation images of the cell images' size)."""
    from torch.utils.flop_counter import FlopCounterMode

    from bench.methods.cards import build_method
    from bench.runner.runner import Runner

    n = 5
    matrix = load_matrix(_auto_project(tiny_project, n, 32, [0.02, 0.05]))
    copies = []
    copies_now = probe.copies_now
    monkeypatch.setattr(probe, "copies_now", lambda method: copies.append(copies_now(method)) or copies[-1])
    plan = plan_matrix(matrix, "cpu")
    (line,) = plan.lines
    assert not line.error and copies == [n]  # timed smoothed, as the run makes it
    assert line.forwards == 3 * n + 2 * 2 * n  # 3 images x n copies; 2 sigmas x 2 validation images x n copies
    base, psnr = FlopCounterMode(display=False), FlopCounterMode(display=False)
    with base, torch.no_grad():
        build_method("tiny-rrdb").eval()(torch.rand(1, 3, 8, 8))
    with psnr, torch.no_grad():  # the run's PSNR (its crop border is the scale's)
        Runner(matrix, tmp_path / "plan", device="cpu").metrics["psnr"](
            torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
        )
    scored = 3 + 2 * 2  # the cell's images, and the validation images at each sigma
    expected = line.forwards * base.get_total_flops() + scored * psnr.get_total_flops()
    assert line.flops == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_a_sigma_auto_estimate_equals_the_counted_passes_and_is_within_30_percent_of_real_runs(
    tiny_project, tmp_path, monkeypatch, _one_thread
):
    """21 copies (the paper's n) over the tiny RRDBNet, three 96x96 HR images and two validation images, two grid
    values (each smoothed, so the plan's upper bound is the count): the planned forwards equal the base network's
    calls in each real run, and the estimated time is within 30 % of the median of three runs."""
    from bench.methods import cards
    from tests.runner.test_passes import count_networks

    matrix = load_matrix(_auto_project(tiny_project, 21, 96, [0.02, 0.05]))
    plan = plan_matrix(matrix, "cpu", repeats=3)
    counter = {"forward": 0, "backward": 0}
    build = cards.build_method
    monkeypatch.setattr(cards, "build_method", lambda *a, **k: count_networks(build(*a, **k), counter))
    runs = []
    for i in range(3):  # the median of three runs: one run slowed by a busy (shared CI) machine is not the measure
        before = counter["forward"]
        t0 = time.perf_counter()
        assert run_matrix(matrix, tmp_path / f"run{i}", device="cpu", progress=False).exit_code == 0
        runs.append(time.perf_counter() - t0)
        assert counter["forward"] - before == plan.forwards == 3 * 21 + 2 * 2 * 21
    measured = statistics.median(runs)
    each = ", ".join(f"{t:.3f}" for t in runs)
    message = f"estimated {plan.seconds:.3f} s, measured {measured:.3f} s (median of {each})"
    print(plan.format(), message, sep="\n")
    assert plan.seconds == pytest.approx(measured, rel=0.3), message
