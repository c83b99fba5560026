"""``python -m bench schema``: JSON Schemas of the configuration files, and a full check of given files.

``schema [--out DIR]`` writes ``matrix.schema.json``, ``method-card.schema.json``, ``training-recipe.schema.json``,
``dataset-manifest.schema.json`` and ``asset-manifest.schema.json`` into DIR (default ``schemas/`` of the project,
:func:`bench.paths.schemas_dir`: the checkout's, or the current directory's for an installed wheel) and
prints the ``yaml.schemas`` editor setting that maps them to the project's files. ``schema --check FILE ...``
validates files as the commands would (registries and method cards included) and prints every problem with the file,
the dotted key and the closest valid name; exit code 1 when a file has a problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``schema`` to the CLI."""
    p = subparsers.add_parser(
        "schema",
        help="write JSON Schemas of matrices, method cards, recipes, manifests (editor completion); --check files",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("--out", type=Path, default=None, help="folder of the schemas (default: <project>/schemas)")
    p.add_argument("--check", nargs="+", type=Path, metavar="FILE", help="validate these files instead")
    p.add_argument("--kind", default=None, help="the kind of the --check files (default: from their location)")
    p.set_defaults(func=schema_command)


def _check(paths: list[Path], kind_name: str | None) -> int:
    from bench.config.errors import ConfigError
    from bench.config.schema import SCHEMA_KINDS, check_file, kind_of
    from bench.paths import PACKAGE_DIR, SHIPPED_DIR, project_root

    roots = (project_root(), PACKAGE_DIR.parent, SHIPPED_DIR)  # the project's files, then the package's own
    by_name = {k.name: k for k in SCHEMA_KINDS}
    if kind_name is not None and kind_name not in by_name:
        raise ValueError(f"unknown kind {kind_name!r}; known: {', '.join(by_name)}")
    bad = 0
    for path in paths:
        kind = by_name[kind_name] if kind_name else next(filter(None, (kind_of(path, r) for r in roots)), None)
        if kind is None:
            raise ValueError(f"{path}: cannot tell its kind from its location; give --kind ({', '.join(by_name)})")
        try:
            check_file(path, kind)
        except (ConfigError, KeyError, ValueError, FileNotFoundError) as exc:
            bad += 1
            print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
            continue
        print(f"ok: {path} ({kind.name})")
    return 1 if bad else 0


def schema_command(args: argparse.Namespace) -> int:
    if args.check:
        return _check(args.check, args.kind)
    from bench.config.schema import editor_settings, write_schemas
    from bench.paths import schemas_dir

    out = args.out if args.out is not None else schemas_dir()
    written = write_schemas(out)
    for path in written.values():
        print(path)
    print("editor setting (VS Code settings.json, YAML extension):", file=sys.stderr)
    print(json.dumps(editor_settings(written), indent=2), file=sys.stderr)
    return 0
