"""The manifest datasets as :class:`~bench.data.base.Dataset` objects, resolved through :data:`bench.data.DATASETS`.

Every valid ``datasets/*.yaml`` of kind ``archive`` of the *current* project is a dataset of that name: the registry
(:class:`bench.data.registry.DatasetRegistry`) asks :func:`project_catalog` on every lookup that misses the
code-registered names, so a matrix entry ``{name: div2k-val}`` and ``bench train --data div2k-train`` resolve
through the manifest of the project in use at that moment. The catalog of a folder is cached and re-read when one of
its manifests is added, removed or edited. Building a dataset that is not fetched raises
:class:`~bench.data.store.DatasetNotReadyError` (a ``FileNotFoundError``) whose message is the exact fetch command.
(The embedded manifests describe datasets that ``bench.data.embedded`` registers.)

Samples: ``hr`` (3, H, W) float32 in [0, 1] modcropped to the scale (``None`` without ground truth); ``lr``
(3, H/scale, W/scale) when the set ships its LR, ``None`` when the runner synthesises it by MATLAB bicubic. An image
that fails pairing stays in ``names()``; ``load(name)`` raises :class:`~bench.data.pairing.PairingError` with the
reason (see :mod:`bench.data.pairing`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.data.base import Dataset, Sample
from bench.data.manifest import DatasetManifest, load_manifests, manifest_paths
from bench.data.pairing import PairingError, PairingFailure, ScanResult, center_crop_pair, check_entry, load_entry, scan

logger = logging.getLogger(__name__)


class ManifestDataset(Dataset):
    """A fetched dataset read through its manifest's pairing rule.

    Args:
        manifest: the validated manifest.
        folder: the dataset's folder (``DatasetStore.require_ready(name)``; checked by the factory).
        scale: one of the manifest's scales (default: its default scale).
        crop: optional centre crop of the HR (a multiple of ``scale``); the LR is cropped at the same place.
    """

    def __init__(
        self, manifest: DatasetManifest, folder: str | Path, scale: int | None = None, crop: int | None = None
    ) -> None:
        scale = manifest.default_scale if scale is None else int(scale)
        if scale not in manifest.scales:
            raise ValueError(f"dataset {manifest.name!r} has scales {list(manifest.scales)}, not {scale}")
        if crop is not None and (crop <= 0 or crop % scale):
            raise ValueError(f"crop must be a positive multiple of the scale {scale}, got {crop}")
        self.manifest = manifest
        self.folder = Path(folder)
        self.name = manifest.name
        self.scale = scale
        self.crop = crop
        self.has_ground_truth = manifest.ground_truth
        p = manifest.pairing
        self._scan: ScanResult = scan(self.folder, p.hr, p.lr, scale)
        self._checked: dict[str, PairingFailure | None] = {}
        lr = (
            "own LR (stored at HR size, MATLAB-bicubic downscaled)"
            if p.lr_at_hr_size
            else "own LR"
            if p.lr
            else "LR = MATLAB bicubic"
        )
        gt = "" if manifest.ground_truth else ", no ground truth (no-reference metrics only)"
        where = f", centre-cropped to {crop}x{crop} HR" if crop else ""
        bad = len(self._scan.failures)
        self.description = f"{manifest.title}: {len(self._scan.names())} images x{scale}, {lr}{gt}{where}" + (
            f"; {bad} fail pairing" if bad else ""
        )

    def names(self) -> list[str]:
        return self._scan.names()

    def failure(self, name: str) -> PairingFailure | None:
        """The pairing failure of image ``name`` (missing, ambiguous or wrongly sized files), ``None`` if it pairs."""
        if name in self._scan.failures:
            return self._scan.failures[name]
        if name not in self._scan.entries:
            raise KeyError(f"{name!r} is not in dataset {self.name!r}")
        if name not in self._checked:
            p = self.manifest.pairing
            self._checked[name] = check_entry(self._scan.entries[name], self.scale, p.modcrop, p.lr_at_hr_size)
        return self._checked[name]

    def failures(self) -> list[PairingFailure]:
        """Every image that cannot be scored, with the reason (reads the files' headers once)."""
        return [f for n in self.names() if (f := self.failure(n)) is not None]

    def load(self, name: str) -> Sample:
        failure = self.failure(name)
        if failure is not None:
            raise PairingError(failure)
        p = self.manifest.pairing
        sample = load_entry(self._scan.entries[name], self.scale, p.modcrop, p.lr_at_hr_size)
        if self.crop is not None:
            sample = center_crop_pair(sample, self.crop, self.scale)
        return sample

    def items(self) -> Iterator[Sample | PairingFailure]:
        """Samples and failures in name order (a failure found only when decoding is yielded as a failure too)."""
        for name in self.names():
            try:
                yield self.load(name)
            except PairingError as exc:
                yield exc.failure

    def __repr__(self) -> str:
        return f"ManifestDataset({self.name!r}, {str(self.folder)!r}, scale={self.scale}, crop={self.crop})"


def build_manifest_dataset(name: str, scale: int | None = None, crop: int | None = None, store=None) -> ManifestDataset:
    """The fetched dataset ``name``; :class:`DatasetNotReadyError` (with the fetch command) when it is not ready."""
    from bench.data.store import DatasetStore

    store = store or DatasetStore()
    manifest = store.get(name)
    return ManifestDataset(manifest, store.require_ready(name), scale=scale, crop=crop)


def _factory(manifest: DatasetManifest, folder: Path) -> Callable[..., ManifestDataset]:
    """The registry's factory of ``manifest`` (read from ``folder``): ``factory(scale=None, crop=None)``."""

    def factory(scale: int | None = None, crop: int | None = None) -> ManifestDataset:
        from bench.data.store import DatasetStore

        return build_manifest_dataset(manifest.name, scale=scale, crop=crop, store=DatasetStore(manifest_dir=folder))

    factory.__name__ = manifest.name.replace("-", "_")
    factory.scales = tuple(manifest.scales)  # read by the matrix checks: a scale the manifest lacks is refused early
    factory.ground_truth = manifest.ground_truth  # ... and sigma selection (full-reference) on a set without HR
    factory.manifest = manifest
    factory.__doc__ = f"{manifest.title} (manifest {folder / manifest.name}.yaml; {manifest.fetch_command()})."
    return factory


@dataclass(frozen=True)
class ProjectCatalog:
    """The archive manifests of one ``datasets/`` folder, as registry factories.

    Attributes:
        folder: the manifests' folder.
        factories: dataset name (as the manifest spells it) -> factory ``(scale=None, crop=None) -> ManifestDataset``.
        invalid: file name -> the one-line-per-problem error of each manifest that does not validate.
    """

    folder: Path
    factories: dict[str, Callable[..., ManifestDataset]] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)


