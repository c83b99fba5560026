"""LPIPS v0.1 (``lpips_alex``, alias ``lpips``; ``lpips_vgg``), a native implementation with no torchvision.

Paper: R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric", CVPR 2018. Reference implementation: the authors' ``lpips`` package, ``LPIPS(net=..., version
='0.1')`` called with ``normalize=True``.

Computation: inputs in [0, 1] mapped to [-1, 1] (``2x - 1``, no 8-bit rounding, so the metric stays differentiable),
the scaling layer ``(x - shift) / scale`` with shift (-0.030, -0.088, -0.188) and scale (0.458, 0.448, 0.450), the
backbone's five taps (AlexNet relu1..relu5 or VGG16 relu1_2..relu5_3), each unit-normalised over channels
(``f / (||f||_2 + 1e-10)``), squared difference, a 1x1 linear head without bias per tap (v0.1 weights; dropout is off
at evaluation), spatial mean, sum over the five taps. ``lpips_map`` instead upsamples each tap's map bilinearly
(align_corners=False) to the input size and sums them, as ``LPIPS(spatial=True)``; its mean is close to, not equal to,
the scalar value.

Weights (backbone = torchvision's ImageNet weights, heads = LPIPS v0.1) come from the asset ``lpips-alex`` /
``lpips-vgg`` through ``bench.assets.load_state_dict``; key layout ``conv1.weight`` .. ``conv5.bias`` (AlexNet) or
``conv1.weight`` .. ``conv13.bias`` (VGG16, network order), OIHW float32, and ``lin0.weight`` .. ``lin4.weight`` of
shape (1, C, 1, 1). A state dict can also be passed directly (``weights=``), and ``pretrained=False`` gives random
weights for shape and speed tests (its spec says so).

Input: ``sr``, ``hr`` (N, 3, H, W) float in [0, 1], same size, at least 31x31 (AlexNet) or 16x16 (VGG16) after the
crop. Output:
(N,) float32 >= 0 on the inputs' device, lower is better; gradients flow to both inputs (the weights are frozen).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from bench.archs.alexnet import AlexNetFeatures
from bench.archs.vgg import VGG16Features
from bench.metrics import METRICS
from bench.metrics.base import Metric, MetricSpec
from bench.metrics.psnr import check_crop_border, paired_inputs

logger = logging.getLogger(__name__)

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10


def normalize_channels(feat: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Unit-normalise (N, C, H, W) features over C: ``f / (||f||_2 + eps)``.

    ``vector_norm`` has a zero (not NaN) gradient where a whole channel vector is zero, which happens on dead ReLUs.
    """
    return feat / (torch.linalg.vector_norm(feat, dim=1, keepdim=True) + eps)


