"""The project's own errors: what a user or a data set can get wrong, each with the command or edit that fixes it.

The runner turns a :class:`BenchError` (and the known bad-data errors of :data:`BAD_DATA`) into failure rows of the
cell it happened in and goes on; anything else -- a ``TypeError`` in a method, CUDA out of memory -- is a bug or a
resource problem and surfaces.

Every error carries ``fix``: the one command or edit that repairs it (``None`` when there is none to give), as data,
so that callers (the report's missing-checkpoint rows) never scrape it back out of the message.

Hierarchy: every class here is a :class:`BenchError`. :class:`ConfigError` (also a ``ValueError``) is a configuration
that cannot be used; its subclass :class:`ConfigFileError` is a declared file (matrix, card, recipe, manifest) with
its problems listed by key. Subsystems derive their own (``bench.assets.errors.AssetError``, ...) from these.

Example::

    raise MissingAsset("checkpoint asset 'realsr-df2k' is not stored", fix="python -m bench assets fetch realsr-df2k")
"""

from __future__ import annotations

from collections.abc import Sequence


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
    """A configuration asks for something this run cannot provide (``sigma: auto`` without ``smoothing:``, an unknown
    ``--device``); the base of every configuration error, :class:`ConfigFileError` included."""


class ConfigFileError(ConfigError):
    """A configuration file that cannot be used; the message names the file and lists every problem.

    The one error of the declared files (:mod:`bench.config.loader`): matrices, method cards, recipes, dataset and
    asset manifests each subclass it only to set :attr:`kind`.

    Args:
        source: the file (or ``<dict>``, ``<command line>``) the problems belong to.
        problems: one line per problem, each starting with the dotted key it concerns.
        kind: what the file is ("matrix", "method card", "recipe", "dataset manifest", ...), the first word of the
            message; default: the class's :attr:`kind`.
        fix: as for every :class:`BenchError`: the command or edit that repairs it, or ``None``.

    Attributes:
        source, problems, kind: as given.

    A single problem gives a one-line message (``matrix /x/m.yaml: unknown key 'metircs' (did you mean
    'metrics'?)``); several give a header line and one indented line each (the CLI joins them into one ``error:``
    line).
    """

    kind = "config"

    def __init__(
        self, source: str, problems: Sequence[str], kind: str | None = None, *, fix: str | None = None
    ) -> None:
        self.source = str(source)
        self.problems = list(problems)
        if kind is not None:
            self.kind = kind
        n = len(self.problems)
        if n == 1:
            text = f"{self.kind} {self.source}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            text = f"{self.kind} {self.source}: {n} problems\n{lines}"
        super().__init__(text, fix=fix)


class NameCollision(ConfigError, KeyError):
    """Two components of one kind whose names differ only in case or ``-``/``_`` (which every name lookup ignores:
    ``div2k-val`` and ``DIV2K_val`` are one name): the message names both (their files), ``fix`` says to rename or
    remove one. A ``KeyError`` too, so every lookup that reports an unknown name reports this one the same way."""

    def __str__(self) -> str:  # a KeyError's str() would quote the message
        return BenchError.__str__(self)


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
