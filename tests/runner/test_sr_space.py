"""The SR-space protocol in the runner (NTIRE 2021): n samples per image of a stochastic method, the diversity score
and LR-PSNR columns equal to ``bench score diversity`` on the same saved samples, identical samples -> 0,
deterministic methods -> 0 with one forward pass per image, n recorded and in the key."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from bench.methods import cards
from bench.runner.matrix import MatrixError, load_matrix, parse_matrix
from bench.runner.runner import run_matrix
from bench.runner.stages.plan import plan
from bench.runner.store import Store
from bench.seeding import make_generator, seed_from

TINY_STOCH = {"num_block": 1, "num_feat": 8, "num_grow_ch": 4, "num_noise_ch": 3}
COLUMNS = ("diversity_score", "diversity_lpips_mean", "lr_psnr_mean", "lr_psnr_worst")
KEY_OF = {"diversity_score": "score", "diversity_lpips_mean": "lpips_mean"}


def _stochastic_card(methods: Path, name: str, flat: bool) -> None:
    """A tiny StochasticRRDBNet card; ``flat``: the noise columns of ``conv_first`` are zero (identical samples)."""
    from safetensors.torch import save_file

    from bench.archs.stochastic import StochasticRRDBNet

    torch.manual_seed(1)
    net = StochasticRRDBNet(**TINY_STOCH)
    with torch.no_grad():
        if flat:
            net.conv_first.weight[:, 3:] = 0.0
        else:
            net.conv_first.weight[:, 3:] *= 20.0  # noise that visibly changes the output
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(methods / f"{name}.safetensors"))
    card = {"title": name, "adapter": "stochastic_rrdbnet", "args": TINY_STOCH, "checkpoint": f"{name}.safetensors"}
    (methods / f"{name}.yaml").write_text(yaml.safe_dump({**card, "tile": None}))


@pytest.fixture
def lpips_random(monkeypatch: pytest.MonkeyPatch) -> None:
    """The score's LPIPS with fixed random weights, for the runner and ``bench score diversity`` alike (equality of
    the two does not depend on the weights; the real ones need the lpips-alex asset)."""
    from bench.metrics import diversity
    from bench.metrics.lpips import LPIPSAlex

    def build(device=None):
        torch.manual_seed(0)
        return LPIPSAlex(pretrained=False).to(device)

    monkeypatch.setattr(diversity, "build_lpips", build)


@pytest.fixture
def project(tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch, lpips_random) -> dict[str, Path]:
    from tests.runner.conftest import write_tiny_project

    paths = write_tiny_project(tmp_path / "project", n_images=2, size=64)
    _stochastic_card(paths["methods"], "tiny-stoch", flat=False)
    _stochastic_card(paths["methods"], "tiny-stoch-flat", flat=True)
    monkeypatch.setenv("BENCH_PROJECT", str(paths["root"]))
    return paths


def _matrix(
    project: dict[str, Path],
    methods: list[str],
    samples: int | None = 3,
    columns: tuple[str, ...] = ("lpips", "lr_psnr", "diversity"),
    **extra,
):
    data = yaml.safe_load(project["matrix"].read_text())
    data.update(methods=methods, conditions=[{"name": "clean", "corruption": "clean"}], metrics=["psnr"])
    data.pop("gallery")
    if samples is not None:
        data["sr_space"] = {"samples": samples, "columns": list(columns)}
    data.update(extra)
    return parse_matrix(data, source="test")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Images super-resolved per method (one forward pass each)."""
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


def _payloads(run_dir: Path) -> dict[str, object]:
    return {p.labels.method: p for p in Store(run_dir).iter_payloads()}


def _values(payload) -> dict[tuple[str, str], float]:
    return {(r["image"], r["metric"]): r["value"] for r in payload.records if r["status"] == "ok"}


