"""Training recipes: YAML files parsed, merged with their trainer's defaults, overridden and validated.

A recipe file (``bench/train/recipes/<name>.yaml`` or any path) holds::

    trainer: adversarial          # required: a name of bench.train.TRAINERS
    include: esrgan-ft            # optional: start from another recipe (its keys, then this file's on top)
    description: ...              # free text
    paper: {title: ..., url: ...} # free-form
    init: esrgan-x4               # generator checkpoint: asset name or path (null: random initialisation)
    data: div2k-train             # a dataset name (datasets/div2k-train.yaml) or a folder of HR images
    seed: 0
    generator: {...}  discriminator: {...}  train: {...}  loss: {...}  # see bench.train.base.BASE_DEFAULTS
    attack: {...} / mrs: {...} / degradation: {...} / stochastic: {...}  # the trainer's own section

Resolution order: the trainer's defaults <- the included recipe <- the file <- ``overrides`` (dotted keys, e.g.
``{"train.iters": 100, "attack.params.eps": 0.03}``; the CLI's ``--set key=value`` values are parsed as YAML).
Reading, ``include:`` (cycles refused) and ``--set`` parsing are :mod:`bench.config.loader`'s. The keys are checked
by a pydantic model derived from the trainer's defaults (:mod:`bench.train.recipe_spec`): one :class:`RecipeError`
lists every unknown key (with the nearest known key) and every value whose type differs from the default's (an int
is accepted for a float). Relative ``data`` and ``init`` paths in a file are resolved against the project root
(:func:`bench.paths.project_root`) when they exist there.

Example::

    recipe = load_recipe("ad-l-pgd", overrides={"train.iters": 10, "data": "embedded-train"})
    recipe.config["attack"]["params"]["eps"]      # 14/255
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config.errors import ConfigFileError
from bench.config.loader import deep_merge, load_yaml, parse_set, set_dotted, validate_model
from bench.paths import PACKAGE_DIR
from bench.seeding import canonical_json
from bench.train.recipe_spec import FREE_FORM, trainer_model

logger = logging.getLogger(__name__)

__all__ = [
    "FREE_FORM",
    "RECIPES_DIR",
    "Recipe",
    "RecipeError",
    "deep_merge",
    "find_recipe",
    "list_recipes",
    "load_recipe",
    "parse_override",
    "validate",
]

RECIPES_DIR = PACKAGE_DIR / "train" / "recipes"
RECIPE_SUFFIXES = (".yaml", ".yml")


class RecipeError(ConfigFileError):
    """A recipe that does not parse or validate; the message names the file and every bad key."""

    kind = "recipe"

    def __init__(self, source: str, problems: list[str] | str) -> None:
        super().__init__(source, [problems] if isinstance(problems, str) else problems)


@dataclass(frozen=True)
class Recipe:
    """A resolved recipe.

    Attributes:
        name: the recipe's name (file stem).
        path: the file it came from (``None`` for a recipe made in code).
        trainer: the trainer's registered name.
        config: the full nested configuration (defaults merged, overrides applied), JSON-able.
        overrides: the dotted overrides that were applied, as given.
    """

    name: str
    path: Path | None
    trainer: str
    config: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """Hash of the canonical JSON of :attr:`config` (what makes two runs the same training)."""
        return hashlib.sha256(canonical_json(self.config).encode()).hexdigest()

    def get(self, dotted: str) -> Any:
        """A value by dotted key, e.g. ``recipe.get("train.iters")``."""
        node: Any = self.config
        for part in dotted.split("."):
            node = node[part]
        return node


def list_recipes() -> list[str]:
    """Names of the recipes shipped in ``bench/train/recipes/``."""
    if not RECIPES_DIR.is_dir():
        return []
    return sorted(p.stem for p in RECIPES_DIR.iterdir() if p.suffix in RECIPE_SUFFIXES)


def find_recipe(name_or_path: str | Path) -> Path | None:
    """The file of a shipped recipe name, or an existing YAML path; ``None`` when there is none."""
    ref = Path(name_or_path).expanduser()
    if ref.suffix in RECIPE_SUFFIXES and ref.is_file():
        return ref
    for suffix in RECIPE_SUFFIXES:
        candidate = RECIPES_DIR / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _find_include(name: str, including: Path) -> Path | None:
    return find_recipe(name) or find_recipe(including.parent / f"{name}.yaml")


def _read_with_includes(path: Path) -> dict[str, Any]:
    try:
        return load_yaml(path, kind=RecipeError.kind, find_include=_find_include)
    except ConfigFileError as exc:
        raise RecipeError(exc.source, exc.problems) from exc


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.iters=100"`` -> ``("train.iters", 100)``; the value is parsed as YAML (``[1, 2]``, ``null``), and a
    string that reads as a float (``1e-4``, which YAML 1.1 leaves a string) becomes that float
    (:func:`bench.config.loader.parse_set`). :class:`RecipeError` for a malformed expression or bad YAML."""
    try:
        return parse_set(text)
    except ValueError as exc:
        raise RecipeError("<command line>", [str(exc)]) from exc


