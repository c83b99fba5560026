"""Shared fixtures: devices, tiny models, the IQA calibration set, an isolated asset cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CALIBRATION = FIXTURES / "iqa-calibration"
CALIBRATION_IMAGES = ("I03", "I04", "I06", "I08", "I19")

_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _process_settings_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """``bench.cli.main(["--max-pixels", ...])`` sets ``$BENCH_MAX_PIXELS`` for its process (and the processes it
    starts); tests call ``main`` in-process, so the variable is restored after each test."""
    monkeypatch.delenv("BENCH_MAX_PIXELS", raising=False)


@pytest.fixture
def batch_invariant_convs():
    """CPU convolutions that give each image of a batch the bits it gets alone, for tests comparing a batched attack
    with one image per call. oneDNN (mkldnn) picks its kernels and summation order by batch size: conv outputs then
    differ by ~1e-8 and input gradients by ~1e-10 between batch 3 and batch 1 on the tiny RRDBs, as small as the
    smallest gradient entries (~1e-10 of 115k), so a signed step (PGD, FGSM), an L1 kink, a uint8 rounding of the
    output or a best-iterate tie can flip on a near-tie and move a value by far more than any float tolerance -- on
    a fresh draw each session, the runner's seeds hashing the tmp dataset path (seen: 2 sessions of 43, a frozen
    bicubic's PSNR moved 3-4e-4 dB by the 8-bit rounding after a degradation transfer). PyTorch's native CPU conv
    computes each image by the same GEMM whatever the batch: the two agree to the bit, so any difference left is a
    real one (a shared generator, a loss or gradient mixing images)."""
    with torch.backends.mkldnn.flags(enabled=False):
        yield


@pytest.fixture(params=["cpu", "cuda"])
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each device-aware test runs on CPU and, where there is one, on CUDA (skips cleanly otherwise)."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device(request.param)


@pytest.fixture
def calibration_dir() -> Path:
    """Five TID2013 pairs with the official IQA values (tests/fixtures/iqa-calibration/README.md)."""
    return CALIBRATION


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$BENCH_HOME`` for tests that write assets."""
    home = tmp_path / "bench-home"
    monkeypatch.setenv("BENCH_HOME", str(home))
    return home


@pytest.fixture
def rng() -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(0)
    return g
