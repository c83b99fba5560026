"""Attacks, parametrised over the registry: bounds, ranges, monotonicity, determinism, counts, modes, refusals."""

from __future__ import annotations

import pytest
import torch

from bench.attacks import ATTACKS, AttackError, AttackResult, build_attack, build_loss
from bench.attacks.base import Objective
from bench.attacks.cw import from_tanh_space, to_tanh_space
from bench.seeding import make_generator

# small settings so that every registered attack runs in about a second on the tiny model
FAST = {
    "bim": {"steps": 3},
    "pgd": {"steps": 3},
    "cw": {"steps": 3},
    "eot": {"steps": 2, "samples": 2, "restarts": 2},
    "degradation": {"channels": 16, "steps": 2, "eps": 0.005, "step_size": 0.0025},  # adversarial directions are potent
}


def _attack(name: str, loss, **extra):
    return build_attack(name, loss=loss, **{**FAST.get(name, {}), **extra})


@pytest.mark.parametrize("name", ATTACKS.names())
def test_registered_attack_invariants(name: str, tiny_method, tiny_loss, batch) -> None:
    lr, hr = batch
    attack = _attack(name, tiny_loss)
    result = attack(tiny_method, lr, hr, make_generator(5))
    assert isinstance(result, AttackResult)
    x = attack.clean_input(lr, hr)
    assert result.x_adv.shape == lr.shape and result.x_adv.dtype == lr.dtype
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    assert result.loss_clean.shape == result.loss_adv.shape == (2,)
    if attack.threat == "linf":
        assert (result.x_adv - x).abs().max() <= attack.eps + 1e-6
        assert max(result.extra["linf"]) <= attack.eps + 1e-6
    if attack.never_below_clean:
        assert torch.all(result.loss_adv >= result.loss_clean)
    # the reported losses are the loss of the method's output at x and at x_adv
    with torch.no_grad():
        assert torch.allclose(tiny_loss(tiny_method(x), hr), result.loss_clean, atol=1e-5)
        assert torch.allclose(tiny_loss(tiny_method(result.x_adv), hr), result.loss_adv, atol=1e-5)
    assert result.forward_count >= 2 and result.seconds > 0
    assert result.mode == ("gradient-free" if not attack.needs_gradient else "white-box")
    assert result.spec["loss"]["backbone"] == "tiny random convs"
    assert result.spec["method"] == "RRDBMethod" and result.spec["threat"] == attack.threat
    assert set(result.record()) >= {"mode", "spec", "forward_count", "backward_count", "seconds", "loss_adv", "linf"}


@pytest.mark.parametrize("name", ATTACKS.names())
def test_fixed_seed_gives_identical_x_adv(name: str, tiny_method, tiny_loss, batch) -> None:
    lr, hr = batch
    a = _attack(name, tiny_loss)(tiny_method, lr, hr, make_generator(11))
    b = _attack(name, tiny_loss)(tiny_method, lr, hr, make_generator(11))
    assert torch.equal(a.x_adv, b.x_adv)
    assert torch.equal(a.loss_adv, b.loss_adv)
    if ATTACKS.get(name).random_start and name != "eot":
        c = _attack(name, tiny_loss)(tiny_method, lr, hr, make_generator(12))
        assert not torch.equal(a.x_adv, c.x_adv)


def test_gradient_attacks_raise_the_loss(tiny_method, tiny_loss, batch) -> None:
    lr, hr = batch
    for name in ("bim", "pgd", "cw", "degradation"):
        result = _attack(name, tiny_loss)(tiny_method, lr, hr, make_generator(0))
        assert torch.all(result.loss_adv > result.loss_clean), name


def test_fgsm_small_step_follows_the_gradient(tiny_method, tiny_loss, batch) -> None:
    """At a small budget the first-order model holds: the signed step raises the loss of every image."""
    lr, hr = batch
    result = build_attack("fgsm", eps=1 / 255, loss=tiny_loss)(tiny_method, lr, hr)
    assert torch.all(result.loss_adv > result.loss_clean)
    delta = result.x_adv - lr
    inside = (lr > 1.5 / 255) & (lr < 1 - 1.5 / 255)
    torch.testing.assert_close(delta[inside].abs(), torch.full_like(delta[inside], 1 / 255), rtol=0, atol=1e-6)
    assert (result.forward_count, result.backward_count) == (3, 1)