class LPIPS(Metric):
    """LPIPS v0.1 distance; subclasses pick the backbone (:attr:`net`).

    Args:
        crop_border: pixels removed on each side before scoring (default 0).
        weights: a state dict in the asset layout (see the module doc); ``None`` loads the asset.
        pretrained: with ``weights=None``, ``False`` keeps random weights (tests and benchmarks only).
    """

    net: ClassVar[str] = ""
    min_size: ClassVar[int] = 1
    asset: ClassVar[str] = ""
    backbone_desc: ClassVar[str] = ""

    def __init__(
        self, crop_border: int = 0, weights: Mapping[str, torch.Tensor] | None = None, pretrained: bool = True
    ) -> None:
        super().__init__()
        self.crop_border = check_crop_border(crop_border)
        self.backbone = self._make_backbone()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in self.backbone.channels)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        if weights is None and pretrained:
            from bench.assets import load_state_dict

            weights = load_state_dict(self.asset)
            source = f"asset {self.asset}"
        elif weights is None:
            for lin in self.lins:
                nn.init.uniform_(lin.weight, 0.0, 1.0 / lin.in_channels)
            source = "random (not pretrained)"
            logger.debug("%s built with random weights: its values are meaningless", type(self).__name__)
        else:
            source = "given state dict"
        if weights is not None:
            self.load_lpips_weights(weights)
        # channels_last: the oneDNN (CPU) and cuDNN convolutions are faster in NHWC, and the unit normalisation over
        # channels becomes a contiguous reduction; the values agree with NCHW to float32 round-off
        self.to(memory_format=torch.channels_last)
        self.requires_grad_(False)
        self.eval()
        self.spec = MetricSpec(
            name=f"lpips_{self.net}",
            full_reference=True,
            higher_is_better=False,
            color_space="rgb",
            crop_border=self.crop_border,
            input_range="[0,1] mapped to [-1,1] (normalize=True), not rounded",
            backbone=self.backbone_desc,
            version="lpips v0.1 linear heads",
            reference="Zhang et al. CVPR 2018; official lpips package, LPIPS(net, version='0.1'), spatial mean",
            extra={} if source.startswith(("asset", "given")) else {"weights": source},
        )

    def _make_backbone(self) -> nn.Module:
        raise NotImplementedError

    def backbone_key_map(self) -> dict[str, str]:
        """Asset key -> backbone parameter name (identity for AlexNet; ``conv7.bias`` -> ``conv3_3.bias`` for VGG)."""
        return {k: k for k in self.backbone.state_dict()}

    def load_lpips_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load backbone convs and linear heads from the asset layout; ``KeyError``/``ValueError`` on any mismatch."""
        key_map = self.backbone_key_map()
        own = self.backbone.state_dict()
        expected = {asset_key: own[key] for asset_key, key in key_map.items()}
        expected.update({f"lin{i}.weight": lin.weight for i, lin in enumerate(self.lins)})
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        if missing or unexpected:
            raise KeyError(f"lpips_{self.net} weights: missing {missing}, unexpected {unexpected}")
        for key, target in expected.items():
            value = state_dict[key]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(
                    f"lpips_{self.net} weights: {key} has shape {tuple(value.shape)}, expected {tuple(target.shape)}"
                )
        with torch.no_grad():
            self.backbone.load_state_dict({key: state_dict[asset_key] for asset_key, key in key_map.items()})
            for i, lin in enumerate(self.lins):
                lin.weight.copy_(state_dict[f"lin{i}.weight"])

    def asset_state_dict(self) -> dict[str, torch.Tensor]:
        """The metric's weights in the asset layout (the inverse of :meth:`load_lpips_weights`), detached copies."""
        own = self.backbone.state_dict()
        key_map = self.backbone_key_map().items()
        out = {asset_key: own[key].detach().clone(memory_format=torch.contiguous_format) for asset_key, key in key_map}
        out.update(
            {
                f"lin{i}.weight": lin.weight.detach().clone(memory_format=torch.contiguous_format)
                for i, lin in enumerate(self.lins)
            }
        )
        return out

    def layer_distances(self, sr: torch.Tensor, hr: torch.Tensor) -> list[torch.Tensor]:
        """Per-tap distance maps (N, 1, h_l, w_l) of an already validated and cropped pair in [0, 1]."""
        if min(sr.shape[-2:]) < self.min_size:
            raise ValueError(
                f"lpips_{self.net} needs at least {self.min_size}x{self.min_size} pixels, got {tuple(sr.shape[-2:])}"
            )
        dtype = self.shift.dtype
        a = ((sr.to(dtype) * 2.0 - 1.0) - self.shift) / self.scale
        b = ((hr.to(dtype) * 2.0 - 1.0) - self.shift) / self.scale
        feats = self.backbone(torch.cat([a, b], dim=0).contiguous(memory_format=torch.channels_last))
        n = sr.shape[0]
        out = []
        for feat, lin in zip(feats, self.lins, strict=True):
            diff = (normalize_channels(feat[:n]) - normalize_channels(feat[n:])).square()
            out.append(lin(diff))
        return out

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) pair in [0, 1] -> (N,) float32 LPIPS on the inputs' device (differentiable)."""
        a, b = paired_inputs(self.spec.name, sr, hr, self.crop_border)
        return sum(d.mean(dim=(1, 2, 3)) for d in self.layer_distances(a, b))

    def lpips_map(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Spatial LPIPS: (N, 3, H, W) pair -> (N, 1, H', W') map, H', W' the size after ``crop_border``.

        Each tap's map is upsampled bilinearly (align_corners=False) to the input size, then the five are summed.
        """
        a, b = paired_inputs(self.spec.name, sr, hr, self.crop_border)
        size = a.shape[-2:]
        return sum(
            F.interpolate(d, size=size, mode="bilinear", align_corners=False) for d in self.layer_distances(a, b)
        )


@METRICS.register("lpips_alex", aliases=("lpips",))
class LPIPSAlex(LPIPS):
    """LPIPS v0.1 with the AlexNet backbone (torchvision ImageNet weights), the SR papers' LPIPS."""

    net = "alex"
    min_size = 31
    asset = "lpips-alex"
    backbone_desc = "alexnet (torchvision ImageNet weights)"
    needs_weights = ("lpips-alex",)

    def _make_backbone(self) -> nn.Module:
        return AlexNetFeatures()


@METRICS.register("lpips_vgg")
class LPIPSVGG(LPIPS):
    """LPIPS v0.1 with the VGG16 backbone (torchvision ImageNet weights)."""

    net = "vgg"
    min_size = 16
    asset = "lpips-vgg"
    backbone_desc = "vgg16 (torchvision ImageNet weights)"
    needs_weights = ("lpips-vgg",)

    def _make_backbone(self) -> nn.Module:
        return VGG16Features()

    def backbone_key_map(self) -> dict[str, str]:
        convs = [k.rsplit(".", 1)[0] for k in self.backbone.state_dict() if k.endswith(".weight")]
        return {f"conv{i}.{p}": f"{name}.{p}" for i, name in enumerate(convs, start=1) for p in ("weight", "bias")}


def lpips_map(sr: torch.Tensor, hr: torch.Tensor, metric: LPIPS | None = None) -> torch.Tensor:
    """Spatial LPIPS map (N, 1, H, W) of a pair; builds ``lpips_alex`` (loading its asset) when ``metric`` is None.

    Pass a metric built once when calling this in a loop (the NTIRE 2021 diversity score calls it per sample).
    """
    if metric is None:
        metric = LPIPSAlex().to(sr.device)
    return metric.lpips_map(sr, hr)
