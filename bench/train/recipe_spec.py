"""What a training recipe may say: pydantic models derived from each trainer's defaults.

A trainer declares its configuration as defaults (:data:`bench.train.base.BASE_DEFAULTS` with the trainer's
``defaults`` on top); :func:`trainer_model` turns them into a frozen ``extra="forbid"`` model, one nested model per
section, each key typed after its default (a bool is a bool, an int an int, a float any number, a string a string, a
list a list, an empty mapping a free mapping, ``None`` anything), every key optional (a recipe gives only what
differs). The free-form keys (:data:`FREE_FORM`) are not checked. :func:`recipe_schema_model` is the union of every
trainer's keys, with ``trainer`` one of the registered names: the JSON Schema editors use for ``bench/train/recipes``.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import ConfigDict, Field, create_model

from bench.config.loader import deep_merge
from bench.config.models import Frozen

# keys whose values are not validated against defaults
FREE_FORM = frozenset({"description", "paper", "notes", "attack.params"})


class _Strict(Frozen):
    """No coercion: ``"16"`` is not an int, ``1`` not a bool (an int is still a float)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def _annotation(default: Any, dotted: str, name: str) -> Any:
    if dotted in FREE_FORM or default is None:
        return Any
    for kind in (bool, int, float, str):  # bool before int: True is an int
        if isinstance(default, kind):
            return kind
    if isinstance(default, (list, tuple)):
        return list[Any]
    if isinstance(default, dict):
        return section_model(default, f"{dotted}.", f"{name}_{dotted.split('.')[-1]}") if default else dict[str, Any]
    return Any


def section_model(defaults: dict[str, Any], prefix: str, name: str) -> type[Frozen]:
    """A strict frozen model whose fields are ``defaults``' keys, typed after their values, all optional."""
    fields: dict[str, Any] = {}
    for key, default in defaults.items():
        tp = _annotation(default, f"{prefix}{key}", name)
        fields[key] = (Any if tp is Any else tp | None, Field(None, json_schema_extra={"default": default}))
    return create_model(name, __base__=_Strict, **fields)  # type: ignore[call-overload]


@cache
def trainer_model(trainer: str) -> type[Frozen]:
    """The model of a recipe for the registered trainer ``trainer``."""
    from bench.train import TRAINERS

    return section_model(TRAINERS.get(trainer).default_config(), "", f"Recipe_{trainer}")


@cache
def recipe_schema_model() -> type[Frozen]:
    """Every trainer's keys in one model, ``trainer`` one of the registered names (for the JSON Schema)."""
    from bench.train import TRAINERS

    names = tuple(TRAINERS.names())
    merged: dict[str, Any] = {}
    for name in names:
        merged = deep_merge(merged, TRAINERS.get(name).default_config())
    merged.pop("trainer", None)
    base = section_model(merged, "", "Recipe")
    fields = {
        "trainer": (Literal[names], Field(description="a registered trainer (bench.train.TRAINERS)")),  # type: ignore[valid-type]
        "include": (str | None, Field(None, description="a shipped recipe name (or a file) this one starts from")),
    }
    return create_model(
        "TrainingRecipe",
        __base__=base,
        __doc__="A training recipe: a trainer, its settings, optionally included from another recipe.",
        **fields,
    )  # type: ignore[call-overload]
