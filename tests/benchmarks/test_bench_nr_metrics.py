"""No-reference metrics on one 512 x 512 image (``pytest --benchmark-only tests/benchmarks/test_bench_nr_metrics.py``).

NIQE is the yardstick: the issue asks for each NR metric's time as a ratio to NIQE's. Learned parameters are
placeholders (``pretrained=False``): the cost does not depend on their values, except NRQM's forests, whose depth
sets the traversal cost: ``test_bench_nrqm_real_model_512`` times the real model and skips where ``nrqm-ma`` is not
stored (official URLs only, no registry carrier). On CUDA the timed function
synchronises so that the kernels are inside the measurement.
"""

from __future__ import annotations

import pytest
import torch

from bench.metrics import METRICS, build_metric

SHAPE = (1, 3, 512, 512)


def _image(device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.linspace(0, 1, SHAPE[-1]).expand(SHAPE).clone()
    return (base + 0.1 * torch.randn(SHAPE, generator=g)).clamp(0, 1).to(device)


@pytest.mark.parametrize("name", ["niqe", "brisque", "piqe", "nrqm", "pi"])
def test_bench_nr_metric_512(benchmark, name: str, device: torch.device) -> None:
    x = _image(device)
    kwargs = {"pretrained": False} if METRICS.get(name).needs_weights else {}
    metric = build_metric(name, **kwargs).to(device)

    def run() -> torch.Tensor:
        out = metric(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    out = benchmark(run)
    assert out.shape == (1,) and torch.isfinite(out).all()


def test_bench_nrqm_real_model_512(benchmark, device: torch.device) -> None:
    from bench.assets import is_stored
    from bench.metrics.nrqm import ASSET, FETCH_COMMAND

    if not is_stored(ASSET):
        pytest.skip(f"{ASSET} is not stored (official URLs only, no registry carrier): run `{FETCH_COMMAND}`")
    x = _image(device)
    metric = build_metric("nrqm").to(device)

    def run() -> torch.Tensor:
        out = metric(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    out = benchmark(run)
    assert out.shape == (1,) and torch.isfinite(out).all()
