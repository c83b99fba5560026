"""Dataset manifests: one YAML file per dataset in ``datasets/``, validated by :class:`DatasetManifest` before any work.

A manifest says where a dataset's files come from (official URLs with sha256 and size, or ``checksum: lock`` when no
checksum is published, or a ``manual:`` text when a script cannot fetch them), how its archives unpack, which files
are HR and which LR, how they pair, at which scales, and what may be cited. Layout::

    name: div2k-val                       # lower-case, digits and dashes; the name used everywhere
    title: DIV2K validation HR
    kind: archive                         # archive (fetched) | embedded (ships in Python packages)
    split: val                            # train | val | test
    homepage: https://data.vision.ee.ethz.ch/cvl/DIV2K/
    license: ...
    citation: ...
    scales: [4]                           # the scales the dataset can be read at; ``scale:`` picks the default
    ground_truth: true                    # false: LR only (no-reference metrics only)
    sources:
      - file: DIV2K_valid_HR.zip          # the archive's file name (the name a user's download has)
        url: https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip    # null for manual-only sets
        sha256: 20dd31fd...               # 64 hex, or ``lock`` (datasets/checksums.lock, written by the first fetch)
        size: 448993893                   # bytes, null when unknown
        extract_to: ""                    # sub-folder of the dataset folder the archive unpacks into
    pairing:
      hr: "DIV2K_valid_HR/{id}.png"       # {id} = the image name; {scale} = the scale; * = one path segment
      lr: null                            # null = LR synthesised with MATLAB bicubic (needs ground truth)
      modcrop: true                       # HR cropped (bottom/right) to a multiple of the scale before pairing
      lr_at_hr_size: false                # LR stored at HR resolution (RealSR v1/v2 style): see below
    images: {4: 100}                      # expected sample count per scale (a layout check; optional)
    manual: null                          # where to get it by hand when the URL cannot be fetched by a script
    assumptions: []                       # layout details not checked against the real files

``lr_at_hr_size: true`` declares that an LR file has the HR's size (RealSR versions 1 and 2 store LR upsampled to the
HR grid). Such an LR must then be exactly the HR's size; it is downscaled by MATLAB bicubic to HR/scale and the
dataset description says so. It is never cropped. With ``false``, an LR must be exactly HR/scale after the modcrop.

Declared configuration like the matrices, cards, recipes and the asset manifest: read by
:func:`bench.config.loader.read_yaml` and validated by :func:`bench.config.loader.validate_model` into frozen pydantic
models (unknown keys refused with the closest valid one), every problem at once, each at its dotted key
(``sources.0.sha256``, ``pairing.lr``). A bad manifest raises :class:`ManifestError`, a
:class:`~bench.errors.ConfigFileError`::

    dataset manifest datasets/div2k-val.yaml: 2 problems
      - unknown key 'titel' (did you mean 'title'?)
      - sources.0.sha256: must be 64 lower-case hex digits or 'lock', got 'abc'

``python -m bench schema`` exports the model as ``dataset-manifest.schema.json``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bench.config.errors import ConfigFileError
from bench.config.loader import read_yaml, validate_model
from bench.config.models import Frozen, fail_at

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PATTERN_FIELD = re.compile(r"\{([a-z]+)\}")


class ManifestError(ConfigFileError):
    """A dataset manifest is malformed: ``dataset manifest <file>: <key.path>: <message>``, every problem at once
    (``source`` the file, ``problems`` one line each, as for every :class:`~bench.errors.ConfigFileError`)."""

    kind = "dataset manifest"

    def __init__(self, source: str, problems: list[str] | str) -> None:
        super().__init__(source, [problems] if isinstance(problems, str) else problems)


class SourceFile(Frozen):
    """One archive of a dataset.

    Attributes:
        file: the archive's file name (also the name under which a download is cached and ``--from`` folders are
            searched).
        url: the official http(s) URL; ``None`` when there is none a script can fetch (see ``manual``).
        sha256: lower-case hex digest, or ``"lock"``: the first verified fetch records it in ``datasets/checksums.lock``
            and every later fetch must match it.
        size: size in bytes (checked before extraction), ``None`` when not published.
        extract_to: sub-folder of the dataset folder that the archive's members are written under.
    """

    file: str
    url: str | None = None
    sha256: str
    size: int | None = Field(default=None, gt=0)
    extract_to: str = ""

    @field_validator("file")
    @classmethod
    def _plain_file_name(cls, v: str) -> str:
        if not v or "/" in v or "\\" in v or v in (".", ".."):
            raise ValueError(f"must be a plain file name (no '/' or '..'), got {v!r}")
        return v

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+/\S*$", v):
            raise ValueError(f"must be an http(s) URL, got {v!r}")
        return v

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if v != "lock" and not SHA256_RE.match(v):
            raise ValueError(f"must be 64 lower-case hex digits or 'lock', got {v!r}")
        return v

    @field_validator("extract_to")
    @classmethod
    def _relative(cls, v: str) -> str:
        parts = Path(v).parts
        if v.startswith(("/", "\\")) or ".." in parts or "\\" in v:
            raise ValueError(f"must be a relative folder without '..', got {v!r}")
        return v

    @property
    def locked(self) -> bool:
        """The checksum lives in the lock file (none is published)."""
        return self.sha256 == "lock"


class Pairing(Frozen):
    """Which files are HR and LR and how they pair (see the module docstring for the pattern syntax)."""

    hr: str | None = None
    lr: str | None = None
    modcrop: bool = True
    lr_at_hr_size: bool = False

    @field_validator("hr", "lr")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is None:
            return v
        fields = _PATTERN_FIELD.findall(v)
        unknown = sorted(set(fields) - {"id", "scale"})
        if unknown:
            raise ValueError(f"pattern {v!r}: unknown fields {unknown}; use {{id}} and {{scale}}")
        if fields.count("id") != 1:
            raise ValueError(f"pattern {v!r} must hold {{id}} exactly once")
        if v.startswith("/") or ".." in v.split("/") or "\\" in v or "**" in v:
            raise ValueError(f"pattern {v!r} must be a relative path with '/' separators, no '..' or '**'")
        if "{id}" in v.rsplit("/", 1)[0]:
            raise ValueError(f"pattern {v!r}: {{id}} must be in the file name")
        return v


class DatasetManifest(Frozen):
    """A validated dataset manifest (``datasets/<name>.yaml``)."""

    name: str
    title: str
    kind: Literal["archive", "embedded"] = "archive"
    description: str = ""
    split: Literal["train", "val", "test"]
    homepage: str | None = None
    license: str
    citation: str
    scales: tuple[int, ...] = (4,)
    scale: int | None = None
    ground_truth: bool = True
    sources: tuple[SourceFile, ...] = ()
    pairing: Pairing | None = None
    images: dict[int, int] = Field(default_factory=dict)
    embedded_images: tuple[str, ...] = ()
    manual: str | None = None
    max_extracted_bytes: int | None = Field(default=None, gt=0)
    assumptions: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"must be lower-case letters, digits and dashes, got {v!r}")
        return v

    @field_validator("scales")
    @classmethod
    def _scales(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(s < 1 for s in v) or len(set(v)) != len(v):
            raise ValueError(f"must be distinct positive integers, got {list(v)}")
        return tuple(v)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetManifest:
        problems = list(self._cross_field_problems())
        if problems:
            fail_at(type(self).__name__, problems)
        return self

    def _cross_field_problems(self) -> Iterator[tuple[str, str]]:
        """``(dotted key, message)`` for every rule that ties fields together (all of them, not the first)."""
        if self.scale is not None and self.scale not in self.scales:
            yield "scale", f"the default scale {self.scale} is not one of scales {list(self.scales)}"
        bad = sorted(set(self.images) - set(self.scales))
        if bad:
            yield "images", f"counts given for scales {bad} that are not in scales {list(self.scales)}"
        if self.kind == "embedded":
            if self.sources:
                yield "sources", "an embedded dataset has no sources (its images ship in packages)"
            if self.pairing is not None:
                yield "pairing", "an embedded dataset has no pairing (its images ship in packages)"
            if not self.embedded_images:
                yield "embedded_images", "an embedded dataset lists its images here"
            return
        if self.embedded_images:
            yield "embedded_images", "only for kind: embedded"
        if not self.sources:
            yield "sources", "an archive dataset needs at least one source file"
        files = [s.file for s in self.sources]
        if len(set(files)) != len(files):
            yield "sources", f"file names repeat: {files}"
        no_url = [s.file for s in self.sources if s.url is None]
        if no_url and not self.manual:
            yield "manual", f"sources without url ({', '.join(no_url)}) need a manual: text saying where to get them"
        p = self.pairing
        if p is None:
            yield "pairing", "an archive dataset needs hr/lr patterns"
            return
        if self.ground_truth and p.hr is None:
            yield "pairing.hr", "ground_truth: true needs an hr pattern"
        if not self.ground_truth:
            if p.hr is not None:
                yield "pairing.hr", "ground_truth: false means no hr pattern (LR only); set hr: null"
            if p.lr is None:
                yield "pairing.lr", "ground_truth: false needs an lr pattern"
            if p.lr_at_hr_size:
                yield "pairing.lr_at_hr_size", "needs ground truth to be checked against (ground_truth: false)"
        if p.lr_at_hr_size and p.lr is None:
            yield "pairing.lr", "lr_at_hr_size: true needs an lr pattern"
        if len(self.scales) > 1 and p.lr is not None and "{scale}" not in p.lr:
            yield (
                "pairing.lr",
                f"several scales {list(self.scales)} but the pattern {p.lr!r} has no {{scale}} to tell them apart",
            )

    @property
    def default_scale(self) -> int:
        return self.scale if self.scale is not None else max(self.scales)

    @property
    def fetchable(self) -> bool:
        """Every source has a URL (no manual step)."""
        return self.kind == "archive" and all(s.url for s in self.sources)

    def digest(self) -> str:
        """sha256 of the manifest's canonical JSON: the ready-marker records it, so an edited manifest is noticed."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def fetch_command(self) -> str:
        """The exact command that gets this dataset."""
        if self.kind == "embedded":
            return "(none: the images ship in scikit-image, scikit-learn and matplotlib)"
        if self.fetchable:
            return f"python -m bench datasets fetch {self.name}"
        files = " ".join(s.file for s in self.sources)
        return f"python -m bench datasets fetch {self.name} --from PATH  (PATH: {files} or its unpacked folder)"


