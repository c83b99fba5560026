"""The attack axis of matrices: validation, expansion into cells, keys, and attacked cells run end to end on a tiny
project (records, invariants of the attacks, refusal and transfer, EOT and transfer from the base, seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from bench.runner.cells import expand_cells
from bench.runner.matrix import MatrixError, format_epsilon, load_matrix, parse_epsilon
from bench.runner.runner import Runner, run_matrix
from bench.runner.store import Store

FGSM = {"name": "fgsm", "attack": "fgsm", "epsilons": ["2/255", "8/255"], "conditions": ["clean"], "loss": "l1"}
PGD = {"name": "pgd", "attack": "pgd", "params": {"steps": 2}, "epsilons": ["8/255"], "loss": "l1"}


def _with(path: Path, **changes) -> Path:
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _records(run_dir: Path) -> pd.DataFrame:
    from bench.report.tables import load_run

    return load_run(run_dir).records


def test_epsilon_parsing_and_formatting():
    assert parse_epsilon("10/255") == pytest.approx(10 / 255) and parse_epsilon(0.03) == 0.03
    for bad in ("x/255", "1/0", -0.1, True, None):
        with pytest.raises(ValueError):
            parse_epsilon(bad)
    assert format_epsilon(10 / 255) == "10/255" and format_epsilon(0.05) == "0.05"


def test_attacks_expand_into_cells_per_epsilon(tiny_project):
    _with(tiny_project["matrix"], attacks=[{"name": "none"}, FGSM, PGD], attack_images=2)
    m = load_matrix(tiny_project["matrix"])
    assert [a.name for a in m.attacks] == ["none", "fgsm", "pgd"] and m.attack_images == 2
    assert m.attacks[1].epsilons == pytest.approx((2 / 255, 8 / 255))
    clean = m.threats("clean")
    noise = m.threats("noise")
    assert [(t.name, round(t.epsilon * 255)) for t in clean] == [("none", 0), ("fgsm", 2), ("fgsm", 8), ("pgd", 8)]
    assert [t.name for t in noise] == ["none", "pgd"]  # fgsm is restricted to clean
    assert clean[1].params == {"eps": pytest.approx(2 / 255)} and clean[3].params["steps"] == 2
    ids = {"bicubic": {"card": "bicubic"}, "tiny-rrdb": {"card": "tiny-rrdb"}}
    cells = expand_cells(m, ids)
    assert len(cells) == 2 * (4 + 2)
    assert len({c.key for c in cells}) == len(cells)
    attacked = [c for c in cells if c.threat.attacked]
    assert {c.description["condition"]["attack"] for c in attacked} == {"fgsm", "pgd"}
    assert all(c.description["threat"]["loss"] == {"name": "l1"} for c in attacked)
    assert "fgsm eps=8/255" in attacked[1].label()


def test_unattacked_keys_do_not_change_and_names_are_not_keyed(tiny_project):
    ids = {"bicubic": {"card": "bicubic"}, "tiny-rrdb": {"card": "tiny-rrdb"}}
    plain = {c.key for c in expand_cells(load_matrix(tiny_project["matrix"]), ids)}
    _with(tiny_project["matrix"], attacks=[{"name": "none"}, FGSM])
    with_attacks = expand_cells(load_matrix(tiny_project["matrix"]), ids)
    assert plain == {c.key for c in with_attacks if not c.threat.attacked}  # stored cells stay valid
    renamed = dict(FGSM, name="fast")
    _with(tiny_project["matrix"], attacks=[{"name": "none"}, renamed])
    keys = {c.key for c in expand_cells(load_matrix(tiny_project["matrix"]), ids)}
    assert keys == {c.key for c in with_attacks}
    _with(tiny_project["matrix"], attacks=[{"name": "none"}, dict(FGSM, loss="mse")])
    changed = {c.key for c in expand_cells(load_matrix(tiny_project["matrix"]), ids)}
    assert len(changed - keys) == 4  # the loss is part of an attacked cell's key


def test_attack_problems_are_collected(tiny_project):
    bad = [
        {"name": "a", "attack": "pdg", "epsilons": [0.01]},
        {"name": "b", "attack": "fgsm", "epsilons": ["x/255"]},
        {"name": "c", "attack": "fgsm", "epsilons": [0.01], "conditions": ["fog"]},
        {"name": "d", "attack": "pgd", "params": {"steps": 0}, "epsilons": [0.01]},
        {"name": "e", "attack": "fgsm", "params": {"eps": 0.1}, "epsilons": [0.01]},
        {"name": "f", "attack": "none", "epsilons": [0.01]},
        {"name": "g", "attack": "fgsm", "epsilons": [0.01], "loss": "l3"},
        {"name": "h", "attack": "fgsm", "epsilons": [0.01], "surrogate": "ghost"},
        {"name": "a", "attack": "fgsm", "epsilons": [0.01], "restart": 2},
    ]
    _with(tiny_project["matrix"], attacks=bad, attack_images=0)
    with pytest.raises(MatrixError) as info:
        load_matrix(tiny_project["matrix"])
    text = str(info.value)
    for expected in (
        "Did you mean pgd",
        "not an epsilon: 'x/255'",
        "unknown conditions ['fog']",
        "steps must be >= 1",
        "either as epsilons or as params.eps",
        "'none' (no attack) takes no epsilons",
        "unknown attack loss 'l3'",
        "surrogate 'ghost'",
        "did you mean 'attacks.a.restarts'",
        "duplicate attack name 'a'",
        "attack_images: Input should be greater than 0",
    ):
        assert expected in text, expected


def test_condition_attack_fields_point_to_the_attacks_list(tiny_project):
    data = yaml.safe_load(tiny_project["matrix"].read_text())
    data["conditions"][0]["attack"] = "fgsm"
    tiny_project["matrix"].write_text(yaml.safe_dump(data))
    with pytest.raises(MatrixError, match="declare attacks in the matrix's 'attacks:' list"):
        load_matrix(tiny_project["matrix"])


def test_attacked_cells_records_and_invariants(tiny_project, tmp_path):
    _with(tiny_project["matrix"], attacks=[{"name": "none"}, FGSM, PGD], attack_images=2)
    m = load_matrix(tiny_project["matrix"])
    summary = run_matrix(m, tmp_path / "run", device="cpu", progress=False)
    assert summary.exit_code == 0 and summary.computed == 12
    df = _records(tmp_path / "run")
    att = df[df.attack != "none"]
    assert set(att["attack_mode"]) == {"white-box"} and att["attack_surrogate"].isna().all()
    assert set(att["image"]) == {"img0", "img1"}  # attack_images
    assert set(df[df.attack == "none"]["image"]) == {"img0", "img1", "img2"}
    # L-inf budget respected, losses recorded, counts per image
    assert (att["attack_linf"] <= att["epsilon"] + 1e-6).all()
    fgsm = att[att.attack == "fgsm"]
    assert (fgsm["attack_forward"] == 3).all() and (fgsm["attack_backward"] == 1).all()
    pgd = att[att.attack == "pgd"]
    assert (pgd["attack_forward"] == 1 + 2 + 1).all() and (pgd["attack_backward"] == 2).all()
    assert (pgd["attack_loss_adv"] >= pgd["attack_loss_clean"]).all()  # PGD keeps its best iterate
    assert (att["attack_seconds"] > 0).all()
    # the attack hurts bicubic: PSNR at 8/255 below the clean PSNR of the same images
    psnr = df[(df.method == "bicubic") & (df.metric == "psnr") & (df.condition == "clean")]
    clean = psnr[(psnr.attack == "none") & psnr.image.isin(["img0", "img1"])].set_index("image")["value"]
    strong = psnr[(psnr.attack == "fgsm") & (psnr.epsilon > 0.03)].set_index("image")["value"]
    weak = psnr[(psnr.attack == "fgsm") & (psnr.epsilon < 0.01)].set_index("image")["value"]
    assert (strong < clean).all() and (strong < weak).all()
    # the cell payload keeps the attack's full record
    payload = next(p for p in Store(tmp_path / "run").iter_cells() if p["labels"].get("attack") == "pgd")
    (batch,) = payload["attack"]["batches"][:1]
    assert batch["spec"]["loss"]["loss"] == "l1" and batch["spec"]["steps"] == 2 and batch["mode"] == "white-box"
    assert payload["cell"]["attack_images"] == 2
    # gallery: adversarial input and output for the largest budget only
    folder = tmp_path / "run" / "gallery" / "folder" / "clean@fgsm"
    assert {p.name for p in folder.iterdir()} == {
        "HR.png",
        "LR.png",
        "adv-bicubic--white-box.png",
        "sr-bicubic--white-box.png",
        "adv-tiny-rrdb--white-box.png",
        "sr-tiny-rrdb--white-box.png",
    }


def test_attacked_cells_are_reproducible(tiny_project, tmp_path):
    _with(tiny_project["matrix"], attacks=[PGD], methods=["bicubic"], attack_images=1)
    m = load_matrix(tiny_project["matrix"])
    run_matrix(m, tmp_path / "a", device="cpu", progress=False)
    run_matrix(m, tmp_path / "b", device="cpu", progress=False)
    a, b = _records(tmp_path / "a"), _records(tmp_path / "b")
    assert a["value"].tolist() == b["value"].tolist()  # random start drawn from the cell's generator
    assert a["attack_loss_adv"].tolist() == b["attack_loss_adv"].tolist()


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


def test_non_differentiable_method_is_refused_or_attacked_by_transfer(frozen_card, tmp_path):
    project = frozen_card
    _with(project["matrix"], methods=["frozen", "bicubic"], attacks=[FGSM], attack_images=1)
    summary = run_matrix(load_matrix(project["matrix"]), tmp_path / "refused", device="cpu", progress=False)
    assert summary.exit_code == 1
    df = _records(tmp_path / "refused")
    refused = df[df.method == "frozen"]
    assert (refused["status"] == "failed").all()
    assert refused["error"].str.contains("not differentiable").all()
    assert refused["error"].str.contains("surrogate").all()  # the message says how to attack it
    assert (df[df.method == "bicubic"]["status"] == "ok").all()

    _with(project["matrix"], attacks=[dict(FGSM, surrogate="bicubic")])
    summary = run_matrix(load_matrix(project["matrix"]), tmp_path / "transfer", device="cpu", progress=False)
    assert summary.exit_code == 0
    df = _records(tmp_path / "transfer")
    frozen = df[df.method == "frozen"]
    assert set(frozen["attack_mode"]) == {"transfer"} and set(frozen["attack_surrogate"]) == {"bicubic"}
    assert set(df[df.method == "bicubic"]["attack_mode"]) == {"white-box"}  # differentiable: attacked directly
    # same function, transfer from itself: the numbers equal the white-box ones
    assert frozen.sort_values(["image", "epsilon", "metric"])["value"].tolist() == pytest.approx(
        df[df.method == "bicubic"].sort_values(["image", "epsilon", "metric"])["value"].tolist()
    )


def _mrs_card(project: dict, name: str = "tiny-mrs", sigma="0.05", n: int = 3) -> None:
    text = (
        f"title: Tiny MRS\nadapter: median_smoothing\nargs: {{base: tiny-rrdb, sigma: {sigma}, n: {n}}}\ntile: null\n"
    )
    (project["methods"] / f"{name}.yaml").write_text(text)


def test_stochastic_method_eot_and_transfer_from_base_over_seeds(tiny_project, tmp_path):
    _mrs_card(tiny_project)
    attack = dict(FGSM, epsilons=["8/255"], eot_samples=2, restarts=1, transfer_from_base=True)
    _with(
        tiny_project["matrix"],
        methods=["tiny-rrdb", "tiny-mrs"],
        conditions=[{"name": "clean", "corruption": "clean"}],
        attacks=[{"name": "none"}, attack],
        attack_images=1,
        stochastic_seeds=[0, 1],
    )
    m = load_matrix(tiny_project["matrix"])
    runner = Runner(m, tmp_path / "run", device="cpu", progress=False)
    variants = sorted((c.method, c.threat.variant, c.seed) for c in runner.cells if c.threat.attacked)
    assert variants == [
        ("tiny-mrs", "direct", 0),
        ("tiny-mrs", "direct", 1),
        ("tiny-mrs", "transfer-from-base", 0),
        ("tiny-mrs", "transfer-from-base", 1),
        ("tiny-rrdb", "direct", 0),  # deterministic: one seed, no transfer variant
    ]
    summary = runner.run()
    assert summary.exit_code == 0
    df = _records(tmp_path / "run")
    mrs = df[(df.method == "tiny-mrs") & (df.attack == "fgsm")]
    assert set(mrs["attack_mode"]) == {"eot", "transfer"}
    eot = mrs[mrs.attack_mode == "eot"]
    # FGSM with 2 EOT draws: clean loss 2 fwd, gradient 2 fwd/bwd, adversarial loss 2 fwd
    assert (eot["attack_forward"] == 6).all() and (eot["attack_backward"] == 2).all()
    transfer = mrs[mrs.attack_mode == "transfer"]
    assert set(transfer["attack_surrogate"]) == {"tiny-rrdb"}
    assert set(df[df.method == "tiny-mrs"]["seed"]) == {0, 1}
    assert set(df[df.method == "tiny-rrdb"]["seed"]) == {0}
    assert set(mrs["entry"]) == {"tiny-mrs [eot]", "tiny-mrs [transfer from tiny-rrdb]"}
    assert mrs["sigma"].eq(0.05).all()

    from bench.report.html import write_report

    html = write_report(tmp_path / "run").read_text()
    assert "tiny-mrs [eot]" in html and "tiny-mrs [transfer from tiny-rrdb]" in html
    assert html.count('class="worst"') > 0  # two seeds: worst per-seed mean shown
    table = pd.read_csv(tmp_path / "run" / "tables" / f"folder__clean__fgsm_eps{8 / 255:.6g}.csv", index_col=0)
    assert table.loc["tiny-mrs [eot]", "attack_mode"] == "eot"
    assert table.loc["tiny-mrs [eot]", "seeds_psnr"] == 2
    per_seed = eot[eot.metric == "psnr"].groupby("seed")["value"].mean()
    assert table.loc["tiny-mrs [eot]", "worst_psnr"] == pytest.approx(per_seed.min(), rel=1e-5)
    assert table.loc["tiny-mrs [eot]", "psnr"] == pytest.approx(per_seed.mean(), rel=1e-5)


def test_run_json_records_the_attack_axis(tiny_project, tmp_path):
    _with(tiny_project["matrix"], attacks=[{"name": "none"}, FGSM], attack_images=1, methods=["bicubic"])
    run_matrix(load_matrix(tiny_project["matrix"]), tmp_path / "r", device="cpu", progress=False)
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert [a["name"] for a in info["matrix"]["attacks"]] == ["none", "fgsm"]
    assert info["matrix"]["attack_images"] == 1 and len(info["cells"]) == 2 + 2


def test_attack_on_a_corrupted_condition_attacks_the_corrupted_input(tiny_project, tmp_path):
    _with(tiny_project["matrix"], methods=["bicubic"], attacks=[dict(FGSM, conditions=["noise"])], attack_images=1)
    run_matrix(load_matrix(tiny_project["matrix"]), tmp_path / "r", device="cpu", progress=False)
    df = _records(tmp_path / "r")
    assert set(df["condition"]) == {"noise"} and set(df["attack"]) == {"fgsm"}
    assert torch.isfinite(torch.tensor(df["value"].to_numpy())).all()
