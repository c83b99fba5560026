"""Tiny recipes for the training tests: a tiny RRDBNet, a tiny discriminator, a tiny random perceptual backbone and
a few synthetic HR images in memory."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from bench.data.base import Dataset, Sample

TINY: dict[str, Any] = {
    "init": None,
    "generator.num_feat": 8,
    "generator.num_block": 1,
    "generator.num_grow_ch": 4,
    "discriminator.num_feat": 2,
    "train.gt_size": 32,
    "train.batch": 2,
    "train.iters": 2,
    "train.save_every": 0,
    "train.log_every": 1,
    "loss.backbone": "vgg16",
}


class TinyFeatures(nn.Module):
    """A two-conv random 'VGG' returning one tap (the perceptual backbone of unit tests)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.2)
                conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.conv2(torch.relu(self.conv1(x)))]


class SyntheticDataset(Dataset):
    """Three smooth textured 48x48 HR images (deterministic)."""

    name = "synthetic"
    description = "three 48x48 sinusoid textures"

    def __init__(self, size: int = 48, count: int = 3) -> None:
        yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
        self._images = {}
        for k in range(count):
            chans = [
                0.5 + 0.35 * torch.sin((7 + k) * xx + 3 * k + c) * torch.cos((5 + 2 * k) * yy - c) for c in range(3)
            ]
            self._images[f"img{k}"] = torch.stack(chans).clamp(0, 1)

    def names(self) -> list[str]:
        return list(self._images)

    def load(self, name: str) -> Sample:
        return Sample(name=name, hr=self._images[name])


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads; one thread per test, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_features() -> TinyFeatures:
    return TinyFeatures()


@pytest.fixture
def dataset() -> SyntheticDataset:
    return SyntheticDataset()


@pytest.fixture
def make_trainer(tmp_path, tiny_features, dataset):
    """``make_trainer(recipe_name, **overrides)``: a tiny trainer of a shipped recipe writing into ``tmp_path``."""
    from bench.train import build_trainer, load_recipe
    from bench.train.distributed import DistInfo

    def make(recipe: str, out: str = "run", **overrides: Any):
        merged = {**TINY, **{k.replace("__", "."): v for k, v in overrides.items()}}
        loaded = load_recipe(recipe, overrides=merged)
        return build_trainer(
            loaded, out_dir=tmp_path / out, device="cpu", features=tiny_features, dataset=dataset, dist_info=DistInfo()
        )

    return make