def test_columns_equal_the_cli_on_the_saved_samples(project, tmp_path, capsys):
    """Acceptance: the matrix's values are what ``bench score diversity`` gives on the samples saved as PNGs."""
    from bench.cli import main
    from bench.images import write_image
    from bench.runner.stages.prepare import prepare

    m = _matrix(project, ["tiny-stoch", "tiny-rrdb"], samples=3, store_outputs=True)
    run_dir = tmp_path / "run"
    assert run_matrix(m, run_dir, device="cpu", progress=False).exit_code == 0
    payload = _payloads(run_dir)["tiny-stoch"]
    assert set(payload.metric_specs) == {"psnr", *COLUMNS}
    assert payload.metric_specs["diversity_score"]["extra"]["samples"] == 3
    values = _values(payload)
    from safetensors.torch import load_file

    stored = load_file(str(run_dir / payload.outputs))
    from bench.data import DATASETS

    dataset = DATASETS.get("folder")(path=str(project["hr"]))
    method = cards.build_method("tiny-stoch", device="cpu")
    for image in ("img0", "img1"):
        samples = stored[f"samples/{image}"]
        assert samples.shape == (3, 3, 64, 64)
        assert torch.equal(samples[0:1], stored[f"sr/{image}"])  # sample 0 is the cell's own output
        # every sample is drawn again from its recorded seed
        item = prepare(dataset, image, 4, torch.device("cpu"))
        seeds = payload.sr_space["images"][image]["seeds"]
        for i, seed in enumerate(seeds):
            assert torch.equal(method.super_resolve(item.lr, make_generator(seed)), samples[i : i + 1])
        paths = [str(write_image(samples[i], tmp_path / f"{image}-s{i}.png")) for i in range(3)]
        ref = str(write_image(item.hr, tmp_path / f"{image}-hr.png"))
        capsys.readouterr()
        assert main(["score", "diversity", "--samples", *paths, "--ref", ref, "--json"]) == 0
        cli = json.loads(capsys.readouterr().out)["values"]
        for column in COLUMNS:
            assert values[(image, column)] == cli[KEY_OF.get(column, column)], column
        assert values[(image, "diversity_score")] > 0.0  # the noise makes different samples best in places
        assert values[(image, "lr_psnr_worst")] <= values[(image, "lr_psnr_mean")]


def test_identical_samples_score_zero(project, tmp_path, calls):
    m = _matrix(project, ["tiny-stoch-flat"], samples=4)
    assert run_matrix(m, tmp_path / "run", device="cpu", progress=False).exit_code == 0
    payload = _payloads(tmp_path / "run")["tiny-stoch-flat"]
    assert calls["tiny-stoch-flat"] == 2 * 4  # sampled n times per image: it is stochastic
    values = _values(payload)
    for image in ("img0", "img1"):
        assert values[(image, "diversity_score")] == 0.0
        assert values[(image, "lr_psnr_worst")] == values[(image, "lr_psnr_mean")]
        assert payload.sr_space["images"][image]["forward_passes"] == 4


def test_deterministic_method_one_forward_per_image_and_zero(project, tmp_path, calls):
    m = _matrix(project, ["tiny-rrdb", "bicubic", "tiny-stoch"], samples=10)
    assert run_matrix(m, tmp_path / "run", device="cpu", progress=False).exit_code == 0
    assert calls == Counter({"tiny-rrdb": 2, "bicubic": 2, "tiny-stoch": 2 * 10})
    payloads = _payloads(tmp_path / "run")
    for name in ("tiny-rrdb", "bicubic"):
        payload = payloads[name]
        values = _values(payload)
        assert payload.sr_space["sampled"] is False and payload.sr_space["samples"] == 10
        for image in ("img0", "img1"):
            assert values[(image, "diversity_score")] == 0.0
            assert values[(image, "lr_psnr_worst")] == values[(image, "lr_psnr_mean")]
            assert payload.sr_space["images"][image] == {"seeds": [], "forward_passes": 1}
    assert len(payloads["tiny-stoch"].sr_space["images"]["img0"]["seeds"]) == 10
    from bench.report.html import write_report

    html = write_report(tmp_path / "run").read_text(encoding="utf-8")
    assert "SR-space columns (NTIRE 2021)" in html and "sampled\n10 times per image" in html
    for column in COLUMNS:
        assert f">{column} ↑" in html or f">{column} ↓" in html
    assert html.count("≥ 45 dB</span>") == 2  # lr_psnr_mean and lr_psnr_worst carry the rule in their spec


