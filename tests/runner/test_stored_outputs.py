"""Stored SR outputs are verified before a metric added later is scored on them: the cell records the shape and
SHA-256 of every tensor of ``outputs/<key>.safetensors`` (``outputs_tensors``); a file that does not match (a pixel
changed, a tensor dropped, added, reshaped or widened to float64, truncated, deleted) or a cell stored before the
checksums (unverified) is never scored --
the method runs again for that cell, the log says why in one line, and the values equal a full recompute's.
``bench report`` reads the cells only, never the outputs files."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file, save_file

from bench.methods import cards
from bench.results.schema import CellPayload
from bench.runner.matrix import load_matrix
from bench.runner.runner import run_matrix
from bench.runner.stages.outputs import describe, tensor_sha256
from bench.runner.store import Store

IMAGES = ("img0", "img1", "img2")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Images super-resolved per method (every ``super_resolve`` call of the methods the runner builds)."""
    counted: Counter = Counter()
    real = cards.build_method

    def build(name, device="cpu", **kwargs):
        method = real(name, device, **kwargs)
        inner = method.super_resolve

        def super_resolve(lr, generator=None):
            counted[name] += lr.shape[0]
            return inner(lr, generator)

        method.super_resolve = super_resolve
        return method

    monkeypatch.setattr(cards, "build_method", build)
    return counted