def test_iteration_counts_and_step_sizes(tiny_method, tiny_loss, batch) -> None:
    lr, hr = batch
    bim = build_attack("bim", eps=8 / 255, steps=4, loss=tiny_loss)
    assert bim.alpha == pytest.approx(2 / 255)
    r = bim(tiny_method, lr, hr)
    assert (r.forward_count, r.backward_count) == (1 + 4 + 1, 4)
    pgd = build_attack("pgd", eps=8 / 255, steps=4, loss=tiny_loss)
    assert pgd.alpha == pytest.approx(2.5 * 8 / 255 / 4)
    r = pgd(tiny_method, lr, hr, make_generator(0))
    assert (r.forward_count, r.backward_count) == (1 + 4 + 1, 4)
    r = build_attack("pgd", steps=2, restarts=3, loss=tiny_loss)(tiny_method, lr, hr, make_generator(0))
    assert (r.forward_count, r.backward_count) == (1 + 3 * (2 + 1), 6)


def test_bim_without_budget_and_pgd_without_start_are_identity_or_bim(tiny_method, tiny_loss, batch) -> None:
    lr, hr = batch
    r = build_attack("bim", eps=0.0, steps=2, loss=tiny_loss)(tiny_method, lr, hr)
    assert torch.equal(r.x_adv, lr)
    bim = build_attack("bim", eps=6 / 255, steps=3, loss=tiny_loss)(tiny_method, lr, hr)
    pgd = build_attack("pgd", eps=6 / 255, steps=3, alpha=2 / 255, random_start=False, loss=tiny_loss)
    torch.testing.assert_close(pgd(tiny_method, lr, hr).x_adv, bim.x_adv, rtol=0, atol=1e-7)


def test_cw_delta_is_a_valid_image(tiny_method, tiny_loss, batch) -> None:
    lr, hr = batch
    x = torch.tensor([0.0, 1e-7, 0.3, 0.5, 1.0 - 1e-7, 1.0])
    torch.testing.assert_close(from_tanh_space(to_tanh_space(x)), x, rtol=0, atol=2e-6)
    big = torch.tensor([-50.0, 50.0])
    assert from_tanh_space(big).min() >= 0 and from_tanh_space(big).max() <= 1
    for select in ("max_loss", "objective", "last"):
        cw = build_attack("cw", c=10.0, lr=0.05, steps=4, select=select, loss=tiny_loss)
        r = cw(tiny_method, lr, hr)
        assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1
        assert r.backward_count == 4 and r.spec["select"] == select
        if select == "last":
            assert max(r.extra["l2"]) > 0  # the final Adam iterate moved
        else:
            assert torch.all(r.loss_adv >= r.loss_clean)
    assert build_attack("cw", select="last").never_below_clean is False


def test_cw_paper_defaults() -> None:
    cw = build_attack("cw")
    assert (cw.c, cw.lr, cw.steps, cw.threat) == (0.01, 1e-2, 6, "l2")
    pgd = build_attack("pgd")
    assert pgd.eps == pytest.approx(10 / 255) and pgd.random_start


def test_non_differentiable_method_is_refused_with_a_clear_message(tiny_loss, batch, frozen_method) -> None:
    lr, hr = batch
    with pytest.raises(AttackError, match=r"not differentiable.*surrogate"):
        build_attack("pgd", loss=tiny_loss)(frozen_method, lr, hr, make_generator(0))
    # the random baseline needs no gradient
    r = build_attack("random_sign", loss=tiny_loss)(frozen_method, lr, hr, make_generator(0))
    assert r.mode == "gradient-free" and r.backward_count == 0


def test_transfer_from_a_surrogate(tiny_loss, batch, frozen_method, make_method) -> None:
    lr, hr = batch
    surrogate = make_method(1)
    attack = build_attack("pgd", steps=2, loss=tiny_loss, surrogate=surrogate)
    r = attack(frozen_method, lr, hr, make_generator(0))
    assert r.mode == "transfer" and r.spec["surrogate"] == "RRDBMethod"
    with torch.no_grad():
        torch.testing.assert_close(r.loss_adv, tiny_loss(frozen_method(r.x_adv), hr), rtol=0, atol=1e-6)
    assert "surrogate_loss_adv" in r.extra
    with pytest.raises(AttackError, match="surrogate"):
        build_attack("pgd", loss=tiny_loss, surrogate=frozen_method)(make_method(), lr, hr, make_generator(0))


