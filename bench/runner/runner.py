"""Execute a matrix: expand it into cells, skip the stored ones, compute the others, store each one atomically.

Per image of a cell::

    HR (modcropped to the scale) -> LR = sample.lr, or imresize(HR, 1/scale) (MATLAB bicubic) rounded to 8 bits
        -> corruption(LR, generator seeded by seed_from(cell key, image))
        -> attack(method, LR', HR, generator seeded by seed_from(cell key, image, "attack")).x_adv   [attacked cells]
        -> method.super_resolve(x, generator seeded by seed_from(cell key, image, "method"))
        -> every metric(SR, HR, x)

Attacks (:mod:`bench.attacks`) maximise their loss (L1 + perceptual against the HR by default) through the method:
white-box for deterministic methods, EOT for stochastic ones (the matrix's ``eot_samples``/``restarts``), by transfer
from a surrogate (the matrix's ``surrogate`` for non-differentiable methods; the base card for ``transfer_from_base``).
An attack that refuses the method (not differentiable, no surrogate) turns the cell's images into failure rows with
its message. Every row of an attacked cell carries the attack's mode, forward/backward counts, seconds per image and
loss before/after (``attack_*`` columns); the cell payload keeps the full :meth:`AttackResult.record` per batch.
Attacked cells use the first ``attack_images`` images of the dataset when the matrix sets it.

Median smoothing (CertSR): a method built from a card with ``sigma: auto`` gets sigma chosen per (condition, attack
setting) by :func:`bench.certify.select_sigma` on the matrix's validation split (disjoint from the evaluation
images), once, before its cells; the choice and the grid's scores are cached in ``<run>/sigma/<key>.json`` and stored
in each cell's ``smoothing`` provenance and ``sigma`` column. With ``smoothing.certify``, a smoothed method's output is
the prediction of :func:`bench.certify.certify` (the same noise stream, so equal to ``super_resolve``) and every image
gets the certified columns ``cert_width@<eps>`` and ``cert_psnr@<eps>`` (:func:`certified_specs`).

Every method is built once per run (its cells are contiguous), every metric and dataset once. A failing image (a
broken file, a NaN output, an exception in a metric) becomes a failure row with the error message and the run goes
on; a method that cannot be built (a missing checkpoint) fails its cells with the message and the command that fixes
it. A cell with any failure is stored with status ``failed`` and retried by the next run; the run's exit code is
non-zero when any cell failed.

Sharding: ``rank``/``world_size`` (from ``RANK``/``WORLD_SIZE`` under torchrun) take the cells ``i % world_size ==
rank``; every rank writes its own cell files into the same run directory and the report merges them.

Example::

    matrix = load_matrix("smoke")
    summary = run_matrix(matrix, Path("reports/smoke"), device="cpu")
    summary.exit_code  # 0 when every cell is stored with status ok
"""

from __future__ import annotations

import functools
import logging
import math
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import bench
from bench.images import modcrop, quantize, write_image
from bench.runner.cells import Cell, expand_cells, shard
from bench.runner.matrix import Condition, DatasetEntry, Matrix
from bench.runner.store import ATTACK_COLUMNS, STATUS_FAILED, STATUS_OK, Store, atomic_write_json
from bench.seeding import make_generator, seed_from

logger = logging.getLogger(__name__)

LR_SYNTHESIS = "imresize(HR, 1/scale), MATLAB bicubic with antialiasing, rounded to 8 bits"
_KEY_EXCLUDED_PROVENANCE = ("title", "card_sha256", "differentiable", "stochastic")
CERT_WIDTH = "cert_width"
CERT_PSNR = "cert_psnr"


def certified_specs(eps: float, alpha: float, n_samples: int | None, crop_border: int) -> dict[str, dict[str, Any]]:
    """The metric specs of the certified columns at L2 budget ``eps`` (LR, [0, 1] units).

    * ``cert_width@eps``: mean over pixels and channels of the certified interval ``upper - lower`` of the smoothed
      output under any LR perturbation of L2 norm <= eps ([0, 1] units, lower is better);
    * ``cert_psnr@eps``: PSNR (RGB, 8-bit rounded, ``crop_border``) of the worst output inside that interval against
      the HR, a lower bound of the PSNR any such perturbation can leave (higher is better).

    Each bound holds with confidence ``1 - alpha`` per output value (:mod:`bench.certify.bounds`).
    """
    from bench.metrics.base import MetricSpec

    extra = {
        "certified": True,
        "eps_l2_lr": eps,
        "alpha": alpha,
        "n_samples": n_samples if n_samples is not None else "auto",
    }
    ref = "median smoothing bounds, seed 001 Lemma 4.1 / Chiang et al. 2020 (bench.certify.bounds)"
    width = MetricSpec(
        f"{CERT_WIDTH}@{eps:g}", False, False, input_range="[0,1]", reference=ref, extra={**extra, "unit": "[0,1]"}
    )
    psnr = MetricSpec(
        f"{CERT_PSNR}@{eps:g}",
        True,
        True,
        crop_border=crop_border,
        input_range="[0,255] uint8-rounded",
        reference=ref,
        extra={**extra, "unit": "dB lower bound"},
    )
    return {width.name: width.as_dict(), psnr.name: psnr.as_dict()}


