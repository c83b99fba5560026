"""Recipes: every shipped recipe loads with its paper's settings; includes, overrides and validation errors."""

from __future__ import annotations

import pytest

from bench.train import TRAINERS, list_recipes, load_recipe
from bench.train.recipe import RecipeError, parse_override

SHIPPED = (
    "esrgan-ft",
    "ad-l-fgsm",
    "ad-l-bim",
    "ad-l-cw",
    "ad-l-pgd",
    "certsr",
    "andnet",
    "andgan",
    "stochastic-sr",
)


def test_every_method_has_a_recipe() -> None:
    assert set(SHIPPED) <= set(list_recipes())
    assert {"esrgan", "adversarial", "certsr", "and", "stochastic"} <= set(TRAINERS.names())


@pytest.mark.parametrize("name", SHIPPED)
def test_esrgan_machinery_defaults(name: str) -> None:
    cfg = load_recipe(name).config
    t = cfg["train"]
    assert t["betas"] == [0.9, 0.99] and t["lr_g"] == 1e-4 and cfg["scale"] == 4
    assert cfg["generator"] == {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, **cfg["generator"]}
    assert cfg["generator"]["num_block"] == 23
    assert t["ema_decay"] == 0.999
    assert cfg["data"] == "div2k-train"  # resolved through datasets/div2k-train.yaml


def test_paper_settings() -> None:
    ft = load_recipe("esrgan-ft").config
    assert (ft["train"]["iters"], ft["train"]["batch"], ft["train"]["gt_size"]) == (18000, 16, 128)
    assert ft["loss"] == {"pixel_weight": 1e-2, "perceptual_weight": 1.0, "gan_weight": 5e-3, "backbone": "auto"}
    assert ft["init"] == "esrgan-x4"

    pgd = load_recipe("ad-l-pgd").config
    assert pgd["trainer"] == "adversarial" and pgd["train"]["iters"] == 30000
    assert pgd["attack"]["name"] == "pgd" and pgd["attack"]["noise_scale"] == 1.5
    assert pgd["attack"]["params"] == pytest.approx({"eps": 14 / 255, "steps": 2, "alpha": 1 / 255})
    assert pgd["attack"]["loss"] == {"l1_weight": 1e-2, "perceptual_weight": 1.0}
    assert pgd["loss"]["gan_weight"] == 5e-3  # the generator keeps ESRGAN's loss

    fgsm, bim, cw = (load_recipe(n).config["attack"] for n in ("ad-l-fgsm", "ad-l-bim", "ad-l-cw"))
    assert fgsm["params"] == pytest.approx({"eps": 9 / 255})
    assert bim["params"] == pytest.approx({"eps": 9 / 255, "steps": 2})
    assert cw["params"] == pytest.approx({"c": 1e-2, "lr": 1e-2, "steps": 4})
    assert fgsm["loss"] == bim["loss"] == cw["loss"] == {"l1_weight": 1.0, "perceptual_weight": 1.0}

    mrs = load_recipe("certsr").config
    assert mrs["mrs"]["groups"] == [[0.03, 2], [0.2, 2], [0.0, 1]]
    assert (mrs["train"]["iters"], mrs["train"]["batch"]) == (59000, 5)

    andnet = load_recipe("andnet").config
    assert andnet["init"] is None
    assert andnet["degradation"] == {
        "eps": 20.0,
        "steps": 5,
        "step_size": 6.0,
        "scales": {"conv": 1.0, "noise": 10.0, "nonlinearity": 50.0},
        "budget_scale": 1.0,
        "channels": 64,
        "blocks_before": 5,
        "blocks_after": 5,
    }
    assert (andnet["train"]["iters"], andnet["train"]["batch"], andnet["train"]["gt_size"]) == (1000000, 48, 256)
    assert andnet["loss"]["perceptual_weight"] == 0 and andnet["loss"]["gan_weight"] == 0
    andgan = load_recipe("andgan").config
    assert andgan["init"] == "$BENCH_HOME/checkpoints/andnet/latest.safetensors"
    assert andgan["loss"]["gan_weight"] == 0.1 and andgan["loss"]["perceptual_weight"] == 1.0
    assert andgan["train"]["iters"] == 500000 and andgan["degradation"]["eps"] == 20.0

    sto = load_recipe("stochastic-sr").config
    assert sto["generator"]["num_noise_ch"] == 3 and set(sto["stochastic"]) == {"alpha", "beta", "gamma"}


def test_overrides_and_parse() -> None:
    assert parse_override("train.iters=100") == ("train.iters", 100)
    assert parse_override("attack.params.eps=1e-2") == ("attack.params.eps", 0.01)
    assert parse_override("init=null") == ("init", None)
    assert parse_override("train.milestones=[10, 20]") == ("train.milestones", [10, 20])
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        parse_override("train.iters")
    r = load_recipe("ad-l-pgd", overrides={"train.iters": 7, "attack.params.eps": 0.01})
    assert r.get("train.iters") == 7 and r.get("attack.params.eps") == 0.01
    assert r.sha256 != load_recipe("ad-l-pgd").sha256


def test_validation_errors(tmp_path) -> None:
    with pytest.raises(RecipeError, match=r"did you mean 'train\.iters'"):
        load_recipe("esrgan-ft", overrides={"train.iter": 5})
    with pytest.raises(RecipeError, match=r"train\.batch: Input should be a valid integer, got 'sixteen'"):
        load_recipe("esrgan-ft", overrides={"train.batch": "sixteen"})
    with pytest.raises(KeyError, match=r"unknown recipe 'ad-l-pdg'\. Did you mean ad-l-pgd"):
        load_recipe("ad-l-pdg")
    bad = tmp_path / "bad.yaml"
    bad.write_text("include: esrgan-ft\ntrainer: adversarial\nattack: {nmae: pgd}\n")
    with pytest.raises(RecipeError, match=r"bad.yaml: unknown key 'attack.nmae' \(did you mean 'attack.name'"):
        load_recipe(bad)
    notrainer = tmp_path / "none.yaml"
    notrainer.write_text("seed: 1\n")
    with pytest.raises(RecipeError, match="missing required key 'trainer'"):
        load_recipe(notrainer)
    with pytest.raises(KeyError, match="unknown trainer"):
        load_recipe({"trainer": "srflow"})


def test_recipe_file_with_include(tmp_path) -> None:
    own = tmp_path / "mine.yaml"
    own.write_text("include: ad-l-bim\ntrainer: adversarial\nattack: {params: {eps: 0.02, steps: 3}}\n")
    r = load_recipe(own)
    assert r.name == "mine" and r.trainer == "adversarial"
    assert r.config["attack"]["name"] == "bim" and r.config["attack"]["params"] == {"eps": 0.02, "steps": 3}
    assert r.config["train"]["iters"] == 18000
