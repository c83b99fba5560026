"""Shared pieces of the benchmarks: a table of paired timings printed at the end of a ``--benchmark-only`` run.

A paired case records its best time under a pair name and a side (``"ours"`` / ``"reference"``, or ``"achieved"`` /
``"peak"``); the terminal summary prints each complete pair with the ratio ``first / second`` so that one run shows
both sides and the ratio, e.g. ``psnr_y 512x512 cpu: ours 1.9 ms, reference 2.4 ms, ratio 0.79``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
import torch

_PAIRS = pytest.StashKey[dict[str, dict[str, tuple[float, str]]]]()


def _table(config: pytest.Config) -> dict[str, dict[str, tuple[float, str]]]:
    if _PAIRS not in config.stash:
        config.stash[_PAIRS] = {}
    return config.stash[_PAIRS]


@pytest.fixture
def record_pair(request: pytest.FixtureRequest) -> Callable[..., float | None]:
    """``record_pair(pair, side, value, unit="s")`` stores one side of a pair (a best time in seconds by default,
    or e.g. TFLOP/s with ``unit="TFLOP/s"``); returns ``ours / reference`` once both are known. Under ``-v`` each
    side is also written at once (a run cut short by a time limit keeps the figures measured so far in its log)."""
    table = _table(request.config)
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter") if request.config.option.verbose > 0 else None
    capture = plugins.get_plugin("capturemanager")

    def record(pair: str, side: str, value: float, unit: str = "s") -> float | None:
        sides = table.setdefault(pair, {})
        sides[side] = (value, unit)
        if reporter is not None:  # past the test's output capture, straight to the terminal
            with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
                reporter.write_line(f"  {pair}: {_side(side, value, unit)}")
        if "ours" in sides and "reference" in sides:
            return sides["ours"][0] / sides["reference"][0]
        return None

    return record


def _side(side: str, value: float, unit: str) -> str:
    return f"{side} {value * 1e3:.2f} ms" if unit == "s" else f"{side} {value:.4g} {unit}".rstrip()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    table = _table(config)
    if not table:
        return
    terminalreporter.section(
        f"paired benchmarks (best times; torch {torch.__version__}, {torch.get_num_threads()} threads at the end)"
    )
    for pair, sides in sorted(table.items()):
        parts = [_side(side, value, unit) for side, (value, unit) in sides.items()]
        if "ours" in sides and "reference" in sides:
            parts.append(f"ratio {sides['ours'][0] / sides['reference'][0]:.2f}")
        terminalreporter.write_line(f"{pair}: " + ", ".join(parts))
