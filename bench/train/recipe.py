"""Training recipes: YAML files parsed, merged with their trainer's defaults, overridden and validated.

A recipe file (``bench/train/recipes/<name>.yaml`` or any path) holds::

    trainer: adversarial          # required: a name of bench.train.TRAINERS
    include: esrgan-ft            # optional: start from another recipe (its keys, then this file's on top)
    description: ...              # free text
    paper: {title: ..., url: ...} # free-form
    init: esrgan-x4               # generator checkpoint: asset name or path (null: random initialisation)
    data: datasets/DIV2K/DIV2K_train_HR   # a dataset name (embedded-train, ...) or a folder of HR images
    seed: 0
    generator: {...}  discriminator: {...}  train: {...}  loss: {...}  # see bench.train.base.BASE_DEFAULTS
    attack: {...} / mrs: {...} / degradation: {...} / stochastic: {...}  # the trainer's own section

Resolution order: the trainer's defaults <- the included recipe <- the file <- ``overrides`` (dotted keys, e.g.
``{"train.iters": 100, "attack.params.eps": 0.03}``; the CLI's ``--set key=value`` values are parsed as YAML).
Unknown keys fail with the nearest known key; a value whose type differs from the default's fails too (an int is
accepted for a float). Relative ``data`` and ``init`` paths in a file are resolved against the project root
(:func:`bench.paths.project_root`) when they exist there.

Example::

    recipe = load_recipe("ad-l-pgd", overrides={"train.iters": 10, "data": "embedded-train"})
    recipe.config["attack"]["params"]["eps"]      # 14/255
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.paths import PACKAGE_DIR
from bench.seeding import canonical_json

logger = logging.getLogger(__name__)

RECIPES_DIR = PACKAGE_DIR / "train" / "recipes"
RECIPE_SUFFIXES = (".yaml", ".yml")
# keys whose values are not validated against defaults
FREE_FORM = frozenset({"description", "paper", "notes", "attack.params"})
_MAX_INCLUDE_DEPTH = 8


class RecipeError(ValueError):
    """A recipe that does not parse or validate; the message names the file and the key."""


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


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of keys, got {type(data).__name__}")
    return data


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``top``, recursively for nested mappings (lists and scalars are replaced)."""
    out = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_includes(path: Path, depth: int = 0) -> dict[str, Any]:
    if depth > _MAX_INCLUDE_DEPTH:
        raise RecipeError(f"{path}: includes nest deeper than {_MAX_INCLUDE_DEPTH} (a cycle?)")
    data = _read(path)
    include = data.pop("include", None)
    if include is None:
        return data
    if not isinstance(include, str):
        raise RecipeError(f"{path}: 'include' must name one recipe, got {include!r}")
    parent = find_recipe(include) or find_recipe(path.parent / f"{include}.yaml")
    if parent is None:
        raise RecipeError(f"{path}: included recipe {include!r} not found (known: {', '.join(list_recipes())})")
    return deep_merge(_resolve_includes(parent, depth + 1), data)


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.iters=100"`` -> ``("train.iters", 100)``; the value is parsed as YAML (``[1, 2]``, ``null``), and a
    string that reads as a float (``1e-4``, which YAML 1.1 leaves a string) becomes that float."""
    if "=" not in text:
        raise RecipeError(f"an override is KEY=VALUE (e.g. train.iters=100), got {text!r}")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise RecipeError(f"empty key in override {text!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise RecipeError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    if isinstance(parsed, str):
        with contextlib.suppress(ValueError):  # YAML 1.1 reads 1e-2 (no dot) as a string; a number is meant
            parsed = float(parsed)
    return key, parsed


def _set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    node = config
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    if isinstance(default, Mapping):
        return isinstance(value, Mapping)
    return isinstance(value, type(default))


def validate(config: Mapping[str, Any], defaults: Mapping[str, Any], where: str, prefix: str = "") -> None:
    """Raise :class:`RecipeError` for a key of ``config`` that ``defaults`` lacks or a value of the wrong type."""
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if dotted in FREE_FORM:
            continue
        if key not in defaults:
            known = sorted(defaults)
            hint = difflib.get_close_matches(str(key), known, n=1)
            extra = f" (did you mean {prefix + hint[0]!r}?)" if hint else ""
            raise RecipeError(f"{where}: unknown key {dotted!r}{extra}; known at this level: {', '.join(known)}")
        default = defaults[key]
        if not _type_ok(default, value):
            raise RecipeError(
                f"{where}: key {dotted!r} must be like {default!r} ({type(default).__name__}), got {value!r}"
            )
        if isinstance(default, Mapping) and default and isinstance(value, Mapping):
            validate(value, default, where, prefix=f"{dotted}.")


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
            parent = find_recipe(data.pop("include"))
            if parent is None:
                raise RecipeError(f"included recipe not found (known: {', '.join(list_recipes())})")
            data = deep_merge(_resolve_includes(parent), data)
        where = "recipe"
        recipe_name = name or "custom"
    else:
        path = find_recipe(name_or_path)
        if path is None:
            known = list_recipes()
            close = difflib.get_close_matches(str(name_or_path), known, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"unknown recipe {str(name_or_path)!r}.{hint} Known: {', '.join(known)}")
        data = _resolve_includes(path)
        where = str(path)
        recipe_name = name or path.stem
    if "trainer" not in data or not isinstance(data["trainer"], str):
        raise RecipeError(f"{where}: missing required key 'trainer' (one of {', '.join(TRAINERS.names())})")
    trainer = TRAINERS.canonical(data["trainer"])
    defaults = TRAINERS.get(trainer).default_config()
    validate(data, defaults, where)
    config = deep_merge(defaults, data)
    config["trainer"] = trainer
    applied = dict(overrides or {})
    for key, value in applied.items():
        _set_dotted(config, key, value)
    validate(config, defaults, f"{where} (with overrides)")
    _resolve_paths(config)
    return Recipe(name=recipe_name, path=path, trainer=trainer, config=config, overrides=applied)
