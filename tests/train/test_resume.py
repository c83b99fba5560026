"""``--resume``: an interrupted run continued gives the weights of an uninterrupted one, bit for bit (CPU)."""

from __future__ import annotations

import pytest
import torch

from bench.train.state import load_tensors, read_metadata


@pytest.mark.parametrize("name", ["esrgan-ft", "ad-l-pgd", "stochastic-sr"])
def test_resume_continues_exactly(make_trainer, name: str) -> None:
    full = make_trainer(name, out="full", train__iters=4)
    full.fit()

    first = make_trainer(name, out="split", train__iters=2)
    first.fit()
    assert read_metadata(first.out_dir / "state.safetensors")["iteration"] == 2
    second = make_trainer(name, out="split", train__iters=4)
    second.fit(resume=True)
    assert second.iteration == 4

    a = load_tensors(full.out_dir / "state.safetensors")
    b = load_tensors(second.out_dir / "state.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("opt_g.") for k in a) and any(k.startswith("d.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    la = load_tensors(full.out_dir / "latest.safetensors")
    lb = load_tensors(second.out_dir / "latest.safetensors")
    assert all(torch.equal(la[k], lb[k]) for k in la)
    assert read_metadata(second.out_dir / "latest.safetensors")["iteration"] == 4


def test_resume_errors(make_trainer) -> None:
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        make_trainer("esrgan-ft", out="empty").fit(resume=True)
    make_trainer("esrgan-ft", out="run", train__iters=1).fit()
    other = make_trainer("esrgan-ft", out="run", train__iters=2, train__lr_g=5e-4)
    with pytest.raises(ValueError, match=r"recipe differs.*train.lr_g"):
        other.fit(resume=True)


def test_interrupt_saves_the_last_finished_iteration(make_trainer, monkeypatch) -> None:
    trainer = make_trainer("esrgan-ft", out="run", train__iters=5)
    original = trainer.train_step

    def step(lr, hr, iteration):
        if iteration == 3:
            raise KeyboardInterrupt
        return original(lr, hr, iteration)

    monkeypatch.setattr(trainer, "train_step", step)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert read_metadata(trainer.out_dir / "state.safetensors")["iteration"] == 2
    resumed = make_trainer("esrgan-ft", out="run", train__iters=5)
    assert resumed.resume() == 2


def test_snapshots_every_save_every(make_trainer) -> None:
    trainer = make_trainer("certsr", train__iters=4, train__save_every=2)
    trainer.fit()
    names = sorted(p.name for p in trainer.out_dir.glob("iter_*.safetensors"))
    assert names == ["iter_0000002.safetensors", "iter_0000004.safetensors"]
    assert read_metadata(trainer.out_dir / names[0])["iteration"] == 2