def test_samples_recorded_and_in_the_key(project, tmp_path):
    keys = {}
    for n in (None, 3, 4):
        p = plan(_matrix(project, ["tiny-stoch", "tiny-rrdb"], samples=n))
        keys[n] = {c.method: c for c in p.cells}
    assert "sr_space" not in keys[None]["tiny-stoch"].description  # a matrix without sr_space keeps its keys
    assert keys[3]["tiny-stoch"].description["sr_space"] == {"samples": 3}
    assert len({keys[n]["tiny-stoch"].key for n in keys}) == 3  # n changes a stochastic cell's key
    assert len({keys[n]["tiny-rrdb"].key for n in keys}) == 1  # not a deterministic one's (one output, any n)

    m = _matrix(project, ["tiny-stoch"], samples=3)
    assert run_matrix(m, tmp_path / "run", device="cpu", progress=False).exit_code == 0
    payload = _payloads(tmp_path / "run")["tiny-stoch"]
    assert payload.key == keys[3]["tiny-stoch"].key and payload.cell["sr_space"] == {"samples": 3}
    section = payload.sr_space
    assert section["samples"] == 3 and section["sampled"] is True
    for image in ("img0", "img1"):
        seeds = section["images"][image]["seeds"]
        assert seeds[0] == seed_from(payload.key, image, "method")  # sample 0 is the cell's own output
        assert seeds[1:] == [seed_from(payload.key, image, "method", i) for i in (1, 2)]
    for rec in payload.records:
        if rec["metric"] in COLUMNS:
            assert rec["spec"]["extra"]["samples"] == 3


@pytest.mark.parametrize("store", [False, True])
def test_columns_added_to_a_stored_run_compute_only_them(project, tmp_path, calls, store):
    """A deterministic cell keeps its key when sr_space is added: only its columns are computed -- on its stored
    output when the matrix stores outputs (no forward pass), else by one forward pass per image."""
    run_dir = tmp_path / "run"
    first = _matrix(project, ["tiny-rrdb"], samples=None, store_outputs=store)
    assert run_matrix(first, run_dir, device="cpu", progress=False).exit_code == 0
    before = _payloads(run_dir)["tiny-rrdb"]
    calls.clear()
    second = _matrix(project, ["tiny-rrdb"], samples=5, store_outputs=store)
    assert run_matrix(second, run_dir, device="cpu", progress=False).exit_code == 0
    after = _payloads(run_dir)["tiny-rrdb"]
    assert calls == Counter({"tiny-rrdb": 0 if store else 2}) and after.key == before.key
    assert _values(after)[("img0", "psnr")] == _values(before)[("img0", "psnr")]
    assert {r["metric"] for r in after.records} == {"psnr", *COLUMNS}
    full = tmp_path / "full"
    assert run_matrix(second, full, device="cpu", progress=False).exit_code == 0
    reference = _payloads(full)["tiny-rrdb"]
    assert _values(after) == _values(reference)  # exactly a full compute's values
    assert after.sr_space == reference.sr_space and after.metric_specs == reference.metric_specs


def _grow(project, tmp_path, calls, methods=("tiny-stoch", "tiny-rrdb")) -> tuple[Path, object]:
    """A run stored with the lpips column only (samples kept), then the matrix with every SR-space column."""
    run_dir = tmp_path / "run"
    first = _matrix(project, list(methods), samples=3, columns=("lpips",), store_outputs=True)
    assert run_matrix(first, run_dir, device="cpu", progress=False).exit_code == 0
    assert {r["metric"] for r in _payloads(run_dir)["tiny-stoch"].records} == {"psnr", "diversity_lpips_mean"}
    calls.clear()
    return run_dir, _matrix(project, list(methods), samples=3, store_outputs=True)


