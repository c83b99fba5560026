"""torch.distributed for training: ``torchrun --nproc_per_node K -m bench train ...`` runs DistributedDataParallel.

``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``)
starts K processes; :func:`setup` joins the process group (NCCL on CUDA, gloo on CPU) and picks the device
(``cuda:LOCAL_RANK``). Without those variables everything runs in one process, unchanged.

Conventions of the trainer under DDP: ``train.batch`` is the **global** batch, split evenly over the ranks; each rank
draws its own patches and random numbers from generators seeded by (seed, rank, iteration); gradients are averaged by
DDP, so every rank holds the same weights; only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: ``rank`` of ``world_size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Rank and world size from the launcher's environment variables (1 process when unset)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def resolve_device(name: str | torch.device, info: DistInfo) -> torch.device:
    """``auto`` -> CUDA when available; under DDP a bare ``cuda`` becomes ``cuda:LOCAL_RANK``."""
    from bench.devices import resolve_device as resolve

    device = resolve(name, local_rank=info.local_rank if info.enabled else 0)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", info.local_rank if info.enabled else torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


def setup(device: str | torch.device = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group when launched with several processes; returns the rank info and the device."""
    info = env_info()
    resolved = resolve_device(device, info)
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        logger.info("joined process group: rank %d of %d (%s)", info.rank, info.world_size, backend)
        info = DistInfo(info.rank, info.world_size, info.local_rank, initialized_here=True)
    elif info.enabled:
        info = DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)
    return info, resolved


def teardown(info: DistInfo) -> None:
    """Leave the process group if :func:`setup` joined it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()
