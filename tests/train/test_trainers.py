"""Each recipe at toy scale on the CPU, asserting what makes it that recipe."""

from __future__ import annotations

import math

import pytest
import torch

from bench.archs.degradation import antialiased_avg_pool
from bench.data.imresize import bicubic_downsample
from bench.seeding import make_generator
from bench.train.state import read_metadata

ALL = ("esrgan-ft", "ad-l-fgsm", "ad-l-bim", "ad-l-cw", "ad-l-pgd", "certsr", "andnet", "andgan", "stochastic-sr")


def fixed_batch(n: int = 2, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    hr = torch.stack(
        [
            torch.stack([0.5 + 0.4 * torch.sin((6 + k) * xx + c) * torch.cos((4 + k) * yy - c) for c in range(3)])
            for k in range(n)
        ]
    ).clamp(0, 1)
    return bicubic_downsample(hr).clamp(0, 1), hr


@pytest.mark.parametrize("name", ALL)
def test_every_recipe_runs_and_writes_its_checkpoint(make_trainer, name: str) -> None:
    trainer = make_trainer(name, train__iters=2)
    before = {k: v.clone() for k, v in trainer.net_g.state_dict().items()}
    latest = trainer.fit()
    assert latest.is_file() and (latest.parent / "state.safetensors").is_file()
    meta = read_metadata(latest)
    assert meta["recipe"] == name and meta["iteration"] == 2 and meta["seed"] == 0
    assert meta["recipe_config"]["train"]["iters"] == 2 and meta["trainer"] == trainer.recipe.trainer
    assert meta["data"]["dataset"] == "synthetic" and meta["data"]["gt_size"] == 32
    assert "git" in meta and meta["weights"] == "ema"
    lines = (latest.parent / "train_log.jsonl").read_text().splitlines()
    assert len(lines) == 2
    changed = [k for k, v in trainer.net_g.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "the generator did not move"
    assert (trainer.net_d is None) == (trainer.config["loss"]["gan_weight"] == 0)


def test_training_loss_falls_on_a_fixed_batch(make_trainer) -> None:
    trainer = make_trainer("esrgan-ft", train__lr_g=2e-3, loss__gan_weight=0.0)
    lr, hr = fixed_batch()
    losses = [trainer.train_step(lr, hr, it)["l_g_content"] for it in range(1, 16)]
    assert losses[-1] < 0.8 * losses[0]
    assert trainer.net_d is None


def test_ema_follows_the_generator(make_trainer) -> None:
    trainer = make_trainer("esrgan-ft", train__ema_decay=0.5)
    lr, hr = fixed_batch()
    g0 = {k: v.clone() for k, v in trainer.net_g.state_dict().items()}
    trainer.train_step(lr, hr, 1)
    for k, v in trainer.net_g_ema.state_dict().items():
        torch.testing.assert_close(v, 0.5 * g0[k] + 0.5 * trainer.net_g.state_dict()[k])


@pytest.mark.parametrize("name", ["ad-l-fgsm", "ad-l-bim", "ad-l-cw", "ad-l-pgd"])
def test_adversarial_batch_is_worse_than_the_clean_one(make_trainer, name: str) -> None:
    trainer = make_trainer(name)
    lr, hr = fixed_batch()
    x_adv, logs = trainer.make_inputs(lr, hr, make_generator(0))
    assert x_adv.shape == lr.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    assert not torch.equal(x_adv, lr)
    with torch.no_grad():
        clean = trainer.attack_loss(trainer.net_g(lr), hr)
        adv = trainer.attack_loss(trainer.net_g(x_adv), hr)
    torch.testing.assert_close(adv, trainer.last_attack.loss_adv, rtol=1e-5, atol=1e-6)
    assert (adv >= clean - 1e-6).all(), (name, clean, adv)
    assert logs["attack_loss_adv"] >= logs["attack_loss_clean"]
    params = trainer.config["attack"]["params"]
    if "eps" in params:
        assert (x_adv - lr).abs().max() <= params["eps"] + 1e-6
    assert trainer.net_g.training  # the attack's eval mode does not leak into training


def test_rsr_pgd_random_start_is_drawn_at_low_resolution(make_trainer) -> None:
    trainer = make_trainer("ad-l-pgd")
    attack = trainer.attack
    assert (attack.eps, attack.steps, attack.alpha) == pytest.approx((14 / 255, 2, 1 / 255))
    assert attack.loss.l1_weight == 1e-2 and attack.loss.perceptual_weight == 1.0
    x = torch.full((1, 3, 12, 12), 0.5)
    start = attack.start(x, make_generator(0)) - x
    assert start.abs().max() <= 14 / 255 + 1e-7
    rows = torch.unique(start[0, 0], dim=0)
    cols = torch.unique(start[0, 0], dim=1)
    assert rows.shape[0] == 8 and cols.shape[1] == 8  # 12 / 1.5 = 8 distinct values, nearest-upsampled


def test_and_degradation_starts_at_the_downsampler_and_stays_in_the_ball(make_trainer) -> None:
    trainer = make_trainer("andnet", degradation__channels=8, degradation__budget_scale=0.1)
    assert trainer.and_eps == pytest.approx(2.0) and trainer.and_step == pytest.approx(0.6)
    lr, hr = fixed_batch()
    lr_adv, logs = trainer.make_inputs(lr, hr, make_generator(4))
    info = trainer.last_degradation
    torch.testing.assert_close(info["identity_lr"], antialiased_avg_pool(hr).clamp(0, 1), rtol=0, atol=1e-5)
    # recompute the scaled distance of the final parameters to the identity ones (same draws, same generator)
    net = trainer.degradation
    final = {id(p): p.detach().clone() for g in net.param_groups().values() for p in g}
    net.reset_identity(make_generator(4))
    total = 0.0
    for name, params in net.param_groups().items():
        s = trainer.and_scales[name]
        total += sum(float((s * (final[id(p)] - p.detach())).square().sum()) for p in params)
    assert math.sqrt(total) == pytest.approx(info["scaled_norm"], rel=1e-4)
    assert info["scaled_norm"] <= trainer.and_eps + 1e-5 and info["scaled_norm"] > 0
    assert len(info["objective"]) == trainer.and_steps + 1
    assert info["objective"][-1] >= info["objective"][0]  # the perturbation hurts the restorer
    assert lr_adv.min() >= 0 and lr_adv.max() <= 1 and lr_adv.shape == lr.shape
    assert 0 < logs["and_lr_psnr"] < 100


def test_and_paper_budget_is_recorded(make_trainer) -> None:
    trainer = make_trainer("andnet")
    assert (trainer.and_eps, trainer.and_step, trainer.and_steps) == (20.0, 6.0, 5)
    assert trainer.and_scales == {"conv": 1.0, "noise": 10.0, "nonlinearity": 50.0}
    assert trainer.net_d is None and trainer.backbone is None  # ANDNet: L1 only


def test_mrs_loss_is_computed_on_medians(make_trainer) -> None:
    from bench.train.certsr import median

    trainer = make_trainer("certsr")
    lr, hr = fixed_batch()
    out = trainer.generate(lr, lr, hr, make_generator(11))
    assert out.sr.shape == (3 * 2, 3, 32, 32) and out.target.shape == out.sr.shape
    torch.testing.assert_close(out.target, torch.cat([hr, hr, hr]))
    # the same draws by hand: 2 copies + N(0, 0.03^2), 2 copies + N(0, 0.2^2), 1 clean, in that order
    g = make_generator(11)
    z = [torch.randn(lr.shape, generator=g) for _ in range(4)]
    with torch.no_grad():
        preds = [trainer.net_g(x) for x in (lr + 0.03 * z[0], lr + 0.03 * z[1], lr + 0.2 * z[2], lr + 0.2 * z[3], lr)]
        want = torch.cat([(preds[0] + preds[1]) / 2, (preds[2] + preds[3]) / 2, preds[4]])
    torch.testing.assert_close(out.sr.detach(), want, rtol=1e-5, atol=1e-6)
    # the median conventions
    v = torch.tensor([[1.0, 5.0], [3.0, 2.0], [2.0, 9.0]])
    torch.testing.assert_close(median(v), torch.tensor([2.0, 5.0]))
    torch.testing.assert_close(median(v[:2]), torch.tensor([2.0, 3.5]))
    torch.testing.assert_close(median(v[:2], "lower"), torch.tensor([1.0, 2.0]))


def test_stochastic_samples_differ_while_lr_consistency_falls(make_trainer) -> None:
    trainer = make_trainer("stochastic-sr", train__lr_g=2e-3, loss__gan_weight=0.0)
    lr, hr = fixed_batch()
    net = trainer.net_g
    with torch.no_grad():
        first = net.sample(lr, 2, make_generator(0))
    torch.testing.assert_close(first[0], first[1], rtol=0, atol=0)  # zero-initialised noise weights: the base model
    logs = [trainer.train_step(lr, hr, it) for it in range(1, 21)]
    assert logs[-1]["l_lr_consistency"] < 0.8 * logs[0]["l_lr_consistency"]
    assert logs[-1]["l_var"] > 0
    with torch.no_grad():
        after = net.sample(lr, 2, make_generator(0))
    assert (after[0] - after[1]).abs().mean() > 1e-4
    assert net.conv_first.weight[:, 3:].abs().max() > 0
