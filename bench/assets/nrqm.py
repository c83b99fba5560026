"""The NRQM regression model (Ma et al. 2017): three regression random forests and a linear combination, from ``.mat``.

The authors' MATLAB release (``chaoma99/sr-metric``, ``model.mat``) and IQA-PyTorch's copy of it (``NRQM_model.mat``)
hold one MATLAB struct ``model`` with

- ``model.linear``: (4, 1), the weights of ``[1 s1 s2 s3] * linear`` (bias first);
- ``model.rf``: a 1x3 cell of forests trained by ``regRF_train`` (Jaiantilal's MATLAB port of Liaw & Wiener's
  ``randomForest``), one per feature group (18 local-frequency, 45 global-frequency, 75 spatial features). Each forest
  is a struct whose fields, in ``regRF_train``'s order, start ``lDau``, ``rDau``, ``nodestatus``, ``nrnodes``,
  ``upper``, ``avnode``, ``mbest``, ``ndtree``, ``ntree`` (arrays (nrnodes, ntree), 1-based children and variables,
  0 = no child) and may carry ``coef`` (the optional bias correction ``a + b * y``).

The file is read with :func:`scipy.io.loadmat` (numeric arrays, cells and structs only; MATLAB v7.3/HDF5 files are
refused with a clear error). Fields are found by name; a forest struct whose names differ is read by position in
``regRF_train``'s order (0, 1, 4, 5, 6, as IQA-PyTorch reads its copy) and then checked like any other.

Stored layout (kind ``nrqm``): ``linear`` (4,) float64 and, for ``k`` in 1..3, ``rf{k}.left`` / ``rf{k}.right``
(T, M) int64 (0-based child, -1 at a leaf), ``rf{k}.feature`` (T, M) int64 (0-based split variable, -1 at a leaf),
``rf{k}.threshold`` / ``rf{k}.value`` (T, M) float64 (split value: go left when ``x <= threshold``; the node's
prediction, used at leaves), ``rf{k}.bias`` (2,) float64 (``a, b`` of ``a + b * mean``; ``0, 1`` without bias
correction). A node is a leaf where ``nodestatus`` is -1 (what ``mexRF_predict`` stops on) or it has no left child;
nodes past a tree's ``ndtree`` are leaves and never reached.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.assets import CONVERTERS
from bench.assets.base import Converter
from bench.assets.errors import ConversionError

N_FEATURES = (18, 45, 75)  # local frequency, global frequency, spatial
FOREST_KEYS = ("left", "right", "feature", "threshold", "value", "bias")
_NAMES = {"left": ("lDau", "ldau"), "right": ("rDau", "rdau"), "threshold": ("upper",), "value": ("avnode",)}
_NAMES["feature"] = ("mbest",)
_POSITIONS = {"left": 0, "right": 1, "threshold": 4, "value": 5, "feature": 6}  # regRF_train's field order
NODE_TERMINAL = -1  # randomForest's nodestatus of a leaf (-3 split, -2 to split; 0 unused)


def _unwrap(x: Any) -> Any:
    """Strip the (1, 1) object/struct wrappers loadmat puts around cells and structs."""
    while isinstance(x, np.ndarray) and x.dtype == object and x.size == 1:
        x = x.reshape(-1)[0]
    while isinstance(x, np.ndarray) and x.dtype.names is not None and x.size == 1 and x.ndim > 0:
        x = x.reshape(-1)[0]
    return x


def _field(struct: Any, names: tuple[str, ...], position: int | None, what: str) -> np.ndarray | None:
    fields = struct.dtype.names or ()
    for name in names:
        if name in fields:
            return np.asarray(_unwrap(struct[name]))
    if position is not None and not any(n in fields for ns in _NAMES.values() for n in ns) and len(fields) > position:
        return np.asarray(_unwrap(struct[fields[position]]))
    if position is None:
        return None
    raise ConversionError(f"{what}: no field {names[0]!r}; fields are {list(fields)[:12]}")


def _forest(struct: Any, n_features: int, what: str) -> dict[str, torch.Tensor]:
    arrays = {k: _field(struct, _NAMES[k], _POSITIONS[k], what) for k in _NAMES}
    shape = arrays["left"].shape
    if len(shape) != 2 or any(a.shape != shape for a in arrays.values()):
        got = {k: a.shape for k, a in arrays.items()}
        raise ConversionError(f"{what}: node arrays must share one (nrnodes, ntree) shape, got {got}")
    m, t = shape
    left = arrays["left"].astype(np.int64).T  # (T, M), 1-based, 0 = none
    right = arrays["right"].astype(np.int64).T
    feature = arrays["feature"].astype(np.int64).T
    threshold = arrays["threshold"].astype(np.float64).T
    value = arrays["value"].astype(np.float64).T
    leaf = left == 0
    ndtree = _field(struct, ("ndtree",), None, what)
    if ndtree is not None:
        sizes = np.asarray(ndtree, dtype=np.int64).reshape(-1)
        if sizes.shape != (t,) or (sizes < 1).any() or (sizes > m).any():
            raise ConversionError(f"{what}: ndtree must give {t} tree sizes in 1..{m}")
        leaf |= np.arange(m)[None, :] >= sizes[:, None]
    status = _field(struct, ("nodestatus",), None, what)
    if status is not None and np.asarray(status).T.shape == leaf.shape:
        leaf |= np.asarray(status, dtype=np.int64).T == NODE_TERMINAL  # what mexRF_predict stops on
    inner = ~leaf
    if inner.any():
        if (left[inner] < 1).any() or (left[inner] > m).any() or (right[inner] < 1).any() or (right[inner] > m).any():
            raise ConversionError(f"{what}: a child index lies outside 1..{m}")
        if (feature[inner] < 1).any() or (feature[inner] > n_features).any():
            raise ConversionError(f"{what}: a split variable lies outside 1..{n_features}")
    bias = np.array([0.0, 1.0])
    coef = _field(struct, ("coef",), None, what)
    if coef is not None and coef.size == 2 and np.any(coef != 0):
        bias = np.asarray(coef, dtype=np.float64).reshape(2)
    return {
        "left": torch.from_numpy(np.where(leaf, -1, left - 1)),
        "right": torch.from_numpy(np.where(leaf, -1, right - 1)),
        "feature": torch.from_numpy(np.where(leaf, -1, feature - 1)),
        "threshold": torch.from_numpy(np.ascontiguousarray(threshold)),
        "value": torch.from_numpy(np.ascontiguousarray(value)),
        "bias": torch.from_numpy(bias),
    }


def read_nrqm_mat(path: Path) -> dict[str, torch.Tensor]:
    """``model.mat`` / ``NRQM_model.mat`` -> the ``nrqm`` layout (see the module docstring)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path, struct_as_record=True)
    except NotImplementedError as exc:  # MATLAB v7.3 is HDF5
        raise ConversionError(f"{path.name}: a MATLAB v7.3 (HDF5) file; save it with -v7 ({exc})") from exc
    except Exception as exc:  # scipy's parser raises many kinds (MatReadError, IndexError, ...) on a bad file
        raise ConversionError(f"{path.name}: not a MATLAB .mat file ({exc})") from exc
    if "model" not in mat:
        raise ConversionError(
            f"{path.name}: no variable 'model'; has {sorted(k for k in mat if not k.startswith('_'))}"
        )
    model = _unwrap(mat["model"])
    names = getattr(getattr(model, "dtype", None), "names", None) or ()
    if "linear" not in names or "rf" not in names:
        raise ConversionError(f"{path.name}: 'model' must be a struct with fields linear and rf, has {list(names)}")
    linear = np.asarray(_unwrap(model["linear"]), dtype=np.float64).reshape(-1)
    if linear.shape != (4,):
        raise ConversionError(f"{path.name}: model.linear must hold 4 weights, got {linear.size}")
    cells = np.asarray(model["rf"])
    while cells.dtype == object and cells.size == 1 and isinstance(cells.reshape(-1)[0], np.ndarray):
        inner = cells.reshape(-1)[0]
        if inner.dtype != object:
            break
        cells = inner
    cells = cells.reshape(-1)
    if cells.size != 3:
        raise ConversionError(f"{path.name}: model.rf must be a cell of 3 forests, got {cells.size}")
    out = {"linear": torch.from_numpy(linear)}
    for k, (cell, n_feat) in enumerate(zip(cells, N_FEATURES, strict=True), start=1):
        struct = _unwrap(cell)
        if getattr(getattr(struct, "dtype", None), "names", None) is None:
            raise ConversionError(f"{path.name}: model.rf{{{k}}} is not a struct")
        for key, tensor in _forest(struct, n_feat, f"{path.name} model.rf{{{k}}}").items():
            out[f"rf{k}.{key}"] = tensor
    return out


