"""One generic registry for every kind of component (methods, metrics, corruptions, attacks, datasets, ...).

A component registers itself with a decorator in the module that defines it. Each registry names the modules that
hold its components; they are imported on first lookup, one by one, so that a broken optional dependency in one
module raises a clear error for that component only and never breaks ``import bench``.

Names ignore case and ``-``/``_`` (:func:`normalise_name`): ``psnr-y`` and ``PSNR_Y`` are one name. A second component
registered under a taken name, spelled alike or not, is refused with a :class:`~bench.errors.NameCollision` naming
both components and their files, and every later lookup of that name raises it again: one never answers for the other.

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

from bench.errors import NameCollision

logger = logging.getLogger(__name__)

T = TypeVar("T")


def normalise_name(name: str) -> str:
    """What every name lookup compares: case, surrounding blanks and ``-``/``_`` ignored (``DIV2K-val`` ->
    ``div2k_val``). Registries, the dataset manifests and the method cards all name things this way."""
    return name.strip().lower().replace("-", "_")


def _where(obj: object) -> str:
    """``module.Name in /path/file.py`` of a registered component (what a collision error names)."""
    import inspect

    name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
    try:
        file = inspect.getsourcefile(obj) or inspect.getfile(obj)
    except TypeError:  # a built-in, or an instance
        return name
    return f"{name} in {file}"


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
        self._spelled: dict[str, tuple[str, object]] = {}  # normalised name or alias -> (as registered, component)
        self._collisions: dict[str, NameCollision] = {}  # normalised name -> the refused second registration

    @staticmethod
    def _norm(name: str) -> str:
        return normalise_name(name)

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (and ``aliases``); names are case- and dash-insensitive.

        Raises:
            TypeError: ``obj`` is a class that is not a subclass of the registry's ``base``.
            NameCollision: ``name`` or an alias is already taken, spelled alike or differing only in case or
                ``-``/``_`` (the message names both components and their files). A later lookup of that name raises
                it again (a module whose import failed on it is not silently shadowed by the first).
        """

        def decorator(obj: T) -> T:
            if self.base is not None and isinstance(obj, type) and not issubclass(obj, self.base):
                raise TypeError(f"{self.kind} {name!r}: {obj!r} is not a subclass of {self.base.__name__}")
            key = self._norm(name)
            for spelled in (name, *aliases):
                k = self._norm(spelled)
                if k in self._entries or k in self._aliases:
                    taken, other = self._spelled.get(k, (k, self._entries.get(self._aliases.get(k, k))))
                    error = NameCollision(
                        f"{self.kind} {spelled.strip()!r} ({_where(obj)}) is registered twice: {taken!r} "
                        f"({_where(other)}) has the same name (names ignore case, '-' and '_'); rename one of them"
                    )
                    self._collisions[k] = error
                    raise error
            self._entries[key] = obj
            self._spelled[key] = (name.strip(), obj)
            for alias in aliases:
                self._aliases[self._norm(alias)] = key
                self._spelled[self._norm(alias)] = (alias.strip(), obj)
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
        if key in self._collisions:
            raise self._collisions[key]
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