def test_eot_on_a_stochastic_method(tiny_loss, batch, noisy_method) -> None:
    lr, hr = batch
    method = noisy_method
    attack = build_attack("eot", attack="pgd", samples=3, restarts=2, steps=2, loss=tiny_loss)
    r = attack(method, lr, hr, make_generator(0))
    assert r.mode == "eot" and r.spec["eot_samples"] == 3 and r.spec["restarts"] == 2
    assert r.spec["inner.steps"] == 2 and attack.eps == pytest.approx(10 / 255)
    # clean: 3 draws; each restart: 2 steps x 3 draws (fwd+bwd) + 3 final forwards
    assert (r.forward_count, r.backward_count) == (3 + 2 * (6 + 3), 2 * 6)
    assert torch.all(r.loss_adv >= r.loss_clean)
    r2 = build_attack("eot", attack="pgd", samples=3, restarts=2, steps=2, loss=tiny_loss)(
        method, lr, hr, make_generator(0)
    )
    assert torch.equal(r.x_adv, r2.x_adv)
    # plain PGD on a stochastic method is adaptive too (default 8 draws), and needs a generator
    r3 = build_attack("pgd", steps=1, loss=tiny_loss)(method, lr, hr, make_generator(0))
    assert r3.mode == "eot" and r3.spec["eot_samples"] == 8
    with pytest.raises(AttackError, match="Generator"):
        build_attack("fgsm", loss=tiny_loss)(method, lr, hr)
    with pytest.raises(AttackError, match="itself"):
        build_attack("eot", attack="eot")


def test_objective_averages_draws(tiny_loss, batch, noisy_method) -> None:
    lr, hr = batch
    method = noisy_method
    objective = Objective(method, tiny_loss, hr, eot_samples=4, generator=make_generator(2))
    value, grad = objective.value_and_grad(lr)
    g = make_generator(2)
    singles = []
    for _ in range(4):
        x = lr.clone().requires_grad_(True)
        v = tiny_loss(method(x, g), hr)
        singles.append((v.detach(), torch.autograd.grad(v.sum(), x)[0]))
    torch.testing.assert_close(value, torch.stack([s[0] for s in singles]).mean(0))
    torch.testing.assert_close(grad, torch.stack([s[1] for s in singles]).mean(0))
    assert objective.counts == {"forward": 4, "backward": 4}


def test_no_reference_target(tiny_method, tiny_loss, batch) -> None:
    lr, _ = batch
    r = build_attack("pgd", steps=2, target="clean", loss=tiny_loss)(tiny_method, lr, None, make_generator(0))
    assert torch.all(r.loss_clean.abs() < 1e-6) and torch.all(r.loss_adv > 0)
    with pytest.raises(AttackError, match="zero"):
        build_attack("fgsm", target="clean", loss=tiny_loss)(tiny_method, lr, None)
    with pytest.raises(AttackError, match="ground truth"):
        build_attack("pgd", loss=tiny_loss)(tiny_method, lr, None, make_generator(0))


def test_input_validation(tiny_method, tiny_loss, batch) -> None:
    lr, hr = batch
    with pytest.raises(AttackError, match="expected"):
        build_attack("fgsm", loss=tiny_loss)(tiny_method, lr, hr[..., :16, :16])
    with pytest.raises(AttackError, match=r"\[0, 1\]"):
        build_attack("fgsm", loss=tiny_loss)(tiny_method, lr + 2, hr)
    with pytest.raises(AttackError, match="Generator"):
        build_attack("pgd", loss=tiny_loss)(tiny_method, lr, hr)
    bad_params = (("pgd", {"steps": 0}), ("bim", {"eps": -1}), ("cw", {"select": "best"}), ("pgd", {"restarts": 0}))
    for name, bad in bad_params:
        with pytest.raises(AttackError):
            build_attack(name, **bad)
    with pytest.raises(KeyError, match="Did you mean"):
        build_attack("pdg")
    assert "l1_perceptual" in repr(build_loss("l1").spec()) or build_loss("l1").spec() == {"loss": "l1"}
