"""The NIQE pristine model from BasicSR's ``niqe_pris_params.npz``, read with ``allow_pickle=False``.

Keys: ``mu_pris_param`` (1, 36), ``cov_pris_param`` (36, 36), ``gaussian_window`` (7, 7), float64 -- the standard
pristine model of the MATLAB NIQE (Mittal et al., "Making a completely blind image quality analyzer", 2013).
"""

from __future__ import annotations

import zipfile

import numpy as np
import torch

from bench.assets import CONVERTERS
from bench.assets.base import Converter
from bench.assets.errors import ConversionError

NIQE_KEYS = ("mu_pris_param", "cov_pris_param", "gaussian_window")


@CONVERTERS.register("niqe-npz")
class NiqeNpz(Converter):
    """``niqe_pris_params.npz`` -> ``{mu_pris_param, cov_pris_param, gaussian_window}`` float64 tensors."""

    roles = ("weights",)
    kinds = ("niqe",)

    def convert(self, files, spec):
        path = files["weights"]
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: np.array(npz[k]) for k in npz.files}
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise ConversionError(f"{path.name}: not a numeric .npz ({exc})") from exc
        missing = [k for k in NIQE_KEYS if k not in arrays]
        if missing:
            raise ConversionError(f"{path.name}: missing arrays {missing}; has {sorted(arrays)}")
        return {k: torch.from_numpy(arrays[k].astype(np.float64)) for k in NIQE_KEYS}
