"""Paired training patches: random HR crops from a dataset, the LR made on the fly with MATLAB bicubic.

As BasicSR's ``PairedImageDataset`` with ``use_hflip`` / ``use_rot`` (ESRGAN's training), except that the LR is
synthesised from each HR crop (``bench.data.imresize.bicubic_downsample``, then rounded to the 8-bit grid as a saved
PNG would be) instead of being read from a pre-made LR folder; so any folder of HR images trains, and the LR of a
crop never depends on pixels outside it. (A crop of a pre-made LR of the whole image differs from this only within
2 LR pixels of the crop's border, the reach of the antialiased x4 kernel.)

Randomness: every draw comes from the ``torch.Generator`` passed to :meth:`PatchSampler.sample` -- the trainer seeds
one per (seed, rank, iteration), so a run resumed at iteration ``t`` draws exactly the patches of an uninterrupted run,
and each DDP rank draws its own patches. Per patch: an image index (uniform), a crop position (uniform), a horizontal
flip, a vertical flip and a transpose (each with probability 1/2 when enabled).

Decoded images are kept in memory as uint8 up to ``cache_mb`` (least recently used dropped first), so small sets
(the embedded images, DIV2K's 800 sub-images) are decoded once.

Output: ``lr`` (B, 3, gt/scale, gt/scale) and ``hr`` (B, 3, gt, gt), float32 in [0, 1], on ``device``.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from collections.abc import Iterator

import torch

from bench.data.base import Dataset
from bench.data.imresize import bicubic_downsample
from bench.images import quantize
from bench.seeding import make_generator, seed_from

logger = logging.getLogger(__name__)


class PatchSampler:
    """Random paired patches from the HR images of ``dataset`` (see the module docstring).

    Args:
        dataset: a :class:`bench.data.Dataset` (``build_dataset("embedded-train")``, a folder dataset, ...).
        gt_size: HR patch side (128 for ESRGAN; a multiple of ``scale``).
        batch: patches per call.
        scale: SR factor (4).
        use_hflip: random horizontal and vertical flips (True).
        use_rot: random transposition, which with the flips gives the 8 rotations/reflections (True).
        quantize_lr: round the LR to the 8-bit grid (True, as LR files are).
        cache_mb: memory for decoded images (2048 MB).
        device: where the batch goes.
    """

    def __init__(
        self,
        dataset: Dataset,
        gt_size: int,
        batch: int,
        scale: int = 4,
        use_hflip: bool = True,
        use_rot: bool = True,
        quantize_lr: bool = True,
        cache_mb: float = 2048,
        device: torch.device | str = "cpu",
    ) -> None:
        if gt_size <= 0 or gt_size % scale:
            raise ValueError(f"gt_size must be a positive multiple of the scale {scale}, got {gt_size}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.dataset = dataset
        self.names = list(dataset.names())
        if not self.names:
            raise ValueError(f"dataset {getattr(dataset, 'name', dataset)!r} has no images")
        self.gt_size = int(gt_size)
        self.batch = int(batch)
        self.scale = int(scale)
        self.use_hflip = bool(use_hflip)
        self.use_rot = bool(use_rot)
        self.quantize_lr = bool(quantize_lr)
        self.cache_bytes = int(cache_mb * 2**20)
        self.device = torch.device(device)
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cached_bytes = 0

    def on_device(self, device: torch.device | str) -> PatchSampler:
        """A copy that puts its batches on ``device``, with its own (empty) image cache; draws are unchanged."""
        other = copy.copy(self)
        other.device = torch.device(device)
        other._cache = OrderedDict()
        other._cached_bytes = 0
        return other

    def describe(self) -> dict:
        """What the patches are (JSON-able, stored with checkpoints)."""
        return {
            "dataset": getattr(self.dataset, "name", None) or type(self.dataset).__name__,
            "description": getattr(self.dataset, "description", ""),
            "images": len(self.names),
            "gt_size": self.gt_size,
            "scale": self.scale,
            "lr": "MATLAB bicubic of each HR crop" + (", 8-bit rounded" if self.quantize_lr else ""),
            "augment": {"hflip": self.use_hflip, "rot": self.use_rot},
        }

    def image(self, name: str) -> torch.Tensor:
        """The HR image ``name`` as a (3, H, W) uint8 tensor (cached)."""
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        hr = self.dataset.load(name).hr
        img = hr.clamp(0, 1).mul(255.0).add(0.5).floor().to(torch.uint8).contiguous()
        if min(img.shape[-2:]) < self.gt_size:
            raise ValueError(
                f"image {name!r} of {getattr(self.dataset, 'name', 'the dataset')} is {tuple(img.shape[-2:])}, "
                f"smaller than the patch size {self.gt_size}; lower train.gt_size or remove the image"
            )
        self._cache[name] = img
        self._cached_bytes += img.numel()
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= dropped.numel()
        return img

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch ``(lr, hr)`` drawn from ``generator`` (see the module docstring)."""
        patches = []
        for _ in range(self.batch):
            index = int(torch.randint(len(self.names), (1,), generator=generator))
            img = self.image(self.names[index])
            h, w = img.shape[-2:]
            top = int(torch.randint(h - self.gt_size + 1, (1,), generator=generator))
            left = int(torch.randint(w - self.gt_size + 1, (1,), generator=generator))
            patch = img[:, top : top + self.gt_size, left : left + self.gt_size]
            flips = torch.rand(3, generator=generator)
            if self.use_hflip and flips[0] < 0.5:
                patch = patch.flip(-1)
            if self.use_hflip and flips[1] < 0.5:
                patch = patch.flip(-2)
            if self.use_rot and flips[2] < 0.5:
                patch = patch.transpose(-1, -2)
            patches.append(patch)
        hr = torch.stack(patches).to(self.device).float().div_(255.0)
        lr = bicubic_downsample(hr, self.scale).clamp_(0.0, 1.0)
        if self.quantize_lr:
            lr = quantize(lr)
        return lr.contiguous(), hr.contiguous()


