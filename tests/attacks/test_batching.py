"""Batched attacks with one generator per image: every registered attack gives each image of a batch what it gives the
image attacked alone with its own generator (random draws per image, losses per image, gradients of their sum), and
the errors of generators that cannot be honoured (a wrong count, several for a stochastic method)."""

from __future__ import annotations

import pytest
import torch

from bench.attacks import ATTACKS, AttackError, build_attack
from bench.attacks.base import Objective
from bench.attacks.draws import draw_per_image, uniform_like
from bench.attacks.random_sign import random_signs
from bench.methods.rrdb import RRDBMethod
from bench.seeding import make_generator

# small settings so that each registered attack runs in about a second on the tiny model (a new attack: its defaults)
FAST = {
    "bim": {"steps": 3},
    "pgd": {"steps": 3},
    "cw": {"steps": 3},
    "eot": {"steps": 2, "samples": 2, "restarts": 2},
    "degradation": {"channels": 16, "steps": 2, "eps": 0.005, "step_size": 0.0025},
}
SEEDS = (101, 202, 303)
#: float tolerance of "the same image, batched or alone": the convolutions are batch-invariant to the bit here
#: (``batch_invariant_convs``); oneDNN's summation order changes with the batch size, and a signed step (PGD, BIM,
#: FGSM) taken on a near-zero gradient entry could then flip and move that pixel by 2 alpha, far beyond any tolerance
TOL = 1e-5
pytestmark = pytest.mark.usefixtures("batch_invariant_convs")


@pytest.fixture(scope="module")
def rrdb() -> RRDBMethod:
    """RRDBNet with 12 features and 2 blocks (deterministic, differentiable), random weights."""
    torch.manual_seed(0)
    return RRDBMethod(num_feat=12, num_block=2, num_grow_ch=6).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    """(lr, hr): three different textured 64x64 HR images and their 16x16 LR (box-filtered)."""
    g = torch.Generator().manual_seed(7)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    hr = []
    for k in range(3):
        chans = [0.5 + 0.3 * torch.sin((5 + k) * xx + c) * torch.cos((4 + 2 * k) * yy - c) for c in range(3)]
        hr.append(torch.stack(chans) + 0.05 * torch.rand(3, 64, 64, generator=g))
    hr = torch.stack(hr).clamp(0, 1)
    return torch.nn.functional.avg_pool2d(hr, 4).clamp(0, 1), hr


def _generators() -> list[torch.Generator]:
    return [make_generator(s) for s in SEEDS]


