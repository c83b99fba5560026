"""The one YAML loader: ``include:``, ``--set`` overrides, validation into pydantic models with every problem at once.

Reading (:func:`load_yaml`): a UTF-8 YAML file whose top level is a mapping. ``include:`` names one file or a list of
files (resolved by the caller's ``find_include``, by default relative to the including file); they are merged in order,
then the including file on top: mappings are deep-merged, lists and scalars replaced (the including file wins). A file
that includes itself, directly or not, is refused with the chain.

Overrides (:func:`apply_overrides`): ``dotted.key=value`` expressions applied to the merged mapping before validation.
Entries of a list are addressed by their ``name`` (or the bare string they are) or by index, e.g.
``conditions.noise.params.sigma=0.05``, ``datasets.0.crop=128``, ``methods=[bicubic]``. Values are parsed as YAML
(``null``, ``[1, 2]``, ``{a: 1}``); a string that reads as a float (``1e-4``, a string for YAML 1.1) becomes that float.

Validation (:func:`validate_model`): NaN and infinite numbers are refused anywhere; the pydantic errors are turned into
lines ``<dotted key>: <message>``, the key written as ``--set`` addresses it (list entries by name), an unknown key with
the closest valid key (:mod:`difflib`). Every problem is collected into one :class:`~bench.errors.ConfigFileError`.

Example::

    data = load_yaml(path, kind="matrix")
    problems = apply_overrides(data, ["seeds=[0, 1]"])
    model, more = validate_model(MatrixFile, data)
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bench.config.errors import ConfigFileError

YAML_SUFFIXES = (".yaml", ".yml")
FindInclude = Callable[[str, Path], "Path | None"]


# ----------------------------------------------------------------------------------------------------------- files


def read_yaml(path: Path, kind: str = "config") -> dict[str, Any]:
    """One YAML file -> its top-level mapping (an empty file is ``{}``); else :class:`ConfigFileError` naming it."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigFileError(str(path), [f"cannot read the file: {exc.strerror or exc}"], kind) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(
            str(path), [f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save it as UTF-8"], kind
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())
        raise ConfigFileError(str(path), [f"invalid YAML: {first}"], kind) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(str(path), [f"the top level must be a mapping of keys, got {type(data).__name__}"], kind)
    return data


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``top``: nested mappings merged recursively, lists and scalars replaced by ``top``'s."""
    out = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _relative_include(name: str, including: Path) -> Path | None:
    for candidate in (including.parent / name, including.parent / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    return None


def load_yaml(
    path: str | Path, *, kind: str = "config", find_include: FindInclude | None = None, _chain: tuple[Path, ...] = ()
) -> dict[str, Any]:
    """Read ``path`` and resolve its ``include:`` chain (see the module docstring); the result has no ``include``.

    Args:
        path: the YAML file.
        kind: the file's kind, the first word of error messages ("matrix", "recipe").
        find_include: ``(name, including_file) -> path or None``; default: ``name`` (or ``name.yaml``) next to the
            including file.

    Raises:
        ConfigFileError: unreadable or non-UTF-8 file, invalid YAML, a non-mapping, an include not found, a cycle.
    """
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, path))
        raise ConfigFileError(str(_chain[0]), [f"include: include cycle {cycle}"], kind)
    data = read_yaml(path, kind)
    include = data.pop("include", None)
    if include is None:
        return data
    names = include if isinstance(include, list) else [include]
    merged: dict[str, Any] = {}
    for name in names:
        if not isinstance(name, str) or not name:
            problem = f"include: expected a file name or a list of them, got {include!r}"
            raise ConfigFileError(str(path), [problem], kind)
        found = (find_include or _relative_include)(name, path)
        if found is None:
            raise ConfigFileError(str(path), [f"include: {name!r} not found (relative to {path.parent})"], kind)
        merged = deep_merge(merged, load_yaml(found, kind=kind, find_include=find_include, _chain=(*_chain, path)))
    return deep_merge(merged, data)


# ------------------------------------------------------------------------------------------------------- overrides