_CATALOGS: dict[Path, tuple[tuple, ProjectCatalog]] = {}  # folder -> (its manifests' signature, catalog)


def _signature(folder: Path) -> tuple:
    """What a change of the folder's manifests changes: each file's name, mtime and size."""
    out = []
    for path in manifest_paths(folder):
        try:
            st = path.stat()
        except OSError:  # removed between the listing and the stat: the next lookup sees it gone
            continue
        out.append((path.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


def project_catalog(folder: str | Path | None = None) -> ProjectCatalog:
    """The catalog of ``folder`` (default: the current project's ``datasets/``, :func:`bench.paths.datasets_dir`).

    Read once per state of the folder: adding, removing or editing a manifest is seen by the next call. Invalid
    manifests are logged (once per state) and left out; :attr:`ProjectCatalog.invalid` says why.
    """
    from bench.paths import datasets_dir

    folder = Path(folder if folder is not None else datasets_dir()).expanduser().resolve()
    signature = _signature(folder)
    cached = _CATALOGS.get(folder)
    if cached is not None and cached[0] == signature:
        return cached[1]
    manifests, invalid = load_manifests(folder)
    for file, error in invalid.items():
        logger.warning("dataset manifest %s is invalid and not available: %s", file, " ".join(error.split()))
    factories = {name: _factory(m, folder) for name, m in sorted(manifests.items()) if m.kind == "archive"}
    catalog = ProjectCatalog(folder, factories, invalid)
    _CATALOGS[folder] = (signature, catalog)
    return catalog


def register_manifests(folder: str | Path | None = None) -> list[str]:
    """The archive dataset names of ``folder``'s manifests (default: the current project's).

    Kept for callers of the former eager registration: nothing needs registering any more, the registry resolves the
    current project's manifests on lookup (see the module docstring). This reads (and caches) ``folder``'s catalog.
    """
    return sorted(project_catalog(folder).factories)
