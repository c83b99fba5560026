"""The error of a configuration file: every problem found, the file it came from."""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and lists every problem.

    Attributes:
        source: the file (or ``<dict>``, a command-line name) the problems belong to.
        problems: one line per problem, each starting with the dotted key it concerns.
        kind: what the file is ("matrix", "method card", "recipe", ...), the first word of the message.

    A single problem gives a one-line message (``matrix /x/m.yaml: metircs: unknown key (did you mean 'metrics'?)``);
    several give a header line and one indented line each.
    """

    kind = "config"

    def __init__(self, source: str, problems: Sequence[str], kind: str | None = None) -> None:
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
        super().__init__(text)