@dataclass
class RunSummary:
    """What a run did: cell counts, the failed cells' labels and where the store is."""

    run_dir: Path
    run_name: str
    total: int
    skipped: int = 0
    computed: int = 0
    failed: list[str] = field(default_factory=list)
    rank: int = 0
    world_size: int = 1

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` = CUDA when available (``cuda:$LOCAL_RANK`` under torchrun), else CPU; anything else as given."""
    import os

    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device (use --device cpu or auto)")
    return dev


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The commit of the checkout around the package (``None`` outside a git checkout or without git)."""
    root = Path(bench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def environment() -> dict[str, Any]:
    """Versions and host of the run (stored with every cell)."""
    import numpy

    return {
        "bench": bench.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "git": git_revision(),
        "host": platform.node(),
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def method_identity(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a method card's provenance that changes numbers (its title or comments do not)."""
    return {k: v for k, v in provenance.items() if k not in _KEY_EXCLUDED_PROVENANCE}


def fix_command(exc: BaseException, provenance: Mapping[str, Any]) -> str | None:
    """The command that fixes a method that cannot be built: quoted from the error, else an assets fetch."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    marker = text.find("python -m bench")
    if marker >= 0:
        return text[marker:].split("`")[0].split("'")[0].split(")")[0].rstrip(" .;,")
    checkpoint = provenance.get("checkpoint")
    if checkpoint and "/" not in str(checkpoint):
        return f"python -m bench assets fetch {checkpoint}"
    return None


def _error_text(exc: BaseException) -> str:
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return f"{type(exc).__name__}: {msg}"


def planned_mode(cell: Cell, stochastic: bool) -> str | None:
    """The attack mode a cell asks for (the attack's result says the mode it ran): ``None`` without an attack."""
    if not cell.threat.attacked:
        return None
    if cell.threat.surrogate is not None:
        return "transfer"
    return "eot" if stochastic else "white-box"


class _Row:
    """Builds the tidy rows of one cell (``per_image``: the attack columns of each image, set after the attack)."""

    def __init__(self, run_name: str, cell: Cell, mode: str | None = None, sigma: float | None = None) -> None:
        c = cell.condition
        self.base = {
            "run": run_name,
            "method": cell.method,
            "dataset": cell.dataset.name,
            "condition": c.name,
            "corruption": c.corruption,
            "severity": c.severity,
            "attack": cell.attack,
            "epsilon": cell.epsilon,
            "seed": cell.seed,
            "cell": cell.key,
            "sigma": sigma,
            **dict.fromkeys(ATTACK_COLUMNS),
        }
        if cell.threat.attacked:
            self.base.update(attack_mode=mode, attack_surrogate=cell.threat.surrogate)
        self.per_image: dict[str, dict[str, Any]] = {}

    def ok(self, image: str, metric: str, value: float, spec: Mapping[str, Any]) -> dict[str, Any]:
        row = {**self.base, **self.per_image.get(image, {})}
        row.update(image=image, metric=metric, value=value, spec=dict(spec))
        return {**row, "status": STATUS_OK, "error": None}

    def failed(self, image: str | None, metric: str | None, error: str, spec: Mapping[str, Any] | None = None):
        spec = None if spec is None else dict(spec)
        row = {**self.base, **self.per_image.get(image or "", {})}
        row.update(image=image, metric=metric, value=None, spec=spec)
        return {**row, "status": STATUS_FAILED, "error": error}


@dataclass
class _Prepared:
    name: str
    hr: torch.Tensor  # (1, 3, H, W) on device
    lr: torch.Tensor  # (1, 3, h, w) corrupted, on device


