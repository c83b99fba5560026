"""Any metric of IQA-PyTorch (``pyiqa``) as a benchmark metric: ``pyiqa:brisque``, ``pyiqa:musiq``, ...

Library: C. Chen, J. Mo, "IQA-PyTorch: PyTorch Toolbox for Image Quality Assessment",
https://github.com/chaofengc/IQA-PyTorch. The no-reference scores of the NTIRE 2020 RWSR report (BRISQUE, PIQE,
NRQM, PI; seed 003) and learned ones (MUSIQ, MANIQA, CLIP-IQA, ...) come from there, with pyiqa's own weights.

``pyiqa`` is imported only when a metric is built (it imports torchvision, which is not importable on every machine
this benchmark runs on); where it or its weights are missing, building raises :class:`PyIQAUnavailable` (an
``ImportError``) that says so and how to install it. The names registered here are the common ones
(:data:`KNOWN`); :func:`pyiqa_metric` wraps any other pyiqa name, and ``build_metric("pyiqa:<name>")`` does too.

Each call rounds the images to the 8-bit grid (pyiqa's reference values come from 8-bit image files), removes
``crop_border`` pixels on each side and calls pyiqa's metric with [0, 1] RGB tensors on the inputs' device (one
pyiqa model is built per device). The spec takes ``lower_better`` and FR/NR from pyiqa once it is built; before
(``python -m bench score --list`` on a machine without pyiqa) it comes from :data:`KNOWN`.

Input: ``sr`` (N, 3, H, W) float in [0, 1]; ``hr`` for full-reference metrics. Output: (N,) float64 on the inputs'
device; the direction is the spec's. Not differentiable here (use pyiqa's ``as_loss`` directly for that).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, ClassVar

import torch

from bench.images import check_batch, quantize
from bench.metrics import METRICS
from bench.metrics.base import Metric, MetricSpec, crop_border
from bench.metrics.psnr import check_crop_border, paired_inputs

logger = logging.getLogger(__name__)

PREFIX = "pyiqa:"

#: pyiqa name -> (full_reference, lower_better), as pyiqa declares them (checked against pyiqa when it is built).
KNOWN: dict[str, tuple[bool, bool]] = {
    "brisque": (False, True),
    "brisque_matlab": (False, True),
    "niqe": (False, True),
    "niqe_matlab": (False, True),
    "ilniqe": (False, True),
    "piqe": (False, True),
    "nrqm": (False, False),
    "pi": (False, True),
    "musiq": (False, False),
    "musiq-koniq": (False, False),
    "maniqa": (False, False),
    "clipiqa": (False, False),
    "topiq_nr": (False, False),
    "paq2piq": (False, False),
    "dbcnn": (False, False),
    "hyperiqa": (False, False),
    "nima": (False, False),
    "psnr": (True, False),
    "psnry": (True, False),
    "ssim": (True, False),
    "ssimc": (True, False),
    "ms_ssim": (True, False),
    "lpips": (True, True),
    "lpips-vgg": (True, True),
    "dists": (True, True),
    "fsim": (True, False),
    "vif": (True, False),
    "gmsd": (True, True),
    "pieapp": (True, True),
    "ckdn": (True, False),
}

_INSTALL = "pip install pyiqa (it needs torchvision and downloads its weights on first use)"


class PyIQAUnavailable(ImportError):
    """pyiqa, or the weights of the asked metric, cannot be loaded on this machine."""


def import_pyiqa() -> Any:
    """``import pyiqa`` or :class:`PyIQAUnavailable` with the reason and the remedy."""
    try:
        return importlib.import_module("pyiqa")
    except Exception as exc:  # ImportError, or torchvision's RuntimeError/OSError on a CPU-only torch
        raise PyIQAUnavailable(
            f"pyiqa metrics need the pyiqa package, which cannot be imported here ({type(exc).__name__}: {exc}); "
            f"{_INSTALL}"
        ) from exc


def _registered_name(pyiqa_name: str) -> str:
    return PREFIX + pyiqa_name.lower().replace("-", "_")


def _spec(pyiqa_name: str, full_reference: bool, lower_better: bool, border: int, source: str) -> MetricSpec:
    return MetricSpec(
        name=_registered_name(pyiqa_name),
        full_reference=full_reference,
        higher_is_better=not lower_better,
        color_space="rgb",
        crop_border=border,
        input_range="[0,1] 8-bit-rounded, as pyiqa reads image files",
        backbone=f"pyiqa {pyiqa_name!r} default weights",
        version=source,
        reference="IQA-PyTorch (pyiqa) create_metric with its default options; see pyiqa's model card",
        extra={"backend": "pyiqa", "pyiqa_metric": pyiqa_name},
    )


class PyIQAMetric(Metric):
    """A pyiqa metric by name.

    Args:
        metric: the pyiqa name (``"brisque"``, ``"musiq-koniq"``, ...); subclasses registered here fix it.
        crop_border: pixels removed on each side before scoring (default 0).
        device: where the first pyiqa model is built (default CPU; calls on another device build one there).
        **options: passed to ``pyiqa.create_metric`` (and recorded in the spec).

    Raises:
        PyIQAUnavailable: pyiqa cannot be imported, or the metric's weights cannot be had.
        KeyError: pyiqa does not know the name.
    """

    pyiqa_name: ClassVar[str] = ""

    def __init__(
        self, metric: str | None = None, crop_border: int = 0, device: torch.device | str = "cpu", **options: Any
    ) -> None:
        super().__init__()
        self.metric_name = metric or self.pyiqa_name
        if not self.metric_name:
            raise ValueError("PyIQAMetric needs a pyiqa metric name")
        self.crop_border = check_crop_border(crop_border)
        self.options = dict(options)
        self._nets: dict[str, Any] = {}  # device -> pyiqa model, kept out of the module tree on purpose
        pyiqa = import_pyiqa()
        known = {n.lower() for n in pyiqa.list_models()}
        if self.metric_name.lower() not in known:
            raise KeyError(f"pyiqa has no metric {self.metric_name!r} (pyiqa.list_models() lists {len(known)})")
        net = self._net(torch.device(device))
        lower_better = bool(getattr(net, "lower_better", False))
        full_reference = str(getattr(net, "metric_mode", "NR")).upper() == "FR"
        expected = KNOWN.get(self.metric_name)
        if expected is not None and expected != (full_reference, lower_better):
            logger.warning(
                "pyiqa %s: pyiqa says FR=%s lower_better=%s, the table here %s; using pyiqa's",
                self.metric_name,
                full_reference,
                lower_better,
                expected,
            )
        version = f"pyiqa {getattr(pyiqa, '__version__', '?')}" + (f", options {self.options}" if self.options else "")
        self.spec = _spec(self.metric_name, full_reference, lower_better, self.crop_border, version)

    @classmethod
    def static_spec(cls, crop_border: int = 0) -> MetricSpec:
        """The spec from :data:`KNOWN`, without importing pyiqa (for listings)."""
        full_reference, lower_better = KNOWN[cls.pyiqa_name]
        return _spec(cls.pyiqa_name, full_reference, lower_better, crop_border, "pyiqa (not installed here)")

    def _net(self, device: torch.device) -> Any:
        key = str(device)
        if key not in self._nets:
            pyiqa = import_pyiqa()
            try:
                self._nets[key] = pyiqa.create_metric(self.metric_name, device=device, as_loss=False, **self.options)
            except (OSError, RuntimeError, ConnectionError) as exc:
                raise PyIQAUnavailable(
                    f"pyiqa could not build {self.metric_name!r} on {device} (its weights are downloaded on first "
                    f"use): {type(exc).__name__}: {exc}"
                ) from exc
            logger.info("pyiqa metric %s built on %s", self.metric_name, device)
        return self._nets[key]

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None, lr: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] (and ``hr`` for FR metrics) -> (N,) float64 pyiqa scores on the inputs' device."""
        name = self.spec.name
        if self.spec.full_reference:
            a, b = paired_inputs(name, sr, hr, self.crop_border)
            args = (quantize(a.float()), quantize(b.float()))
        else:
            check_batch(sr, f"{name} sr")
            h, w = sr.shape[-2:]
            if 2 * self.crop_border >= min(h, w):
                raise ValueError(f"{name}: crop_border {self.crop_border} leaves nothing of a {h}x{w} image")
            args = (quantize(crop_border(sr, self.crop_border).float()),)
        net = self._net(sr.device)
        with torch.no_grad():
            out = net(*args)
        return torch.as_tensor(out).reshape(sr.shape[0], -1)[:, 0].double().to(sr.device)


def pyiqa_metric(name: str, **kwargs: Any) -> PyIQAMetric:
    """Wrap any pyiqa metric: ``pyiqa_metric("pyiqa:topiq_fr")`` or ``pyiqa_metric("topiq_fr")``."""
    if name.lower().startswith(PREFIX):
        name = name[len(PREFIX) :]
    return PyIQAMetric(name, **kwargs)


def _register(pyiqa_name: str) -> type[PyIQAMetric]:
    cls = type(
        f"PyIQA_{pyiqa_name.replace('-', '_')}",
        (PyIQAMetric,),
        {
            "pyiqa_name": pyiqa_name,
            "__doc__": f"pyiqa's ``{pyiqa_name}`` (needs pyiqa). See :class:`PyIQAMetric`.",
            "__module__": __name__,
        },
    )
    return METRICS.register(_registered_name(pyiqa_name))(cls)


for _name in KNOWN:
    _register(_name)
