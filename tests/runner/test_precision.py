"""The matrix's ``precision:`` in the runner: methods built behind the accuracy guard (bf16 autocast + channels_last),
the precision actually used stamped on every row, the requested mode in the cell key only when it is not ``auto``;
transfer attacks' surrogates behind the same guard, their precision stamped as ``surrogate_precision*``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from bench.methods import cards
from bench.methods.precision import MAX_DELTA_DB, GuardedMethod, clear_decisions
from bench.report.html import write_report
from bench.report.tables import load_run
from bench.runner.cells import cell_key
from bench.runner.matrix import MatrixError, load_matrix
from bench.runner.runner import Runner, run_matrix, stored_records
from bench.runner.stages.attack import Attacker
from bench.runner.store import Store


@pytest.fixture(autouse=True)
def _fresh_decisions():
    clear_decisions()  # the guard caches per (method name, device): every test's tiny-rrdb has its own weights
    yield
    clear_decisions()


def _matrix(tiny_project: dict, **changes) -> Path:
    data = yaml.safe_load(tiny_project["matrix"].read_text())
    data.update({"methods": ["tiny-rrdb"], "metrics": ["psnr"], **changes})
    tiny_project["matrix"].write_text(yaml.safe_dump(data, sort_keys=False))
    return tiny_project["matrix"]


def _frame(run_dir: Path) -> pd.DataFrame:
    return pd.DataFrame(stored_records(run_dir))


def test_bf16_stamps_the_fast_path_with_a_small_delta_and_gets_new_keys(tiny_project, tmp_path, monkeypatch):
    calls = []
    real = GuardedMethod._fast_forward
    monkeypatch.setattr(GuardedMethod, "_fast_forward", lambda self, *a: calls.append(1) or real(self, *a))
    auto = load_matrix(_matrix(tiny_project))
    bf16 = load_matrix(_matrix(tiny_project, precision="bf16"))
    assert bf16.precision == "bf16" and bf16.as_dict()["precision"] == "bf16"
    assert run_matrix(bf16, tmp_path / "bf16", device="cpu", progress=False).exit_code == 0
    assert run_matrix(auto, tmp_path / "fp32", device="cpu", progress=False).exit_code == 0
    fast, ref = _frame(tmp_path / "bf16"), _frame(tmp_path / "fp32")
    assert len(fast) == len(ref) == 6  # 3 images x 2 conditions x psnr
    assert (fast["precision"] == "bf16+channels_last").all()
    assert fast["precision_fallback"].isna().all()
    deltas = fast["precision_delta_db"]
    assert deltas.notna().all() and deltas.nunique() == 1 and abs(deltas.iloc[0]) <= MAX_DELTA_DB
    assert set(fast["cell"]).isdisjoint(ref["cell"])  # the requested bf16 is part of the key
    # the same cells measured in bf16 and fp32 agree to the guard's tolerance
    merged = fast.merge(ref, on=["condition", "image", "metric"], suffixes=("_bf16", "_fp32"))
    assert len(merged) == 6
    assert (merged["value_bf16"] - merged["value_fp32"]).abs().max() <= 0.2
    assert len(calls) == 1 + 6  # the calibration, then every image's forward went through the fast path
    from bench.report.html import write_report

    html = write_report(tmp_path / "bf16").read_text()  # one provenance line: requested and used, with the delta
    assert f"requested bf16; used: tiny-rrdb: bf16+channels_last (Δ {deltas.iloc[0]:+.3f} dB)" in html


def test_auto_on_cpu_keeps_the_method_and_the_keys_and_stamps_fp32(tiny_project, tmp_path):
    m = load_matrix(_matrix(tiny_project))
    assert m.precision == "auto"
    runner = Runner(m, tmp_path / "run", device="cpu", progress=False)
    for cell in runner.cells:  # auto is not in the description: every key made before the field stays
        assert "precision" not in cell.description and cell.key == cell_key(cell.description)
    method, error = runner._build_method("tiny-rrdb")
    assert error is None and not isinstance(method, GuardedMethod)  # on the CPU nothing changes
    assert runner.run().exit_code == 0
    df = _frame(tmp_path / "run")
    assert (df["precision"] == "fp32").all()
    assert df["precision_delta_db"].isna().all() and df["precision_fallback"].isna().all()
    fp32 = load_matrix(_matrix(tiny_project, precision="fp32"))
    fp32_keys = {c.key for c in Runner(fp32, tmp_path / "other", device="cpu", progress=False).cells}
    assert fp32_keys.isdisjoint(c.key for c in runner.cells)  # an explicit mode is in the key


def test_a_lossy_fast_path_falls_back_to_fp32_and_says_why(tiny_project, tmp_path, monkeypatch):
    real = GuardedMethod._fast_forward

    def lossy(self, lr, generator):  # a fast path that shifts every pixel: PSNR moves far beyond 0.05 dB
        return (real(self, lr, generator) + 0.1).clamp(0, 1)

    monkeypatch.setattr(GuardedMethod, "_fast_forward", lossy)
    bf16 = load_matrix(_matrix(tiny_project, precision="bf16"))
    assert run_matrix(bf16, tmp_path / "bf16", device="cpu", progress=False).exit_code == 0
    assert (
        run_matrix(load_matrix(_matrix(tiny_project)), tmp_path / "fp32", device="cpu", progress=False).exit_code == 0
    )
    df, ref = _frame(tmp_path / "bf16"), _frame(tmp_path / "fp32")
    assert (df["precision"] == "fp32").all()
    assert df["precision_delta_db"].abs().min() > MAX_DELTA_DB
    assert df["precision_fallback"].str.contains("moved PSNR by .* dB \\(> 0.05 dB\\)", regex=True).all()
    merged = df.merge(ref, on=["condition", "image", "metric"], suffixes=("_guarded", "_fp32"))
    assert (merged["value_guarded"] == merged["value_fp32"]).all()  # fell back: the fp32 numbers exactly


def test_a_smoothed_method_guards_its_base(tiny_project, tmp_path):
    text = "title: Tiny MRS\nadapter: median_smoothing\nargs: {base: tiny-rrdb, sigma: 0.05, n: 3}\ntile: null\n"
    (tiny_project["methods"] / "tiny-mrs.yaml").write_text(text)
    m = load_matrix(
        _matrix(
            tiny_project, methods=["tiny-mrs"], precision="bf16", conditions=[{"name": "clean", "corruption": "clean"}]
        )
    )
    runner = Runner(m, tmp_path / "run", device="cpu", progress=False)
    method, error = runner._build_method("tiny-mrs")
    assert error is None and method.capabilities.smoothed and not isinstance(method, GuardedMethod)
    assert isinstance(method.base, GuardedMethod) and method.inner("tiny-rrdb") is method.base
    assert runner.run().exit_code == 0
    df = _frame(tmp_path / "run")
    assert len(df) == 3 and (df["precision"] == "bf16+channels_last").all() and df["sigma"].eq(0.05).all()


def test_precision_is_validated_and_overridable(tiny_project):
    path = _matrix(tiny_project)
    assert load_matrix(path, overrides=["precision=fp32"]).precision == "fp32"
    with pytest.raises(MatrixError, match="precision"):
        load_matrix(path, overrides=["precision=fp16"])


def test_a_bf16_cell_draws_the_noise_of_its_fp32_twin(tiny_project, tmp_path):
    """The generators are seeded from the key without the precision (``Cell.seed_key``): on the noise condition a
    bf16 bicubic cell sees the same noisy LR as the fp32 one, so the two differ by the compute precision alone."""
    auto = load_matrix(_matrix(tiny_project, methods=["bicubic"]))
    bf16 = load_matrix(_matrix(tiny_project, methods=["bicubic"], precision="bf16"))
    cells = Runner(bf16, tmp_path / "plan", device="cpu", progress=False).cells
    twins = {c.label(): c.key for c in Runner(auto, tmp_path / "plan2", device="cpu", progress=False).cells}
    assert all(c.seed_key == twins[c.label()] != c.key for c in cells)
    assert run_matrix(bf16, tmp_path / "bf16", device="cpu", progress=False).exit_code == 0
    assert run_matrix(auto, tmp_path / "fp32", device="cpu", progress=False).exit_code == 0
    fast, ref = _frame(tmp_path / "bf16"), _frame(tmp_path / "fp32")
    assert (fast["precision"] == "bf16+channels_last").all()
    merged = fast.merge(ref, on=["condition", "image", "metric"], suffixes=("_bf16", "_fp32"))
    noisy = merged[merged["condition"] == "noise"]
    assert len(noisy) == 3 and (noisy["value_bf16"] - noisy["value_fp32"]).abs().max() < 0.05


# ---------------------------------------------------------------- transfer surrogates: the same policy, stamped

PGD_TRANSFER = {
    "name": "pgd",
    "attack": "pgd",
    "params": {"steps": 2},
    "epsilons": ["8/255"],
    "loss": "l1",
    "surrogate": "tiny-rrdb",
    "conditions": ["clean"],
}


@pytest.fixture
def frozen_project(tiny_project, monkeypatch):
    """The tiny project plus ``frozen``: a bicubic card declaring itself non-differentiable (attacked by transfer)."""
    from bench.methods import ADAPTERS
    from bench.methods.bicubic import Bicubic

    ADAPTERS.load()
    monkeypatch.setitem(
        ADAPTERS._entries, "frozen_bicubic", type("FrozenBicubic", (Bicubic,), {"differentiable": False})
    )
    (tiny_project["methods"] / "frozen.yaml").write_text("title: Frozen\nadapter: frozen_bicubic\ntile: null\n")
    return tiny_project


def _transfer_matrix(project: dict, **changes) -> Path:
    return _matrix(
        project,
        methods=["frozen", "tiny-rrdb"],
        conditions=[{"name": "clean", "corruption": "clean"}],
        attacks=[{"name": "none"}, PGD_TRANSFER],
        attack_images=2,
        **changes,
    )


def test_attacker_guards_surrogates_as_the_methods(frozen_project):
    cpu = torch.device("cpu")
    frozen = cards.build_method("frozen", device=cpu)
    plain = Attacker(cpu, "auto").surrogate("tiny-rrdb", frozen)
    assert not isinstance(plain, GuardedMethod)  # auto on the CPU: the surrogate runs as built, as before
    fast = Attacker(cpu, "bf16").surrogate("tiny-rrdb", frozen)
    assert isinstance(fast, GuardedMethod) and fast.key == "tiny-rrdb"
    assert fast.decision.precision == "bf16+channels_last"  # calibrated when the attack is built
    assert Attacker(cpu, "fp32").surrogate("tiny-rrdb", frozen).__class__ is plain.__class__


def test_a_bf16_transfer_attack_runs_its_surrogate_behind_the_guard_and_stamps_it(
    frozen_project, tmp_path, monkeypatch
):
    keys = []
    real = GuardedMethod._fast_forward
    monkeypatch.setattr(GuardedMethod, "_fast_forward", lambda self, *a: keys.append(self.key) or real(self, *a))
    bf16 = load_matrix(_transfer_matrix(frozen_project, precision="bf16"))
    assert run_matrix(bf16, tmp_path / "bf16", device="cpu", progress=False).exit_code == 0
    assert keys.count("tiny-rrdb") > 1 + 2 * 2  # calibration, then the surrogate's PGD steps on 2 images went bf16
    fp32 = load_matrix(_transfer_matrix(frozen_project, precision="auto"))
    assert run_matrix(fp32, tmp_path / "fp32", device="cpu", progress=False).exit_code == 0
    fast, ref = load_run(tmp_path / "bf16").records, load_run(tmp_path / "fp32").records
    transfer = fast[fast["attack_mode"] == "transfer"]
    assert len(transfer) == 2 and set(transfer["method"]) == {"frozen"}
    assert (transfer["surrogate_precision"] == "bf16+channels_last").all()
    delta = transfer["surrogate_precision_delta_db"]
    assert delta.notna().all() and abs(delta.iloc[0]) <= MAX_DELTA_DB
    assert transfer["surrogate_precision_fallback"].isna().all()
    others = fast[fast["attack_mode"] != "transfer"]  # unattacked (2 methods x 3 images) and white-box (2 images)
    assert len(others) == 8 and others["surrogate_precision"].isna().all()
    ref_transfer = ref[ref["attack_mode"] == "transfer"]
    assert (ref_transfer["surrogate_precision"] == "fp32").all()
    assert ref_transfer["surrogate_precision_delta_db"].isna().all()
    # the bf16 surrogate's examples hurt the target as much as the fp32 surrogate's (same seeds: same random start)
    merged = transfer.merge(ref_transfer, on=["image", "metric"], suffixes=("_bf16", "_fp32"))
    assert len(merged) == 2
    assert (merged["value_bf16"] - merged["value_fp32"]).abs().max() <= 0.2
    assert (merged["attack_loss_adv_bf16"] / merged["attack_loss_adv_fp32"] - 1).abs().max() <= 0.05
    assert (merged["value_bf16"] != merged["value_fp32"]).any()  # bf16 really crafted them
    key = transfer["cell"].iloc[0]  # the cell's attack record says it too
    batches = Store(tmp_path / "bf16").load(key)["attack"]["batches"]
    assert [b["surrogate_precision"]["surrogate_precision"] for b in batches] == ["bf16+channels_last"] * 2
    html = write_report(tmp_path / "bf16").read_text()
    assert f"transfer surrogates: tiny-rrdb: bf16+channels_last (Δ {delta.iloc[0]:+.3f} dB)" in html


def test_a_lossy_surrogate_falls_back_to_fp32_and_crafts_the_fp32_examples(frozen_project, tmp_path, monkeypatch):
    real = GuardedMethod._fast_forward
    monkeypatch.setattr(GuardedMethod, "_fast_forward", lambda self, lr, g: (real(self, lr, g) + 0.1).clamp(0, 1))
    bf16 = load_matrix(_transfer_matrix(frozen_project, precision="bf16"))
    assert run_matrix(bf16, tmp_path / "bf16", device="cpu", progress=False).exit_code == 0
    fp32 = load_matrix(_transfer_matrix(frozen_project, precision="auto"))
    assert run_matrix(fp32, tmp_path / "fp32", device="cpu", progress=False).exit_code == 0
    fast, ref = load_run(tmp_path / "bf16").records, load_run(tmp_path / "fp32").records
    transfer = fast[fast["attack_mode"] == "transfer"]
    assert len(transfer) == 2 and (transfer["surrogate_precision"] == "fp32").all()
    assert transfer["surrogate_precision_fallback"].str.contains("moved PSNR by .* dB", regex=True).all()
    merged = transfer.merge(ref[ref["attack_mode"] == "transfer"], on=["image", "metric"], suffixes=("_g", "_fp32"))
    assert (merged["value_g"] == merged["value_fp32"]).all()  # fell back: exactly the fp32 examples and numbers
    assert (merged["attack_loss_adv_g"] == merged["attack_loss_adv_fp32"]).all()


def test_transfer_from_a_smoothed_base_uses_the_guarded_base(tiny_project, tmp_path):
    text = "title: Tiny MRS\nadapter: median_smoothing\nargs: {base: tiny-rrdb, sigma: 0.05, n: 3}\ntile: null\n"
    (tiny_project["methods"] / "tiny-mrs.yaml").write_text(text)
    fgsm = {"name": "fgsm", "attack": "fgsm", "epsilons": ["8/255"], "loss": "l1", "eot_samples": 2}
    m = load_matrix(
        _matrix(
            tiny_project,
            methods=["tiny-mrs"],
            precision="bf16",
            conditions=[{"name": "clean", "corruption": "clean"}],
            attacks=[dict(fgsm, transfer_from_base=True)],
            attack_images=1,
        )
    )
    runner = Runner(m, tmp_path / "run", device="cpu", progress=False)
    method, _ = runner._build_method("tiny-mrs")
    assert runner.attack.surrogate("tiny-rrdb", method) is method.base  # the same guarded object, not a copy
    assert runner.run().exit_code == 0
    df = load_run(tmp_path / "run").records
    transfer = df[df["attack_mode"] == "transfer"]
    assert len(transfer) == 1 and (transfer["surrogate_precision"] == "bf16+channels_last").all()
    assert (transfer["surrogate_precision_delta_db"] == transfer["precision_delta_db"]).all()  # one calibration
    assert df.loc[df["attack_mode"] == "eot", "surrogate_precision"].isna().all()


# ---------------------------------------------------------------- compile: a matrix key, stamped, seeds unchanged


def _identity_compile(module, **kwargs):  # torch.compile's contract without the compiler (CPU inductor takes ~40 s)
    return module


def test_compile_is_validated_overridable_and_keyed_without_changing_the_seeds(tiny_project, tmp_path):
    path = _matrix(tiny_project, precision="bf16")
    assert load_matrix(path).compile == "false"
    for value in ("true", "auto", "false"):
        m = load_matrix(path, overrides=[f"compile={value}"])
        assert m.compile == value and m.as_dict()["compile"] == value
    with pytest.raises(MatrixError, match="compile"):
        load_matrix(path, overrides=["compile=sometimes"])
    with pytest.raises(MatrixError, match="precision: fp32 never runs"):
        load_matrix(path, overrides=["precision=fp32", "compile=true"])
    plain = Runner(load_matrix(path), tmp_path / "a", device="cpu", progress=False).cells
    compiled = Runner(load_matrix(path, overrides=["compile=true"]), tmp_path / "b", device="cpu", progress=False).cells
    assert all("compile" not in c.description for c in plain)
    twins = {c.label(): c for c in plain}
    for cell in compiled:  # compile is part of the key, not of what the generators are seeded from
        twin = twins[cell.label()]
        assert cell.description["compile"] == "true" and cell.key != twin.key
        assert cell.seed_key == twin.seed_key and cell.corruption_key == twin.corruption_key


def test_bench_run_compile_flag_overrides_the_matrix(tiny_project):
    from bench.runner.commands import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["run", "--matrix", str(_matrix(tiny_project)), "--compile", "auto", "--precision", "bf16"]
    )
    assert args.compile == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--compile", "maybe"])


def test_compile_true_stamps_compile_and_matches_the_eager_bf16_rows(tiny_project, tmp_path, monkeypatch):
    compiled_calls = []

    def counting_compile(module, **kwargs):
        return lambda *a: compiled_calls.append(1) or module(*a)

    monkeypatch.setattr(torch, "compile", counting_compile)
    bf16 = load_matrix(_matrix(tiny_project, precision="bf16"))
    compiled = load_matrix(_matrix(tiny_project, precision="bf16", compile=True))
    assert compiled.compile == "true"
    assert run_matrix(compiled, tmp_path / "c", device="cpu", progress=False).exit_code == 0
    assert len(compiled_calls) == 1 + 6  # calibration + every image went through the compiled callable
    clear_decisions()
    assert run_matrix(bf16, tmp_path / "e", device="cpu", progress=False).exit_code == 0
    fast, eager = _frame(tmp_path / "c"), _frame(tmp_path / "e")
    assert (fast["precision"] == "bf16+channels_last+compile").all() and fast["precision_fallback"].isna().all()
    assert (eager["precision"] == "bf16+channels_last").all()
    merged = fast.merge(eager, on=["condition", "image", "metric"], suffixes=("_c", "_e"))
    assert len(merged) == 6 and (merged["value_c"] == merged["value_e"]).all()  # same seeds, same forward here
    html = write_report(tmp_path / "c").read_text()
    assert "used: tiny-rrdb: bf16+channels_last+compile" in html


def test_compile_auto_on_cpu_does_not_compile(tiny_project, tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("compile: auto compiled on the CPU"))
    m = load_matrix(_matrix(tiny_project, precision="bf16", compile="auto"))
    runner = Runner(m, tmp_path / "run", device="cpu", progress=False)
    method, error = runner._build_method("tiny-rrdb")
    assert error is None and isinstance(method, GuardedMethod) and not method.compile
    assert method.precision == "bf16+channels_last"


def test_a_failing_compile_never_stops_the_run_and_is_recorded(tiny_project, tmp_path, monkeypatch):
    def broken(module, **kwargs):
        def run(*a):
            raise RuntimeError("InductorError: no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    m = load_matrix(_matrix(tiny_project, precision="bf16", compile=True))
    assert run_matrix(m, tmp_path / "run", device="cpu", progress=False).exit_code == 0
    df = _frame(tmp_path / "run")
    assert len(df) == 6 and (df["status"] == "ok").all()
    assert (df["precision"] == "bf16+channels_last").all()
    assert df["precision_fallback"].str.startswith("torch.compile failed (RuntimeError: InductorError").all()
    assert df["precision_delta_db"].abs().max() <= MAX_DELTA_DB


def test_a_compile_failing_mid_cell_recomputes_the_cell_under_one_stamp(tiny_project, tmp_path, monkeypatch):
    """The compiled callable works for the calibration and the first image, then fails (as a recompile for a new
    shape may): the cell is computed again, so every row of it says the eager fast path ran."""
    calls = []

    def flaky(module, **kwargs):
        def run(*a):
            calls.append(1)
            if len(calls) > 2:
                raise RuntimeError("recompile failed")
            return module(*a)

        return run

    monkeypatch.setattr(torch, "compile", flaky)
    m = load_matrix(_matrix(tiny_project, precision="bf16", compile=True, conditions=[{"name": "clean"}]))
    assert run_matrix(m, tmp_path / "run", device="cpu", progress=False).exit_code == 0
    df = _frame(tmp_path / "run")
    assert len(df) == 3 and (df["precision"] == "bf16+channels_last").all()
    assert df["precision_fallback"].str.contains("recompile failed").all()


def test_an_attacked_cell_under_compile_takes_its_gradients_on_the_eager_fast_path(tiny_project, tmp_path, monkeypatch):
    calls = {"inference": 0}

    def inference_only(module, **kwargs):
        def run(*a):
            assert not torch.is_grad_enabled(), "a gradient forward went through the compiled graph"
            calls["inference"] += 1
            return module(*a)

        return run

    monkeypatch.setattr(torch, "compile", inference_only)
    pgd = {"name": "pgd", "attack": "pgd", "params": {"steps": 2}, "epsilons": ["2/255"], "loss": "l1"}
    m = load_matrix(
        _matrix(tiny_project, precision="bf16", compile=True, conditions=[{"name": "clean"}], attacks=[pgd])
    )
    assert run_matrix(m, tmp_path / "run", device="cpu", progress=False).exit_code == 0
    df = _frame(tmp_path / "run")
    attacked = df[df["attack"] == "pgd"]
    assert len(attacked) == 3 and (attacked["status"] == "ok").all()
    assert (df["precision"] == "bf16+channels_last+compile").all() and df["precision_fallback"].isna().all()
    assert calls["inference"] >= 1 + 6  # the calibration, then the clean and the attacked SR outputs
