"""Exceptions of the asset subsystem.

:class:`AssetError` is the one a caller catches: every failure to obtain, convert, store or verify an asset is one.
"""

from __future__ import annotations

from bench.errors import BenchError


class AssetError(BenchError, RuntimeError):
    """An asset could not be fetched, converted, stored or verified (the message says which source and why)."""


class ManifestError(AssetError, ValueError):
    """The asset manifest (``manifest.yaml``) is malformed; the message names the asset and the field."""


class DownloadError(AssetError, OSError):
    """A download failed (HTTP error, timeout, short read); a partial ``.part`` file is kept for resuming."""


class ChecksumError(DownloadError):
    """A file's sha256 differs from the expected one; the bad file is never kept under its final name."""


class ConversionError(AssetError, ValueError):
    """A source file is not in the format its converter expects (truncated, extra bytes, wrong keys, ...)."""


class IntegrityError(AssetError):
    """A stored asset's bytes no longer match the sha256 recorded when it was converted (edited, truncated, corrupt);
    the message names the file and ``fix`` the command that stores it again."""
