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
