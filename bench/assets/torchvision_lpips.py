"""LPIPS weights from their official files: a torchvision ImageNet backbone ``.pth`` plus an LPIPS v0.1 head ``.pth``.

- Backbone: ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth`` (download.pytorch.org), keys ``features.N.weight``;
  the convolutions are ``features.{0,3,6,8,10}`` (AlexNet) and ``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}``
  (VGG16), renamed ``conv1``... in that order.
- Head: ``lpips/weights/v0.1/{alex,vgg}.pth`` (richzhang/PerceptualSimilarity, also in the ``lpips`` wheel), keys
  ``lin{i}.model.1.weight`` (``model.0`` is the dropout) of shape (1, C, 1, 1), renamed ``lin{i}.weight``.

Both are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import re

import torch

from bench.assets import CONVERTERS
from bench.assets.base import Converter
from bench.assets.checkpoint import load_checkpoint
from bench.assets.errors import ConversionError

FEATURE_CONVS = {
    "alex": (0, 3, 6, 8, 10),
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}
_HEAD_KEY = re.compile(r"^lin(\d)\.model\.[01]\.weight$")


def convert_torchvision_lpips(
    backbone: dict[str, torch.Tensor], head: dict[str, torch.Tensor], net: str
) -> dict[str, torch.Tensor]:
    """Rename torchvision ``features`` convs and LPIPS heads to ``conv{i}`` / ``lin{i}`` (float32)."""
    if net not in FEATURE_CONVS:
        raise ConversionError(f"unknown LPIPS net {net!r}; known: {sorted(FEATURE_CONVS)}")
    out: dict[str, torch.Tensor] = {}
    for i, idx in enumerate(FEATURE_CONVS[net], start=1):
        for p in ("weight", "bias"):
            key = f"features.{idx}.{p}"
            if key not in backbone:
                raise ConversionError(f"backbone has no {key!r}: not a torchvision {net} checkpoint")
            out[f"conv{i}.{p}"] = backbone[key].float().contiguous()
    for key, value in head.items():
        m = _HEAD_KEY.match(key)
        if m is None:
            raise ConversionError(f"unexpected key {key!r} in the LPIPS head file")
        out[f"lin{m.group(1)}.weight"] = value.float().contiguous()
    return out


@CONVERTERS.register("torchvision-lpips")
class TorchvisionLpips(Converter):
    """The official LPIPS pair: torchvision backbone (role ``backbone``) + v0.1 linear heads (role ``head``)."""

    roles = ("backbone", "head")
    kinds = ("lpips",)

    def convert(self, files, spec):
        net = str(spec.arch.get("net", "alex"))
        return convert_torchvision_lpips(load_checkpoint(files["backbone"]), load_checkpoint(files["head"]), net)
