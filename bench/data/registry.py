"""The dataset registry: the datasets registered in code, and the manifest datasets of the *current* project.

Code registers its datasets by decorator as for every kind (``@DATASETS.register("embedded-eval")``). The manifest
datasets (``datasets/*.yaml`` of kind ``archive``, :mod:`bench.data.catalog`) are not registered once at import:
every lookup that misses the code-registered names consults the catalog of the project that is current *then*
(``$BENCH_PROJECT``, the checkout, ``./datasets`` or an installed wheel's copy, :func:`bench.paths.datasets_dir`),
which is re-read when a manifest file is added, removed or edited. So a process that switches projects (tests, a
library user) sees each project's own datasets, and an edited manifest's scales are the ones the matrix checks use.

Names are listed as they are spelled where they are declared (``div2k-val``, ``embedded-eval``); a lookup is case-,
dash- and underscore-insensitive (``div2k_val`` finds ``div2k-val``). A code-registered name wins over a manifest of
the same name. Two manifest files whose names differ only so (``div2k-val.yaml`` and ``DIV2K_val.yaml``; a manifest's
name is its file's stem, and one of the two is then also invalid, its name not lower-case with dashes) make a lookup
of that name a :class:`~bench.errors.NameCollision` naming both files, never the valid one silently in place of the
other. At the lookup, not when the folder is read: a stray copy stops only the runs that name it.

Example::

    DATASETS.get("div2k-val")            # the current project's manifest dataset (a factory)
    DATASETS.names()                     # ["div2k-train", "div2k-val", ..., "embedded-eval", "folder", ...]
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from bench.errors import NameCollision
from bench.registry import Registry, T


class DatasetRegistry(Registry[T]):
    """A :class:`~bench.registry.Registry` that also resolves the current project's manifest datasets, lazily.

    Args:
        kind, base, modules: as for :class:`~bench.registry.Registry` (the modules that register code datasets).
    """

    def __init__(self, kind: str, base: type | None = None, modules: tuple[str, ...] = ()) -> None:
        super().__init__(kind, base, modules)
        self._spelling: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """As :meth:`Registry.register`; the name is also kept as spelled, for :meth:`names`."""
        inner = super().register(name, aliases=aliases)

        def decorator(obj: T) -> T:
            out = inner(obj)
            self._spelling[self._norm(name)] = name.strip()
            return out

        return decorator

    def _catalog(self) -> Any:
        """The current project's :class:`~bench.data.catalog.ProjectCatalog` (``None`` if the module cannot load)."""
        try:
            from bench.data.catalog import project_catalog
        except ImportError as exc:  # recorded and reported on lookup, as for a module of the list
            self._failed["bench.data.catalog"] = f"{type(exc).__name__}: {exc}"
            return None
        return project_catalog()

    def resolve(self, name: str) -> tuple[str, T]:
        """``(name as spelled, component)``; ``KeyError`` with the nearest names (and why a manifest is invalid)."""
        self.load()
        key = self._norm(name)
        if key in self._collisions:
            raise self._collisions[key]
        key = self._aliases.get(key, key)
        if key in self._entries:
            return self._spelling.get(key, key), self._entries[key]
        catalog = self._catalog()
        if catalog is not None:
            found = [spelled for spelled in catalog.factories if self._norm(spelled) == key]
            files = [f"{spelled}.yaml" for spelled in found]
            files += [file for file in catalog.invalid if self._norm(file.rsplit(".", 1)[0]) == key]
            if len(files) > 1:
                raise NameCollision(
                    f"{self.kind} {name!r} is ambiguous: the manifests {' and '.join(files)} of {catalog.folder} have "
                    "names that differ only in case or '-'/'_' (dataset names ignore both); rename or remove one of "
                    "them"
                )
            if found:
                return found[0], catalog.factories[found[0]]
        raise KeyError(self._unknown(name, catalog))

    def _unknown(self, name: str, catalog: Any) -> str:
        known = self.names()
        close = difflib.get_close_matches(str(name).strip().lower(), known + sorted(self._aliases), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        where = f" (manifests of {catalog.folder})" if catalog is not None else ""
        invalid = ""
        if catalog is not None:
            bad = [
                err for file, err in catalog.invalid.items() if self._norm(file.rsplit(".", 1)[0]) == self._norm(name)
            ]
            invalid = "".join(f" Its manifest is invalid: {' '.join(err.split())}." for err in bad)
        failed = "".join(f" Module {m} failed to import ({e})." for m, e in self._failed.items())
        return f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(known)}{where}.{invalid}{failed}"

    def canonical(self, name: str) -> str:
        """The name as spelled where it is declared (``div2k_val`` -> ``div2k-val``); ``KeyError`` if unknown."""
        return self.resolve(name)[0]

    def get(self, name: str) -> T:
        return self.resolve(name)[1]

    def names(self) -> list[str]:
        """Code datasets and the current project's manifest datasets, as spelled, sorted."""
        self.load()
        spelled = {self._spelling.get(k, k) for k in self._entries}
        catalog = self._catalog()
        if catalog is not None:
            taken = set(self._entries)
            spelled |= {n for n in catalog.factories if self._norm(n) not in taken}
        return sorted(spelled)

    def items(self) -> list[tuple[str, T]]:
        return [(n, self.get(n)) for n in self.names()]

    def __repr__(self) -> str:
        return f"DatasetRegistry({self.kind!r}, {len(self._entries)} code entries + the current project's manifests)"