def check_forests(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Validate the ``nrqm`` layout (shapes, dtypes, index ranges); return the forest sizes."""
    want = {"linear"} | {f"rf{k}.{key}" for k in (1, 2, 3) for key in FOREST_KEYS}
    missing, extra = sorted(want - set(sd)), sorted(set(sd) - want)
    if missing or extra:
        raise ConversionError(f"not the NRQM model layout: missing {missing[:5]}, unexpected {extra[:5]}")
    if tuple(sd["linear"].shape) != (4,) or sd["linear"].dtype != torch.float64:
        raise ConversionError("NRQM model: linear must be (4,) float64")
    sizes = {}
    for k, n_feat in zip((1, 2, 3), N_FEATURES, strict=True):
        p = f"rf{k}."
        shape = tuple(sd[p + "left"].shape)
        if len(shape) != 2 or any(tuple(sd[p + key].shape) != shape for key in FOREST_KEYS[:5]):
            raise ConversionError(f"NRQM model: rf{k} node arrays must share one (trees, nodes) shape")
        for key, dtype in (("left", torch.int64), ("right", torch.int64), ("feature", torch.int64)):
            if sd[p + key].dtype != dtype:
                raise ConversionError(f"NRQM model: rf{k}.{key} must be {dtype}")
        for key in ("threshold", "value", "bias"):
            if sd[p + key].dtype != torch.float64:
                raise ConversionError(f"NRQM model: rf{k}.{key} must be float64")
        if tuple(sd[p + "bias"].shape) != (2,):
            raise ConversionError(f"NRQM model: rf{k}.bias must be (2,)")
        inner = sd[p + "left"] >= 0
        for key, hi in (("left", shape[1]), ("right", shape[1]), ("feature", n_feat)):
            v = sd[p + key][inner]
            if v.numel() and (v.min() < 0 or v.max() >= hi):
                raise ConversionError(f"NRQM model: rf{k}.{key} has an index outside 0..{hi - 1}")
        sizes[f"rf{k}"] = list(shape)
    return {"forests": sizes}


@CONVERTERS.register("nrqm-mat")
class NrqmMat(Converter):
    """``model.mat`` (the authors' release) or ``NRQM_model.mat`` (IQA-PyTorch's copy) -> the ``nrqm`` layout."""

    roles = ("weights",)
    kinds = ("nrqm",)

    def convert(self, files, spec):
        return read_nrqm_mat(files["weights"])
