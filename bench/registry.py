"""One generic registry for every kind of component (methods, metrics, corruptions, attacks, datasets, ...).

A component registers itself with a decorator in the module that defines it. Each registry names the modules that
hold its components; they are imported on first lookup, one by one, so that a broken optional dependency in one
module raises a clear error for that component only and never breaks ``import bench``.

Example::

    METRICS = Registry("metric", modules=("bench.metrics.psnr", "bench.metrics.ssim"))

    @METRICS.register("psnr", aliases=("psnr_rgb",))
    class PSNR(Metric): ...

    METRICS.get("psnr")       # -> the PSNR class
    METRICS.names()           # -> ["psnr", ...]
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> component mapping filled by decorators.

    Args:
        kind: what the registry holds, used in error messages ("metric", "method adapter", ...).
        base: if given, a registered class must be a subclass of it (functions are accepted as factories).
        modules: dotted module names imported on first lookup; their decorators fill the registry.
    """

    def __init__(self, kind: str, base: type | None = None, modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.base = base
        self.modules = tuple(modules)
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._failed: dict[str, str] = {}
        self._loaded = False

    @staticmethod
    def _norm(name: str) -> str:
        return name.strip().lower().replace("-", "_")

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (and ``aliases``); names are case- and dash-insensitive."""

        def decorator(obj: T) -> T:
            if self.base is not None and isinstance(obj, type) and not issubclass(obj, self.base):
                raise TypeError(f"{self.kind} {name!r}: {obj!r} is not a subclass of {self.base.__name__}")
            key = self._norm(name)
            for k in (key, *map(self._norm, aliases)):
                if k in self._entries or k in self._aliases:
                    raise ValueError(f"{self.kind} {k!r} is registered twice")
            self._entries[key] = obj
            for alias in aliases:
                self._aliases[self._norm(alias)] = key
            return obj

        return decorator

    def load(self) -> None:
        """Import every module of the registry's list (once).

        A module that fails to import (a missing optional dependency, say) is logged and remembered: its components
        are unavailable and a lookup of an unknown name says which modules failed and why; the others still work.
        """
        if self._loaded:
            return
        self._loaded = True
        for module in self.modules:
            try:
                importlib.import_module(module)
            except Exception as exc:  # recorded and reported on lookup, never swallowed
                self._failed[module] = f"{type(exc).__name__}: {exc}"
                logger.warning("%s registry: module %s failed to import (%s)", self.kind, module, self._failed[module])

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases; ``KeyError`` with suggestions otherwise."""
        self.load()
        key = self._norm(name)
        key = self._aliases.get(key, key)
        if key not in self._entries:
            known = sorted(self._entries)
            close = difflib.get_close_matches(key, known + sorted(self._aliases), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            failed = "".join(f" Module {m} failed to import ({e})." for m, e in self._failed.items())
            raise KeyError(f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(known)}.{failed}")
        return key

    def get(self, name: str) -> T:
        return self._entries[self.canonical(name)]

    @property
    def failed_modules(self) -> dict[str, str]:
        """Modules of the list that failed to import, with the error."""
        self.load()
        return dict(self._failed)

    def names(self) -> list[str]:
        self.load()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._entries[n]) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.canonical(name)
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"
