"""The errors of configuration files, re-exported from the project's one hierarchy (:mod:`bench.errors`).

:class:`ConfigFileError` (a file with its problems listed by dotted key) derives from :class:`ConfigError` (any
configuration that cannot be used), which is a :class:`~bench.errors.BenchError` and a ``ValueError``: an
``except ConfigError`` catches both, and the CLI prints either as one ``error:`` line with its fix.
"""

from __future__ import annotations

from bench.errors import ConfigError, ConfigFileError

__all__ = ["ConfigError", "ConfigFileError"]
