"""From checkpoint to leaderboard: the cards of trained checkpoints, the missing-checkpoint command, loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.methods.cards import build_method, load_card
from bench.methods.checkpoint import expand_path, producer_command
from bench.seeding import make_generator

TRAINED = ("esrgan-ft", "ad-l-fgsm", "ad-l-bim", "ad-l-cw", "ad-l-pgd", "certsr", "andnet", "andgan", "stochastic-sr")


@pytest.mark.parametrize("name", TRAINED)
def test_card_points_at_its_recipe_output(isolated_home: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.delenv("BENCH_PROJECT", raising=False)
    card = load_card(name)
    assert card.recipe["name"] == name and card.recipe["command"] == f"python -m bench train {name}"
    assert {"init", "data", "iters"} <= set(card.recipe)
    expected = isolated_home / "checkpoints" / name / "latest.safetensors"
    if card.adapter == "median_smoothing":
        assert card.args["base"]["args"]["checkpoint"] == f"$BENCH_HOME/checkpoints/{name}/latest.safetensors"
    else:
        assert Path(card.checkpoint_ref()) == expected and not card.checkpoint_available()
    with pytest.raises(FileNotFoundError) as info:
        build_method(card)
    assert info.value.fix == f"python -m bench train {name}"  # the fix travels as data
    assert f"`python -m bench train {name}`" in str(info.value)


def test_expand_and_producer(isolated_home: Path) -> None:
    assert (
        expand_path("$BENCH_HOME/checkpoints/x/latest.safetensors")
        == isolated_home / "checkpoints/x/latest.safetensors"
    )
    assert expand_path("${BENCH_HOME}/a.pt") == isolated_home / "a.pt"
    assert expand_path("~/a.pt") == Path.home() / "a.pt"
    assert producer_command("$BENCH_HOME/checkpoints/andnet/latest.safetensors") == "python -m bench train andnet"
    assert producer_command("$BENCH_HOME/checkpoints/no-such-recipe/latest.safetensors") is None
    assert producer_command("/elsewhere/andnet/latest.safetensors") is None


def test_trained_checkpoint_loads_as_a_method(make_trainer) -> None:
    from bench.methods.rrdb import RRDBMethod

    trainer = make_trainer("ad-l-bim")
    latest = trainer.fit()
    method = RRDBMethod(num_feat=8, num_block=1, num_grow_ch=4, checkpoint=str(latest)).eval()
    lr = torch.rand(1, 3, 8, 8, generator=make_generator(0))
    with torch.no_grad():
        torch.testing.assert_close(method(lr), trainer.net_g_ema(lr), rtol=0, atol=0)


def test_trained_stochastic_checkpoint_samples(make_trainer) -> None:
    from bench.methods.stochastic import StochasticRRDBMethod

    trainer = make_trainer("stochastic-sr", train__iters=3, train__ema_decay=None, train__lr_g=2e-3)
    latest = trainer.fit()
    method = StochasticRRDBMethod(num_feat=8, num_block=1, num_grow_ch=4, num_noise_ch=3, checkpoint=str(latest))
    lr = torch.rand(2, 3, 8, 8, generator=make_generator(0))
    with torch.no_grad():
        samples = method.sample(lr, 5, make_generator(1))
    assert samples.shape == (5, 2, 3, 32, 32)  # (n, N, 3, H, W): the layout of the diversity score
    assert (samples[0] - samples[1]).abs().max() > 0


def test_card_provenance_carries_what_the_checkpoint_says(make_trainer, tmp_path: Path) -> None:
    """A card pointing at a trained checkpoint reports its recipe, iteration and data (shown on the leaderboard)."""
    from bench.methods.cards import parse_card

    trainer = make_trainer("ad-l-bim")
    latest = trainer.fit()
    card_file = tmp_path / "mine.yaml"
    card_file.write_text(
        f"title: mine\nadapter: rrdbnet\nargs: {{num_feat: 8, num_block: 1, num_grow_ch: 4}}\ncheckpoint: {latest}\n"
    )
    produced = parse_card(card_file).provenance()["checkpoint_metadata"]
    assert produced["recipe"] == "ad-l-bim"
    assert int(produced["iteration"]) == trainer.iteration
