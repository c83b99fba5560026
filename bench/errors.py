"""The project's own errors: what a user or a data set can get wrong, each with the command or edit that fixes it.

The runner turns a :class:`BenchError` (and the known bad-data errors of :data:`BAD_DATA`) into failure rows of the
cell it happened in and goes on; anything else -- a ``TypeError`` in a method, CUDA out of memory -- is a bug or a
resource problem and surfaces.

Every error carries ``fix``: the one command or edit that repairs it (``None`` when there is none to give), as data,
so that callers (the report's missing-checkpoint rows) never scrape it back out of the message.

Example::

    raise MissingAsset("checkpoint asset 'realsr-df2k' is not stored", fix="python -m bench assets fetch realsr-df2k")
"""

from __future__ import annotations


class BenchError(Exception):
    """Base of the project's errors; ``fix`` is the command or edit that repairs it, or ``None``."""

    def __init__(self, *args: object, fix: str | None = None) -> None:
        super().__init__(*args)
        self.message = str(args[0]) if args else ""
        self.fix = fix

    def __str__(self) -> str:
        return self.message if self.fix is None else f"{self.message}; fix: `{self.fix}`"


class MissingAsset(BenchError, FileNotFoundError):
    """A checkpoint, weight file or data set is not stored; ``fix`` names the command that produces it."""


class ConfigError(BenchError, ValueError):
    """A matrix or card asks for something this run cannot provide (e.g. ``sigma: auto`` without ``smoothing:``)."""


class BadImage(BenchError, ValueError):
    """An input image cannot be used (unreadable, wrong channels, too small for the scale)."""


class PairingError(BenchError, ValueError):
    """An LR/HR pair (or a method output and its HR) does not have matching sizes."""


class BadOutput(BenchError, ValueError):
    """A method, attack or metric produced a non-finite or mis-shaped result."""


class AttackRefused(BenchError, ValueError):
    """An attack cannot run as asked (a non-differentiable method without a surrogate, no HR, no generator)."""


class OutputError(BenchError):
    """The run folder cannot be written (no permission, no space left) or holds a file that cannot be read back (a
    corrupt ``run.json``); the message names the file. It stops the run: nothing more could be stored."""


#: Errors of the data itself (an unreadable file: PIL raises ``OSError``s) that fail one image, not the run.
BAD_DATA: tuple[type[BaseException], ...] = (BenchError, OSError)