def validate(config: Mapping[str, Any], trainer: str, where: str) -> None:
    """Raise one :class:`RecipeError` listing every key of ``config`` the trainer does not know (with the closest
    key) and every value whose type differs from the default's (:func:`bench.train.recipe_spec.trainer_model`)."""
    _, problems = validate_model(trainer_model(trainer), config)
    if problems:
        raise RecipeError(where, problems)


def _resolve_paths(config: dict[str, Any]) -> None:
    from bench.paths import project_root

    for key in ("data", "init"):
        value = config.get(key)
        if isinstance(value, str) and ("/" in value or "\\" in value) and not value.startswith("$"):
            path = Path(value).expanduser()
            if not path.is_absolute() and (project_root() / path).exists():
                config[key] = str(project_root() / path)


def load_recipe(
    name_or_path: str | Path | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Recipe:
    """Load, merge, override and validate a recipe.

    Args:
        name_or_path: a shipped recipe name (``"ad-l-pgd"``), a YAML path, or a mapping (a recipe made in code).
        overrides: dotted keys -> values applied last (``{"train.iters": 10}``).
        name: the recipe's name (default: the file stem, or ``"custom"`` for a mapping).

    Raises:
        KeyError: unknown recipe name (lists the shipped ones) or unknown trainer.
        RecipeError: bad YAML, unknown key, wrong type.
    """
    from bench.train import TRAINERS

    if isinstance(name_or_path, Mapping):
        path = None
        data = copy.deepcopy(dict(name_or_path))
        if "include" in data:
            include = data.pop("include")
            parent = find_recipe(include) if isinstance(include, str) else None
            if parent is None:
                raise RecipeError(
                    "recipe", [f"include: recipe {include!r} not found (known: {', '.join(list_recipes())})"]
                )
            data = deep_merge(_read_with_includes(parent), data)
        where = "<mapping>"
        recipe_name = name or "custom"
    else:
        path = find_recipe(name_or_path)
        if path is None:
            known = list_recipes()
            close = difflib.get_close_matches(str(name_or_path), known, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"unknown recipe {str(name_or_path)!r}.{hint} Known: {', '.join(known)}")
        data = _read_with_includes(path)
        where = str(path)
        recipe_name = name or path.stem
    if "trainer" not in data or not isinstance(data["trainer"], str):
        raise RecipeError(where, [f"missing required key 'trainer' (one of {', '.join(TRAINERS.names())})"])
    trainer = TRAINERS.canonical(data["trainer"])
    defaults = TRAINERS.get(trainer).default_config()
    validate(data, trainer, where)
    config = deep_merge(defaults, data)
    config["trainer"] = trainer
    applied = dict(overrides or {})
    problems = []
    for key, value in applied.items():
        try:
            set_dotted(config, key, value)
        except (KeyError, ValueError) as exc:
            problems.append(f"--set {key}: {exc.args[0] if exc.args else exc}")
    if problems:
        raise RecipeError(f"{where} (with overrides)", problems)
    validate(config, trainer, f"{where} (with overrides)")
    _resolve_paths(config)
    return Recipe(name=recipe_name, path=path, trainer=trainer, config=config, overrides=applied)
