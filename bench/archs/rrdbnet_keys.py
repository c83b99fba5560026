"""RRDBNet checkpoints in foreign key layouts, renamed to the BasicSR names of :class:`bench.archs.rrdbnet.RRDBNet`.

The same ESRGAN generator (conv, N RRDBs, trunk conv + skip, two nearest-x2 + conv + LeakyReLU(0.2) upsamplers, an HR
conv + LeakyReLU, a last conv) has been published under three naming schemes (:data:`RRDB_KEY_LAYOUTS`):

- ``basicsr``: ``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``,
  ``conv_last`` -- BasicSR >= 1.0, Real-ESRGAN / Real-ESRNet, ``ESRGAN_SRx4_DF2KOST_official-ff704c30.pth``.
- ``rrdb_trunk``: ``conv_first``, ``RRDB_trunk.N.RDBK.convJ``, ``trunk_conv``, ``upconv1``, ``upconv2``, ``HRconv``,
  ``conv_last`` -- the ESRGAN repository's ``RRDB_ESRGAN_x4.pth``, mmsr, RealSR (Impressionism) and KAIR's
  ``BSRNet.pth`` / ``BSRGAN.pth`` / ``ESRGAN.pth``.
- ``esrgan_old``: ``model.0`` (first conv), ``model.1.sub.N.RDBK.convJ.0`` (the RRDBs), ``model.1.sub.<num_block>``
  (trunk conv), ``model.3`` / ``model.6`` (upsampling convs), ``model.8`` (HR conv), ``model.10`` (last conv) -- the
  original ESRGAN release (``RRDB_ESRGAN_x4_old_arch.pth``) and old-BasicSR trainings such as ESRGAN-FS.

Only x4 checkpoints map onto each other (BasicSR's x2/x1 models pixel-unshuffle the input, the others do not).
:func:`to_basicsr` detects the layout from the keys, renames every tensor (values untouched) and refuses a key it
cannot place, naming it. Loading stays tensors-only (:func:`bench.assets.load_checkpoint`).

Example::

    sd, layout = to_basicsr(load_checkpoint("BSRGAN.pth"))   # layout == "rrdb_trunk"
    RRDBNet(num_block=23).load_state_dict(sd, strict=True)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping

import torch

from bench.registry import Registry

logger = logging.getLogger(__name__)

Renamer = Callable[[list[str]], dict[str, str]]
RRDB_KEY_LAYOUTS: Registry[Renamer] = Registry("RRDBNet key layout")


class KeyLayoutError(ValueError):
    """The keys of a checkpoint match no known RRDBNet layout, or one of them cannot be placed."""


def _rename_all(keys: list[str], rules: list[tuple[re.Pattern[str], str]], layout: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in keys:
        for pattern, repl in rules:
            if pattern.fullmatch(key):
                out[key] = pattern.sub(repl, key)
                break
        else:
            raise KeyLayoutError(f"key {key!r} has no place in an RRDBNet of the {layout!r} layout")
    return out


_P = r"(weight|bias)"


@RRDB_KEY_LAYOUTS.register("basicsr")
def basicsr_names(keys: list[str]) -> dict[str, str]:
    """The stored layout itself: every key kept (a key of another layout is refused)."""
    names = r"(conv_first|conv_body|conv_up1|conv_up2|conv_hr|conv_last)\." + _P
    rules = [(re.compile(names), r"\1.\2"), (re.compile(r"body\.(\d+)\.rdb([123])\.conv([1-5])\." + _P), r"\g<0>")]
    return _rename_all(keys, rules, "basicsr")


@RRDB_KEY_LAYOUTS.register("rrdb_trunk", aliases=("kair", "mmsr", "esrgan"))
def rrdb_trunk_names(keys: list[str]) -> dict[str, str]:
    """ESRGAN repository / mmsr / KAIR names (``RRDB_trunk``, ``trunk_conv``, ``upconv1``, ``HRconv``)."""
    rules = [
        (re.compile(r"(conv_first|conv_last)\." + _P), r"\1.\2"),
        (re.compile(r"RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])\." + _P), r"body.\1.rdb\2.conv\3.\4"),
        (re.compile(r"trunk_conv\." + _P), r"conv_body.\1"),
        (re.compile(r"upconv([12])\." + _P), r"conv_up\1.\2"),
        (re.compile(r"HRconv\." + _P), r"conv_hr.\1"),
    ]
    return _rename_all(keys, rules, "rrdb_trunk")


_OLD_TAIL = {"3": "conv_up1", "6": "conv_up2", "8": "conv_hr", "10": "conv_last"}


@RRDB_KEY_LAYOUTS.register("esrgan_old", aliases=("old_arch",))
def esrgan_old_names(keys: list[str]) -> dict[str, str]:
    """The original ESRGAN ``nn.Sequential`` names (``model.0``, ``model.1.sub.N.RDBK.convJ.0``, ``model.10``)."""
    blocks = {int(m.group(1)) for k in keys if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", k))}
    trunk = len(blocks)  # the trunk conv follows the RRDBs in the shortcut's sequence
    if blocks != set(range(trunk)):
        raise KeyLayoutError(f"esrgan_old: RRDB indices {sorted(blocks)} are not 0..{trunk - 1}")
    rules = [
        (re.compile(r"model\.0\." + _P), r"conv_first.\1"),
        (re.compile(r"model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\." + _P), r"body.\1.rdb\2.conv\3.\4"),
        (re.compile(rf"model\.1\.sub\.{trunk}\." + _P), r"conv_body.\1"),
    ]
    rules += [(re.compile(rf"model\.{i}\." + _P), rf"{name}.\1") for i, name in _OLD_TAIL.items()]
    return _rename_all(keys, rules, "esrgan_old")


_MARKERS = {"basicsr": "body.0.rdb1.conv1.weight", "rrdb_trunk": "RRDB_trunk.0.RDB1.conv1.weight"}
_MARKERS["esrgan_old"] = "model.1.sub.0.RDB1.conv1.0.weight"


def detect_layout(keys: list[str] | Mapping[str, object]) -> str:
    """The layout whose marker key (its first dense-block conv) is present; :class:`KeyLayoutError` if none is."""
    keys = list(keys)
    found = [name for name, marker in _MARKERS.items() if marker in keys]
    if len(found) != 1:
        sample = ", ".join(keys[:4])
        raise KeyLayoutError(
            f"not an RRDBNet checkpoint of a known key layout ({', '.join(RRDB_KEY_LAYOUTS.names())}); "
            f"first keys: {sample}"
        )
    return found[0]


def to_basicsr(
    state_dict: Mapping[str, torch.Tensor], layout: str | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """Rename an RRDBNet state dict to BasicSR names.

    Args:
        state_dict: ``{name: tensor}`` in any layout of :data:`RRDB_KEY_LAYOUTS` (a DataParallel ``module.`` prefix
            is already stripped by :func:`bench.assets.load_checkpoint`).
        layout: the layout, or ``None`` to detect it from the keys.

    Returns:
        The renamed state dict (same tensors) and the layout's name.

    Raises:
        KeyLayoutError: no layout matches, or a key has no place in it.
    """
    name = layout or detect_layout(state_dict)
    renames = RRDB_KEY_LAYOUTS.get(name)(list(state_dict))
    out = {renames[k]: v for k, v in state_dict.items()}
    if len(out) != len(state_dict):
        raise KeyLayoutError(f"{name}: two keys map to the same BasicSR name")
    if name != "basicsr":
        logger.info("renamed %d RRDBNet tensors from the %s key layout to BasicSR names", len(out), name)
    return out, name
