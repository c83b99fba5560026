"""The metric interface and its spec.

Every metric value the benchmark stores carries the :class:`MetricSpec` of the metric that produced it, so a table
can always say what a number is (colour space, crop border, backbone and version, input range).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import torch

#: What a metric measures (:attr:`MetricSpec.kind`), the axis beside ``full_reference`` (what it needs):
#:
#: * ``quality``: the SR image's fidelity to the HR (PSNR, SSIM, LPIPS) or, without a reference, its perceptual
#:   quality (NIQE, BRISQUE, PIQE, NRQM, PI) -- the metrics the leaderboards and the no-reference board rank by;
#: * ``consistency``: the SR's agreement with the low resolution, ``imresize(SR, 1/s)`` against the LR input
#:   (``lr_psnr_input``, needs no HR) or against ``imresize(HR, 1/s)`` (``lr_psnr``): a sanity constraint (the NTIRE
#:   2021 rule is >= 45 dB), not an image-quality score -- a blurry SR is perfectly consistent;
#: * ``diversity``: the spread of several SR samples of one image (the NTIRE 2021 diversity score and its parts).
METRIC_KINDS = ("quality", "consistency", "diversity")
DEFAULT_KIND = "quality"
#: Spec fields that label a value without changing it: a stored spec that differs from today's in these only is
#: relabelled in place by the runner, never recomputed (:func:`bench.runner.stages.rescore.relabel`).
LABEL_FIELDS = ("kind",)


def spec_kind(spec: Mapping[str, Any]) -> str:
    """The ``kind`` of a stored spec (a dict); absent means :data:`DEFAULT_KIND` (see :meth:`MetricSpec.as_dict`)."""
    return str(spec.get("kind") or DEFAULT_KIND)


def is_perceptual_no_reference(spec: Mapping[str, Any]) -> bool:
    """Whether a stored spec is a no-reference *quality* metric (NIQE, BRISQUE, ...): it needs no HR and its kind is
    ``quality`` -- not a consistency measure such as ``lr_psnr_input``, which needs no HR either."""
    return not spec.get("full_reference", True) and spec_kind(spec) == DEFAULT_KIND


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
        kind: what it measures, one of :data:`METRIC_KINDS` (default ``quality``); with ``full_reference`` it decides
            where a report groups the metric (the no-reference board takes ``quality`` metrics only).
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
    kind: str = DEFAULT_KIND

    def __post_init__(self) -> None:
        if self.kind not in METRIC_KINDS:
            raise ValueError(f"metric {self.name}: kind must be one of {METRIC_KINDS}, got {self.kind!r}")

    def as_dict(self) -> dict[str, Any]:
        """The spec as stored with every value. ``kind`` is left out when it is the default (``quality``), so the
        specs stored before the field existed still equal today's (a spec is its metric's sub-key in a stored cell:
        a different dict would recompute the metric)."""
        out = asdict(self)
        if out["kind"] == DEFAULT_KIND:
            del out["kind"]
        return out

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
        if self.kind != DEFAULT_KIND:
            parts.append(f"{self.kind} measure")
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