def test_columns_added_are_scored_on_the_stored_samples(project, tmp_path, calls, caplog):
    """Acceptance: SR-space columns added to stored cells run no method (the samples the cells stored are read and
    checked) and equal a full recompute exactly; the stored columns' rows are kept as they were."""
    run_dir, grown = _grow(project, tmp_path, calls)
    before = _payloads(run_dir)
    caplog.set_level("INFO", logger="bench.runner.runner")
    assert run_matrix(grown, run_dir, device="cpu", progress=False).exit_code == 0
    assert sum(calls.values()) == 0
    assert "scored diversity_score, lr_psnr_mean, lr_psnr_worst on the stored outputs (no model run)" in caplog.text
    after = _payloads(run_dir)
    full = tmp_path / "full"
    assert run_matrix(grown, full, device="cpu", progress=False).exit_code == 0
    assert calls == Counter({"tiny-stoch": 2 * 3, "tiny-rrdb": 2})
    reference = _payloads(full)
    for name in ("tiny-stoch", "tiny-rrdb"):
        assert set(after[name].metric_specs) == {"psnr", *COLUMNS}
        assert _values(after[name]) == _values(reference[name]), name  # bit for bit
        assert after[name].sr_space == reference[name].sr_space  # seeds, forward passes, checksums
        kept = [r for r in after[name].records if r["metric"] in ("psnr", "diversity_lpips_mean")]
        assert kept == before[name].records
    assert _values(after["tiny-stoch"])[("img0", "diversity_score")] > 0.0
    assert len(after["tiny-stoch"].sr_space["images"]["img0"]["sha256"]) == 64


def _damage(path: Path, how: str) -> str:
    """Damage a cell's stored outputs; return what the log must say."""
    from safetensors.torch import load_file, save_file

    if how == "deleted":
        path.unlink()
        return f"outputs/{path.name} is missing"
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
        return f"outputs/{path.name} cannot be read"
    tensors = load_file(str(path))
    if how == "altered":  # one sample changed, shape kept: only the checksum can tell
        tensors["samples/img1"][2, 0, 0, 0] += 1.0 / 255.0
        message = "samples/img1 does not match the checksum its cell records"
    else:  # a sample dropped: the file's tensor no longer has the shape its cell records
        tensors["samples/img1"] = tensors["samples/img1"][:2].contiguous()
        message = "samples/img1 holds (2, 3, 64, 64), its cell records (3, 3, 64, 64)"
    save_file(tensors, str(path))
    return message


@pytest.mark.parametrize("how", ["deleted", "truncated", "altered", "dropped"])
def test_lost_or_damaged_samples_are_drawn_again(project, tmp_path, calls, caplog, how):
    """Samples that are not there or fail a check (count, shape, checksum) are drawn again by running the method,
    the log says why, the values are a full compute's and the outputs are written again (the next column added
    reads them)."""
    run_dir, grown = _grow(project, tmp_path, calls, methods=("tiny-stoch",))
    stored = _payloads(run_dir)["tiny-stoch"]
    message = _damage(run_dir / stored.outputs, how)
    caplog.set_level("INFO", logger="bench.runner.runner")
    assert run_matrix(grown, run_dir, device="cpu", progress=False).exit_code == 0
    assert calls == Counter({"tiny-stoch": 2 * 3})  # sample 0 (the cell's output) and samples 1, 2 of each image
    (line,) = [r.getMessage() for r in caplog.records if "running the method again" in r.getMessage()]
    assert message in line
    assert line.endswith("; running the method again for diversity_score, lr_psnr_mean, lr_psnr_worst")
    after = _payloads(run_dir)["tiny-stoch"]
    calls.clear()
    full = tmp_path / "full"
    assert run_matrix(grown, full, device="cpu", progress=False).exit_code == 0
    reference = _payloads(full)["tiny-stoch"]
    assert _values(after) == _values(reference) and after.sr_space == reference.sr_space
    # the outputs are whole again: a column added next is read from them
    calls.clear()
    columns = ("lpips", "lr_psnr", "diversity", "diversity_global_best")
    every = _matrix(project, ["tiny-stoch"], samples=3, columns=columns, store_outputs=True)
    assert run_matrix(every, run_dir, device="cpu", progress=False).exit_code == 0
    assert sum(calls.values()) == 0 and ("img1", "diversity_global_best") in _values(_payloads(run_dir)["tiny-stoch"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sr_space": {"samples": 1}}, "sr_space.samples"),
        ({"sr_space": {"columns": ["diversty"]}}, "unknown SR-space column"),
        ({"sr_space": {"sample": 10}}, "sr_space"),
        ({"metrics": ["psnr", "diversity"]}, "declare it as 'sr_space:"),
    ],
)
def test_bad_sr_space_sections(project, change, message):
    data = yaml.safe_load(project["matrix"].read_text())
    data.update(change)
    with pytest.raises(MatrixError, match="sr_space") as info:
        parse_matrix(data, source="test")
    assert message in str(info.value)