class IterationBatches(torch.utils.data.Dataset):
    """Map-style view of a run's batches: item ``i`` is the batch of iteration ``first + i``.

    The batch of iteration ``t`` on rank ``r`` is ``sampler.sample(make_generator(seed_from(seed, "data", r, t)))``,
    the same draw as the trainer's ``rng("data", t)``, so batches do not depend on which process makes them, on the
    number of workers or on where a resumed run starts.
    """

    def __init__(self, sampler: PatchSampler, seed: int, rank: int, first: int, last: int) -> None:
        self.sampler, self.seed, self.rank, self.first, self.last = sampler, seed, rank, first, last

    def __len__(self) -> int:
        return max(0, self.last - self.first + 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"iteration index {index} outside 0..{len(self) - 1}")
        iteration = self.first + index
        return self.sampler.sample(make_generator(seed_from(self.seed, "data", self.rank, iteration)))


def iteration_batches(
    sampler: PatchSampler,
    seed: int,
    rank: int,
    first: int,
    last: int,
    *,
    workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The ``(lr, hr)`` batches of iterations ``first .. last`` (inclusive), in order, on the sampler's device.

    With ``workers == 0`` they are made in this process, on the sampler's device (the CPU path). With ``workers > 0`` a
    ``DataLoader`` makes them on the CPU in ``workers`` processes (two batches ahead each), in pinned memory when
    ``pin_memory``, and they are copied to the device asynchronously. On the CPU both give identical batches; on CUDA
    the LR of the worker path is the CPU's bicubic (equal to the CUDA one to float32 round-off before 8-bit rounding).
    """
    dataset = IterationBatches(sampler, seed, rank, first, last)
    if workers == 0:
        for index in range(len(dataset)):
            yield dataset[index]
        return
    device = sampler.device
    dataset.sampler = sampler.on_device("cpu")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin_memory, prefetch_factor=2
    )
    for lr, hr in loader:
        yield lr.to(device, non_blocking=True), hr.to(device, non_blocking=True)