def parse_manifest(data: Any, where: str = "<manifest>") -> DatasetManifest:
    """Validate a mapping (the parsed YAML) as a :class:`DatasetManifest`.

    Raises:
        ManifestError: every problem at once under the file ``where``, each as ``<dotted key>: <message>`` (an unknown
            key with the closest valid one).
    """
    if not isinstance(data, Mapping):
        raise ManifestError(where, f"the top level must be a mapping of keys, got {type(data).__name__}")
    manifest, problems = validate_model(DatasetManifest, data)
    if problems or manifest is None:
        raise ManifestError(where, problems)
    return manifest


def load_manifest(path: str | Path) -> DatasetManifest:
    """Read and validate one manifest file; its ``name`` must equal the file's stem (reported with the others).

    Raises:
        ManifestError: unreadable, not UTF-8, not YAML, or invalid (every problem, located).
    """
    path = Path(path)
    try:
        data = read_yaml(path, kind=ManifestError.kind)
    except ConfigFileError as exc:
        raise ManifestError(exc.source, exc.problems) from exc
    name = data.get("name")
    stem = [] if not isinstance(name, str) or name == path.stem else [
        f"name: {name!r} differs from the file name (expected {path.stem!r}, or rename the file)"
    ]  # fmt: skip
    manifest, problems = validate_model(DatasetManifest, data)
    if stem or problems or manifest is None:
        raise ManifestError(str(path), stem + problems)
    return manifest


def manifest_paths(folder: str | Path) -> list[Path]:
    """The ``*.yaml`` manifests of ``folder``, sorted."""
    folder = Path(folder)
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def load_manifests(folder: str | Path) -> tuple[dict[str, DatasetManifest], dict[str, str]]:
    """Every manifest of ``folder``: (name -> manifest, file name -> error for the invalid ones)."""
    good: dict[str, DatasetManifest] = {}
    bad: dict[str, str] = {}
    for path in manifest_paths(folder):
        try:
            m = load_manifest(path)
        except ManifestError as exc:
            bad[path.name] = str(exc)
            continue
        good[m.name] = m
    return good, bad


def json_schema() -> dict[str, Any]:
    """The JSON schema of a manifest (``python -m bench schema`` writes it as ``dataset-manifest.schema.json``)."""
    return DatasetManifest.model_json_schema()