def parse_set(expression: str) -> tuple[str, Any]:
    """``"train.iters=100"`` -> ``("train.iters", 100)``; the value parsed as YAML.

    Raises:
        ValueError: no ``=`` or an empty key; a value that is not valid YAML (one line naming the key).
    """
    key, sep, raw = expression.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"--set {expression!r}: expected KEY=VALUE with a dotted key (e.g. train.iters=100)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ValueError(
            f"--set {key}: the value {raw!r} is not valid YAML ({problem}); quote it, e.g. {key}='\"...\"'"
        ) from exc
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # YAML 1.1 reads 1e-2 (no dot) as a string; a number is meant
            value = float(value)
    return key, value


def entry_name(entry: Any) -> str | None:
    """The name a list entry is addressed by: the bare string, or the mapping's ``name``."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, Mapping) and "name" in entry:
        return str(entry["name"])
    return None


def _list_index(node: list, key: str, where: str) -> int:
    names = [entry_name(e) for e in node]
    if key in names:
        return names.index(key)
    if key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
        return int(key)
    known = ", ".join(n for n in names if n is not None) or "none"
    close = difflib.get_close_matches(key, [n for n in names if n is not None], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise KeyError(f"{where}: no entry named {key!r}{hint}; entries: {known} (an index 0..{len(node) - 1} works too)")


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data[a][b]...`` for ``key = "a.b..."`` in place (list entries by name or index; missing dicts made)."""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "the top level"
        last = depth == len(parts) - 1
        if isinstance(node, list):
            idx = _list_index(node, part, where)
            if last:
                node[idx] = value
                return
            if isinstance(node[idx], str):  # a bare name becomes a mapping so a sub-key can be set
                node[idx] = {"name": node[idx]}
            node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        else:
            raise ValueError(f"{where} is {node!r}, not a mapping or a list: it has no key {part!r}")


def apply_overrides(data: dict[str, Any], expressions: Sequence[str]) -> list[str]:
    """Apply ``--set`` expressions to ``data`` in place; return one problem line per expression that failed."""
    problems = []
    for expression in expressions:
        try:
            key, value = parse_set(expression)
            set_dotted(data, key, value)
        except ValueError as exc:
            problems.append(str(exc) if str(exc).startswith("--set") else f"--set {expression}: {exc}")
        except KeyError as exc:
            problems.append(f"--set {expression}: {exc.args[0] if exc.args else exc}")
    return problems


# ------------------------------------------------------------------------------------------------------ validation


