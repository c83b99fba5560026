"""Stage *sample*: the NTIRE 2021 SR-space columns of one image (matrix ``sr_space:``).

Challenge: A. Lugmayr, M. Danelljan, R. Timofte et al., "NTIRE 2021 Learning the Super-Resolution Space Challenge",
CVPRW 2021 (seed 004): a stochastic method is sampled n times per image (the challenge: n = 10) and scored by the
LPIPS mean over the samples, their LR-PSNR (mean and worst; a method passes the consistency rule at 45 dB) and the
diversity score.

Samples: sample 0 is the cell's own output (the infer stage's, generator seeded by (cell key, image, ``"method"``));
sample ``i >= 1`` is ``method.super_resolve(x, generator)`` on the same input ``x`` (after corruption and attack)
with the generator seeded by (cell key, image, ``"method"``, i). Their seeds are returned and stored in the cell's
``sr_space`` section, so any sample can be drawn again alone. A deterministic method (its capabilities say so) runs
no further forward pass: its one output is its only sample (diversity 0 by definition, LPIPS and LR-PSNR of that
output, mean = worst).

Scores: :func:`bench.metrics.diversity.diversity_score` -- the function ``bench score diversity`` calls -- on the
samples and the HR, with one LPIPS network built once per run (:func:`bench.metrics.diversity.build_lpips`). Each
requested key is stored under its spec's name (:func:`bench.metrics.diversity.diversity_specs` with the matrix's
n and scale): ``diversity_score``, ``diversity_lpips_mean``, ``lr_psnr_mean``, ``lr_psnr_worst``,
``diversity_global_best``, ``diversity_local_best``.

Stored samples: with ``store_outputs: true`` the samples go into the cell's outputs (``samples/<image>``; a
deterministic method's one sample is ``sr/<image>``) and the section records their :func:`~bench.runner.stages
.outputs.tensor_sha256`; an SR-space column added to the stored cell later is scored on them by :meth:`SRSpace.score`
without running the method (:mod:`bench.runner.stages.rescore` verifies them first).

Input: ``x`` (1, 3, h, w) and ``first`` / ``hr`` (1, 3, H, W) float in [0, 1] on the run's device (stochastic methods
run one image per batch). A non-finite sample raises :class:`bench.errors.BadOutput`; an image the score cannot take
(smaller than 8x8) a ``ValueError`` -- the runner turns both into failure rows of the columns. Without ground truth
(``hr`` None) the columns are ``skipped`` (the score compares with the HR) and no sample is drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bench.errors import BAD_DATA, BadOutput
from bench.results.schema import NO_GROUND_TRUTH
from bench.runner.cells import Cell
from bench.runner.matrix import SrSpace
from bench.runner.provenance import error_text
from bench.runner.stages.outputs import tensor_sha256
from bench.runner.stages.score import METRIC_DATA_ERRORS
from bench.seeding import make_generator, seed_from

logger = logging.getLogger(__name__)


@dataclass
class SampleResult:
    """The columns of one image (record name -> value) and how they were obtained."""

    values: dict[str, float]
    seeds: list[int]  # the generator seed of each sample (empty for a deterministic method)
    forward_passes: int  # of the method on this image, the infer stage's included (n, or 1 when deterministic)
    samples: torch.Tensor | None = None  # (n, 3, H, W) for a stochastic method, else None

    def section(self, checksum: str | None = None) -> dict[str, Any]:
        """What the cell's ``sr_space`` section stores for the image (``sha256``: of its stored samples)."""
        out: dict[str, Any] = {"seeds": list(self.seeds), "forward_passes": self.forward_passes}
        if checksum is not None:
            out["sha256"] = checksum
        return out