@pytest.mark.parametrize("name", ATTACKS.names())
def test_batch_equals_each_image_alone(name: str, rrdb, tiny_loss, images) -> None:
    lr, hr = images
    attack = build_attack(name, loss=tiny_loss, **FAST.get(name, {}))
    batched = attack(rrdb, lr, hr, _generators())
    for i, seed in enumerate(SEEDS):
        alone = attack(rrdb, lr[i : i + 1], hr[i : i + 1], make_generator(seed))
        diff = (batched.x_adv[i : i + 1] - alone.x_adv).abs().max().item()
        assert diff <= TOL, f"{name}: image {i} differs by {diff:.3g} between batch and alone"
        torch.testing.assert_close(batched.loss_adv[i : i + 1], alone.loss_adv, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(batched.loss_clean[i : i + 1], alone.loss_clean, rtol=1e-5, atol=1e-6)
        # a batch's passes are batched passes: as many as one image's
        assert (batched.forward_count, batched.backward_count) == (alone.forward_count, alone.backward_count)
    if ATTACKS.get(name).random_start or attack.random_start:
        # the images really drew from their own generators: another seed for image 1 changes image 1 only
        other = attack(rrdb, lr, hr, [make_generator(SEEDS[0]), make_generator(999), make_generator(SEEDS[2])])
        assert not torch.equal(other.x_adv[1], batched.x_adv[1])
        torch.testing.assert_close(other.x_adv[[0, 2]], batched.x_adv[[0, 2]], rtol=0, atol=TOL)


@pytest.mark.parametrize("name", ["pgd", "degradation"])
def test_transfer_batch_equals_each_image_alone(name: str, frozen_method, make_method, tiny_loss, images) -> None:
    """Transfer: made on a deterministic surrogate, evaluated on a non-differentiable method, per image as alone."""
    lr, hr = images
    attack = build_attack(name, loss=tiny_loss, surrogate=make_method(4), **FAST.get(name, {}))
    batched = attack(frozen_method, lr, hr, _generators())
    assert batched.mode == "transfer"
    for i, seed in enumerate(SEEDS):
        alone = attack(frozen_method, lr[i : i + 1], hr[i : i + 1], make_generator(seed))
        assert (batched.x_adv[i : i + 1] - alone.x_adv).abs().max().item() <= TOL
        torch.testing.assert_close(batched.loss_adv[i : i + 1], alone.loss_adv, rtol=1e-5, atol=1e-6)
        for key in ("surrogate_loss_adv", "linf"):
            assert batched.extra[key][i] == pytest.approx(alone.extra[key][0], rel=1e-5, abs=1e-6)


def test_a_sequence_of_one_is_its_generator(rrdb, tiny_loss, images) -> None:
    lr, hr = images
    pgd = build_attack("pgd", steps=2, loss=tiny_loss)
    a = pgd(rrdb, lr[:1], hr[:1], [make_generator(5)])
    b = pgd(rrdb, lr[:1], hr[:1], make_generator(5))
    assert torch.equal(a.x_adv, b.x_adv)


def test_draws_per_image_are_the_draws_alone() -> None:
    x = torch.zeros(3, 3, 5, 4)
    u = uniform_like(x, -0.1, 0.1, _generators())
    s = random_signs(x, _generators())
    for i, seed in enumerate(SEEDS):
        assert torch.equal(u[i : i + 1], uniform_like(x[:1], -0.1, 0.1, make_generator(seed)))
        assert torch.equal(s[i : i + 1], random_signs(x[:1], make_generator(seed)))
    assert u.abs().max() <= 0.1 and set(s.unique().tolist()) == {-1.0, 1.0}
    with pytest.raises(AttackError, match="2 generators for a batch of 3 images"):
        draw_per_image(x, _generators()[:2], lambda shape, g: torch.rand(shape, generator=g))


def test_gradient_is_of_the_sum_not_the_mean(rrdb, tiny_loss, images) -> None:
    """Image i's gradient in a batch is its gradient alone (a mean would divide it by N and rescale CW's step)."""
    lr, hr = images
    _, grad = Objective(rrdb, tiny_loss, hr).value_and_grad(lr)
    for i in range(3):
        _, alone = Objective(rrdb, tiny_loss, hr[i : i + 1]).value_and_grad(lr[i : i + 1])
        torch.testing.assert_close(grad[i : i + 1], alone, rtol=1e-4, atol=1e-8)


def test_generators_that_cannot_be_honoured_are_refused(rrdb, noisy_method, tiny_loss, images, make_method) -> None:
    lr, hr = images
    pgd = build_attack("pgd", steps=1, loss=tiny_loss)
    with pytest.raises(AttackError, match="2 generators for a batch of 3 images"):
        pgd(rrdb, lr, hr, _generators()[:2])
    with pytest.raises(AttackError, match=r"torch\.Generator or a sequence"):
        pgd(rrdb, lr, hr, [1, 2, 3])
    # a stochastic method draws from one generator per call: one image per batch (EOT)
    with pytest.raises(AttackError, match=r"stochastic method .* one image per batch"):
        build_attack("eot", steps=1, samples=2, restarts=1, loss=tiny_loss)(noisy_method, lr, hr, _generators())
    # ... also when it is only the evaluated target of a transfer from a deterministic surrogate
    with pytest.raises(AttackError, match="stochastic method"):
        build_attack("pgd", steps=1, loss=tiny_loss, surrogate=make_method())(noisy_method, lr, hr, _generators())
    # one image with its one generator is fine
    r = build_attack("eot", steps=1, samples=2, restarts=1, loss=tiny_loss)(
        noisy_method, lr[:1], hr[:1], _generators()[:1]
    )
    assert r.mode == "eot" and r.x_adv.shape == lr[:1].shape
