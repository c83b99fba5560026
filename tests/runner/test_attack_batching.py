"""Attacked cells of deterministic methods run ``batch_images`` images per batch, each image's attack drawing from
its own generator: the rows equal those of one image per batch (to float tolerance), the keys are the same, and
stochastic models (a stochastic method, or a transfer from a stochastic surrogate) still run one image per batch."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bench.methods import cards
from bench.report.tables import load_run
from bench.runner.matrix import load_matrix
from bench.runner.runner import Runner, run_matrix

ATTACKS = [
    {"name": "pgd", "attack": "pgd", "params": {"steps": 2}, "epsilons": ["8/255"], "loss": "l1"},
    {"name": "fgsm", "attack": "fgsm", "epsilons": ["4/255"], "loss": "l1"},
    {"name": "cw", "attack": "cw", "params": {"steps": 2}, "loss": "l1"},
    {"name": "rs", "attack": "random_sign", "epsilons": ["8/255"], "loss": "l1"},
    {
        "name": "and",
        "attack": "degradation",
        "params": {"steps": 2, "channels": 4, "blocks_before": 1, "blocks_after": 1, "eps": 0.01, "step_size": 0.005},
        "loss": "l1",
    },
]
KEY = ["cell", "method", "condition", "attack", "epsilon", "image", "metric"]
ATTACK_COLUMNS = ["attack_loss_clean", "attack_loss_adv", "attack_linf"]


def _with(path: Path, **changes) -> Path:
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts (card, batch size) of every forward call of the methods the runner builds (attacks call forward)."""
    seen: Counter = Counter()
    real = cards.build_method

    def build(name, device="cpu", **kwargs):
        method = real(name, device, **kwargs)
        method.register_forward_pre_hook(lambda _m, args: seen.update([(name, args[0].shape[0])]))
        return method

    monkeypatch.setattr(cards, "build_method", build)
    return seen


def _rows(run_dir: Path) -> pd.DataFrame:
    df = load_run(run_dir).records
    assert (df["status"] == "ok").all(), df.loc[df["status"] != "ok", "error"].tolist()
    return df.set_index(KEY).sort_index()


@pytest.fixture
def frozen_card(tiny_project, monkeypatch):
    """A card whose adapter is bicubic declaring itself non-differentiable (as an ncnn or JPEG-in-the-loop method)."""
    from bench.methods import ADAPTERS
    from bench.methods.bicubic import Bicubic

    cls = type("FrozenBicubic", (Bicubic,), {"differentiable": False})
    ADAPTERS.load()
    monkeypatch.setitem(ADAPTERS._entries, "frozen_bicubic", cls)
    (tiny_project["methods"] / "frozen.yaml").write_text("title: Frozen\nadapter: frozen_bicubic\ntile: null\n")
    return tiny_project


def test_attacked_cells_batch_with_per_image_generators(frozen_card, tmp_path, batch_sizes, batch_invariant_convs):
    """Every route of a deterministic method: direct (bicubic, tiny-rrdb: the entries' surrogate is dropped for a
    differentiable method) and transfer from tiny-rrdb (frozen; random_sign needs no gradient: direct). Convolutions
    batch-invariant to the bit (``batch_invariant_convs``): with oneDNN's, a signed step on a ~1e-10 gradient entry
    or a uint8 rounding of the output can flip between batch 3 and 1, rarely but on a fresh draw each session."""
    attacks = [dict(a, surrogate="tiny-rrdb") for a in ATTACKS]
    methods = ["bicubic", "tiny-rrdb", "frozen"]
    path = _with(frozen_card["matrix"], methods=methods, attacks=attacks, gallery=None)
    one = load_matrix(path, overrides=["batch_images=1"])
    three = load_matrix(path, overrides=["batch_images=3"])
    keys = [c.key for c in Runner(one, tmp_path / "a", device="cpu").cells]
    assert keys == [c.key for c in Runner(three, tmp_path / "b", device="cpu").cells]  # batch_images is not keyed
    assert run_matrix(one, tmp_path / "a", device="cpu", progress=False).exit_code == 0
    assert {size for _, size in batch_sizes} == {1}
    batch_sizes.clear()
    assert run_matrix(three, tmp_path / "b", device="cpu", progress=False).exit_code == 0
    # every attacked cell ran its 3 images as one batch: the attacks' passes too (with one shared generator instead
    # of one per image, the random starts and signs would differ from batch 1 and the values below with them)
    assert {size for _, size in batch_sizes} == {3}
    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert a.index.equals(b.index) and set(a.index.get_level_values("cell")) == set(keys)
    assert len(set(a.index.get_level_values("attack"))) == len(ATTACKS)
    modes = set(zip(b.index.get_level_values("method"), b["attack_mode"], strict=True))
    assert {("frozen", "transfer"), ("frozen", "gradient-free"), ("tiny-rrdb", "white-box")} <= modes
    assert a["value"].to_numpy() == pytest.approx(b["value"].to_numpy(), rel=1e-5, abs=1e-5)
    for column in ATTACK_COLUMNS:
        assert a[column].to_numpy() == pytest.approx(b[column].to_numpy(), rel=1e-5, abs=1e-6), column
    # counts are per image (a batched pass counts once, as one image's pass)
    for column in ("attack_forward", "attack_backward", "attack_mode"):
        assert a[column].tolist() == b[column].tolist(), column


def _mrs_card(project: dict) -> None:
    text = "title: Tiny MRS\nadapter: median_smoothing\nargs: {base: tiny-rrdb, sigma: 0.05, n: 3}\ntile: null\n"
    (project["methods"] / "tiny-mrs.yaml").write_text(text)


def test_stochastic_models_still_run_one_image_per_batch(frozen_card, tmp_path, batch_sizes):
    """A stochastic method (EOT and transfer from its base) and a deterministic method attacked by transfer from a
    stochastic surrogate: one image per batch under ``batch_images: 3``, and the run succeeds."""
    project = frozen_card
    _mrs_card(project)
    pgd = dict(ATTACKS[0], eot_samples=2, transfer_from_base=True)
    from_mrs = dict(ATTACKS[1], name="fgsm-mrs", surrogate="tiny-mrs", eot_samples=2)
    path = _with(
        project["matrix"],
        methods=["tiny-mrs", "frozen"],
        conditions=[{"name": "clean", "corruption": "clean"}],
        attacks=[pgd, from_mrs],
        gallery=None,
        batch_images=3,
    )
    runner = Runner(load_matrix(path), tmp_path / "run", device="cpu", progress=False)
    routes = sorted((c.method, c.threat.name, c.threat.variant) for c in runner.cells)
    assert routes == [
        ("frozen", "fgsm-mrs", "transfer"),  # frozen x pgd is refused (no surrogate) and fails as before
        ("frozen", "pgd", "refused"),
        ("tiny-mrs", "fgsm-mrs", "direct"),
        ("tiny-mrs", "pgd", "direct"),
        ("tiny-mrs", "pgd", "transfer-from-base"),
    ]
    runner.run()
    df = load_run(tmp_path / "run").records
    ok = df[~((df.method == "frozen") & (df.attack == "pgd"))]
    assert (ok["status"] == "ok").all(), ok.loc[ok["status"] != "ok", "error"].tolist()
    assert set(ok[ok.method == "frozen"]["attack_mode"]) == {"transfer"}
    # the cards the run builds (a smoothing base, built from its card object, batches its noisy copies: not images)
    sizes = {(name, size) for name, size in batch_sizes if isinstance(name, str)}
    assert sizes == {("tiny-mrs", 1), ("frozen", 1)}  # tiny-mrs as the method and as frozen's surrogate
