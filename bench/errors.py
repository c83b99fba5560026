"""The project's base error: what the command line turns into one ``error: ...`` line instead of a traceback.

Every expected failure a user can fix (a bad input file, a tampered asset, an image over the size limit, ...) is a
:class:`BenchError` (or a subclass in its area, e.g. :class:`bench.assets.errors.AssetError`,
:class:`bench.images.ImageError`); ``fix`` optionally says what to do about it (a command, an option).
"""

from __future__ import annotations


class BenchError(Exception):
    """An expected, user-fixable failure; ``str(exc)`` says what and where, ``exc.fix`` (or None) what to do."""

    def __init__(self, *args: object, fix: str | None = None) -> None:
        super().__init__(*args)
        self.fix = fix
