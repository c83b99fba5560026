"""The staged pipeline's promises: keys that mean what they say (``batch_images`` changes no stochastic value, nor
an attacked one beyond float summation order), metric-incremental caching (a metric added to a finished run runs no
model when outputs are stored), typed errors as failure rows while programming errors surface, the results schema's
versions and the one device resolver."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from bench.errors import BadOutput, ConfigError
from bench.methods import cards
from bench.report.tables import load_run
from bench.results.schema import CellPayload, SchemaError
from bench.runner.matrix import load_matrix
from bench.runner.runner import Runner, run_matrix
from bench.runner.store import Store

PGD = {
    "name": "pgd",
    "attack": "pgd",
    "epsilons": ["8/255"],
    "conditions": ["clean", "noise"],
    "loss": "l1",
    "params": {"steps": 2},
}
KEY_COLUMNS = ["method", "condition", "attack", "epsilon", "seed", "image", "metric"]


def _with(path: Path, **changes) -> Path:
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _values(run_dir: Path) -> pd.Series:
    df = load_run(run_dir).records
    assert (df["status"] == "ok").all(), df.loc[df["status"] != "ok", "error"].tolist()
    return df.set_index(KEY_COLUMNS)["value"].sort_index()


@pytest.fixture
def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts (card, batch size) of every super_resolve call of the methods the runner builds."""
    seen: Counter = Counter()
    real = cards.build_method

    def build(name, device="cpu", **kwargs):
        method = real(name, device, **kwargs)
        inner = method.super_resolve

        def counted(lr, generator=None):
            seen[(name, lr.shape[0])] += 1
            return inner(lr, generator)

        method.super_resolve = counted
        return method

    monkeypatch.setattr(cards, "build_method", build)
    return seen


def test_batch_images_changes_no_stochastic_value_and_batches_attacks(
    tiny_project, tmp_path, batch_sizes, batch_invariant_convs
):
    # a median-smoothing method of bicubic: stochastic, and its output visibly depends on the noise draw
    card = "title: Tiny MRS\nadapter: median_smoothing\nargs: {base: bicubic, sigma: 0.05, n: 3}\ntile: null\n"
    (tiny_project["methods"] / "tiny-mrs.yaml").write_text(card)
    path = _with(tiny_project["matrix"], methods=["bicubic", "tiny-mrs"], attacks=[{"name": "none"}, PGD])
    one = load_matrix(path, overrides=["batch_images=1"])
    three = load_matrix(path, overrides=["batch_images=3"])
    assert [c.key for c in Runner(one, tmp_path / "a", device="cpu").cells] == [
        c.key for c in Runner(three, tmp_path / "b", device="cpu").cells
    ]  # batch_images is not in the key ...
    run_matrix(one, tmp_path / "a", device="cpu", progress=False)
    assert max(size for _, size in batch_sizes) == 1
    batch_sizes.clear()
    run_matrix(three, tmp_path / "b", device="cpu", progress=False)
    # the deterministic cells were batched, attacked or not ((clean, noise) x (none, pgd)) ...
    assert batch_sizes[("bicubic", 3)] == 4
    assert {size for (name, size) in batch_sizes if name == "tiny-mrs"} == {1}  # ... a stochastic method never
    a, b = _values(tmp_path / "a"), _values(tmp_path / "b")
    assert a.index.equals(b.index)
    stochastic = a.index.get_level_values("method") == "tiny-mrs"
    assert stochastic.sum() == 3 * 2 * 2 * 2  # images x clean/noise x none/pgd x 2 metrics
    # ... so it cannot change a stochastic value: equal to the last bit; a deterministic one (each image's attack
    # drawing from its own generator) by floating-point summation order at most
    assert a[stochastic].tolist() == b[stochastic].tolist()
    attacked = ~stochastic & (a.index.get_level_values("attack") == "pgd")
    assert a[attacked].to_numpy() == pytest.approx(b[attacked].to_numpy(), rel=1e-6, abs=1e-6)
    assert a[~stochastic].to_numpy() == pytest.approx(b[~stochastic].to_numpy(), abs=1e-6)


