"""Exceptions of the asset subsystem.

:class:`AssetError` is the one a caller catches: every failure to obtain, convert, store or verify an asset is one.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.errors import BenchError, ConfigFileError


class AssetError(BenchError, RuntimeError):
    """An asset could not be fetched, converted, stored or verified (the message says which source and why)."""


class ManifestError(AssetError, ConfigFileError):
    """The asset manifest (``manifest.yaml``) is malformed or absent.

    A :class:`~bench.errors.ConfigFileError` like every declared file's: ``source`` is the file, ``problems`` one
    line per problem (``<dotted key>: <message>``); the message is ``asset manifest <file>: <problem>`` (several: a
    header and one indented line each). ``fix`` as for every :class:`~bench.errors.BenchError`.
    """

    kind = "asset manifest"

    def __init__(self, source: str, problems: Sequence[str], *, fix: str | None = None) -> None:
        ConfigFileError.__init__(self, source, problems, fix=fix)


class DownloadError(AssetError, OSError):
    """A download failed (HTTP error, timeout, short read); a partial ``.part`` file is kept for resuming."""


class ChecksumError(DownloadError):
    """A file's sha256 differs from the expected one; the bad file is never kept under its final name."""


class ConversionError(AssetError, ValueError):
    """A source file is not in the format its converter expects (truncated, extra bytes, wrong keys, ...)."""


class IntegrityError(AssetError):
    """A stored asset's bytes no longer match the sha256 recorded when it was converted (edited, truncated, corrupt);
    the message names the file and ``fix`` the command that stores it again."""