class SRSpace:
    """Draws an image's samples and scores the matrix's SR-space columns.

    Args:
        settings: the matrix's :class:`~bench.runner.matrix.SrSpace` (``None``: no SR-space columns).
        scale: the matrix's scale (the LR-PSNR's downscaling).
        device: the run's device (the LPIPS network lives there).
    """

    def __init__(self, settings: SrSpace | None, scale: int, device: torch.device) -> None:
        self.settings, self.scale, self.device = settings, scale, device
        self._lpips: torch.nn.Module | None = None
        self._specs: dict[str, dict[str, Any]] = {}
        self._names: dict[str, str] = {}  # record name -> key of diversity_score
        if settings is not None:
            from bench.metrics.diversity import diversity_specs

            specs = diversity_specs(settings.samples, scale)
            for key in settings.keys:
                self._names[specs[key].name] = key
                self._specs[specs[key].name] = specs[key].as_dict()

    @property
    def specs(self) -> dict[str, dict[str, Any]]:
        """Record name -> spec of every column the matrix asks for (empty without ``sr_space``)."""
        return dict(self._specs)

    def seeds(self, cell: Cell, image: str) -> list[int]:
        """The generator seeds of the image's samples: sample 0 is the infer stage's, then (…, ``"method"``, i)."""
        n = self.settings.samples if self.settings is not None else 1
        key = cell.seed_key
        return [seed_from(key, image, "method")] + [seed_from(key, image, "method", i) for i in range(1, n)]

    def lpips(self) -> torch.nn.Module:
        if self._lpips is None:
            from bench.metrics import diversity

            self._lpips = diversity.build_lpips(self.device)
        return self._lpips

    def draw(self, cell: Cell, method: Any, image: str, x: torch.Tensor, first: torch.Tensor) -> list[torch.Tensor]:
        """The image's n samples, ``first`` (the cell's output) included; only for a stochastic method."""
        samples = [first]
        for i, seed in enumerate(self.seeds(cell, image)[1:], start=1):
            sample = method.super_resolve(x, make_generator(seed, self.device))
            if not torch.isfinite(sample).all():
                raise BadOutput(f"SR sample {i} of image {image} contains NaN or inf")
            samples.append(sample)
        return samples

    def __call__(
        self,
        cell: Cell,
        method: Any,
        image: str,
        x: torch.Tensor,
        first: torch.Tensor,
        hr: torch.Tensor,
        columns: Sequence[str] | None = None,
    ) -> SampleResult:
        """The ``columns`` (record names; default all of the matrix's) of one image."""
        if method.capabilities.stochastic:
            samples = self.draw(cell, method, image, x, first)
            seeds = self.seeds(cell, image)
        else:
            samples, seeds = [first], []
        values = self.score(samples, hr, columns)
        stacked = torch.cat(samples).detach() if len(samples) > 1 else None
        logger.debug("%s: %s over %d sample(s): %s", cell.label(), image, len(samples), values)
        return SampleResult(values, seeds, len(samples), stacked)

    def score(
        self, samples: Sequence[torch.Tensor], hr: torch.Tensor, columns: Sequence[str] | None = None
    ) -> dict[str, float]:
        """The ``columns`` (record names; default all of the matrix's) of one image's samples ((1, 3, H, W) each,
        drawn now or read from the stored outputs) against its ``hr`` (1, 3, H, W)."""
        from bench.metrics.diversity import diversity_score

        wanted = list(self._specs) if columns is None else [c for c in columns if c in self._specs]
        out = diversity_score(samples, hr, scale=self.scale, metric=self.lpips())
        return {name: float(out[self._names[name]][0]) for name in wanted}

    def rows(
        self,
        cell: Cell,
        method: Any,
        names: Sequence[str],
        x: torch.Tensor,
        sr: torch.Tensor,
        hr: torch.Tensor,
        rows: Any,
        columns: Sequence[str],
        sections: dict[str, dict[str, Any]],
        outputs: dict[str, torch.Tensor] | None,
    ) -> list[dict[str, Any]]:
        """The rows of the SR-space ``columns`` of each image of a batch (``rows``: the cell's
        :class:`~bench.runner.stages.record.Rows`); an image that fails (:data:`bench.errors.BAD_DATA`, a metric's
        data error) fails its columns and the others go on. Each image's :meth:`SampleResult.section` goes into
        ``sections``, its stacked samples into ``outputs`` (``samples/<image>``) when that is given, with their
        checksum in the section. Without ground truth (``hr`` None) the columns are skipped."""
        out: list[dict[str, Any]] = []
        if hr is None:
            return [rows.skipped(n, c, NO_GROUND_TRUTH, self._specs[c]) for n in names for c in columns]
        for j, name in enumerate(names):
            one = slice(j, j + 1)
            try:
                result = self(cell, method, name, x[one], sr[one], hr[one], columns)
            except BAD_DATA + METRIC_DATA_ERRORS as exc:
                logger.warning("%s: SR-space columns failed on %s: %s", cell.label(), name, exc)
                out.extend(rows.failed(name, c, error_text(exc), self._specs[c]) for c in columns)
                continue
            checksum = None
            if outputs is not None:  # stored: samples/<image>, or sr/<image> (the infer stage's) when deterministic
                if result.samples is not None:
                    outputs[f"samples/{name}"] = result.samples
                checksum = tensor_sha256(result.samples if result.samples is not None else sr[one])
            sections[name] = result.section(checksum)
            out.extend(rows.value(name, c, v, self._specs[c]) for c, v in result.values.items())
        return out
