"""JSON Schemas of the configuration files, so that editors complete and check them (``python -m bench schema``).

Each kind of file names its pydantic model by module path (:data:`SCHEMA_KINDS`), imported only when a schema is
written: a kind whose module is missing (e.g. the dataset manifests before that module lands) is skipped with a
logged note. A kind may also name a zero-argument function that returns the model (the training recipes' model is
derived from the registered trainers). Kinds that take ``include:`` get an ``include`` key, and their required keys
are required only in a file that includes no other (an including file may give only what differs).

Editors: the YAML language server (VS Code's YAML extension, and others) reads ``yaml.schemas`` in the settings, a
mapping from schema file to file globs (:func:`editor_settings` writes it), or a first-line comment
``# yaml-language-server: $schema=<path>/matrix.schema.json``.

Example::

    paths = write_schemas(Path("schemas"))        # [schemas/matrix.schema.json, ...]
"""

from __future__ import annotations

import importlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bench.atomic import atomic_write

logger = logging.getLogger(__name__)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class SchemaKind:
    """A kind of configuration file.

    Attributes:
        name: the schema's file stem (``matrix`` -> ``matrix.schema.json``).
        model: ``"module:attribute"``: a pydantic model class, or a function returning one.
        files: the glob (relative to the project root) of the shipped files of this kind.
        includes: whether the files may say ``include:`` (see the module docstring).
        check: ``"module:function"`` that loads and fully validates one file of this kind (registries included).
    """

    name: str
    model: str
    files: str
    includes: bool = False
    check: str | None = None


SCHEMA_KINDS: tuple[SchemaKind, ...] = (
    SchemaKind("matrix", "bench.runner.matrix_spec:MatrixFile", "bench/matrices/*.yaml", True,
               "bench.runner.matrix:load_matrix"),
    SchemaKind("method-card", "bench.methods.card_spec:CardFile", "methods/*.yaml", False,
               "bench.methods.cards:parse_card"),
    SchemaKind("training-recipe", "bench.train.recipe_spec:recipe_schema_model", "bench/train/recipes/*.yaml", True,
               "bench.train.recipe:load_recipe"),
    SchemaKind("dataset-manifest", "bench.data.manifest:DatasetManifest", "datasets/*.yaml", False,
               "bench.data.manifest:load_manifest"),
    SchemaKind("asset-manifest", "bench.assets.manifest:AssetManifest", "bench/assets/manifest.yaml", False,
               "bench.assets.manifest:load_manifest"),
)  # fmt: skip


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def load_model(kind: SchemaKind) -> type[BaseModel] | None:
    """The kind's model, or ``None`` (logged) when its module or attribute is not there."""
    try:
        target = _import(kind.model)
    except (ImportError, AttributeError) as exc:
        logger.info("no JSON Schema for %s: %s is not available (%s)", kind.name, kind.model, exc)
        return None
    model = target if isinstance(target, type) else target()
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{kind.model} is not a pydantic model (nor a function returning one)")
    return model


def _allow_include(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema.setdefault("properties", {})
    props["include"] = {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
        "description": "files (relative to this one) or shipped names merged first; this file's keys win",
    }
    required = schema.pop("required", None)
    if required:
        schema["if"] = {"required": ["include"]}
        schema["else"] = {"required": required}
    return schema


def json_schema(kind: SchemaKind) -> dict[str, Any] | None:
    """The JSON Schema (draft 2020-12) of one kind, or ``None`` when its model is not available."""
    model = load_model(kind)
    if model is None:
        return None
    schema = model.model_json_schema(mode="validation")
    if kind.includes:
        schema = _allow_include(schema)
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": f"{kind.name}.schema.json", **schema}


def write_schemas(out_dir: str | Path, kinds: tuple[SchemaKind, ...] = SCHEMA_KINDS) -> dict[str, Path]:
    """Write ``<kind>.schema.json`` for every available kind into ``out_dir`` (created), each atomically
    (:mod:`bench.atomic`: :class:`~bench.errors.OutputError` naming the file when it cannot be written); return kind
    name -> path."""
    out = Path(out_dir)
    written = {}
    for kind in kinds:
        schema = json_schema(kind)
        if schema is None:
            continue
        path = out / f"{kind.name}.schema.json"
        written[kind.name] = atomic_write(path, json.dumps(schema, indent=2, sort_keys=False) + "\n")
    return written


def editor_settings(written: dict[str, Path], kinds: tuple[SchemaKind, ...] = SCHEMA_KINDS) -> dict[str, Any]:
    """The ``yaml.schemas`` setting of the YAML language server: schema path -> the globs of its files."""
    by_name = {k.name: k for k in kinds}
    return {"yaml.schemas": {str(path): [by_name[name].files] for name, path in written.items()}}


def kind_of(path: str | Path, root: Path, kinds: tuple[SchemaKind, ...] = SCHEMA_KINDS) -> SchemaKind | None:
    """The kind whose glob matches ``path`` (relative to ``root``), or ``None``."""
    path = Path(path).resolve()
    for kind in kinds:
        if any(path == p.resolve() for p in root.glob(kind.files)):
            return kind
    return None


def check_file(path: str | Path, kind: SchemaKind) -> None:
    """Load and fully validate one file of ``kind`` (raises the kind's error, one line per problem)."""
    if kind.check is None:
        raise ValueError(f"no checker for {kind.name}")
    try:
        checker = _import(kind.check)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot check {kind.name} files: {kind.check} is not available ({exc})") from exc
    checker(Path(path))