class Runner:
    """Holds what is built once per run (device, datasets, metrics, the current method) and computes cells.

    Args:
        matrix: a validated :class:`Matrix`.
        run_dir: the run's store directory (``reports/<run>``).
        run_name: the ``run`` column of the records (default: the directory's name).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        rank, world_size: shard of the cells this process computes.
        progress: tqdm bars on stderr (over cells and over images).
    """

    def __init__(
        self,
        matrix: Matrix,
        run_dir: str | Path,
        *,
        run_name: str | None = None,
        device: str | torch.device = "auto",
        rank: int = 0,
        world_size: int = 1,
        progress: bool = True,
    ) -> None:
        self.matrix = matrix
        self.store = Store(run_dir)
        self.run_name = run_name or Path(run_dir).name
        self.device = resolve_device(device)
        self.rank = rank
        self.world_size = world_size
        self.progress = progress
        self.env = environment()
        self._datasets: dict[str, Any] = {}
        self._corruptions: dict[str, Any] = {}
        self._surrogates: dict[str, Any] = {}
        self._attack_losses: dict[str, Any] = {}
        self._selections: dict[str, dict[str, Any]] = {}
        self._cell_extra: dict[str, Any] = {"attacks": [], "certificates": []}
        self._gallery_missing_logged = False
        self.metrics = self._build_metrics()
        self.metric_specs = [m.spec.as_dict() for m in self.metrics.values()]
        self.provenances = self._method_provenances()
        identities = {name: method_identity(p) for name, p in self.provenances.items()}
        self.cells = expand_cells(matrix, identities, self.metric_specs, self.provenances)
        self._max_eps = self._largest_epsilons()

    # -------------------------------------------------------------------------------------------------- building
    def _build_metrics(self) -> dict[str, torch.nn.Module]:
        from bench.metrics import build_metric

        metrics = {}
        for entry in self.matrix.metrics:
            metric = build_metric(entry.name, crop_border=entry.crop_border)
            metrics[entry.name] = metric.to(self.device).eval()
            logger.debug("metric %s", metric.spec.describe())
        return metrics

    def _method_provenances(self) -> dict[str, dict[str, Any]]:
        from bench.methods import cards

        out = {}
        for name in self.matrix.methods:
            card = cards.load_card(name)
            try:
                out[name] = card.provenance()
            except (KeyError, OSError, ValueError) as exc:  # e.g. an asset name the manifest does not know
                logger.warning("method %s: no full provenance (%s); its cells will fail when it is built", name, exc)
                out[name] = {
                    "card": card.name,
                    "title": card.title,
                    "adapter": card.adapter,
                    "checkpoint": card.checkpoint,
                    "checkpoint_sha256": None,
                    "error": _error_text(exc),
                }
        return out

    def dataset(self, cell: Cell | DatasetEntry):
        from bench.data import DATASETS

        entry = cell.dataset if isinstance(cell, Cell) else cell
        cache_key = f"{entry.name}@{entry.crop}@{sorted(entry.kwargs.items())}"
        if cache_key not in self._datasets:
            factory = DATASETS.get(entry.name)
            ds = factory(**entry.factory_kwargs(factory, self.matrix.scale))
            if getattr(ds, "scale", self.matrix.scale) != self.matrix.scale:
                logger.warning("dataset %s has scale %s, the matrix %s", entry.name, ds.scale, self.matrix.scale)
            self._datasets[cache_key] = ds
        return self._datasets[cache_key]

    def _largest_epsilons(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for cell in self.cells:
            if cell.threat.attacked:
                out[cell.threat.name] = max(out.get(cell.threat.name, 0.0), cell.threat.epsilon)
        return out

    # ---------------------------------------------------------------------------------------------------- attacks
    def attack_loss(self, loss: Mapping[str, Any]):
        """The attack loss ``{name, **params}``, built once per run (its spec, backbone included, is recorded in each
        attack's spec)."""
        from bench.seeding import canonical_json

        key = canonical_json(dict(loss))
        if key not in self._attack_losses:
            from bench.attacks import build_loss

            params = {k: v for k, v in loss.items() if k != "name"}
            self._attack_losses[key] = build_loss(str(loss["name"]), **params).to(self.device)
        return self._attack_losses[key]

    def surrogate(self, name: str, method: Any) -> Any:
        """The surrogate method ``name``: the wrapper's own base when it is that card, else built once per run."""
        if getattr(method, "base_name", None) == name and getattr(method, "base", None) is not None:
            return method.base
        if name not in self._surrogates:
            from bench.methods import cards

            self._surrogates[name] = cards.build_method(name, device=self.device)
        return self._surrogates[name]

    def build_attack(self, cell: Cell, method: Any):
        """The attack object of an attacked cell (loss shared across the run; surrogate resolved)."""
        from bench.attacks import build_attack

        threat = cell.threat
        kwargs = threat.attack_kwargs(bool(getattr(method, "stochastic", False)))
        surrogate = self.surrogate(threat.surrogate, method) if threat.surrogate is not None else None
        return build_attack(threat.attack, **kwargs, loss=self.attack_loss(threat.loss), surrogate=surrogate)

    # --------------------------------------------------------------------------------------------- smoothing
    def selection_key(self, cell: Cell) -> str:
        from bench.seeding import key_hash

        sm = self.matrix.smoothing
        desc = {
            "method": method_identity(self.provenances[cell.method]),
            "condition": cell.condition.identity(),
            "threat": cell.threat.identity() if cell.threat.attacked else None,
            "selection": sm.selection_identity() if sm is not None else None,
            "scale": self.matrix.scale,
        }
        return key_hash(desc, length=20)

    def select_sigma(self, cell: Cell, method: Any) -> dict[str, Any]:
        """Choose sigma for ``cell``'s (condition, attack setting) on the validation split; cached per run folder.

        Returns :func:`bench.certify.selection_record` plus ``key`` and ``seconds``; sets ``method.sigma``.
        """
        sm = self.matrix.smoothing
        if sm is None:
            raise ValueError(
                f"method {cell.method!r} has sigma: auto, but the matrix has no 'smoothing:' section (sigma_grid, "
                "validation) to choose it"
            )
        key = self.selection_key(cell)
        path = self.store.run_dir / "sigma" / f"{key}.json"
        record = self._selections.get(key)
        if record is None and path.is_file():
            import json

            record = json.loads(path.read_text(encoding="utf-8"))
        if record is None:
            record = self._run_selection(cell, method, key)
            atomic_write_json(path, record)
        self._selections[key] = record
        method.sigma = record["sigma"]
        return record

    def _run_selection(self, cell: Cell, method: Any, key: str) -> dict[str, Any]:
        from bench.certify import select_sigma, selection_record

        sm = self.matrix.smoothing
        t0 = time.perf_counter()
        val = sm.validation
        dataset = self.dataset(val.entry())
        names = dataset.names()[: val.images] if isinstance(val.images, int) else list(val.images)
        images = {name: dataset.load(name) for name in names}
        corruption = self.corruption(cell.condition)
        if cell.threat.attacked:
            attack = self.build_attack(cell, method)

            def condition_fn(lr, generator, method=None, hr=None):
                return attack(method, corruption(lr, generator), hr, generator).x_adv

        else:
            condition_fn = corruption
        metric = self.metrics.get(sm.metric)
        if metric is None:
            from bench.metrics import build_metric

            metric = build_metric(sm.metric).to(self.device).eval()

        def factory(sigma):
            method.sigma = sigma
            return method

        logger.info("%s: choosing sigma among %s on %s", cell.label(), list(sm.sigma_grid), names)
        sigma, scores = select_sigma(
            factory,
            images,
            condition_fn,
            sm.sigma_grid,
            metric,
            seed=sm.seed,
            scale=self.matrix.scale,
            device=self.device,
            evaluation_names=self.dataset(cell).names(),
        )
        condition = cell.threat.attack if cell.threat.attacked else cell.condition.name
        record = selection_record(sigma, scores, metric=metric, condition=condition, images=names, seed=sm.seed)
        record.update(key=key, dataset=val.dataset, crop=val.crop, seconds=round(time.perf_counter() - t0, 3))
        logger.info("%s: sigma %s chosen (%s)", cell.label(), sigma, record["scores"])
        return record

    def certify_settings(self, method: Any) -> Any:
        """The matrix's certification settings when ``method`` is smoothing with sigma > 0, else ``None``."""
        sm = self.matrix.smoothing
        if sm is None or sm.certify is None:
            return None
        if getattr(method, "sigma", None) is None or not hasattr(method, "noisy_predictions"):
            return None
        return sm.certify

    def _psnr_crop(self) -> int:
        entry = next((m for m in self.matrix.metrics if m.name == "psnr"), None)
        return entry.crop_border if entry is not None else self.matrix.scale

    def corruption(self, condition: Condition):
        from bench.corruptions import build_corruption

        if condition.name not in self._corruptions:
            self._corruptions[condition.name] = build_corruption(condition.corruption, **condition.params)
        return self._corruptions[condition.name]

    # ----------------------------------------------------------------------------------------------------- run
    def run_info(self) -> dict[str, Any]:
        return {
            "run": self.run_name,
            "matrix": self.matrix.as_dict(),
            "cells": [c.key for c in self.cells],
            "metric_specs": self.metric_specs,
            "methods": self.provenances,
            "environment": self.env,
            "device": str(self.device),
            "world_size": self.world_size,
            "lr_synthesis": LR_SYNTHESIS,
            "started": _now(),
        }

    def run(self) -> RunSummary:
        """Compute this rank's pending cells; return counts (never raises for a failing image or method)."""
        mine = shard(self.cells, self.rank, self.world_size)
        summary = RunSummary(self.store.run_dir, self.run_name, len(mine), rank=self.rank, world_size=self.world_size)
        if self.rank == 0:
            previous = self.store.read_run_info() or {}
            info = self.run_info()
            if previous.get("started"):
                info["first_started"] = previous.get("first_started", previous["started"])
            self.store.write_run_info(info)
        pending = [c for c in mine if not self.store.is_finished(c.key)]
        summary.skipped = len(mine) - len(pending)
        logger.info(
            "run %s: %d cells%s, %d already stored (skipped), %d to compute on %s",
            self.run_name,
            len(mine),
            f" (rank {self.rank} of {self.world_size})" if self.world_size > 1 else "",
            summary.skipped,
            len(pending),
            self.device,
        )
        method, method_name, build_error = None, None, None
        bar = tqdm(pending, desc="cells", unit="cell", disable=not self.progress, file=sys.stderr)
        for cell in bar:
            bar.set_postfix_str(cell.label(), refresh=False)
            if cell.method != method_name:
                method = None  # free the previous method before building the next one
                method_name, build_error = cell.method, None
                method, build_error = self._build_method(cell.method)
            if build_error is not None:
                payload = self._failed_cell(cell, build_error)
            else:
                payload = self._compute_with_sigma(cell, method)
            self.store.write(cell.key, payload)
            summary.computed += 1
            if payload["status"] != STATUS_OK:
                summary.failed.append(cell.label())
                logger.warning("cell %s failed: %s", cell.label(), payload.get("error") or "see its failure rows")
        bar.close()
        if self.rank == 0:
            info = self.store.read_run_info() or self.run_info()
            info["finished"] = _now()
            self.store.write_run_info(info)
        return summary

    def _build_method(self, name: str) -> tuple[Any, dict[str, Any] | None]:
        from bench.methods import cards

        try:
            return cards.build_method(name, device=self.device), None
        except Exception as exc:  # any build failure fails this method's cells, recorded with the fix
            fix = fix_command(exc, self.provenances[name])
            logger.error("method %s cannot be built: %s%s", name, exc, f" (fix: {fix})" if fix else "")
            return None, {"error": _error_text(exc), "fix": fix}

    def _compute_with_sigma(self, cell: Cell, method: Any) -> dict[str, Any]:
        """Choose sigma first for a ``sigma: auto`` method (a failing selection fails the cell), then compute it."""
        selection = None
        if getattr(method, "sigma_auto", False):
            try:
                selection = self.select_sigma(cell, method)
            except Exception as exc:  # the selection failed: this cell fails with the message, the run goes on
                logger.error("%s: sigma selection failed: %s", cell.label(), exc)
                return self._failed_cell(cell, {"error": f"sigma selection: {_error_text(exc)}", "fix": None})
        return self.compute_cell(cell, method, selection)

    def _payload(self, cell: Cell, status: str, records: list, started: str, seconds: float, n_images: int):
        labels = {"method": cell.method, "dataset": cell.dataset.name, "condition": cell.condition.name}
        if cell.threat.attacked:
            labels.update(attack=cell.threat.name, epsilon=cell.threat.epsilon, variant=cell.threat.variant)
        return {
            "key": cell.key,
            "status": status,
            "cell": cell.description,
            "labels": labels,
            "records": records,
            "provenance": {
                "method": self.provenances[cell.method],
                "environment": self.env,
                "device": str(self.device),
                "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
                "rank": self.rank,
                "world_size": self.world_size,
                "lr_synthesis": LR_SYNTHESIS,
                "started": started,
                "finished": _now(),
                "seconds": round(seconds, 4),
                "images": n_images,
                "seconds_per_image": round(seconds / n_images, 4) if n_images else None,
            },
        }

    def _failed_cell(self, cell: Cell, build_error: Mapping[str, Any]) -> dict[str, Any]:
        rows = _Row(self.run_name, cell)
        error = build_error["error"] + (f" -- fix: {build_error['fix']}" if build_error.get("fix") else "")
        payload = self._payload(cell, STATUS_FAILED, [rows.failed(None, None, error)], _now(), 0.0, 0)
        payload.update(error=build_error["error"], fix=build_error.get("fix"))
        return payload

    # ------------------------------------------------------------------------------------------------- one cell
    def compute_cell(self, cell: Cell, method: Any, selection: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every image of the cell through corruption, attack, method and metrics; failures become rows."""
        started, t0 = _now(), time.perf_counter()
        stochastic = bool(getattr(method, "stochastic", False))
        sigma = getattr(method, "sigma", None) if hasattr(method, "noisy_predictions") else None
        rows = _Row(self.run_name, cell, planned_mode(cell, stochastic), sigma)
        records: list[dict[str, Any]] = []
        self._cell_extra = {"attacks": [], "certificates": []}
        dataset = self.dataset(cell)
        names = list(dataset.names())
        if cell.threat.attacked and self.matrix.attack_images is not None:
            names = names[: self.matrix.attack_images]
        prepared: list[_Prepared] = []
        for name in tqdm(names, desc="images", unit="img", leave=False, disable=not self.progress, file=sys.stderr):
            try:
                prepared.append(self._prepare(cell, dataset, name))
            except Exception as exc:  # a broken image fails that image only
                logger.warning("%s: image %s failed: %s", cell.label(), name, exc)
                records.append(rows.failed(name, None, _error_text(exc)))
                continue
            if len(prepared) >= self.matrix.batch_images:
                records.extend(self._evaluate(cell, method, prepared, rows))
                prepared = []
        if prepared:
            records.extend(self._evaluate(cell, method, prepared, rows))
        seconds = time.perf_counter() - t0
        status = STATUS_FAILED if any(r["status"] != STATUS_OK for r in records) else STATUS_OK
        payload = self._payload(cell, status, records, started, seconds, len(names))
        if status != STATUS_OK:
            payload["error"] = f"{sum(r['status'] != STATUS_OK for r in records)} failure rows"
        if cell.threat.attacked:
            payload["attack"] = {"threat": cell.threat.identity(), "label": cell.threat.label(), "batches": []}
            payload["attack"]["batches"] = self._cell_extra["attacks"]
        if hasattr(method, "noisy_predictions"):
            settings = method.settings() if hasattr(method, "settings") else {"sigma": sigma}
            payload["smoothing"] = {
                "settings": settings,
                "sigma": sigma,
                "sigma_auto": bool(getattr(method, "sigma_auto", False)),
                "selection": None if selection is None else dict(selection),
                "certificates": self._cell_extra["certificates"],
            }
        return payload

    def _prepare(self, cell: Cell, dataset: Any, name: str) -> _Prepared:
        scale = self.matrix.scale
        sample = dataset.load(name)
        hr = modcrop(sample.hr, scale).unsqueeze(0).to(self.device, torch.float32)
        if sample.lr is not None:
            lr = sample.lr.unsqueeze(0).to(self.device, torch.float32)
            if tuple(lr.shape[-2:]) != (hr.shape[-2] // scale, hr.shape[-1] // scale):
                raise ValueError(f"LR {tuple(lr.shape[-2:])} is not HR {tuple(hr.shape[-2:])} / {scale}")
        else:
            from bench.data.imresize import imresize

            lr = quantize(imresize(hr, 1 / scale))
        generator = make_generator(seed_from(cell.key, name))
        lr = self.corruption(cell.condition)(lr, generator)
        return _Prepared(name, hr, lr)

    def _evaluate(self, cell: Cell, method: Any, batch: list[_Prepared], rows: _Row) -> list[dict[str, Any]]:
        """Run the method and the metrics on images of one size at a time (``batch_images`` per call)."""
        out: list[dict[str, Any]] = []
        groups: dict[tuple, list[_Prepared]] = {}
        for p in batch:
            groups.setdefault(tuple(p.hr.shape), []).append(p)
        for group in groups.values():
            names = [p.name for p in group]
            lr = torch.cat([p.lr for p in group])
            hr = torch.cat([p.hr for p in group])
            lr_clean = lr
            if cell.threat.attacked:
                try:
                    lr = self._attack(cell, method, lr, hr, names, rows)
                except Exception as exc:  # refused (not differentiable, ...) or failed: failure rows with the message
                    logger.warning("%s: attack failed on %s: %s", cell.label(), names, exc)
                    out.extend(rows.failed(n, None, _error_text(exc)) for n in names)
                    continue
            generator = make_generator(seed_from(cell.key, names[0], "method"), self.device)
            certificate = None
            try:
                settings = self.certify_settings(method)
                if settings is not None:
                    from bench.certify import certify

                    certificate = certify(method, lr, settings.epsilons, settings.n_samples, settings.alpha, generator)
                    sr = certificate.prediction  # the smoothed output on the same noise stream as super_resolve
                else:
                    sr = method.super_resolve(lr, generator)
                if sr.shape != hr.shape:
                    raise ValueError(f"method output {tuple(sr.shape)} does not match HR {tuple(hr.shape)}")
            except Exception as exc:  # the method failed on these images; the cell goes on
                logger.warning("%s: method failed on %s: %s", cell.label(), names, exc)
                out.extend(rows.failed(n, None, _error_text(exc)) for n in names)
                continue
            finite = torch.isfinite(sr.flatten(1)).all(dim=1).tolist()
            keep = [i for i, ok in enumerate(finite) if ok]
            for i, ok in enumerate(finite):
                if not ok:
                    logger.warning("%s: image %s: non-finite SR output", cell.label(), names[i])
                    out.append(rows.failed(names[i], None, "method output contains NaN or inf"))
            if not keep:
                continue
            idx = torch.tensor(keep, device=sr.device)
            sr_k, hr_k, lr_k = sr.index_select(0, idx), hr.index_select(0, idx), lr.index_select(0, idx)
            clean_k = lr_clean.index_select(0, idx)
            self._gallery(cell, [names[i] for i in keep], hr_k, clean_k, sr_k, lr_k if cell.threat.attacked else None)
            if certificate is not None:
                out.extend(self._certified_rows(certificate, hr, names, keep, rows))
            for metric_name, metric in self.metrics.items():
                spec = metric.spec.as_dict()
                try:
                    with torch.no_grad():
                        values = metric(sr_k, hr_k, lr_k).detach().double().cpu().reshape(-1).tolist()
                    if len(values) != len(keep):
                        raise ValueError(f"metric returned {len(values)} values for {len(keep)} images")
                except Exception as exc:  # one metric failing does not stop the others
                    logger.warning("%s: metric %s failed: %s", cell.label(), metric_name, exc)
                    out.extend(rows.failed(names[i], metric_name, _error_text(exc), spec) for i in keep)
                    continue
                for i, value in zip(keep, values, strict=True):
                    if math.isfinite(value):
                        out.append(rows.ok(names[i], metric_name, value, spec))
                    else:
                        out.append(rows.failed(names[i], metric_name, f"metric value is {value}", spec))
        return out

    # ----------------------------------------------------------------------------------------------- gallery
    def _attack(self, cell: Cell, method: Any, lr: torch.Tensor, hr: torch.Tensor, names: list[str], rows: _Row):
        """Attack a batch; fill the rows' per-image attack columns; return ``x_adv``."""
        attack = self.build_attack(cell, method)
        generator = make_generator(seed_from(cell.key, names[0], "attack"), self.device)
        result = attack(method, lr, hr, generator)
        record = result.record()
        record["images"] = list(names)
        self._cell_extra["attacks"].append(record)
        n = len(names)
        linf = record.get("linf") or [None] * n
        for i, name in enumerate(names):
            rows.per_image[name] = {
                "attack_mode": result.mode,
                "attack_surrogate": cell.threat.surrogate,
                "attack_loss_clean": float(result.loss_clean[i]),
                "attack_loss_adv": float(result.loss_adv[i]),
                "attack_forward": result.forward_count,
                "attack_backward": result.backward_count,
                "attack_seconds": result.seconds / n,
                "attack_linf": linf[i],
            }
        x_adv = result.x_adv
        if not torch.isfinite(x_adv).all():
            raise ValueError("the attack returned a non-finite input")
        return x_adv

    def _certified_rows(self, certificate: Any, hr: torch.Tensor, names: list[str], keep: list[int], rows: _Row):
        """The ``cert_width@eps`` / ``cert_psnr@eps`` rows of a batch (see :func:`certified_specs`)."""
        settings = self.matrix.smoothing.certify
        crop = self._psnr_crop()
        figures = certificate.figures(hr, crop_border=crop)
        spec = certificate.spec()
        spec["images"] = list(names)
        self._cell_extra["certificates"].append(spec)
        out = []
        for eps in certificate.epsilons:
            specs = certified_specs(eps, settings.alpha, settings.n_samples, crop)
            for prefix, figure in ((CERT_WIDTH, "certified_width"), (CERT_PSNR, "certified_psnr")):
                name = f"{prefix}@{eps:g}"
                values = figures[figure][eps].double().cpu().tolist()
                for i in keep:
                    if math.isfinite(values[i]):
                        out.append(rows.ok(names[i], name, values[i], specs[name]))
                    else:
                        out.append(rows.failed(names[i], name, f"certified value is {values[i]}", specs[name]))
        return out

    # ----------------------------------------------------------------------------------------------- gallery
    def _gallery(
        self,
        cell: Cell,
        names: Sequence[str],
        hr: torch.Tensor,
        lr: torch.Tensor,
        sr: torch.Tensor,
        x_adv: torch.Tensor | None = None,
    ) -> None:
        """Crops of the gallery image: HR, LR (nearest), SR; for attacked cells (largest budget of each attack only)
        the adversarial input ``adv-<method>--<mode>.png`` and its output ``sr-<method>--<mode>.png``."""
        gallery = self.matrix.gallery
        stochastic = bool(self.provenances.get(cell.method, {}).get("stochastic", False))
        if gallery is None or cell.seed != self.matrix.seeds_for(stochastic)[0]:
            return
        if gallery.dataset is not None and gallery.dataset != cell.dataset.name:
            return
        if gallery.image not in names:
            return
        threat = cell.threat
        if threat.attacked and threat.epsilon != self._max_eps.get(threat.name):
            return
        i = list(names).index(gallery.image)
        s = self.matrix.scale
        h, w = lr.shape[-2:]
        size = min(gallery.size, h, w)
        top, left = (h - size) // 2, (w - size) // 2

        def lr_crop(t: torch.Tensor) -> torch.Tensor:
            crop = t[i : i + 1, :, top : top + size, left : left + size]
            return torch.nn.functional.interpolate(crop, scale_factor=s, mode="nearest")

        hr_crop = hr[i : i + 1, :, top * s : (top + size) * s, left * s : (left + size) * s]
        sr_crop = sr[i : i + 1, :, top * s : (top + size) * s, left * s : (left + size) * s]
        folder = self.store.gallery_dir / _safe(cell.dataset.name) / gallery_folder(cell)
        if not (folder / "HR.png").exists():
            write_image(hr_crop, folder / "HR.png")
        if not (folder / "LR.png").exists():
            write_image(lr_crop(lr), folder / "LR.png")
        if x_adv is None:
            write_image(sr_crop, folder / f"sr-{_safe(cell.method)}.png")
            return
        mode = (self._cell_extra["attacks"][-1].get("mode") if self._cell_extra["attacks"] else None) or "attack"
        entry = _safe(f"{cell.method}--{mode}")
        write_image(lr_crop(x_adv.clamp(0, 1)), folder / f"adv-{entry}.png")
        write_image(sr_crop, folder / f"sr-{entry}.png")


def gallery_folder(cell: Cell) -> str:
    """``<condition>`` for unattacked cells, ``<condition>@<attack>`` for attacked ones (largest budget)."""
    if not cell.threat.attacked:
        return _safe(cell.condition.name)
    return f"{_safe(cell.condition.name)}@{_safe(cell.threat.name)}"


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def run_matrix(
    matrix: Matrix,
    run_dir: str | Path,
    *,
    run_name: str | None = None,
    device: str | torch.device = "auto",
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> RunSummary:
    """Compute every pending cell of ``matrix`` (this rank's shard) into ``run_dir``; see :class:`Runner`."""
    runner = Runner(
        matrix, run_dir, run_name=run_name, device=device, rank=rank, world_size=world_size, progress=progress
    )
    summary = runner.run()
    logger.info(
        "run %s: %d cells, %d skipped, %d computed, %d failed",
        summary.run_name,
        summary.total,
        summary.skipped,
        summary.computed,
        len(summary.failed),
    )
    return summary


def stored_records(run_dir: str | Path, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """All records of a run directory's cells (those of ``keys`` only, when given)."""
    store = Store(run_dir)
    out: list[dict[str, Any]] = []
    for payload in store.iter_cells(None if keys is None else list(keys)):
        out.extend(payload.get("records", []))
    return out
