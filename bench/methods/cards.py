"""Method cards: one YAML file in ``methods/`` per leaderboard entry, parsed into a frozen :class:`MethodCard`.

A card (its file stem is its name) declares::

    title: Real-ESRGAN x4plus                  # required, shown in tables
    adapter: rrdbnet                           # required, a name of bench.methods.ADAPTERS
    args: {num_block: 23}                      # keyword arguments of the adapter (architecture, settings)
    checkpoint: realesrgan-x4plus              # asset name, or a file path (relative to the card's folder)
    paper: {title: ..., venue: ..., url: ...}
    description: ...
    license: BSD-3-Clause                      # of the weights
    tile: 512                                  # LR tile size of super_resolve (null: never tile); default 512
    tile_overlap: 48                           # LR pixels of overlap between tiles; default 48
    recipe: {...}                              # optional: how a trained checkpoint was produced
    provenance: {...}                          # optional: where a trained checkpoint comes from (run, commit, ...)

The default tile (512) leaves DIV2K-size LR images (at most 510 pixels a side) untiled, so leaderboard numbers do not
depend on tiling; the default overlap (48) keeps tiled outputs about 60 dB from untiled ones for RRDBNet (see
:mod:`bench.methods.tiling`). Both are stored in :meth:`MethodCard.provenance`.

Wrapper cards (``adapter: median_smoothing``, ``args.base: <card>``) carry their base card's provenance under
``base`` (checkpoint and its hash included), so a result of the wrapper names the weights it ran. ``args.sigma:
auto`` asks for sigma to be chosen per condition (CertSR, :mod:`bench.certify.sigma`): :func:`build_method` builds the
wrapper with smoothing off and marks it ``sigma_auto = True``; the runner sets ``sigma`` before each condition.

``differentiable`` and ``stochastic`` are properties of the adapter, never of the card: :attr:`MethodCard.capabilities`
(the adapter's :meth:`~bench.methods.base.Method.declared_capabilities`, given its base's for a wrapper card, so a
median-smoothing card over a non-differentiable base is not differentiable -- what the built method reports and what
the run plans its attacks from). Readiness is one rule too, :meth:`MethodCard.missing_checkpoints`: the card's own
checkpoint and, recursively, its base's (a base card, or an inline ``{adapter, args: {checkpoint}}``), each with the
command that produces it; :meth:`MethodCard.checkpoint_available` is true when none is missing. Unknown keys, unknown
adapter arguments and wrong types fail when the card is loaded, naming the file and the key; an unknown adapter
raises the registry's ``KeyError``. A missing checkpoint fails only when the method is built (:func:`build_method`).

Example::

    method = build_method("realesrgan-x4plus", device="cpu")   # eval mode, parameters frozen
    sr = method.super_resolve(lr)                               # (N, 3, 4h, 4w) in [0, 1]
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from bench.config.errors import ConfigFileError
from bench.config.loader import read_yaml, validate_model
from bench.errors import NameCollision
from bench.methods import ADAPTERS
from bench.methods.base import Capabilities, Method
from bench.methods.card_spec import DEFAULT_TILE, DEFAULT_TILE_OVERLAP, CardFile
from bench.methods.checkpoint import (
    checkpoint_available,
    checkpoint_sha256,
    expand_path,
    fetch_command,
    is_path_ref,
    producer_command,
)
from bench.paths import methods_dir
from bench.registry import normalise_name

logger = logging.getLogger(__name__)

CARD_SUFFIXES = (".yaml", ".yml")
# Set by build_method from card keys, so a card may not pass them in ``args``.
_RESERVED_ARGS = frozenset({"checkpoint", "state_dict", "fetch", "tile", "tile_overlap"})
AUTO = "auto"  # ``args.sigma: auto``: the value is chosen per condition (see the module docstring)


class CardError(ConfigFileError):
    """A method card that does not parse or validate; the message names the file and every bad key."""

    kind = "method card"

    def __init__(self, source: str, problems: list[str] | str) -> None:
        super().__init__(source, [problems] if isinstance(problems, str) else problems)


def cards_dir() -> Path:
    """The folder of the cards, :func:`bench.paths.methods_dir`: ``$BENCH_PROJECT/methods``, the checkout's, a
    ``./methods`` holding cards, or the copy an installed wheel carries."""
    return methods_dir()


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value


def recipe_train_data(recipe: Mapping[str, Any]) -> str:
    """The ``--data`` of a card's recipe: the manifest dataset its ``data`` words name (DIV2K train), else the
    words, else ``DATA``."""
    data = str(recipe.get("data") or "")
    return "div2k-train" if "div2k" in data.lower() and "train" in data.lower() else (data or "DATA")


@dataclass(frozen=True)
class MissingCheckpoint:
    """A checkpoint a card needs to be built offline and does not have (:meth:`MethodCard.missing_checkpoints`).

    Attributes:
        card: the card that declares it: the card itself, or the base card a wrapper names (an inline ``{adapter,
            args}`` base belongs to the wrapper's own file).
        kind: ``weights`` (an asset of the store), ``checkpoint`` (a file) or ``card`` (a base card that does not
            load; ``ref`` is its name).
        ref: the asset name, or the absolute path of the file.
        fix: the one command (or edit) that makes it ready: ``python -m bench assets fetch NAME``, ``python -m bench
            train RECIPE --data DATA`` (the declaring card's recipe), ``python -m bench train RECIPE`` (a file under
            ``$BENCH_HOME/checkpoints/RECIPE/``), or the edit to make.
        recipe, train_data: the declaring card's recipe name and its ``--data`` when a recipe produces the file.
    """

    card: str
    kind: str
    ref: str
    fix: str
    recipe: str | None = None
    train_data: str | None = None


@dataclass(frozen=True, eq=False)
class MethodCard:
    """One leaderboard entry, as declared by ``methods/<name>.yaml`` (see the module docstring for the keys).

    Attributes:
        name: the card's file stem (the method's name in matrices and tables).
        path: the card file.
        origin: the card's ``provenance`` key (where a trained checkpoint comes from); see :meth:`provenance` for the
            provenance record of results.
    """

    name: str
    path: Path
    title: str
    adapter: str
    args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    checkpoint: str | None = None
    paper: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""
    license: str | None = None
    tile: int | None = DEFAULT_TILE
    tile_overlap: int = DEFAULT_TILE_OVERLAP
    recipe: Any = None
    origin: Any = None
    card_sha256: str = ""

    @property
    def adapter_cls(self) -> type[Method]:
        return ADAPTERS.get(self.adapter)

    @property
    def capabilities(self) -> Capabilities:
        """What the built method's :attr:`~bench.methods.base.Method.capabilities` will say, known without building
        it: the adapter's :meth:`~bench.methods.base.Method.declared_capabilities`, given the base's for a wrapper
        card (recursively through base cards; an inline ``{adapter, args}`` base gives its adapter's). A base card
        that does not load leaves the adapter's own declaration (the wrapper then fails when built, with that error).
        """
        return self._capabilities(frozenset())

    def _capabilities(self, seen: frozenset[str]) -> Capabilities:
        base: Capabilities | None = None
        inline = self.args.get("base")
        name = self.base_card_name()
        if isinstance(inline, Mapping):
            try:
                base = ADAPTERS.get(str(inline.get("adapter"))).declared_capabilities()
            except KeyError:
                base = None
        elif name is not None and name not in seen:
            try:
                base = load_card(name)._capabilities(seen | {self.name})
            except (KeyError, OSError, ValueError):
                base = None
        return self.adapter_cls.declared_capabilities(base)

    @property
    def differentiable(self) -> bool:
        """Gradients flow from the output to the input (see :attr:`capabilities`)."""
        return self.capabilities.differentiable

    @property
    def stochastic(self) -> bool:
        """The output depends on a generator (see :attr:`capabilities`)."""
        return self.capabilities.stochastic

    @property
    def scale(self) -> int:
        """``args.scale``, else the base card's scale (wrapper cards), else the adapter's default ``scale``, else 4."""
        if "scale" in self.args:
            return int(self.args["scale"])
        base = self.base_card_name()
        if base is not None:  # a wrapper (median smoothing) upscales as its base card does
            try:
                return load_card(base).scale
            except (KeyError, OSError, ValueError):
                pass
        param = inspect.signature(self.adapter_cls).parameters.get("scale")
        if param is not None and isinstance(param.default, int):
            return param.default
        return 4

    def checkpoint_ref(self) -> str | None:
        """The checkpoint as :func:`bench.methods.checkpoint.load_weights` takes it: a relative path is made absolute
        against the card's folder; an asset name is returned as it is."""
        return None if self.checkpoint is None else self._resolve(self.checkpoint)

    def _resolve(self, ref: str) -> str:
        if is_path_ref(ref):
            path = expand_path(ref)
            return str(path if path.is_absolute() else (self.path.parent / path).resolve())
        return ref

    def inline_base_checkpoint_ref(self) -> str | None:
        """The checkpoint of an inline ``args.base: {adapter, args: {checkpoint}}`` (CertSR's), resolved as
        :meth:`checkpoint_ref` resolves the card's own (:func:`build_method` passes it so); else ``None``."""
        base = self.args.get("base")
        if not isinstance(base, Mapping):
            return None
        ref = (base.get("args") or {}).get("checkpoint")
        return self._resolve(str(ref)) if isinstance(ref, (str, Path)) and str(ref) else None

    def missing_checkpoints(self) -> list[MissingCheckpoint]:
        """Every checkpoint the method needs and the store does not hold, its own first, then its base's
        (recursively: a base card's own and its base's; an inline base's), each with the command that produces it.
        Empty when the card can be built offline. A base card that does not load is one entry of kind ``card``."""
        return self._missing(frozenset())

    def _missing(self, seen: frozenset[str]) -> list[MissingCheckpoint]:
        out = [self._missing_entry(ref) for ref in (self.checkpoint_ref(), self.inline_base_checkpoint_ref())]
        missing = [m for m in out if m is not None]
        name = self.base_card_name()
        if name is not None and name not in seen:
            try:
                base = load_card(name)
            except (KeyError, OSError, ValueError) as exc:
                text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
                fix = f"write methods/{name}.yaml, or name an existing card in args.base of {self.path}"
                return [*missing, MissingCheckpoint(self.name, "card", name, f"{fix} ({text[:120]})")]
            missing += base._missing(seen | {self.name})
        return missing

    def _missing_entry(self, ref: str | None) -> MissingCheckpoint | None:
        """The entry of one checkpoint this card's file declares, ``None`` when it is stored (or there is none)."""
        if ref is None or checkpoint_available(ref):
            return None
        if not is_path_ref(ref):
            try:
                return MissingCheckpoint(self.name, "weights", ref, fetch_command(ref))
            except KeyError:
                fix = f"correct the checkpoint of {self.path}: no asset {ref!r} (python -m bench assets list)"
                return MissingCheckpoint(self.name, "weights", ref, fix)
        recipe = self.recipe if isinstance(self.recipe, Mapping) and self.recipe.get("name") else None
        if recipe is not None:
            data = recipe_train_data(recipe)
            fix = f"python -m bench train {recipe['name']} --data {data}"
            return MissingCheckpoint(self.name, "checkpoint", ref, fix, str(recipe["name"]), data)
        fix = producer_command(ref) or f"place the checkpoint at {ref}"
        return MissingCheckpoint(self.name, "checkpoint", ref, fix)

    def checkpoint_available(self) -> bool:
        """True when the method can be built offline: :meth:`missing_checkpoints` is empty (its own checkpoint and,
        for a wrapper, its base's are stored, or there are none)."""
        return not self.missing_checkpoints()

    def provenance(self) -> dict[str, Any]:
        """What a result must carry to say which method made it (JSON-able).

        Keys: card, title, adapter, args, checkpoint, checkpoint_sha256 (from the asset metadata or by hashing a local
        file; None when unknown or not stored; ``base_checkpoint_sha256`` and ``base_checkpoint_metadata`` likewise for
        an inline base's checkpoint, CertSR's), card_sha256, tile, tile_overlap, differentiable, stochastic, the
        card's recipe / provenance when given (``recipe``, ``trained``) and, for a checkpoint written by
        ``python -m bench train``, what its metadata says it is (``checkpoint_metadata``: recipe, iteration, data, ...).
        """
        ref = self.checkpoint_ref()
        record: dict[str, Any] = {
            "card": self.name,
            "title": self.title,
            "adapter": self.adapter,
            "args": _thawed(self.args),
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": checkpoint_sha256(ref) if ref is not None else None,
            "card_sha256": self.card_sha256,
            "tile": self.tile,
            "tile_overlap": self.tile_overlap,
            "differentiable": self.differentiable,
            "stochastic": self.stochastic,
        }
        if ref is not None and is_path_ref(ref):
            from bench.train.state import checkpoint_provenance

            produced = checkpoint_provenance(ref)  # recipe, iteration, data, seed, git of a checkpoint we trained
            if produced is not None:
                record["checkpoint_metadata"] = produced
        inline = self.inline_base_checkpoint_ref()
        if inline is not None:  # an inline base's weights change numbers as the card's own do: in the cell key
            record["base_checkpoint_sha256"] = checkpoint_sha256(inline)
            if is_path_ref(inline):
                from bench.train.state import checkpoint_provenance

                produced = checkpoint_provenance(inline)
                if produced is not None:
                    record["base_checkpoint_metadata"] = produced
        if self.recipe is not None:
            record["recipe"] = _thawed(self.recipe)
        if self.origin is not None:
            record["trained"] = _thawed(self.origin)
        base = self.base_card_name()
        if base is not None:
            try:
                record["base"] = load_card(base).provenance()
            except (KeyError, OSError, ValueError) as exc:  # the wrapper fails when built; say why here
                record["base"] = {"card": base, "error": f"{type(exc).__name__}: {exc}"}
        return record

    def base_card_name(self) -> str | None:
        """The card a wrapper card (``args.base`` naming a card, e.g. median smoothing) wraps, else ``None``."""
        base = self.args.get("base")
        if isinstance(base, str) and base != self.name:
            return base
        return None

    @property
    def sigma_auto(self) -> bool:
        """True for a wrapper card with ``args.sigma: auto`` (sigma chosen per condition by the runner)."""
        return isinstance(self.args.get("sigma"), str) and self.args["sigma"].strip().lower() == AUTO


def _args_problems(adapter: type[Method], args: dict[str, Any], has_checkpoint: bool) -> list[str]:
    """The ``args`` keys the adapter's constructor does not take (with the closest), reserved keys, a checkpoint
    the adapter cannot load."""
    params = inspect.signature(adapter).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    known = sorted(k for k in params if k not in _RESERVED_ARGS and k != "self")
    problems = []
    for key in args:
        if key in _RESERVED_ARGS:
            problems.append(f"args.{key} is set by the card's own {key!r} key, not in args")
        elif key not in params and not takes_any:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean 'args.{close[0]}'?)" if close else ""
            problems.append(f"unknown key 'args.{key}' for adapter {adapter.__name__}{hint}; known: {', '.join(known)}")
    if has_checkpoint and "checkpoint" not in params and not takes_any:
        problems.append(f"checkpoint: adapter {adapter.__name__} takes no checkpoint, but the card names one")
    return problems