def non_finite(data: Any, prefix: str = "") -> list[str]:
    """One problem per NaN or infinite number in ``data`` (``.nan``/``.inf`` in YAML), by dotted key."""
    out = []
    if isinstance(data, float) and not math.isfinite(data):
        out.append(f"{prefix or 'value'}: {data} is not a finite number")
    elif isinstance(data, Mapping):
        for k, v in data.items():
            out.extend(non_finite(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.extend(non_finite(v, f"{prefix}.{entry_name(v) or i}" if prefix else str(i)))
    return out


def suggestion(name: str, known: Sequence[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``known``, or ``""``."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unwrap(tp: Any) -> list[Any]:
    """The candidate types of an annotation (``Optional``/``Union``/``Annotated`` opened)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(tp) for t in _unwrap(arg)]
    return [tp]


def _step(tp: Any, part: Any) -> Any:
    """The annotation one location step below ``tp`` (a model field, a list item, a dict value), or ``None``."""
    for cand in _unwrap(tp):
        origin = typing.get_origin(cand)
        if isinstance(cand, type) and issubclass(cand, BaseModel) and isinstance(part, str):
            field = cand.model_fields.get(part)
            if field is not None:
                return field.annotation
        elif origin in (list, tuple, Sequence) and isinstance(part, int):
            return typing.get_args(cand)[0] if typing.get_args(cand) else None
        elif origin in (dict, Mapping) and isinstance(part, str):
            return typing.get_args(cand)[1] if typing.get_args(cand) else None
    return None


def _union_member(tp: Any, part: Any) -> Any:
    """The member of the union ``tp`` that the location step ``part`` names, or ``None`` when it names none.

    pydantic puts the member of a union into an error's location: the tag of a discriminated union (``url`` for
    ``type: url``) or the class name of a smart union's member. Such a step is no key of the file."""
    members = [c for c in _unwrap(tp) if isinstance(c, type) and issubclass(c, BaseModel)]
    if len(members) < 2 or not isinstance(part, str):
        return None
    for member in members:
        if part == member.__name__:
            return member
        for field in member.model_fields.values():
            if typing.get_origin(field.annotation) is typing.Literal and part in typing.get_args(field.annotation):
                return member
    return None


def strip_union_tags(model: type[BaseModel], loc: Sequence[Any]) -> tuple[Any, ...]:
    """``loc`` without the union-member steps pydantic inserts (see :func:`_union_member`)."""
    out = []
    tp: Any = model
    for part in loc:
        member = _union_member(tp, part) if tp is not None else None
        if member is not None:
            tp = member
            continue
        out.append(part)
        tp = _step(tp, part) if tp is not None else None
    return tuple(out)


def _known_fields(tp: Any) -> list[str]:
    for cand in _unwrap(tp):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return [f.alias or name for name, f in cand.model_fields.items()]
    return []


def dotted_key(loc: Sequence[Any], data: Any) -> str:
    """A pydantic location as ``--set`` writes it: list entries by their name when they have one."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and -len(node) <= part < len(node):
            node = node[part]
            parts.append(entry_name(node) or str(part))
            continue
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(part, str) and ("[" in part or part in ("str", "int", "float")):
            continue  # a union member or validator tag, not a key
        else:
            node = None
        parts.append(str(part))
    return ".".join(parts) or "the top level"


def pydantic_problems(exc: ValidationError, model: type[BaseModel], data: Any) -> list[str]:
    """One line per error of ``exc``: ``<dotted key>: <message>``; unknown keys with the closest valid key; a
    discriminated union's wrong or missing tag (``type: ftp``) as the key and the tags it may take.

    A required key reported missing is left out when an unknown key of the same mapping is its misspelling (the
    unknown-key line already says ``did you mean``)."""
    out: list[tuple[str, str]] = []  # (missing key or "", line)
    suggested: set[str] = set()
    for err in exc.errors(include_url=False):
        loc = strip_union_tags(model, err["loc"])
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):  # the discriminator key (``type``) is wrong
            ctx = err.get("ctx") or {}
            field = str(ctx.get("discriminator", "")).strip("'")
            key = dotted_key(loc, data)
            if err["type"] == "union_tag_not_found":
                where = field if key == "the top level" else f"{key}.{field}"
                out.append(("", f"missing required key {where!r}"))
            else:
                tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
                hint = suggestion(ctx.get("tag", ""), tags)
                out.append(("", f"{key}: {field} must be one of {', '.join(tags)}, got {ctx.get('tag')!r}{hint}"))
            continue
        if err["type"] == "extra_forbidden":
            parent: Any = model
            for part in loc[:-1]:
                parent = _step(parent, part) if parent is not None else None
            known = _known_fields(parent) if parent is not None else []
            where = dotted_key(loc[:-1], data)
            prefix = "" if where == "the top level" else f"{where}."
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            if close:
                suggested.add(prefix + close[0])
                hint = f" (did you mean {prefix + close[0]!r}?)"
            else:
                hint = f"; allowed {'here' if prefix else 'at the top level'}: {', '.join(sorted(known))}"
            out.append(("", f"unknown key {prefix + str(loc[-1])!r}{hint}"))
            continue
        msg = err["msg"]
        for lead in ("Value error, ", "Assertion failed, "):
            if msg.startswith(lead):
                msg = msg[len(lead) :]
        key = dotted_key(loc, data)
        if err["type"] == "missing":
            out.append((key, f"missing required key {key!r}"))
            continue
        if err["type"] not in ("value_error", "assertion_error"):
            msg = f"{msg}, got {err.get('input')!r}"
        out.append(("", f"{key}: {msg}"))
    return [line for missing, line in out if not (missing and missing in suggested)]


def validate_model(
    model: type[BaseModel], data: Mapping[str, Any], context: dict[str, Any] | None = None
) -> tuple[BaseModel | None, list[str]]:
    """Validate ``data`` into ``model``; return ``(instance or None, problems)`` (non-finite numbers included)."""
    problems = non_finite(data)
    try:
        instance = model.model_validate(data, context=context)
    except ValidationError as exc:
        return None, problems + pydantic_problems(exc, model, data)
    return (instance if not problems else None), problems
