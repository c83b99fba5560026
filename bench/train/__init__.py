"""Training recipes: ESRGAN fine-tuning and the robust variants of the papers (:data:`TRAINERS`).

A **recipe** is a YAML file (``bench/train/recipes/<name>.yaml``, or any path) naming a **trainer** of
:data:`TRAINERS` and its settings; the defaults of every shipped recipe are its paper's settings (each file says
which paper and where this project had to choose). Trainers:

- ``esrgan`` (:mod:`bench.train.esrgan`): the shared ESRGAN machinery -- RRDBNet generator from a checkpoint, VGG-128
  discriminator with the relativistic average GAN loss, L1 + perceptual + GAN, Adam (0.9, 0.99) at 1e-4, an EMA of the
  generator, random paired crops with LR made on the fly (recipe ``esrgan-ft``);
- ``adversarial`` (:mod:`bench.train.adversarial`): AD-L-FGSM / BIM / CW / PGD, the LR batch replaced by adversarial
  examples against the current generator;
- ``certsr`` (:mod:`bench.train.certsr`): CertSR's MRS fine-tuning on medians of noisy predictions;
- ``and`` (:mod:`bench.train.andnet`): ANDNet / ANDGAN with an adversarially perturbed degradation network;
- ``stochastic`` (:mod:`bench.train.stochastic`): stochastic SR with noise inputs, LR consistency and diversity.

Use::

    python -m bench train ad-l-pgd --data datasets/DIV2K/DIV2K_train_HR --init esrgan-x4
    torchrun --nproc_per_node 8 -m bench train ad-l-pgd ...          # DistributedDataParallel

or from Python::

    from bench.train import load_recipe, build_trainer
    trainer = build_trainer(load_recipe("esrgan-ft", overrides={"train.iters": 10}), out_dir="runs/ft")
    trainer.fit()                                                       # -> path of latest.safetensors
"""

from bench.registry import Registry
from bench.train.base import Trainer

TRAINERS: Registry = Registry(
    "trainer",
    base=Trainer,
    modules=(
        "bench.train.esrgan",
        "bench.train.adversarial",
        "bench.train.certsr",
        "bench.train.andnet",
        "bench.train.stochastic",
    ),
)


def build_trainer(recipe, **kwargs) -> Trainer:
    """The trainer of a loaded :class:`bench.train.recipe.Recipe` (``kwargs`` go to :class:`Trainer`)."""
    return TRAINERS.get(recipe.trainer)(recipe, **kwargs)


from bench.train.recipe import Recipe, find_recipe, list_recipes, load_recipe  # noqa: E402

__all__ = ["TRAINERS", "Recipe", "Trainer", "build_trainer", "find_recipe", "list_recipes", "load_recipe"]
