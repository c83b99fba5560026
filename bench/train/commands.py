"""Command line of the training area: ``python -m bench train RECIPE ...``.

``python -m bench train ad-l-pgd --init esrgan-x4 --data div2k-train --iters 30000`` (a manifest dataset, resolved
through ``datasets/div2k-train.yaml``; when it is not fetched the error gives ``python -m bench datasets fetch
div2k-train``; a folder of HR images works too)
``python -m bench train esrgan-ft --data embedded-train --iters 10 --batch 2 --set generator.num_block=2``
``python -m bench train ad-l-pgd --resume``                       (continue the run in its --out folder)
``torchrun --nproc_per_node 8 -m bench train ad-l-pgd ...``      (DistributedDataParallel over 8 GPUs)
``python -m bench train``                                          (list the recipes)

Checkpoints go to ``--out`` (default ``$BENCH_HOME/checkpoints/RECIPE/``): ``latest.safetensors`` is what the
method card of the recipe (``methods/RECIPE.yaml``) loads.
"""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand (its handler is :func:`train_command`)."""
    p = subparsers.add_parser(
        "train",
        help="train a robust checkpoint from a paper's recipe (ESRGAN-FT, AD-L-*, CertSR, AND, stochastic SR)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", metavar="RECIPE", nargs="?", help="recipe name (see the list) or a recipe YAML file")
    p.add_argument("--init", help="generator checkpoint: an asset name or a file (default: the recipe's)")
    p.add_argument(
        "--data",
        help="training HR images: a dataset name (div2k-train, embedded-train; see `datasets list`) or a folder",
    )
    p.add_argument("--iters", type=int, help="total iterations (default: the recipe's)")
    p.add_argument("--batch", type=int, help="global batch size (split over DDP processes)")
    p.add_argument("--out", help="output folder (default: $BENCH_HOME/checkpoints/RECIPE)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in the output folder")
    p.add_argument("--seed", type=int, help="training seed (default: the recipe's)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key (dotted, value as YAML), e.g. --set attack.params.eps=0.03; repeatable",
    )
    p.add_argument("--print-recipe", action="store_true", help="print the resolved recipe as YAML and exit")
    p.add_argument(
        "--dry-run", action="store_true", help="time two iterations, print the estimated cost of the run and exit"
    )
    p.set_defaults(func=train_command)
    return p


def collect_overrides(args: argparse.Namespace) -> dict:
    """The recipe overrides of the command line: the flags, then every ``--set`` in order."""
    from bench.train.recipe import parse_override

    overrides: dict = {}
    for flag, key in (("init", "init"), ("data", "data"), ("iters", "train.iters"), ("batch", "train.batch")):
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = value
    if args.seed is not None:
        overrides["seed"] = args.seed
    for text in args.overrides:
        key, value = parse_override(text)
        overrides[key] = value
    return overrides


def train_command(args: argparse.Namespace) -> int:
    """Handler of ``train``; user errors raise KeyError/FileNotFoundError/ValueError (one line, exit code 2)."""
    import yaml

    from bench.train import build_trainer, list_recipes, load_recipe
    from bench.train.distributed import teardown

    if args.recipe is None:
        from bench.train.recipe import find_recipe

        for name in list_recipes():
            data = yaml.safe_load(find_recipe(name).read_text(encoding="utf-8")) or {}
            first = " ".join(str(data.get("description", "")).split())[:90]
            print(f"{name:<16} {data.get('trainer', ''):<12} {first}")
        return 0
    recipe = load_recipe(args.recipe, overrides=collect_overrides(args))
    if args.print_recipe:
        print(yaml.safe_dump(recipe.config, sort_keys=False), end="")
        return 0
    trainer = build_trainer(recipe, out_dir=args.out, device=args.device)
    if getattr(args, "dry_run", False):
        from bench.runner.probe import plan_training

        try:
            print(plan_training(trainer).format())
        finally:
            teardown(trainer.dist)
        return 0
    try:
        latest = trainer.fit(resume=args.resume)
    finally:
        teardown(trainer.dist)
    if trainer.dist.is_main:
        from bench.methods.checkpoint import expand_path

        print(f"{recipe.name}: iteration {trainer.iteration}, checkpoint {latest}")
        default = expand_path(f"$BENCH_HOME/checkpoints/{recipe.name}/latest.safetensors")
        if latest.resolve() == default.resolve():
            print(f"the card methods/{recipe.name}.yaml evaluates it (python -m bench run ...)")
        else:
            print(f"to evaluate it, point a card's `checkpoint:` at {latest} (methods/{recipe.name}.yaml reads")
            print(f"{default})")
    return 0