def test_packaged_matrix_validates():
    m = load_matrix("ntire21-srspace")
    assert m.sr_space is not None and m.sr_space.samples == 10
    assert set(m.sr_space.keys) == {"score", "lpips_mean", "lr_psnr_mean", "lr_psnr_worst"}
    assert {"stochastic-sr", "bicubic", "realesrgan-x4plus"} <= set(m.methods)


def test_a_non_finite_sample_fails_the_columns_only(project, tmp_path, monkeypatch):
    """A NaN in one sample: failure rows for that image's SR-space columns (with the message), the other metrics
    and images are kept, and the cell is stored failed (computed again by the next run)."""
    from bench.methods.stochastic import StochasticRRDBMethod

    real = StochasticRRDBMethod.forward
    count = Counter()

    def forward(self, lr, generator=None):
        count["calls"] += 1
        out = real(self, lr, generator)
        return out * float("nan") if count["calls"] == 2 else out  # sample 1 of the first image

    monkeypatch.setattr(StochasticRRDBMethod, "forward", forward)
    summary = run_matrix(_matrix(project, ["tiny-stoch"], samples=3), tmp_path / "run", device="cpu", progress=False)
    assert summary.exit_code == 1
    payload = _payloads(tmp_path / "run")["tiny-stoch"]
    failed = [r for r in payload.records if r["status"] != "ok"]
    assert {(r["image"], r["metric"]) for r in failed} == {("img0", c) for c in COLUMNS}
    assert all("SR sample 1 of image img0 contains NaN" in r["error"] for r in failed)
    ok = _values(payload)
    assert ("img0", "psnr") in ok and all(("img1", c) in ok for c in COLUMNS)
    assert payload.status == "failed" and "img0" not in payload.sr_space["images"]


def test_specs_stored_before_the_kind_field_are_relabelled_not_recomputed(project, tmp_path, calls):
    """Cells stored before specs had ``kind`` (lr_psnr_input, the SR-space columns): the next run writes the label
    into their specs and records without computing anything; the values stay."""
    run_dir = tmp_path / "run"
    m = _matrix(project, ["tiny-stoch", "tiny-rrdb"], samples=2, metrics=["psnr", "lr_psnr_input"])
    assert run_matrix(m, run_dir, device="cpu", progress=False).exit_code == 0
    before = _payloads(run_dir)
    for path in (run_dir / "cells").glob("*.json"):  # as a store written before the field
        data = json.loads(path.read_text())
        for spec in [*data["metric_specs"].values(), *(r["spec"] for r in data["records"] if r["spec"])]:
            spec.pop("kind", None)
        path.write_text(json.dumps(data))
    assert all("kind" not in s for p in _payloads(run_dir).values() for s in p.metric_specs.values())
    calls.clear()
    assert run_matrix(m, run_dir, device="cpu", progress=False).exit_code == 0
    assert sum(calls.values()) == 0
    after = _payloads(run_dir)
    for name, payload in after.items():
        assert payload.metric_specs == before[name].metric_specs and payload.records == before[name].records
        assert payload.metric_specs["lr_psnr_input"]["kind"] == "consistency"
        assert payload.metric_specs["diversity_score"]["kind"] == "diversity"
