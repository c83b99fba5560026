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

The model is self-contained (pydantic v2, frozen, unknown keys refused) so that a schema can be exported from it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PATTERN_FIELD = re.compile(r"\{([a-z]+)\}")


class ManifestError(ValueError):
    """A dataset manifest is malformed; the message names the file and the field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceFile(_Frozen):
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
            raise ValueError(f"file must be a plain file name, got {v!r}")
        return v

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+/\S*$", v):
            raise ValueError(f"url must be an http(s) URL, got {v!r}")
        return v

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if v != "lock" and not SHA256_RE.match(v):
            raise ValueError(f"sha256 must be 64 lower-case hex digits or 'lock', got {v!r}")
        return v

    @field_validator("extract_to")
    @classmethod
    def _relative(cls, v: str) -> str:
        parts = Path(v).parts
        if v.startswith(("/", "\\")) or ".." in parts or "\\" in v:
            raise ValueError(f"extract_to must be a relative folder without '..', got {v!r}")
        return v

    @property
    def locked(self) -> bool:
        """The checksum lives in the lock file (none is published)."""
        return self.sha256 == "lock"


class Pairing(_Frozen):
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


class DatasetManifest(_Frozen):
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
            raise ValueError(f"name must be lower-case letters, digits and dashes, got {v!r}")
        return v

    @field_validator("scales")
    @classmethod
    def _scales(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(s < 1 for s in v) or len(set(v)) != len(v):
            raise ValueError(f"scales must be distinct positive integers, got {list(v)}")
        return tuple(v)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetManifest:
        if self.scale is not None and self.scale not in self.scales:
            raise ValueError(f"scale {self.scale} is not one of scales {list(self.scales)}")
        bad = sorted(set(self.images) - set(self.scales))
        if bad:
            raise ValueError(f"images: counts given for scales {bad} that are not in scales {list(self.scales)}")
        if self.kind == "embedded":
            if self.sources or self.pairing is not None:
                raise ValueError("an embedded dataset has no sources and no pairing (its images ship in packages)")
            if not self.embedded_images:
                raise ValueError("an embedded dataset lists its images in embedded_images")
            return self
        if self.embedded_images:
            raise ValueError("embedded_images is only for kind: embedded")
        if not self.sources:
            raise ValueError("sources: an archive dataset needs at least one source file")
        if self.pairing is None:
            raise ValueError("pairing: an archive dataset needs hr/lr patterns")
        files = [s.file for s in self.sources]
        if len(set(files)) != len(files):
            raise ValueError(f"sources: file names repeat: {files}")
        if any(s.url is None for s in self.sources) and not self.manual:
            raise ValueError("a source without url needs a manual: text saying where to get it")
        p = self.pairing
        if self.ground_truth and p.hr is None:
            raise ValueError("ground_truth: true needs an hr pattern")
        if not self.ground_truth:
            if p.hr is not None:
                raise ValueError("ground_truth: false means no hr pattern (LR only); set hr: null")
            if p.lr is None:
                raise ValueError("ground_truth: false needs an lr pattern")
            if p.lr_at_hr_size:
                raise ValueError("lr_at_hr_size needs ground truth to be checked against")
        if p.lr_at_hr_size and p.lr is None:
            raise ValueError("lr_at_hr_size: true needs an lr pattern")
        if len(self.scales) > 1 and p.lr is not None and "{scale}" not in p.lr:
            raise ValueError(f"several scales but the lr pattern {p.lr!r} has no {{scale}} to tell them apart")
        return self

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
    """Validate a mapping as a :class:`DatasetManifest`; :class:`ManifestError` names ``where`` and each bad field."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a mapping, got {type(data).__name__}")
    try:
        return DatasetManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ManifestError(f"{where}: {problems}") from None


def load_manifest(path: str | Path) -> DatasetManifest:
    """Read and validate one manifest file; its ``name`` must equal the file's stem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from None
    manifest = parse_manifest(data, str(path))
    if manifest.name != path.stem:
        raise ManifestError(f"{path}: name {manifest.name!r} differs from the file name (expected {path.stem!r})")
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
        except (ManifestError, OSError) as exc:
            bad[path.name] = str(exc)
            continue
        good[m.name] = m
    return good, bad


def json_schema() -> dict[str, Any]:
    """The JSON schema of a manifest (for editors and a future ``bench schema``)."""
    return DatasetManifest.model_json_schema()
