"""The training machinery every recipe shares: ESRGAN fine-tuning with hooks for the robust variants.

Paper: Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks", ECCVW 2018
(https://arxiv.org/abs/1809.00219), as BasicSR's ``ESRGANModel`` trains it (``options/train/ESRGAN/
train_ESRGAN_x4.yml``); the fine-tuning settings of CertSR (seed 001 sec. 5): Adam (0.9, 0.99), lr 1e-4, 18k
iterations, batch 16.

One iteration (:meth:`Trainer.train_step`) on a batch ``(lr, hr)`` of :class:`bench.train.data.PatchSampler`:

1. ``lr_in = make_inputs(lr, hr)`` -- the recipe's hook: the LR itself (ESRGAN), adversarial examples against the
   current generator (AD-L-*), the output of a perturbed degradation network (AND);
2. generator step: ``sr, target = generate(lr_in)`` (hook: CertSR's medians, stochastic SR's pairs of samples); loss
   ``alpha * (content(sr, target) + gan_weight * RaGAN_G) + extra`` with content = ``pixel_weight * L1 +
   perceptual_weight * perceptual`` (:mod:`bench.train.losses`; ESRGAN: 1e-2, 1.0, GAN 5e-3); the discriminator is
   frozen during this step; Adam on the generator;
3. discriminator step (when ``gan_weight > 0``): RaGAN on ``D(target)`` vs ``D(sr.detach())``; Adam on D;
4. EMA: ``ema = decay * ema + (1 - decay) * generator`` (decay 0.999; ``null`` keeps no EMA).

The learning rates are halved (``gamma``) at each of ``milestones``. Randomness of iteration ``t`` on rank ``r`` comes
from generators seeded by ``(seed, purpose, r, t)`` (:meth:`Trainer.rng`), never from the global RNG, so resuming
(:meth:`Trainer.resume`) continues bit for bit; model initialisation uses a forked global RNG seeded from the recipe
seed, the same on every rank.

Checkpoints (:mod:`bench.train.state`): ``latest.safetensors`` (EMA generator, BasicSR names -- what a method card
loads), ``iter_NNNNNNN.safetensors`` every ``save_every``, ``state.safetensors`` (everything for ``--resume``), each
with the recipe, data, iteration, seed and git commit in its metadata.

Images: float32 NCHW RGB in [0, 1]; generator outputs are unclamped. The device is a parameter.

Length (over ~500 lines): :class:`Trainer` is the base every recipe subclasses, and its hooks (``make_inputs``,
``generate``, ``generator_losses``) and the step, EMA, checkpoint and resume code read the same optimiser, EMA and RNG
state; keeping them in one class lets a recipe override one hook and see the others it interacts with. The pieces
with no shared state already live elsewhere (:mod:`bench.train.losses`, :mod:`bench.train.state`,
:mod:`bench.train.data`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from bench.methods.base import Method
from bench.paths import git_revision
from bench.seeding import make_generator, seed_from
from bench.train import distributed, state
from bench.train.losses import content_loss, load_backbone, ragan_discriminator_loss, ragan_generator_loss

logger = logging.getLogger(__name__)

BASE_DEFAULTS: dict[str, Any] = {
    "trainer": "",
    "description": "",
    "paper": {},
    "notes": "",
    "init": None,  # generator checkpoint: asset name or path; None = random initialisation
    "data": None,  # dataset name or folder of HR images
    "seed": 0,
    "scale": 4,
    "generator": {"num_feat": 64, "num_block": 23, "num_grow_ch": 32},
    "discriminator": {"num_feat": 64},
    "train": {
        "iters": 18000,
        "batch": 16,  # global batch (split over DDP ranks)
        "gt_size": 128,  # HR patch side (the discriminator's input size)
        "lr_g": 1e-4,
        "lr_d": 1e-4,
        "betas": [0.9, 0.99],
        "milestones": [],
        "gamma": 0.5,
        "ema_decay": 0.999,
        "save_every": 5000,
        "log_every": 100,
        "use_hflip": True,
        "use_rot": True,
        "quantize_lr": True,
        "cache_mb": 2048,
        # speed (None = automatic: on for CUDA, off on the CPU, which keeps CPU runs as they were)
        "workers": None,  # DataLoader worker processes making the batches; None = min(4, CPUs) on CUDA, 0 on CPU
        "amp": None,  # bf16 autocast of the forward passes and losses (no loss scaling needed for bf16)
        "fused_adam": None,  # torch.optim.Adam(fused=True)
        "channels_last": None,  # channels_last weights and batches
    },
    "loss": {"pixel_weight": 1e-2, "perceptual_weight": 1.0, "gan_weight": 5e-3, "backbone": "auto"},
}
# keys a resumed run may change
RESUMABLE_CHANGES = frozenset({"train.iters", "train.save_every", "train.log_every", "train.cache_mb"})


class GeneratorMethod(Method):
    """The generator being trained, seen as a :class:`Method` by the attacks (differentiable, deterministic)."""

    differentiable: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False

    def __init__(self, net: nn.Module, scale: int = 4) -> None:
        super().__init__(scale=scale)
        self.net = net

    def forward(self, lr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.net(lr)


@dataclass
class GeneratorOutput:
    """What :meth:`Trainer.generate` returns: the outputs the losses compare with ``target``.

    Attributes:
        sr: (M, 3, H, W) generator outputs (with the graph), M a multiple of the batch.
        target: (M, 3, H, W) what ``sr`` should be (the HR, repeated as needed).
        extra: a scalar added to the generator loss (LR consistency, diversity), or None.
        logs: floats to log.
    """

    sr: torch.Tensor
    target: torch.Tensor
    extra: torch.Tensor | None = None
    logs: dict[str, float] = field(default_factory=dict)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> ``{"a.b": value}``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def lr_at(base: float, milestones: list[int], gamma: float, iteration: int) -> float:
    """MultiStepLR as a function: ``base * gamma ** (number of milestones <= iteration)``."""
    return base * gamma ** sum(1 for m in milestones if iteration > m)


@dataclass(frozen=True)
class SpeedSettings:
    """How fast a run goes, resolved from ``train.workers/amp/fused_adam/channels_last`` and the device.

    ``None`` in the recipe means automatic: on CUDA 4 workers (at most the CPU count) with pinned memory, bf16
    autocast, fused Adam and channels_last; on the CPU none of them (the batches and the numbers stay as they were).
    """

    workers: int
    pin_memory: bool
    amp: bool
    fused_adam: bool
    channels_last: bool

    @classmethod
    def resolve(cls, train: Mapping[str, Any], device: torch.device) -> SpeedSettings:
        cuda = device.type == "cuda"

        def flag(key: str) -> bool:
            value = train.get(key)
            if value is None:
                return cuda
            if not isinstance(value, bool):
                raise ValueError(f"train.{key} must be true, false or null (automatic), got {value!r}")
            return value

        workers = train.get("workers")
        if workers is None:
            workers = min(4, os.cpu_count() or 1) if cuda else 0
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"train.workers must be a non-negative int or null (automatic), got {workers!r}")
        return cls(workers, cuda and workers > 0, flag("amp"), flag("fused_adam"), flag("channels_last"))


class Trainer:
    """ESRGAN training, the base of every recipe (see the module docstring).

    Args:
        recipe: a loaded :class:`bench.train.recipe.Recipe`.
        out_dir: output folder (default ``$BENCH_HOME/checkpoints/<recipe name>``).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``; under DDP ``cuda`` means ``cuda:LOCAL_RANK``.
        features: a frozen perceptual backbone module (returns ``[tap]``) instead of VGG (tests: a tiny random net).
        dataset: a :class:`bench.data.Dataset` instead of the recipe's ``data``.
        dist_info: rank information (default: from the launcher's environment, joining the process group).

    Subclasses set :attr:`defaults` (extra sections merged over :data:`BASE_DEFAULTS`) and override the hooks
    :meth:`make_inputs`, :meth:`generate`, :meth:`build_generator`, :meth:`needs_backbone`.
    """

    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        recipe,
        *,
        out_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        features: nn.Module | None = None,
        dataset=None,
        dist_info: distributed.DistInfo | None = None,
    ) -> None:
        self.recipe = recipe
        self.config = recipe.config
        cfg = self.config
        if dist_info is None:
            dist_info, self.device = distributed.setup(device)
        else:
            self.device = distributed.resolve_device(device, dist_info)
        self.dist = dist_info
        if out_dir is None:
            from bench.paths import bench_home

            out_dir = bench_home() / "checkpoints" / recipe.name
        self.out_dir = Path(out_dir).expanduser()
        self.seed = int(cfg["seed"])
        self.scale = int(cfg["scale"])
        t = cfg["train"]
        if t["batch"] % self.dist.world_size:
            raise ValueError(f"train.batch {t['batch']} is not divisible by the {self.dist.world_size} DDP processes")
        self.batch_per_rank = t["batch"] // self.dist.world_size
        self.iteration = 0
        self.gan_weight = float(cfg["loss"]["gan_weight"])
        self.alpha = 1.0
        self.speed = SpeedSettings.resolve(t, self.device)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_from(self.seed, "init"))
            self.net_g = self.build_generator().to(self.device)
            self.net_d = self.build_discriminator()
        if self.net_d is not None:
            self.net_d = self.net_d.to(self.device)
        if self.speed.channels_last:
            self.net_g.to(memory_format=torch.channels_last)
            if self.net_d is not None:
                self.net_d.to(memory_format=torch.channels_last)
        decay = t["ema_decay"]
        self.ema_decay = None if decay is None else float(decay)
        self.net_g_ema = None
        if self.ema_decay is not None:
            self.net_g_ema = copy.deepcopy(self.net_g).requires_grad_(False).eval()

        betas = tuple(float(b) for b in t["betas"])
        fused = {"fused": True} if self.speed.fused_adam else {}
        self.opt_g = torch.optim.Adam(self.net_g.parameters(), lr=float(t["lr_g"]), betas=betas, **fused)
        self.opt_d = (
            torch.optim.Adam(self.net_d.parameters(), lr=float(t["lr_d"]), betas=betas, **fused)
            if self.net_d is not None
            else None
        )
        self.g_train: nn.Module = self.net_g
        self.d_train: nn.Module | None = self.net_d
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_train = DDP(self.net_g, device_ids=ids, broadcast_buffers=False)
            if self.net_d is not None:
                self.d_train = DDP(self.net_d, device_ids=ids)

        loss_cfg = cfg["loss"]
        self.backbone: nn.Module | None = None
        self.perceptual_info: dict[str, Any] = {"backbone": None}
        if float(loss_cfg["perceptual_weight"]) != 0.0 or self.needs_backbone():
            backbone, self.perceptual_info = load_backbone(loss_cfg["backbone"], features)
            self.backbone = backbone.to(self.device)
        self.content = content_loss(
            float(loss_cfg["pixel_weight"]), float(loss_cfg["perceptual_weight"]), self.backbone, self.perceptual_info
        ).to(self.device)

        self._dataset = dataset
        self._sampler = None
        self.setup()
        logger.info(
            "trainer %s for recipe %s on %s (rank %d/%d): generator %d parameters, discriminator %s, %s",
            type(self).__name__,
            recipe.name,
            self.device,
            self.dist.rank,
            self.dist.world_size,
            sum(p.numel() for p in self.net_g.parameters()),
            "none" if self.net_d is None else sum(p.numel() for p in self.net_d.parameters()),
            self.speed,
        )

    # ----------------------------------------------------------------------------------------------- configuration
    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """The trainer's full default configuration (:data:`BASE_DEFAULTS` with the subclass's sections on top)."""
        from bench.train.recipe import deep_merge

        return deep_merge(BASE_DEFAULTS, cls.defaults)

    def setup(self) -> None:
        """Hook called at the end of ``__init__`` (build attack objects, degradation networks, ...)."""

    def needs_backbone(self) -> bool:
        """Whether the recipe needs the perceptual backbone besides the content loss (attack loss, diversity)."""
        return False

    # ----------------------------------------------------------------------------------------------- models
    def build_generator(self) -> nn.Module:
        """RRDBNet of ``generator`` settings with the ``init`` weights (random when ``init`` is null)."""
        from bench.archs.rrdbnet import RRDBNet

        net = RRDBNet(scale=self.scale, **self.config["generator"])
        weights = self.init_weights()
        if weights is not None:
            try:
                net.load_state_dict(weights, strict=True)
            except RuntimeError as exc:
                raise RuntimeError(
                    f"init checkpoint {self.config['init']} does not fit RRDBNet({self.config['generator']}); "
                    f"set generator.* to its size. Details: {exc}"
                ) from exc
        return net

    def init_weights(self) -> dict[str, torch.Tensor] | None:
        """The state dict named by ``init`` (an asset or a path, ``$BENCH_HOME/...`` allowed), or None."""
        ref = self.config["init"]
        if ref is None:
            return None
        from bench.methods.checkpoint import load_weights

        return load_weights(ref)

    def build_discriminator(self) -> nn.Module | None:
        """ESRGAN's VGG-style discriminator at ``train.gt_size`` (None when ``loss.gan_weight`` is 0)."""
        if self.gan_weight == 0.0:
            return None
        from bench.archs.discriminator import VGGStyleDiscriminator

        return VGGStyleDiscriminator(
            num_feat=int(self.config["discriminator"]["num_feat"]), input_size=int(self.config["train"]["gt_size"])
        )

    def as_method(self) -> GeneratorMethod:
        """The current generator (not the EMA) as a :class:`Method`, for attacks."""
        return GeneratorMethod(self.net_g, self.scale)

    @property
    def inference_net(self) -> nn.Module:
        """The network saved as ``latest.safetensors``: the EMA when kept, else the generator."""
        return self.net_g_ema if self.net_g_ema is not None else self.net_g

    # ----------------------------------------------------------------------------------------------- data
    @property
    def sampler(self):
        """The :class:`bench.train.data.PatchSampler` of the recipe's data (built on first use)."""
        if self._sampler is None:
            from bench.train.data import PatchSampler

            t = self.config["train"]
            self._sampler = PatchSampler(
                self._dataset if self._dataset is not None else self.load_dataset(),
                gt_size=int(t["gt_size"]),
                batch=self.batch_per_rank,
                scale=self.scale,
                use_hflip=bool(t["use_hflip"]),
                use_rot=bool(t["use_rot"]),
                quantize_lr=bool(t["quantize_lr"]),
                cache_mb=float(t["cache_mb"]),
                device=self.device,
            )
        return self._sampler

    def load_dataset(self):
        data = self.config["data"]
        if data is None:
            raise ValueError(f"recipe {self.recipe.name} names no training data: pass --data DATASET_OR_FOLDER")
        from bench.data import DATASETS, build_dataset

        if data not in DATASETS and not Path(data).expanduser().is_dir():
            raise FileNotFoundError(
                f"training data {data!r} is neither a dataset name nor a folder: pass --data div2k-train (fetched "
                "by `python -m bench datasets fetch div2k-train`; `python -m bench datasets list` shows the others) "
                "or --data FOLDER of HR images (--data embedded-train trains on the embedded images, for a smoke run)"
            )
        dataset = build_dataset(data, scale=self.scale)  # a manifest dataset not fetched: its fetch command
        if not getattr(dataset, "has_ground_truth", True):
            raise ValueError(f"training data {data!r} has no ground truth (LR only): training needs HR images")
        return dataset

    def rng(self, purpose: str, iteration: int) -> torch.Generator:
        """The CPU generator of ``purpose`` (``data``, ``step``) at ``iteration`` on this rank."""
        return make_generator(seed_from(self.seed, purpose, self.dist.rank, iteration))

    # ----------------------------------------------------------------------------------------------- hooks
    def make_inputs(
        self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The LR batch the generator trains on, and values to log (ESRGAN: the LR itself)."""
        return lr, {}

    def generate(
        self, lr_in: torch.Tensor, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator
    ) -> GeneratorOutput:
        """The generator's outputs and their targets (ESRGAN: one output per LR, the HR)."""
        return GeneratorOutput(self.g_train(lr_in), hr)

    # ----------------------------------------------------------------------------------------------- one iteration
    def set_learning_rates(self, iteration: int) -> None:
        t = self.config["train"]
        milestones = [int(m) for m in t["milestones"]]
        for opt, key in ((self.opt_g, "lr_g"), (self.opt_d, "lr_d")):
            if opt is None:
                continue
            for group in opt.param_groups:
                group["lr"] = lr_at(float(t[key]), milestones, float(t["gamma"]), iteration)

    def generator_losses(self, out: GeneratorOutput) -> tuple[torch.Tensor, dict[str, float]]:
        """``alpha * (content + gan_weight * RaGAN_G) + extra`` and its parts."""
        l_content = self.content(out.sr, out.target).mean()
        total = l_content
        logs = {"l_g_content": float(l_content.detach())}
        if self.net_d is not None:
            real = self.net_d(out.target).detach()
            fake = self.net_d(out.sr)
            l_gan = self.gan_weight * ragan_generator_loss(real, fake)
            total = total + l_gan
            logs["l_g_gan"] = float(l_gan.detach())
        total = self.alpha * total
        if out.extra is not None:
            total = total + out.extra
        logs["l_g_total"] = float(total.detach())
        return total, logs

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on the trainer's device when ``train.amp`` resolved on, else nothing."""
        if not self.speed.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor, iteration: int) -> dict[str, float]:
        """One iteration on the batch ``(lr, hr)`` (see the module docstring); returns the logged values."""
        self.set_learning_rates(iteration)
        generator = self.rng("step", iteration)
        if self.speed.channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
            hr = hr.contiguous(memory_format=torch.channels_last)
        self.net_g.train()
        with self.autocast():
            lr_in, logs = self.make_inputs(lr, hr, generator)
        self.net_g.train()
        if self.net_d is not None:
            self.net_d.requires_grad_(False)
        with self.autocast():
            out = self.generate(lr_in, lr, hr, generator)
            total, g_logs = self.generator_losses(out)
        logs.update(out.logs)
        logs.update(g_logs)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        if self.net_d is not None:
            self.net_d.requires_grad_(True)
            with self.autocast():
                real = self.d_train(out.target)
                fake = self.d_train(out.sr.detach())
                l_d = ragan_discriminator_loss(real, fake)
            self.opt_d.zero_grad(set_to_none=True)
            l_d.backward()
            self.opt_d.step()
            logs["l_d"] = float(l_d.detach())
            logs["d_real"] = float(real.detach().mean())
            logs["d_fake"] = float(fake.detach().mean())
        self.update_ema()
        return logs

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.net_g_ema is None:
            return
        d = self.ema_decay
        for p_ema, p in zip(self.net_g_ema.parameters(), self.net_g.parameters(), strict=True):
            p_ema.mul_(d).add_(p.detach(), alpha=1.0 - d)
        for b_ema, b in zip(self.net_g_ema.buffers(), self.net_g.buffers(), strict=True):
            b_ema.copy_(b)

    # ----------------------------------------------------------------------------------------------- the loop
    def fit(self, iters: int | None = None, resume: bool = False) -> Path:
        """Train up to ``iters`` iterations (default ``train.iters``); with ``resume`` continue from ``state``.

        Returns the path of ``latest.safetensors``. Rank 0 writes checkpoints at every ``save_every`` iterations and
        at the end; a KeyboardInterrupt saves the state of the last finished iteration before re-raising.
        """
        t = self.config["train"]
        total = int(iters if iters is not None else t["iters"])
        if resume:
            self.resume()
        save_every, log_every = int(t["save_every"]), int(t["log_every"])
        start, started = self.iteration, time.perf_counter()
        logger.info("training %s from iteration %d to %d in %s", self.recipe.name, start, total, self.out_dir)
        from bench.train.data import iteration_batches

        batches = iteration_batches(
            self.sampler,
            self.seed,
            self.dist.rank,
            start + 1,
            total,
            workers=self.speed.workers,
            pin_memory=self.speed.pin_memory,
        )
        try:
            for lr, hr in batches:
                it = self.iteration + 1
                logs = self.train_step(lr, hr, it)
                self.iteration = it
                if log_every > 0 and (it % log_every == 0 or it == total):
                    self.log(it, logs, (time.perf_counter() - started) / max(1, it - start))
                if save_every > 0 and it % save_every == 0 and it != total:
                    self.save(snapshot=True)
        except KeyboardInterrupt:
            if self.iteration > start:
                logger.warning("interrupted at iteration %d: saving the state to resume", self.iteration)
                self.save(snapshot=False)
            raise
        if self.iteration > start or not (self.out_dir / state.LATEST).is_file():
            self.save(snapshot=save_every > 0 and self.iteration % save_every == 0)
        return self.out_dir / state.LATEST

    def log(self, iteration: int, logs: Mapping[str, float], seconds_per_iter: float) -> None:
        if not self.dist.is_main:
            return
        rate = 1.0 / seconds_per_iter if seconds_per_iter > 0 else float("nan")
        samples = rate * self.batch_per_rank * self.dist.world_size
        record = {
            "iteration": iteration,
            "seconds_per_iter": seconds_per_iter,
            "iters_per_s": rate,
            "samples_per_s": samples,
            **logs,
        }
        logger.info(
            "%s it %d (%.3g it/s, %.3g samples/s): %s",
            self.recipe.name,
            iteration,
            rate,
            samples,
            ", ".join(f"{k} {v:.4g}" for k, v in logs.items()),
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / state.LOG, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    # ----------------------------------------------------------------------------------------------- checkpoints
    def metadata(self) -> dict[str, Any]:
        """What every checkpoint of this run carries (see :mod:`bench.train.state`)."""
        data = self._sampler.describe() if self._sampler is not None else {"dataset": self.config["data"]}
        return {
            "recipe": self.recipe.name,
            "recipe_config": self.config,
            "recipe_sha256": self.recipe.sha256,
            "overrides": self.recipe.overrides,
            "trainer": self.recipe.trainer,
            "data": data,
            "init": str(self.config["init"]),
            "iteration": self.iteration,
            "seed": self.seed,
            "world_size": self.dist.world_size,
            "git": git_revision(),
            "torch": torch.__version__,
            "perceptual": self.perceptual_info,
            "weights": "ema" if self.net_g_ema is not None else "generator",
            "created": state.now(),
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = state.prefixed("g", self.net_g.state_dict())
        if self.net_g_ema is not None:
            tensors.update(state.prefixed("ema", self.net_g_ema.state_dict()))
        tensors.update(state.optimizer_tensors("opt_g", self.opt_g))
        if self.net_d is not None:
            tensors.update(state.prefixed("d", self.net_d.state_dict()))
            tensors.update(state.optimizer_tensors("opt_d", self.opt_d))
        return tensors

    def save(self, snapshot: bool = True) -> Path:
        """Write ``latest`` (and ``iter_N`` when ``snapshot``) and ``state`` (rank 0; the other ranks wait)."""
        latest = self.out_dir / state.LATEST
        if self.dist.is_main:
            meta = self.metadata()
            weights = self.inference_net.state_dict()
            state.save_tensors(weights, latest, meta)
            if snapshot:
                state.save_tensors(weights, self.out_dir / f"iter_{self.iteration:07d}.safetensors", meta)
            state.save_tensors(self.state_tensors(), self.out_dir / state.STATE, meta)
            logger.info("saved %s at iteration %d", latest, self.iteration)
        distributed.barrier(self.dist)
        return latest

    def resume(self) -> int:
        """Load ``state.safetensors`` of :attr:`out_dir`; returns the iteration it continues from.

        Raises:
            FileNotFoundError: there is no state to resume.
            ValueError: the state was made by a different recipe configuration (only ``train.iters``,
                ``save_every``, ``log_every`` and ``cache_mb`` may change).
        """
        path = self.out_dir / state.STATE
        if not path.is_file():
            raise FileNotFoundError(f"nothing to resume: no {path} (run without --resume to start)")
        meta = state.read_metadata(path)
        saved = flatten(meta.get("recipe_config") or {})
        current = flatten(json.loads(json.dumps(self.config, default=str)))
        differ = sorted(
            k for k in set(saved) | set(current) if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k)
        )
        if differ:
            shown = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in differ[:6])
            raise ValueError(f"cannot resume {path}: the recipe differs from the saved run ({shown})")
        if int(meta.get("world_size", 1)) != self.dist.world_size:
            logger.warning(
                "resuming a run of %s processes with %d: the random streams per rank change",
                meta.get("world_size"),
                self.dist.world_size,
            )
        tensors = state.load_tensors(path)
        self.net_g.load_state_dict(state.unprefixed("g", tensors), strict=True)
        if self.net_g_ema is not None:
            self.net_g_ema.load_state_dict(state.unprefixed("ema", tensors), strict=True)
        state.load_optimizer("opt_g", self.opt_g, tensors)
        if self.net_d is not None:
            self.net_d.load_state_dict(state.unprefixed("d", tensors), strict=True)
            state.load_optimizer("opt_d", self.opt_d, tensors)
        self.iteration = int(meta["iteration"])
        logger.info("resumed %s at iteration %d", path, self.iteration)
        return self.iteration
