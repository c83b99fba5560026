"""The one counting rule of model passes (:func:`bench.runner.passes.cell_passes`) against what real runs do.

Every SR network of a tiny run is wrapped in a counter (images through its forward, images whose backward ran); the
analytic count must equal the counted passes exactly, per attack of the registry, and per cell of a real
``run_matrix`` (clean inference, FGSM, PGD with restarts and EOT draws, transfer from the base, median smoothing with
certification and sigma selection, a stochastic method with SR samples, ``attack_images``). That ``bench reproduce
--dry-run`` and ``bench run --dry-run`` print the same counts is tested in ``test_reproduce.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bench.attacks import ATTACKS, AttackError, build_attack, build_loss
from bench.methods.base import Method
from bench.runner.passes import (
    ModelSpec,
    Passes,
    attack_passes,
    cell_passes,
    count_cells,
    passes_at,
    selection_key,
)

TINY = {"num_block": 1, "num_feat": 8, "num_grow_ch": 4}
TINY_STOCH = {**TINY, "num_noise_ch": 3}
#: small settings per registered attack (a new attack runs with its defaults)
SMALL = {
    "bim": {"steps": 2},
    "pgd": {"steps": 3},
    "cw": {"steps": 2},
    "eot": {"attack": "pgd", "steps": 2, "samples": 2, "restarts": 2},
    "degradation": {"steps": 2, "channels": 4, "blocks_before": 1, "blocks_after": 1},
}


class _CountBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, out: torch.Tensor, counter: dict[str, int]) -> torch.Tensor:
        ctx.counter, ctx.n = counter, out.shape[0]
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        ctx.counter["backward"] += ctx.n
        return grad, None


class CountingNet(torch.nn.Module):
    """Wraps an SR network: counts the images of every forward and of every backward that runs through it."""

    def __init__(self, net: torch.nn.Module, counter: dict[str, int]) -> None:
        super().__init__()
        self.inner, self.counter = net, counter

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        out = self.inner(x, *args, **kwargs)
        self.counter["forward"] += x.shape[0]
        return _CountBackward.apply(out, self.counter) if out.requires_grad else out


def count_networks(method: Method, counter: dict[str, int]) -> Method:
    """Wrap every SR network (``net`` of a method, a smoothing base's included) of ``method`` in a counter."""
    for module in list(method.modules()):
        net = getattr(module, "net", None)
        if isinstance(module, Method) and isinstance(net, torch.nn.Module) and not isinstance(net, CountingNet):
            module.net = CountingNet(net, counter)
    return method


def _rrdb() -> Method:
    from bench.methods import ADAPTERS

    torch.manual_seed(0)
    return ADAPTERS.get("rrdbnet")(**TINY, scale=4).eval()


def _smoothing(n: int = 3, sigma: float | None = 0.05) -> Method:
    from bench.methods.smoothing import MedianSmoothing

    return MedianSmoothing(_rrdb(), sigma=sigma, n=n).eval()


# ----------------------------------------------------------------------------------------- attacks, one by one
def _run(attack, method: Method, counter: dict[str, int]) -> Passes:
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(1, 3, 32, 32, generator=g)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    attack(method, lr, hr, torch.Generator().manual_seed(1))
    return Passes(counter["forward"], counter["backward"])


@pytest.mark.parametrize("name", ATTACKS.names())
@pytest.mark.parametrize("target", ["clean", "hr"])
@pytest.mark.parametrize("smoothed", [False, True], ids=["white-box", "eot-smoothing"])
def test_attack_passes_equal_the_network_calls(name, target, smoothed) -> None:
    """Each registered attack, deterministic (restarts 1) and on median smoothing (3 copies, EOT 2, restarts 2)."""
    counter = {"forward": 0, "backward": 0}
    method = count_networks(_smoothing() if smoothed else _rrdb(), counter)
    kwargs = dict(SMALL.get(name, {}), target=target, loss=build_loss("l1"))
    if name != "eot":
        kwargs.update(eot_samples=2, restarts=2) if smoothed else None
    attack = build_attack(name, **kwargs)
    if target == "clean" and attack.needs_gradient and not attack.random_start and not smoothed:
        with pytest.raises(AttackError, match="no-reference loss"):  # refused before any pass: the runner's
            _run(attack, method, counter)  # failure rows, and nothing to count
        assert counter == {"forward": 0, "backward": 0}
        return
    model = ModelSpec("m", stochastic=smoothed, smoothed=smoothed, n=3, sigma=0.05 if smoothed else None)
    assert _run(attack, method, counter) == attack_passes(attack, model, model.sigma)


def test_transfer_passes_are_the_surrogates_and_the_evaluation() -> None:
    """PGD made on a plain surrogate, evaluated on median smoothing (EOT 2 draws of 3 copies, target clean)."""
    own, other = {"forward": 0, "backward": 0}, {"forward": 0, "backward": 0}
    method = count_networks(_smoothing(), own)
    surrogate = count_networks(_rrdb(), other)
    attack = build_attack("pgd", steps=2, eot_samples=2, target="clean", loss=build_loss("l1"), surrogate=surrogate)
    _run(attack, method, own)
    model = ModelSpec("m", stochastic=True, smoothed=True, n=3, sigma=0.05)
    expected = attack_passes(attack, model, 0.05, ModelSpec("s"))
    assert Passes(own["forward"], own["backward"], other["forward"], other["backward"]) == expected
    assert expected.surrogate_backwards == 2 and expected.forwards == 3 * 2 * 3  # copies x draws x (ref + 2)


# ------------------------------------------------------------------------------------------- a whole real run
@pytest.fixture
def lpips_random(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SR-space score's LPIPS with random weights (the real ones are an asset; counts do not depend on them)."""
    from bench.metrics import diversity
    from bench.metrics.lpips import LPIPSAlex

    def build(device=None):
        torch.manual_seed(0)
        return LPIPSAlex(pretrained=False).to(device)

    monkeypatch.setattr(diversity, "build_lpips", build)


def _write_cards(methods: Path) -> None:
    from safetensors.torch import save_file

    from bench.archs.stochastic import StochasticRRDBNet

    torch.manual_seed(1)
    save_file({k: v.contiguous() for k, v in StochasticRRDBNet(**TINY_STOCH).state_dict().items()},
              str(methods / "sto.safetensors"))  # fmt: skip
    sto = {"title": "tiny stochastic", "adapter": "stochastic_rrdbnet", "args": TINY_STOCH}
    (methods / "tiny-sto.yaml").write_text(yaml.safe_dump({**sto, "checkpoint": "sto.safetensors", "tile": None}))
    mrs = {"title": "tiny MRS", "adapter": "median_smoothing", "args": {"base": "tiny-rrdb", "sigma": 0.05, "n": 3}}
    (methods / "tiny-mrs.yaml").write_text(yaml.safe_dump({**mrs, "tile": None}))


def _matrix_file(project: dict[str, Path]) -> Path:
    val = project["root"] / "val"
    val.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(val / "val0.png")
    path = project["matrix"]
    data = yaml.safe_load(path.read_text())
    data.update(
        methods=["tiny-rrdb", "tiny-mrs", "tiny-sto"],
        conditions=[{"name": "clean", "corruption": "clean"}],
        metrics=["psnr"],
        attack_images=2,
        attacks=[
            {"name": "none"},
            {"name": "fgsm", "attack": "fgsm", "epsilons": ["2/255"], "loss": "l1", "transfer_from_base": True},
            {"name": "fgsm-nr", "attack": "fgsm", "params": {"target": "clean"}, "epsilons": ["2/255"], "loss": "l1"},
            {
                "name": "pgd",
                "attack": "pgd",
                "params": {"steps": 2},
                "epsilons": ["2/255"],
                "loss": "l1",
                "eot_samples": 2,
                "restarts": 2,
            },
        ],
        smoothing={
            "sigma_grid": [None, 0.05],
            "validation": {"dataset": "folder", "path": str(val), "crop": None, "images": 1},
            "metric": "psnr",
            "certify": {"epsilons": [0.02]},
            "sigmas": {"pgd": "auto"},
        },
        sr_space={"samples": 3, "columns": ["lr_psnr"]},
    )
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_counts_equal_the_passes_of_a_real_run(tiny_project, monkeypatch, lpips_random) -> None:
    """Per cell of a real run, the counted passes of every SR network equal :func:`count_cells` (with, for a
    ``sigma: auto`` cell, the sigma the run chose; the plan's count is the grid's largest, an upper bound). The
    matrix: a plain, a median-smoothing (3 copies, certified, sigma chosen for PGD) and a stochastic method (3 SR
    samples); clean, FGSM (and by transfer from the smoothing's base), FGSM against the clean output (refused for the
    deterministic method), PGD with 2 EOT draws and 2 restarts; 2 of the 3 images attacked."""
    from bench.methods import cards
    from bench.runner.matrix import load_matrix
    from bench.runner.runner import Runner
    from bench.runner.store import Store

    _write_cards(tiny_project["methods"])
    matrix = load_matrix(_matrix_file(tiny_project))
    counter = {"forward": 0, "backward": 0}
    build = cards.build_method
    monkeypatch.setattr(cards, "build_method", lambda *a, **k: count_networks(build(*a, **k), counter))
    measured: dict[str, Passes] = {}
    compute = Runner._compute_with_sigma

    def counted(self, cell, method, *args, **kwargs):
        before = dict(counter)
        out = compute(self, cell, method, *args, **kwargs)
        measured[cell.key] = Passes(counter["forward"] - before["forward"], counter["backward"] - before["backward"])
        return out

    monkeypatch.setattr(Runner, "_compute_with_sigma", counted)
    run_dir = tiny_project["root"] / "run"
    runner = Runner(matrix, run_dir, device="cpu", progress=False)
    summary = runner.run()
    # FGSM against the clean output of the deterministic method is refused (failure rows, no pass)
    assert summary.failed == [c.label() for c in runner.cells if c.threat.name == "fgsm-nr" and c.method == "tiny-rrdb"]
    assert len(measured) == len(runner.cells) == 13
    counts = count_cells(runner.cells, matrix, runner.provenances, lambda cell: 3)
    variants = {c.cell.threat.variant for c in counts if c.cell.threat.attacked}
    assert variants == {"direct", "transfer-from-base"}
    store = Store(run_dir)
    auto = 0
    for count in counts:
        cell, got = count.cell, measured[count.cell.key]
        assert count.images == (2 if cell.threat.attacked else 3)
        expected = count.total
        smoothing = store.load_payload(cell.key).smoothing
        if smoothing is not None and smoothing["sigma_source"] == "selection":
            auto += 1
            model = ModelSpec.from_provenance(cell.method, runner.provenances[cell.method])
            chosen = passes_at(cell, matrix, model, smoothing["sigma"], None, True)
            assert cell_passes(cell, matrix, model).all_forwards >= chosen.all_forwards  # the plan's upper bound
            expected = chosen.times(count.images) + count.selection
            assert count.selection_images == 2  # 1 validation image x 2 sigmas
        total = Passes(expected.all_forwards, expected.all_backwards)
        assert got == total, f"{cell.label()}: measured {got}, counted {expected}"
    assert auto == 1 and len({selection_key(c.cell) for c in counts}) == len(counts)
