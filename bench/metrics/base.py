"""The metric interface and its spec.

Every metric value the benchmark stores carries the :class:`MetricSpec` of the metric that produced it, so a table
can always say what a number is (colour space, crop border, backbone and version, input range).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import torch


@dataclass(frozen=True)
class MetricSpec:
    """What a metric value means.

    Attributes:
        name: registered name, e.g. ``"psnr_y"``.
        full_reference: needs the HR ground truth.
        higher_is_better: sort direction on the leaderboard.
        color_space: ``"rgb"``, ``"y"`` (BT.601 YCbCr Y with MATLAB offsets, [16, 235]) or ``"grey"``.
        crop_border: pixels removed on each side before scoring (0 = none).
        input_range: the range the underlying computation sees, e.g. ``"[0,255] uint8-rounded"``, ``"[-1,1]"``.
        backbone: network and weights for learned metrics, e.g. ``"alexnet (torchvision ImageNet)"``.
        version: version of learned heads or of the reference algorithm, e.g. ``"lpips v0.1"``.
        reference: where the definition comes from (paper or reference implementation).
        extra: anything else that changes the number (e.g. LR-PSNR variant, samples).
    """

    name: str
    full_reference: bool
    higher_is_better: bool
    color_space: str = "rgb"
    crop_border: int = 0
    input_range: str = "[0,1]"
    backbone: str | None = None
    version: str | None = None
    reference: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for a table footnote: ``psnr_y: Y (BT.601), crop 4, [0,255] uint8-rounded, higher is better``."""
        parts = [self.color_space.upper() if self.color_space == "rgb" else self.color_space]
        if self.crop_border:
            parts.append(f"crop {self.crop_border}")
        parts.append(f"input {self.input_range}")
        if self.backbone:
            parts.append(self.backbone)
        if self.version:
            parts.append(self.version)
        parts.extend(f"{k}={v}" for k, v in sorted(self.extra.items()))
        parts.append("higher is better" if self.higher_is_better else "lower is better")
        return f"{self.name}: " + ", ".join(parts)


class Metric(torch.nn.Module):
    """Base class: ``metric(sr, hr=None, lr=None) -> (N,)`` scores, one per image of the batch.

    Subclasses set :attr:`spec` (built in ``__init__`` when it depends on arguments) and implement ``forward``.
    Inputs follow the package convention: (N, 3, H, W) float in [0, 1] on any device; ``hr`` has the size of ``sr``.
    A metric that needs weights loads them in ``__init__`` (from the asset cache) so a batch call is pure compute.

    Class attributes (read without building the metric):
        needs_weights: asset names the metric loads.
        default_crop: the ``crop_border`` a matrix gives the metric when it names none: ``"scale"`` (the SR
            papers' convention for PSNR/SSIM, ``scale`` pixels removed on each side) or ``0`` (default); see
            :meth:`default_crop_border`. The matrix loader asks the class, never the metric's name.
    """

    spec: MetricSpec
    needs_weights: ClassVar[tuple[str, ...]] = ()
    default_crop: ClassVar[Literal["scale", 0]] = 0

    @classmethod
    def static_spec(cls, crop_border: int = 0) -> MetricSpec | None:
        """The spec known without building the metric (a backend not installed here), else ``None``: build it."""
        return None

    @classmethod
    def default_crop_border(cls, scale: int) -> int:
        """The ``crop_border`` of this metric when a matrix names none: ``scale`` or 0 (:attr:`default_crop`)."""
        if cls.default_crop == "scale":
            return int(scale)
        if cls.default_crop == 0:
            return 0
        raise ValueError(f"{cls.__name__}.default_crop must be 'scale' or 0, got {cls.default_crop!r}")

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return self.spec.describe()


def crop_border(x: torch.Tensor, border: int) -> torch.Tensor:
    """Remove ``border`` pixels on each side of (..., H, W)."""
    if border <= 0:
        return x
    return x[..., border:-border, border:-border]


@contextmanager
def serial_on_cpu(x: torch.Tensor) -> Iterator[None]:
    """Run the enclosed torch ops on one CPU thread when ``x`` is on the CPU (no effect on other devices).

    The pixel metrics (PSNR, SSIM, NIQE's filtering) are a few dozen memory-bound element-wise passes over one image:
    splitting each pass across threads buys little, and on a shared or oversubscribed CPU every pass waits for the
    slowest thread, which made them 5-20x slower than the same formula in single-threaded numpy. The previous
    thread count is restored on exit, also on error. Values do not depend on it.
    """
    if x.device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