@pytest.fixture
def forward_calls(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts the forward passes of every method the runner builds (forward hooks, by card name)."""
    calls: Counter = Counter()
    real = cards.build_method

    def build(name, device="cpu", **kwargs):
        method = real(name, device, **kwargs)
        method.register_forward_hook(lambda *_: calls.update([name]))
        return method

    monkeypatch.setattr(cards, "build_method", build)
    return calls


def test_added_metric_with_stored_outputs_runs_no_model(tiny_project, tmp_path, forward_calls):
    path = _with(tiny_project["matrix"], metrics=["psnr"], store_outputs=True)
    first = run_matrix(load_matrix(path), tmp_path / "run", device="cpu", progress=False)
    assert first.computed == 4 and forward_calls["tiny-rrdb"] == 6  # 2 conditions x 3 images
    assert len(list((tmp_path / "run" / "outputs").glob("*.safetensors"))) == 4
    before = _values(tmp_path / "run")
    forward_calls.clear()
    _with(path, metrics=["psnr", "ssim"])
    second = run_matrix(load_matrix(path), tmp_path / "run", device="cpu", progress=False)
    assert second.computed == 4 and second.exit_code == 0
    assert sum(forward_calls.values()) == 0  # no SR output recomputed
    after = _values(tmp_path / "run")
    psnr = after[after.index.get_level_values("metric") == "psnr"]
    assert psnr.tolist() == before.tolist()  # the stored metric is kept, not recomputed
    # the new metric's values equal those of a fresh run that computes everything
    fresh = run_matrix(load_matrix(path), tmp_path / "fresh", device="cpu", progress=False)
    assert fresh.computed == 4 and forward_calls["tiny-rrdb"] == 6
    assert after.tolist() == _values(tmp_path / "fresh").tolist()
    # complete now: nothing to do; dropping a metric drops its records without running anything
    assert run_matrix(load_matrix(path), tmp_path / "run", device="cpu", progress=False).skipped == 4
    _with(path, metrics=["ssim"])
    forward_calls.clear()
    assert run_matrix(load_matrix(path), tmp_path / "run", device="cpu", progress=False).computed == 0
    assert set(_values(tmp_path / "run").index.get_level_values("metric")) == {"ssim"}
    assert sum(forward_calls.values()) == 0


def test_added_metric_without_stored_outputs_keeps_the_stored_values(tiny_project, tmp_path, forward_calls):
    path = _with(tiny_project["matrix"], metrics=["psnr"])
    run_matrix(load_matrix(path), tmp_path / "run", device="cpu", progress=False)
    before = _values(tmp_path / "run")
    stored = {p.key: p.records for p in Store(tmp_path / "run").iter_payloads()}
    _with(path, metrics=["psnr", "ssim"])
    summary = run_matrix(load_matrix(path), tmp_path / "run", device="cpu", progress=False)
    assert summary.computed == 4 and forward_calls["tiny-rrdb"] == 12  # the model ran again (no stored outputs)
    for payload in Store(tmp_path / "run").iter_payloads():
        assert set(payload.metric_specs) == {"psnr", "ssim"}
        kept = [r for r in payload.records if r["metric"] == "psnr"]
        assert kept == stored[payload.key]  # the psnr rows are the stored ones, untouched (timestamps and all)
    after = _values(tmp_path / "run")
    assert after[after.index.get_level_values("metric") == "psnr"].tolist() == before.tolist()


def _failing(monkeypatch, error: Exception) -> None:
    real = cards.build_method

    def build(name, device="cpu", **kwargs):
        method = real(name, device, **kwargs)
        if name == "tiny-rrdb":

            def broken(lr, generator=None):
                raise error

            method.super_resolve = broken
        return method

    monkeypatch.setattr(cards, "build_method", build)


def test_project_errors_become_failure_rows(tiny_project, tmp_path, monkeypatch):
    _failing(monkeypatch, BadOutput("the method returned a blank image"))
    summary = run_matrix(load_matrix(tiny_project["matrix"]), tmp_path / "run", device="cpu", progress=False)
    assert summary.exit_code == 1 and len(summary.failed) == 2  # tiny-rrdb's two cells; bicubic's are fine
    df = load_run(tmp_path / "run").records
    failed = df[df.status == "failed"]
    assert set(failed.method) == {"tiny-rrdb"} and len(failed) == 6
    assert failed["error"].str.startswith("BadOutput: the method returned a blank image").all()


@pytest.mark.parametrize(
    "error", [TypeError("forward() got an unexpected keyword"), RuntimeError("CUDA out of memory")]
)
def test_programming_errors_and_oom_surface(tiny_project, tmp_path, monkeypatch, error):
    _failing(monkeypatch, error)
    with pytest.raises(type(error), match=re.escape(str(error))):
        run_matrix(load_matrix(tiny_project["matrix"]), tmp_path / "run", device="cpu", progress=False)


def test_results_schema_versions(tiny_project, tmp_path):
    run_matrix(load_matrix(tiny_project["matrix"]), tmp_path / "run", device="cpu", progress=False)
    store = Store(tmp_path / "run")
    key = store.keys()[0]
    data = store.load(key)
    payload = CellPayload.from_dict(data)
    assert payload.version == 2 and payload.as_dict() == data  # round trip
    assert {g.kind for p in store.iter_payloads() for g in p.gallery} == {"hr", "lr", "sr"}
    # version 1 (before the schema): read, its specs taken from its records
    v1 = {k: v for k, v in data.items() if k not in ("version", "metric_specs", "gallery", "outputs")}
    old = CellPayload.from_dict(v1)
    assert old.version == 1 and set(old.metric_specs) == {"psnr", "ssim"} and old.records == payload.records
    with pytest.raises(SchemaError, match=r"x\.json: results schema version 3 is not readable"):
        CellPayload.from_dict({**data, "version": 3}, source="x.json")
    store.write(key, {**data, "version": 3})
    with pytest.raises(SchemaError, match="upgrade the bench or recompute"):
        load_run(tmp_path / "run")
    assert store.load_payload(key) is None  # the runner recomputes such a cell


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where there is no CUDA")
def test_one_device_resolver_names_the_fix():
    from bench.devices import resolve_device

    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA device") as info:
        resolve_device("cuda")
    assert info.value.fix == "--device cpu (or auto)"
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu:3")
