"""The ``certsr`` trainer: CertSR's MRS fine-tuning of ESRGAN on medians of noisy predictions.

Paper: Chaouai & Tamaazousti, "Universal Robustness via Median Randomized Smoothing for Real-World Super-Resolution"
(CertSR, seed 001 sec. 4.2 and 5, Figure 2): from the pre-trained ESRGAN, 59k iterations of 5 images a batch; the
batch is duplicated five times -- two copies with i.i.d. Gaussian noise of sigma 0.03, two with sigma 0.2, one
clean -- "then we calculate the median of predictions associated with each standard deviation", and the loss is
computed on those medians. Inference then goes through the smoothing wrapper
(:class:`bench.methods.smoothing.MedianSmoothing`, the ``certsr`` card).

Exactly (section ``mrs``):

- ``groups``: ``[[sigma, copies], ...]``, default ``[[0.03, 2], [0.2, 2], [0.0, 1]]``; copy ``k`` of group ``g`` is
  ``lr + sigma_g * z`` with ``z ~ N(0, I)`` drawn from the iteration's generator in group then copy order, **not
  clamped** (as the smoothing wrapper's copies); sigma 0 is the clean LR.
- All copies go through the generator in one batch; per group, the pixel- and channel-wise median over its copies.
- ``median``: ``midpoint`` (default) -- the statistician's median, the mean of the two middle values for an even
  number of copies (so the median of the paper's 2 copies is their mean); ``lower`` -- ``torch.median``'s lower
  middle, the convention of the inference wrapper, which for 2 copies is their element-wise minimum (a darkening
  bias the inference with 21 copies does not have; offered for comparison).
- The ESRGAN loss (L1 + perceptual + GAN with ESRGAN's weights) on the ``len(groups) * N`` medians against the HR
  repeated per group; the discriminator sees the same medians.

Shapes: LR (N, 3, h, w) -> medians (G, N, 3, 4h, 4w) (:meth:`CertSRTrainer.mrs_outputs`).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch

from bench.train import TRAINERS
from bench.train.base import GeneratorOutput, Trainer

logger = logging.getLogger(__name__)

MEDIANS = ("midpoint", "lower")


def median(predictions: torch.Tensor, kind: str = "midpoint") -> torch.Tensor:
    """Element-wise median over the first axis: (k, ...) -> (...); ``midpoint`` averages the two middle values for
    even k, ``lower`` takes the lower one (``torch.median``). Differentiable (through the selected values)."""
    if kind not in MEDIANS:
        raise ValueError(f"median must be one of {MEDIANS}, got {kind!r}")
    k = predictions.shape[0]
    if k == 1:
        return predictions[0]
    if kind == "lower" or k % 2 == 1:
        return predictions.median(dim=0).values
    ordered = predictions.sort(dim=0).values
    return 0.5 * (ordered[k // 2 - 1] + ordered[k // 2])


@TRAINERS.register("certsr", aliases=("mrs", "mrs_finetune"))
class CertSRTrainer(Trainer):
    """MRS fine-tuning (see the module docstring)."""

    defaults: ClassVar[dict[str, Any]] = {
        "mrs": {"groups": [[0.03, 2], [0.2, 2], [0.0, 1]], "median": "midpoint"},
        "train": {"iters": 59000, "batch": 5},
    }

    def setup(self) -> None:
        m = self.config["mrs"]
        groups = []
        for item in m["groups"]:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise ValueError(f"mrs.groups items are [sigma, copies], got {item!r}")
            sigma, copies = float(item[0]), int(item[1])
            if sigma < 0 or copies < 1:
                raise ValueError(f"mrs.groups: sigma must be >= 0 and copies >= 1, got {item!r}")
            groups.append((sigma, copies))
        if not groups:
            raise ValueError("mrs.groups is empty")
        if m["median"] not in MEDIANS:
            raise ValueError(f"mrs.median must be one of {MEDIANS}, got {m['median']!r}")
        self.groups = groups
        self.median_kind = m["median"]

    def noisy_copies(self, lr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """All copies, (sum copies * N, 3, h, w), group-major: group 0 copy 0 (N images), group 0 copy 1, ..."""
        copies = []
        for sigma, count in self.groups:
            for _ in range(count):
                if sigma == 0.0:
                    copies.append(lr)
                    continue
                z = torch.randn(tuple(lr.shape), generator=generator, device=generator.device, dtype=torch.float32)
                copies.append(lr + sigma * z.to(device=lr.device, dtype=lr.dtype))
        return torch.cat(copies)

    def mrs_outputs(self, lr: torch.Tensor, generator: torch.Generator, net=None) -> torch.Tensor:
        """Per group, the median of the generator's predictions on its copies: (G, N, 3, 4h, 4w)."""
        net = self.g_train if net is None else net
        preds = net(self.noisy_copies(lr, generator))
        n = lr.shape[0]
        medians, start = [], 0
        for _sigma, count in self.groups:
            block = preds[start : start + count * n].unflatten(0, (count, n))
            medians.append(median(block, self.median_kind))
            start += count * n
        return torch.stack(medians)

    def generate(
        self, lr_in: torch.Tensor, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator
    ) -> GeneratorOutput:
        medians = self.mrs_outputs(lr_in, generator)
        target = hr.unsqueeze(0).expand(len(self.groups), *hr.shape).flatten(0, 1)
        return GeneratorOutput(medians.flatten(0, 1), target)