def parse_card(path: str | Path) -> MethodCard:
    """Parse and validate one card file (its stem is the card's name); one :class:`CardError` lists every problem."""
    path = Path(path)
    try:
        data = read_yaml(path, kind=CardError.kind)
    except ConfigFileError as exc:
        raise CardError(exc.source, exc.problems) from exc
    spec, problems = validate_model(CardFile, data)
    problems = [
        f"{p} (it comes from the adapter, not the card)"
        if p.startswith(("unknown key 'differentiable'", "unknown key 'stochastic'"))
        else p
        for p in problems
    ]
    adapter = data.get("adapter")
    adapter_name = None
    if isinstance(adapter, str):
        try:
            adapter_name = ADAPTERS.canonical(adapter)
        except KeyError as exc:
            problems.append(f"adapter: {exc.args[0] if exc.args else exc}")
    args = data.get("args") if data.get("args") is not None else {}
    if adapter_name is not None and isinstance(args, dict):
        problems += _args_problems(ADAPTERS.get(adapter_name), args, isinstance(data.get("checkpoint"), str))
    if problems or spec is None or adapter_name is None:
        raise CardError(str(path), problems)
    return MethodCard(
        name=path.stem,
        path=path.resolve(),
        title=spec.title,
        adapter=adapter_name,
        args=_frozen(spec.args),
        checkpoint=spec.checkpoint,
        paper=_frozen(spec.paper.model_dump(exclude_none=True) if spec.paper is not None else {}),
        description=(spec.description or "").strip(),
        license=spec.license,
        tile=spec.tile,
        tile_overlap=spec.tile_overlap,
        recipe=_frozen(spec.recipe),
        origin=_frozen(spec.provenance),
        card_sha256=hashlib.sha256(path.read_text(encoding="utf-8").encode("utf-8")).hexdigest(),
    )