def _metrics(path: Path, metrics: list[str]) -> Path:
    data = yaml.safe_load(path.read_text())
    data.update(metrics=metrics, store_outputs=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _run(path: Path, run_dir: Path):
    return run_matrix(load_matrix(path), run_dir, device="cpu", progress=False)


def _payloads(run_dir: Path) -> dict[tuple[str, str], CellPayload]:
    return {(p.labels.method, p.labels.condition): p for p in Store(run_dir).iter_payloads()}


def _values(run_dir: Path) -> dict[tuple, float]:
    out = {}
    for (method, condition), payload in _payloads(run_dir).items():
        assert payload.ok, payload.error
        for r in payload.records:
            assert r["status"] == "ok", r
            out[(method, condition, r["image"], r["metric"])] = r["value"]
    return out


@pytest.fixture
def stored(tiny_project, tmp_path, calls):
    """A finished run with psnr and stored outputs; the matrix then asks for ssim and lr_psnr_input as well.
    Returns the matrix path, the run folder and the values of a full recompute (another folder) as the reference."""
    path = _metrics(tiny_project["matrix"], ["psnr"])
    assert _run(path, tmp_path / "run").exit_code == 0
    assert calls == Counter({"bicubic": 6, "tiny-rrdb": 6})  # 2 conditions x 3 images each
    _metrics(path, ["psnr", "ssim", "lr_psnr_input"])  # lr_psnr_input reads x/<image>, ssim sr/<image>
    assert _run(path, tmp_path / "full").exit_code == 0
    calls.clear()
    return path, tmp_path / "run", _values(tmp_path / "full")


def test_cells_record_the_checksum_of_every_stored_tensor(stored):
    _, run_dir, _ = stored
    for payload in _payloads(run_dir).values():
        tensors = load_file(str(run_dir / payload.outputs))
        assert set(payload.outputs_tensors) == {f"{kind}/{i}" for kind in ("sr", "x") for i in IMAGES}
        assert payload.outputs_tensors == {name: describe(t) for name, t in tensors.items()}
        for name, entry in payload.outputs_tensors.items():
            assert entry["sha256"] == tensor_sha256(tensors[name]) and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
            assert entry["shape"] == ([1, 3, 32, 32] if name.startswith("sr/") else [1, 3, 8, 8])
        raw = json.loads((run_dir / "cells" / f"{payload.key}.json").read_text())
        assert raw["outputs_tensors"] == payload.outputs_tensors and raw["version"] == 2  # no version bump


def test_added_metric_on_verified_outputs_runs_no_method(stored, calls, caplog):
    """Acceptance: a metric added to a run with stored outputs runs no method at all (bicubic included) and its
    values equal a full recompute's exactly; the stored psnr rows are kept as they were."""
    path, run_dir, full = stored
    before = {k: p.records for k, p in _payloads(run_dir).items()}
    caplog.set_level("INFO", logger="bench.runner.runner")
    summary = _run(path, run_dir)
    assert summary.computed == 4 and summary.exit_code == 0
    assert sum(calls.values()) == 0
    assert caplog.text.count("scored ssim, lr_psnr_input on the stored outputs (no model run)") == 4
    assert "running the method again" not in caplog.text
    assert _values(run_dir) == full  # exact, every (method, condition, image, metric)
    for key, payload in _payloads(run_dir).items():
        assert [r for r in payload.records if r["metric"] == "psnr"] == before[key]


def _damage(path: Path, how: str) -> str:
    """Damage one cell's stored outputs file; return the reason the log must give."""
    name = f"outputs/{path.name}"
    if how == "deleted":
        path.unlink()
        return f"{name} is missing"
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return f"{name} cannot be read"
    tensors = load_file(str(path))
    if how in ("sr pixel", "x pixel"):  # one pixel of one tensor changed, shape and file layout kept
        kind = how.split()[0]
        t = tensors[f"{kind}/img1"]
        t[0, 1, 5, 7] = 1.0 - t[0, 1, 5, 7]
        message = f"{name}: {kind}/img1 does not match the checksum its cell records"
    elif how == "reshaped":  # the same bytes in another shape: the values' checksum alone would pass it
        tensors["sr/img1"] = tensors["sr/img1"].reshape(1, 3, 16, 64).contiguous()
        message = f"{name}: sr/img1 holds (1, 3, 16, 64), its cell records (1, 3, 32, 32)"
    elif how == "float64":  # the same values widened: they score in another precision
        tensors["x/img0"] = tensors["x/img0"].double()
        message = f"{name}: x/img0 is float64, not float32"
    elif how == "tensor dropped":
        del tensors["x/img2"]
        message = f"{name}: x/img2 is not in the stored outputs"
    else:  # a tensor the cell does not record
        tensors["sr/intruder"] = tensors["sr/img0"].clone()
        message = f"{name}: holds tensors its cell does not record: sr/intruder"
    save_file(tensors, str(path))
    return message


@pytest.mark.parametrize(
    "how", ["sr pixel", "x pixel", "reshaped", "float64", "tensor dropped", "tensor added", "truncated", "deleted"]
)
def test_damaged_outputs_are_not_scored_the_method_runs_again(stored, calls, caplog, how):
    """Outputs that fail verification are never scored: that cell's method runs again (3 images; the other cells
    are rescored with no method call), one warning line gives the reason, every value equals a full recompute's,
    and the outputs are stored again with checksums (the next added metric runs no method)."""
    path, run_dir, full = stored
    victim = _payloads(run_dir)[("tiny-rrdb", "clean")]
    psnr_before = [r for r in victim.records if r["metric"] == "psnr"]
    message = _damage(run_dir / victim.outputs, how)
    caplog.set_level("INFO", logger="bench.runner.runner")
    assert _run(path, run_dir).exit_code == 0
    assert calls == Counter({"tiny-rrdb": 3})
    (line,) = [r for r in caplog.records if "running the method again" in r.getMessage()]
    text = line.getMessage()
    assert line.levelname == "WARNING" and "\n" not in text
    assert text.startswith(f"tiny-rrdb | folder | clean | seed 0: {message}")
    assert text.endswith("; running the method again for ssim, lr_psnr_input")
    assert _values(run_dir) == full
    after = _payloads(run_dir)[("tiny-rrdb", "clean")]
    assert [r for r in after.records if r["metric"] == "psnr"] == psnr_before  # stored psnr kept
    tensors = load_file(str(run_dir / after.outputs))
    assert after.outputs_tensors == {name: describe(t) for name, t in tensors.items()}
    assert after.outputs_tensors == _payloads(run_dir.parent / "full")[("tiny-rrdb", "clean")].outputs_tensors
    calls.clear()
    _metrics(path, ["psnr", "ssim", "lr_psnr_input", "psnr_y"])
    assert _run(path, run_dir).exit_code == 0 and sum(calls.values()) == 0


def test_old_cell_without_checksums_is_recomputed_not_scored(stored, calls, caplog):
    """A cell stored before ``outputs_tensors`` (the field absent, or not a mapping) reads as unverified: its
    outputs are not read; the method runs again for that cell (one info line says why), the values equal a full
    recompute's and the cell then records its checksums."""
    path, run_dir, full = stored
    victims = {("bicubic", "noise"): None, ("tiny-rrdb", "clean"): "not a mapping"}
    payloads = _payloads(run_dir)
    for label, value in victims.items():
        cell_file = run_dir / "cells" / f"{payloads[label].key}.json"
        data = json.loads(cell_file.read_text())
        if value is None:
            del data["outputs_tensors"]
        else:
            data["outputs_tensors"] = value
        cell_file.write_text(json.dumps(data))
        assert CellPayload.from_dict(data).outputs_tensors is None
    caplog.set_level("INFO", logger="bench.runner.runner")
    assert _run(path, run_dir).exit_code == 0
    assert calls == Counter({"bicubic": 3, "tiny-rrdb": 3})
    lines = sorted(r.getMessage() for r in caplog.records if "running the method again" in r.getMessage())
    assert [r.levelname for r in caplog.records if "running the method again" in r.getMessage()] == ["INFO"] * 2
    expected = sorted(
        f"{m} | folder | {c} | seed 0: outputs/{payloads[(m, c)].key}.safetensors is unverified (its cell, stored "
        "before checksums, records none); running the method again for ssim, lr_psnr_input"
        for m, c in victims
    )
    assert lines == expected
    assert _values(run_dir) == full
    for label in victims:
        assert len(_payloads(run_dir)[label].outputs_tensors) == 6


@pytest.mark.parametrize("record", ["bare digest", "shape not a list"])
def test_a_malformed_record_refuses_the_outputs(stored, calls, caplog, record):
    """A cell whose record of a tensor is not a shape and a checksum (a bare digest, a shape that is no list) does
    not vouch for it: the method runs again for that cell, the warning names the tensor, the values are a full
    recompute's."""
    path, run_dir, full = stored
    victim = _payloads(run_dir)[("bicubic", "clean")]
    cell_file = run_dir / "cells" / f"{victim.key}.json"
    data = json.loads(cell_file.read_text())
    entry = data["outputs_tensors"]["sr/img2"]
    data["outputs_tensors"]["sr/img2"] = entry["sha256"] if record == "bare digest" else {**entry, "shape": 32}
    cell_file.write_text(json.dumps(data))
    caplog.set_level("INFO", logger="bench.runner.runner")
    assert _run(path, run_dir).exit_code == 0
    assert calls == Counter({"bicubic": 3})
    (line,) = [r for r in caplog.records if "running the method again" in r.getMessage()]
    assert line.levelname == "WARNING"
    assert line.getMessage() == (
        f"bicubic | folder | clean | seed 0: outputs/{victim.key}.safetensors: the cell's record of sr/img2 is not "
        "a shape and a checksum; running the method again for ssim, lr_psnr_input"
    )
    assert _values(run_dir) == full


def test_report_reads_no_outputs_file(stored, monkeypatch):
    """``bench report`` renders from the cells alone: with every outputs file replaced by garbage and the
    safetensors readers disabled it writes the same results.csv and tables."""
    import safetensors
    import safetensors.torch

    from bench.report.html import write_report

    _, run_dir, _ = stored

    def written() -> dict[Path, bytes]:
        return {p.relative_to(run_dir): p.read_bytes() for p in [run_dir / "results.csv", *run_dir.glob("tables/*")]}

    write_report(run_dir)
    before = written()
    for f in (run_dir / "outputs").glob("*.safetensors"):
        f.write_bytes(b"garbage")

    def refuse(*args, **kwargs):
        raise AssertionError("the report read a stored outputs file")

    for module, name in ((safetensors.torch, "load_file"), (safetensors.torch, "load"), (safetensors, "safe_open")):
        monkeypatch.setattr(module, name, refuse)
    write_report(run_dir)
    assert written() == before and len(before) > 1
