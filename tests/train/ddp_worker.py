"""Worker of tests/train/test_ddp.py, launched by ``torchrun --nproc_per_node 2``: a tiny recipe under DDP (gloo).

Usage: ``torchrun --standalone --nproc_per_node 2 ddp_worker.py RECIPE OUT_DIR``. Each rank writes its final
generator weights to ``OUT_DIR/rank<R>.safetensors``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from bench.train import build_trainer, load_recipe
from bench.train.distributed import teardown


def main() -> int:
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("train_conftest", Path(__file__).with_name("conftest.py"))
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    recipe_name, out = sys.argv[1], Path(sys.argv[2])
    overrides = {**helpers.TINY, "train.batch": 4, "train.iters": 2}
    recipe = load_recipe(recipe_name, overrides=overrides)
    trainer = build_trainer(
        recipe, out_dir=out, device="cpu", features=helpers.TinyFeatures(), dataset=helpers.SyntheticDataset()
    )
    assert trainer.dist.world_size == 2 and trainer.batch_per_rank == 2
    trainer.fit()
    weights = {k: v.contiguous() for k, v in trainer.net_g.state_dict().items()}
    save_file(weights, str(out / f"rank{trainer.dist.rank}.safetensors"))
    teardown(trainer.dist)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
