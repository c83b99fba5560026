"""The stored key layouts, one per asset kind -- the contract the rest of the benchmark relies on.

- ``rrdbnet``: BasicSR names (``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``, ``conv_up1``, ``conv_up2``,
  ``conv_hr``, ``conv_last``; ``.weight``/``.bias``), float32; loads into :class:`bench.archs.rrdbnet.RRDBNet` with
  ``strict=True`` given the recorded ``arch`` (``num_block`` etc.).
- ``lpips``: ``conv1``..``conv5`` (AlexNet, torchvision ``features`` order) or ``conv1``..``conv13`` (VGG16)
  ``.weight`` (OIHW) / ``.bias``, and ``lin0``..``lin4.weight`` of shape (1, C, 1, 1), float32.
- ``niqe``: ``mu_pris_param`` (1, 36), ``cov_pris_param`` (36, 36), ``gaussian_window`` (7, 7), float64.
- ``brisque``: ``support_vectors`` (S, 36), ``dual_coef`` (S,), ``rho`` (1,), ``gamma`` (1,), ``range_min`` (36,),
  ``range_max`` (36,), ``range_bounds`` (2,), float64 (libsvm RBF epsilon-SVR + ``svm-scale`` ranges).
- ``nrqm``: ``linear`` (4,) float64 and three regression forests ``rf{k}.left|right|feature`` (T, M) int64,
  ``rf{k}.threshold|value`` (T, M) float64, ``rf{k}.bias`` (2,) float64 (:mod:`bench.assets.nrqm`).

:func:`check_layout` validates a converted state dict and returns what the metadata records (e.g. the RRDBNet
arguments inferred from the shapes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from bench.assets.errors import ConversionError

ALEX_CONVS = ((64, 3, 11), (192, 64, 5), (384, 192, 3), (256, 384, 3), (256, 256, 3))
VGG16_CONVS = tuple(
    (o, i, 3)
    for o, i in (
        (64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256),
        (512, 256), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512),
    )
)  # fmt: skip
LPIPS_HEADS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
NIQE_SHAPES = {"mu_pris_param": (1, 36), "cov_pris_param": (36, 36), "gaussian_window": (7, 7)}
BRISQUE_SHAPES = {"rho": (1,), "gamma": (1,), "range_min": (36,), "range_max": (36,), "range_bounds": (2,)}

_BODY = re.compile(r"^body\.(\d+)\.")


def _diff(got: Mapping[str, tuple[int, ...]], want: Mapping[str, tuple[int, ...]], what: str) -> None:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = sorted(k for k in set(got) & set(want) if tuple(got[k]) != tuple(want[k]))
    if missing or extra or wrong:
        detail = [f"missing {missing[:5]}"] if missing else []
        detail += [f"unexpected {extra[:5]}"] if extra else []
        detail += [f"{k}: {tuple(got[k])} != {tuple(want[k])}" for k in wrong[:5]]
        raise ConversionError(f"not the {what} layout: " + "; ".join(detail))


def _check_dtype(sd: Mapping[str, torch.Tensor], dtype: torch.dtype, what: str) -> None:
    bad = sorted(k for k, v in sd.items() if v.dtype != dtype)
    if bad:
        raise ConversionError(f"{what}: tensors {bad[:5]} are not {dtype}")


def rrdbnet_arch(sd: Mapping[str, torch.Tensor], scale: int = 4) -> dict[str, int]:
    """RRDBNet arguments inferred from a BasicSR state dict (``scale`` cannot be, so it is given)."""
    try:
        first = sd["conv_first.weight"]
        blocks = {int(m.group(1)) for k in sd if (m := _BODY.match(k))}
        unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        return {
            "num_in_ch": int(first.shape[1]) // (unshuffle * unshuffle),
            "num_out_ch": int(sd["conv_last.weight"].shape[0]),
            "scale": scale,
            "num_feat": int(first.shape[0]),
            "num_block": len(blocks),
            "num_grow_ch": int(sd["body.0.rdb1.conv1.weight"].shape[0]) if blocks else 32,
        }
    except KeyError as exc:
        raise ConversionError(f"not an RRDBNet state dict: no {exc.args[0]!r}") from None


def check_rrdbnet(sd: Mapping[str, torch.Tensor], arch: Mapping[str, Any]) -> dict[str, Any]:
    from bench.archs.rrdbnet import RRDBNet

    inferred = rrdbnet_arch(sd, int(arch.get("scale", 4)))
    conflicts = {k: (v, inferred[k]) for k, v in arch.items() if k in inferred and int(v) != inferred[k]}
    if conflicts:
        raise ConversionError(f"the weights do not match the declared arch (declared, found): {conflicts}")
    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in RRDBNet(**inferred).state_dict().items()}
    _diff({k: tuple(v.shape) for k, v in sd.items()}, want, f"RRDBNet {inferred}")
    _check_dtype(sd, torch.float32, "rrdbnet")
    return {"arch": inferred, "num_block": inferred["num_block"]}


def check_lpips(sd: Mapping[str, torch.Tensor], arch: Mapping[str, Any]) -> dict[str, Any]:
    net = str(arch.get("net", "alex"))
    if net not in LPIPS_HEADS:
        raise ConversionError(f"unknown LPIPS net {net!r}; known: {sorted(LPIPS_HEADS)}")
    convs = ALEX_CONVS if net == "alex" else VGG16_CONVS
    want: dict[str, tuple[int, ...]] = {}
    for i, (o, c, k) in enumerate(convs, start=1):
        want[f"conv{i}.weight"] = (o, c, k, k)
        want[f"conv{i}.bias"] = (o,)
    for i, c in enumerate(LPIPS_HEADS[net]):
        want[f"lin{i}.weight"] = (1, c, 1, 1)
    _diff({k: tuple(v.shape) for k, v in sd.items()}, want, f"LPIPS {net}")
    _check_dtype(sd, torch.float32, "lpips")
    return {"arch": {"net": net}, "num_convs": len(convs)}


def check_niqe(sd: Mapping[str, torch.Tensor], arch: Mapping[str, Any]) -> dict[str, Any]:
    _diff({k: tuple(v.shape) for k, v in sd.items()}, NIQE_SHAPES, "NIQE pristine model")
    _check_dtype(sd, torch.float64, "niqe")
    return {}


def check_brisque(sd: Mapping[str, torch.Tensor], arch: Mapping[str, Any]) -> dict[str, Any]:
    n = int(sd["dual_coef"].shape[0]) if "dual_coef" in sd and sd["dual_coef"].ndim == 1 else -1
    want = dict(BRISQUE_SHAPES, support_vectors=(n, 36), dual_coef=(n,))
    _diff({k: tuple(v.shape) for k, v in sd.items()}, want, "BRISQUE SVR model")
    _check_dtype(sd, torch.float64, "brisque")
    return {"support_vectors": n}


def check_nrqm(sd: Mapping[str, torch.Tensor], arch: Mapping[str, Any]) -> dict[str, Any]:
    from bench.assets.nrqm import check_forests

    return check_forests(sd)


_CHECKS = {
    "rrdbnet": check_rrdbnet,
    "lpips": check_lpips,
    "niqe": check_niqe,
    "brisque": check_brisque,
    "nrqm": check_nrqm,
}


def check_layout(kind: str, sd: Mapping[str, torch.Tensor], arch: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate ``sd`` against the layout of ``kind``; return metadata to record. ``ConversionError`` if it differs."""
    if kind not in _CHECKS:
        raise ConversionError(f"unknown asset kind {kind!r}; known: {sorted(_CHECKS)}")
    bad = [k for k, v in sd.items() if not torch.isfinite(v).all()]
    if bad:
        raise ConversionError(f"non-finite values in {bad[:5]}")
    return _CHECKS[kind](sd, dict(arch or {}))
