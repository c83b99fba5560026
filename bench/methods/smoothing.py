"""Median randomized smoothing (MRS) of any method: the inference step of CertSR.

Paper: Z. Chaouai, M. Tamaazousti, "Universal Robustness via Median Randomized Smoothing for Real-World
Super-Resolution" (CertSR, seed 001 sec. 4), after P. Chiang et al., "Detection as Regression: Certified Object
Detection by Median Smoothing", NeurIPS 2020 (https://arxiv.org/abs/2007.03730).

Definition: for a base method ``f`` and an LR input ``x``, the smoothed output is the pixel-wise (and channel-wise)
median of ``f(x + g_1), ..., f(x + g_n)`` with ``g_i ~ N(0, sigma^2 I)`` i.i.d. in LR space (n = 21 in the paper).

Choices, and why:

* **No clamping of the noisy copies.** The smoothed function of the paper is ``f(x + G)``; the certificate
  (:mod:`bench.certify.bounds`) rests on a Gaussian shifted by the perturbation being again a Gaussian, which clamping
  to [0, 1] would break. The base model sees values slightly outside [0, 1], as Real-ESRGAN does on its own outputs.
* **Median convention.** ``torch.median`` over the sample axis: for odd n (the paper's 21) the exact middle order
  statistic; for even n the *lower* middle (rank n/2 of n, 1-based), never an average, so the output is always one
  of the predictions and gradients flow to exactly one sample per output value.
* **Clamping commutes.** The median is taken on the unclamped predictions; ``super_resolve`` clamps it to [0, 1].
  Any order statistic commutes with a non-decreasing map, so this equals the median of clamped predictions.
* **Random numbers.** The noise of copy ``i`` is one ``torch.randn`` call of shape (N, 3, h, w) on the generator, in
  copy order, so copy ``i`` gets the same noise whatever the batch size (and :func:`bench.certify.bounds.certify`
  draws its samples from the same stream). A generator on another device than the input is fine (the noise is moved).
* **Clean input** (``include_clean=True``, the paper's footnote 1): the prediction on the clean input replaces the
  last noisy copy, so n predictions stay n (odd for n = 21): ``f(x), f(x + g_1), ..., f(x + g_{n-1})``.
* **sigma = None** (or 0): no smoothing, the base output itself (the paper's "none" for clean and noisy inputs);
  tiny positive sigmas tend to the base output continuously.
* **Batching.** The n copies of the N images (n*N LR images) go through the base model in chunks of ``max_batch``
  images; large images are tiled inside each chunk (``tile``), so the noise is drawn once for the whole image and
  the smoothed function does not depend on tiling.

Input (N, 3, h, w) float32 RGB in [0, 1]; ``forward`` returns (N, 3, h*scale, w*scale) unclamped (the median of the
base's unclamped outputs), differentiable w.r.t. the input when the base is (gradient through the selected sample);
``super_resolve`` clamps to [0, 1]. Memory of a call: n*N predictions (n * N * 3 * H * W * 4 bytes) plus the
activations of one chunk.

Example::

    mrs = MedianSmoothing(base="realesrgan-x4plus", sigma=0.05, n=21)     # or a card: methods/*-mrs.yaml
    sr = mrs.super_resolve(lr, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from bench.images import check_batch
from bench.methods import ADAPTERS
from bench.methods.base import Capabilities, Method
from bench.methods.tiling import tiled_forward

logger = logging.getLogger(__name__)

DEFAULT_N = 21
# LR images per base-model call on the CPU: batching buys little there (measured in tests/benchmarks), memory is ample.
CPU_MAX_BATCH = 4
# Bytes of device memory per LR pixel of one image in one RRDBNet x4 forward (23 blocks, 64 features, float32), from
# torch.cuda.max_memory_allocated on an H100 (64x64 and 128x128 LR, batches 1 and 4): 17.4 kB in inference, 235 kB
# with the graph kept for backward (attacks, EOT); rounded up.
CUDA_BYTES_PER_LR_PIXEL = {False: 18_000, True: 240_000}
CUDA_MEMORY_FRACTION = 0.6  # of the free memory a chunk may use
MAX_AUTO_BATCH = 64


def median_of_samples(predictions: torch.Tensor) -> torch.Tensor:
    """Pixel- and channel-wise median over the first axis: (n, ...) -> (...).

    For odd n the middle order statistic; for even n the lower middle one (rank n/2, 1-based), as ``torch.median``.
    Differentiable: the gradient goes to the selected sample of each element.
    """
    if predictions.shape[0] < 1:
        raise ValueError("median of zero samples")
    return predictions.median(dim=0).values


def default_max_batch(device: torch.device, lr_pixels: int, grad: bool = False) -> int:
    """LR images per base-model call: :data:`CPU_MAX_BATCH` on CPU; on CUDA what fits in a share of the free memory.

    Args:
        device: where the base model runs.
        lr_pixels: h * w of one LR image (or tile) as the base model sees it.
        grad: whether the forward keeps its graph (attacks): about 13.5x the memory of inference.

    Returns:
        An int in [1, :data:`MAX_AUTO_BATCH`]. The CUDA estimate uses :data:`CUDA_BYTES_PER_LR_PIXEL` (RRDBNet x4, the
        largest base of the benchmark); other bases use less per pixel.
    """
    if device.type != "cuda":
        return CPU_MAX_BATCH
    free, _total = torch.cuda.mem_get_info(device)
    per_image = CUDA_BYTES_PER_LR_PIXEL[bool(grad)] * max(1, lr_pixels)
    return int(max(1, min(MAX_AUTO_BATCH, (free * CUDA_MEMORY_FRACTION) // per_image)))


def _build_base(base: str | Mapping[str, Any] | Method) -> tuple[Method, str]:
    """A base method from a card name, an ``{adapter, args}`` mapping, or an instance; with a name for provenance."""
    if isinstance(base, Method):
        return base, base.label
    if isinstance(base, Mapping):
        unknown = set(base) - {"adapter", "args"}
        if "adapter" not in base or unknown:
            raise ValueError(f"a base mapping is {{adapter: NAME, args: {{...}}}}, got keys {sorted(base)}")
        name = ADAPTERS.canonical(str(base["adapter"]))
        if name == "median_smoothing":
            raise ValueError("the base of median smoothing cannot be median smoothing itself")
        method = ADAPTERS.get(name)(**dict(base.get("args") or {}))
        return method.eval(), name
    if isinstance(base, str):
        from bench.methods.cards import build_method, load_card

        card = load_card(base)
        if card.adapter == "median_smoothing":
            raise ValueError(f"base card {base!r} is itself median smoothing; name the card of the model to smooth")
        return build_method(card, device="cpu"), card.name
    raise TypeError(f"base must be a card name, an {{adapter, args}} mapping or a Method, got {type(base).__name__}")


@ADAPTERS.register("median_smoothing", aliases=("mrs",))
class MedianSmoothing(Method):
    """Median randomized smoothing of a base method (CertSR inference, seed 001 sec. 4; see the module docstring).

    Args:
        base: the method to smooth: a card name of ``methods/`` (built with :func:`bench.methods.cards.build_method`,
            e.g. ``"realesrgan-x4plus"``), a mapping ``{adapter: NAME, args: {...}}`` of a registered adapter, or a
            :class:`Method` instance.
        sigma: standard deviation of the LR-space Gaussian noise, for images in [0, 1] (default 0.05, the paper's
            value for blur; see :data:`bench.certify.sigma.PAPER_SIGMAS`). ``None`` or 0: no smoothing.
        n: predictions whose median is taken (21, as the paper). Odd n gives the exact median (see the module doc).
        include_clean: make the clean input's prediction one of the n (the paper's footnote 1); default False.
        max_batch: LR images per base-model call; ``None``: :func:`default_max_batch` at each call.
        scale: must match the base's scale; ``None`` takes it.
        tile, tile_overlap: LR tiling of each base-model call (see :class:`bench.methods.base.Method`); the card's
            ``tile`` sets them.

    Attributes:
        capabilities: stochastic and smoothed; differentiable when the base is (the class attribute says True, the
            instance's :attr:`capabilities` and a card's :attr:`~bench.methods.cards.MethodCard.capabilities` follow
            the base, both through :meth:`declared_capabilities`).
        base_name: the card or adapter name of the base (provenance).
    """

    differentiable: ClassVar[bool] = True
    stochastic: ClassVar[bool] = True
    smoothed: ClassVar[bool] = True

    def __init__(
        self,
        base: str | Mapping[str, Any] | Method,
        sigma: float | None = 0.05,
        n: int = DEFAULT_N,
        include_clean: bool = False,
        max_batch: int | None = None,
        scale: int | None = None,
        tile: int | None = None,
        tile_overlap: int = 16,
    ) -> None:
        model, base_name = _build_base(base)
        if scale is not None and scale != model.scale:
            raise ValueError(f"scale {scale} differs from the base's scale {model.scale}")
        super().__init__(scale=model.scale, tile=tile, tile_overlap=tile_overlap)
        self.base = model
        self.base_name = base_name
        self.sigma = sigma
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        self.n = n
        self.include_clean = bool(include_clean)
        if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1):
            raise ValueError(f"max_batch must be a positive int or None, got {max_batch!r}")
        self.max_batch = max_batch
        if n % 2 == 0:
            logger.info("median smoothing with even n=%d takes the lower middle prediction", n)

    @classmethod
    def declared_capabilities(cls, base: Capabilities | None = None) -> Capabilities:
        """Stochastic and smoothed; differentiable exactly when the base is (a gradient flows through the selected
        sample of the base's outputs: what a white-box or EOT attack on the smoothed method differentiates). With
        the base unknown (``None``), the class's declaration (differentiable)."""
        differentiable = cls.differentiable if base is None else base.differentiable
        return Capabilities(differentiable=bool(differentiable), stochastic=True, smoothed=True)

    @property
    def capabilities(self) -> Capabilities:
        """:meth:`declared_capabilities` with the built base's capabilities (the rule the run's plan follows)."""
        return self.declared_capabilities(self.base.capabilities)

    # ------------------------------------------------------------------------------------------------- settings
    @property
    def sigma(self) -> float | None:
        """Noise standard deviation in LR space ([0, 1] images); ``None`` = no smoothing. Settable (sigma selection)."""
        return self._sigma

    @sigma.setter
    def sigma(self, value: float | None) -> None:
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"sigma must be a non-negative number or None, got {value!r}")
            value = float(value) if value > 0 else None
        self._sigma = value

    @property
    def smoothing(self) -> bool:
        return self._sigma is not None

    def inner(self, card: str) -> Method | None:
        """The base method when it was built from card ``card`` (the transfer-from-base surrogate), else None."""
        return self.base if self.base_name == card else None

    def settings(self) -> dict[str, Any]:
        """JSON-able settings for provenance: base, sigma, n, include_clean, median convention, noise space."""
        return {
            "base": self.base_name,
            "sigma": self.sigma,
            "n": self.n,
            "include_clean": self.include_clean,
            "median": "torch.median over samples (lower middle for even n)",
            "noise": "N(0, sigma^2) per LR pixel and channel, not clamped",
        }

    # ------------------------------------------------------------------------------------------------- sampling
    def draw_noise(self, lr: torch.Tensor, count: int, generator: torch.Generator | None) -> torch.Tensor:
        """``count`` noise tensors of ``lr``'s shape, scaled by sigma: (count, N, 3, h, w), one randn call per copy."""
        if self.sigma is None:
            raise ValueError("no noise to draw: sigma is None (smoothing off)")
        device = generator.device if generator is not None else lr.device
        draws = [torch.randn(lr.shape, generator=generator, device=device, dtype=lr.dtype) for _ in range(count)]
        noise = torch.stack(draws) if draws else lr.new_zeros((0, *lr.shape))
        return noise.to(lr.device).mul_(self.sigma)

    def run_base(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The base model on a batch of LR images, in chunks of ``max_batch`` and tiled when larger than ``tile``."""
        h, w = lr.shape[-2:]
        tiled = self.tile is not None and max(h, w) > self.tile
        if self.max_batch is not None:
            chunk = self.max_batch
        else:
            side = (min(h, self.tile), min(w, self.tile)) if tiled else (h, w)
            chunk = default_max_batch(lr.device, side[0] * side[1], grad=torch.is_grad_enabled() and lr.requires_grad)
        outs = []
        for part in torch.split(lr, chunk):
            if tiled:
                outs.append(
                    tiled_forward(lambda t: self.base(t, generator), part, self.scale, self.tile, self.tile_overlap)
                )
            else:
                outs.append(self.base(part, generator))
        return torch.cat(outs)

    def noisy_predictions(self, lr: torch.Tensor, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Base predictions on ``count`` noisy copies: (count, N, 3, H, W), unclamped; copy i uses the i-th draw."""
        noise = self.draw_noise(lr, count, generator)
        noisy = (lr.unsqueeze(0) + noise).flatten(0, 1)
        out = self.run_base(noisy, generator)
        return out.unflatten(0, (count, lr.shape[0]))

    def predictions(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The n predictions whose median is the output: (n, N, 3, H, W), unclamped.

        Copy order: the noisy copies 1..n (or 1..n-1 then the clean input, with ``include_clean``).
        """
        if self.sigma is None:
            return self.base(lr, generator).unsqueeze(0)
        if not self.include_clean:
            return self.noisy_predictions(lr, self.n, generator)
        noise = self.draw_noise(lr, self.n - 1, generator)
        copies = torch.cat([lr.unsqueeze(0) + noise, lr.unsqueeze(0)]).flatten(0, 1)
        return self.run_base(copies, generator).unflatten(0, (self.n, lr.shape[0]))

    # ------------------------------------------------------------------------------------------------- inference
    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, 3, h, w) in [0, 1] -> (N, 3, h*scale, w*scale): the median of :meth:`predictions`, unclamped."""
        if self.sigma is None:
            h, w = lr.shape[-2:]
            if self.tile is not None and max(h, w) > self.tile:
                return self.run_base(lr, generator)
            return self.base(lr, generator)
        return median_of_samples(self.predictions(lr, generator))

    @torch.no_grad()
    def super_resolve(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Inference: eval mode, no gradients, clamped to [0, 1]. Tiling happens per base call inside :meth:`forward`
        (the noise is drawn for the whole image), never around the smoothing."""
        check_batch(lr, "lr")
        self.eval()
        return self(lr, generator).clamp(0, 1)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, base={self.base_name!r}, sigma={self.sigma}, n={self.n}, "
            f"include_clean={self.include_clean}, max_batch={self.max_batch}"
        )
