"""DistributedDataParallel: two CPU processes (gloo) launched by torchrun train a tiny recipe in step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.train.state import load_tensors, read_metadata

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.parametrize("name", ["ad-l-pgd"])
def test_two_process_ddp_keeps_ranks_in_step(tmp_path: Path, name: str) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BENCH_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER)]
    proc = subprocess.run([*cmd, name, str(out)], capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rank0, rank1 = load_tensors(out / "rank0.safetensors"), load_tensors(out / "rank1.safetensors")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key  # gradients averaged: the same weights on every rank
    meta = read_metadata(out / "latest.safetensors")
    assert meta["world_size"] == 2 and meta["iteration"] == 2
    state = load_tensors(out / "state.safetensors")
    assert all(torch.equal(state[f"g.{k}"], v) for k, v in rank0.items())