def card_paths() -> list[Path]:
    """The card files of :func:`cards_dir`, sorted by name."""
    folder = cards_dir()
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.suffix in CARD_SUFFIXES and p.is_file()), key=lambda p: p.stem)


def list_cards() -> list[MethodCard]:
    """Every card of :func:`cards_dir`, parsed and validated (a broken card raises)."""
    return [parse_card(p) for p in card_paths()]


def load_card(name_or_path: str | Path) -> MethodCard:
    """A card by name (``methods/<name>.yaml``) or by path to a YAML file; ``KeyError`` listing the cards otherwise.

    Raises:
        NameCollision: ``name`` is the name of two card files, their names differing only in case or ``-``/``_``
            (``tiny-rrdb.yaml`` and ``Tiny_RRDB.yaml``), or in the suffix (``.yaml`` and ``.yml``): names ignore
            both, so neither is taken in silence; the message names the files.
    """
    ref = Path(name_or_path)
    if isinstance(name_or_path, Path) or ref.suffix in CARD_SUFFIXES or len(ref.parts) > 1:
        if not ref.is_file():
            raise FileNotFoundError(f"no method card at {ref}")
        return parse_card(ref)
    same = [p for p in card_paths() if normalise_name(p.stem) == normalise_name(str(name_or_path))]
    if len(same) > 1:
        raise NameCollision(
            f"method card {name_or_path!r} is ambiguous: the cards {' and '.join(map(str, same))} have names that "
            "differ only in case, '-'/'_' or suffix (card names ignore them); rename or remove one of them"
        )
    for suffix in CARD_SUFFIXES:
        candidate = cards_dir() / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return parse_card(candidate)
    known = [p.stem for p in card_paths()]
    close = difflib.get_close_matches(str(name_or_path), known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise KeyError(f"unknown method card {name_or_path!r} (no file in {cards_dir()}).{hint} Known: {', '.join(known)}")


def build_method(
    name_or_card: str | Path | MethodCard,
    device: str | torch.device = "cpu",
    *,
    tile: int | None = None,
    fetch: bool = False,
) -> Method:
    """Instantiate the method of a card: adapter(**args, checkpoint=...), eval mode, on ``device``, parameters frozen.

    Parameters get ``requires_grad_(False)``: attacks differentiate w.r.t. the input only. The returned method carries
    its card as ``method.card``.

    Args:
        name_or_card: a card name, a card file path, or a :class:`MethodCard`.
        device: where the method runs ("cpu", "cuda", "cuda:1", a ``torch.device``).
        tile: override the card's LR tile size (``0``: never tile; ``None``: the card's value).
        fetch: download a missing checkpoint asset instead of raising.

    Raises:
        FileNotFoundError: the card's checkpoint is not stored; the message names ``python -m bench assets fetch NAME``.
        KeyError: unknown card or adapter.
    """
    card = name_or_card if isinstance(name_or_card, MethodCard) else load_card(name_or_card)
    cls = card.adapter_cls
    kwargs = _thawed(card.args)
    inline = card.inline_base_checkpoint_ref()
    if inline is not None:  # an inline base's relative checkpoint is the card folder's, as readiness checks it
        kwargs["base"] = {**kwargs["base"], "args": {**kwargs["base"]["args"], "checkpoint": inline}}
    if card.sigma_auto:
        kwargs["sigma"] = None  # smoothing off until a sigma is chosen for the condition
    ref = card.checkpoint_ref()
    if ref is not None:
        kwargs["checkpoint"] = ref
        if fetch and "fetch" in inspect.signature(cls).parameters:
            kwargs["fetch"] = True
    logger.info("building method %s (%s) on %s", card.name, card.adapter, device)
    method = cls(**kwargs)
    method.tile = card.tile if tile is None else (tile or None)
    method.tile_overlap = card.tile_overlap
    method.card = card
    method.sigma_auto = card.sigma_auto
    if card.sigma_auto:
        logger.info("method %s: sigma is 'auto' (chosen per condition); smoothing is off until it is set", card.name)
    method.eval()
    method.requires_grad_(False)
    return method.to(torch.device(device))
