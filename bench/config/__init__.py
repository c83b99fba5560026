"""Declared configuration: one YAML loader, pydantic v2 models, JSON Schemas for editors.

Matrices (:mod:`bench.runner.matrix`), method cards (:mod:`bench.methods.cards`), training recipes
(:mod:`bench.train.recipe`), dataset manifests and the asset manifest (:mod:`bench.assets.manifest`) are YAML files
read by :mod:`bench.config.loader`, which owns ``include:`` (dicts deep-merged, lists replaced, the including file wins,
cycles refused) and ``--set`` dotted overrides, and validates the merged mapping into a frozen pydantic model,
collecting every problem into one :class:`ConfigFileError` that names the file, the dotted key and, for an unknown
key or name, the closest valid one. :class:`ConfigError` is its base (any configuration that cannot be used); both
belong to the project's error hierarchy (:mod:`bench.errors`).
``python -m bench schema`` (:mod:`bench.config.schema`) writes the JSON Schema of each kind.

Why pydantic v2: the models are declared once (types, defaults, bounds, docs) and give three things the old
hand-written validators did not: JSON Schema generation, error locations for every problem at once, and frozen
instances.
"""

from bench.config.errors import ConfigError, ConfigFileError
from bench.config.loader import apply_overrides, deep_merge, load_yaml, parse_set, validate_model

__all__ = [
    "ConfigError",
    "ConfigFileError",
    "apply_overrides",
    "deep_merge",
    "load_yaml",
    "parse_set",
    "validate_model",
]
