"""Cells: one (method, dataset, condition, attack setting, seed) of a matrix, and the key that names its result.

The key is :func:`bench.seeding.key_hash` of the cell's canonical description: the method card's identity (adapter,
arguments, checkpoint and its hash when known), the dataset (name, crop, arguments), the condition (corruption and
parameters; its reserved ``attack`` and ``epsilon`` fields hold the attack's name and budget), the seed and the
scale; for an attacked cell also the attack setting (:meth:`Threat.identity`: attack,
parameters, budget, EOT samples, restarts, surrogate, variant) and the number of attacked images; for a median
smoothing method the ``smoothing`` section (sigma grid, validation split, certification); for a stochastic method
of a matrix with ``sr_space:`` the number of SR samples per image; the matrix's ``precision`` when it is ``fp32`` or
``bf16`` (``auto``, the default, resolves per device -- the precision actually used is stamped on every row -- and
is left out, so keys made before the field stay; the generators are seeded from the key without it,
:attr:`Cell.seed_key`, so the precision is the only difference between an fp32 and a bf16 cell); the matrix's
``compile`` when it is not ``false`` (likewise left out of :attr:`Cell.seed_key`). Anything that
changes the numbers changes the key; the run's name, the matrix's name, the order of its lists and display names do not.

Not in the key, on purpose:

* the metrics: a cell stores its records per metric with each metric's spec (``metric_specs`` of
  :class:`~bench.results.schema.CellPayload`), so the spec is the per-metric sub-key -- a metric added to the matrix
  (or whose spec changes) is computed for the stored cell alone, the others are kept;
* ``batch_images``: every image's generators are seeded from (cell key or corruption key, image name), stochastic
  methods run one image at a time, and a batched attack draws each image's randomness from that image's generator,
  so batching changes no random draw and no stochastic value (deterministic methods, attacked or not, may batch;
  their values differ by floating-point summation order, see :mod:`bench.runner.stages.attack` for attacks on CUDA);
* ``store_outputs``: storing the SR outputs changes no number;
* ``sr_space`` for deterministic methods: their SR-space columns come from their one output whatever the number of
  samples (the columns' specs still say it, so a new number recomputes those columns only: on the stored output
  with ``store_outputs: true``, else one forward pass).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.runner.matrix import NO_THREAT, Condition, DatasetEntry, Matrix, Threat
from bench.seeding import key_hash

#: Fields of a cell's description that say how it is computed, not what: left out of :attr:`Cell.seed_key`.
COMPUTE_FIELDS = ("precision", "compile")

#: Bump when the runner changes what a cell computes (invalidates every stored cell). 2: metrics left the key.
#: 3: a condition's corruption is drawn per (dataset, corruption, seed, image), the same for every method.
CELL_FORMAT = 3

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cell:
    """One unit of work and of storage; ``key`` names ``cells/<key>.json``."""

    method: str
    dataset: DatasetEntry
    condition: Condition
    seed: int
    key: str
    description: dict[str, Any]
    threat: Threat = NO_THREAT

    @property
    def attack(self) -> str:
        return self.threat.name if self.threat.attacked else self.condition.attack

    @property
    def epsilon(self) -> float:
        return self.threat.epsilon if self.threat.attacked else self.condition.epsilon

    @property
    def seed_key(self) -> str:
        """What the cell's own generators are seeded from (attack, method, SR samples; the corruption draws from
        :attr:`corruption_key`): its key without the requested ``precision`` and ``compile``
        (:data:`COMPUTE_FIELDS`), so a ``bf16`` (or compiled) cell draws the same attack and samples as its ``fp32``
        twin and the two differ by the computation alone (equal to ``key`` for every ``auto``, uncompiled cell)."""
        if not any(k in self.description for k in COMPUTE_FIELDS):
            return self.key
        return cell_key({k: v for k, v in self.description.items() if k not in COMPUTE_FIELDS})

    @property
    def corruption_key(self) -> str:
        """What the corruption's generator is seeded from: the dataset, the corruption and its parameters, the seed
        and the scale -- not the method, the attack or the precision. Every method of a condition therefore
        super-resolves the same corrupted LR (common random numbers: a difference between two methods is never a
        difference between two noise draws), and the gallery's LR crop is the one every method saw."""
        d = self.description
        corruption = {"corruption": self.condition.corruption, "params": dict(sorted(self.condition.params.items()))}
        shared = {"format": d["format"], "dataset": d["dataset"], "corruption": corruption, "seed": self.seed}
        return key_hash({**shared, "scale": d["scale"]}, length=20)

    def label(self) -> str:
        attack = f" | {self.threat.label()}" if self.threat.attacked else ""
        return f"{self.method} | {self.dataset.name} | {self.condition.name}{attack} | seed {self.seed}"


def cell_description(
    method_identity: Mapping[str, Any],
    dataset: DatasetEntry,
    condition: Condition,
    seed: int,
    scale: int,
    threat: Threat = NO_THREAT,
    attack_images: int | None = None,
    smoothing: Mapping[str, Any] | None = None,
    sr_space: Mapping[str, Any] | None = None,
    precision: str = "auto",
    compile: str = "false",
) -> dict[str, Any]:
    """The canonical, JSON-able description a cell's key is the hash of.

    ``precision`` is the matrix's *requested* mode; it enters the description only when it is not ``auto`` (``auto``
    resolves per device and the precision used is stamped on the rows), so every key made before the field stays;
    ``compile`` (``"false"`` | ``"true"`` | ``"auto"``) likewise only when it is not ``"false"``.
    """
    cond = condition.identity()
    if threat.attacked:
        cond.update(attack=threat.attack, epsilon=threat.epsilon)
    out = {
        "format": CELL_FORMAT,
        "method": dict(method_identity),
        "dataset": dataset.identity(),
        "condition": cond,
        "seed": seed,
        "scale": scale,
    }
    if threat.attacked:
        out["threat"] = threat.identity()
        out["attack_images"] = attack_images
    if smoothing is not None:
        out["smoothing"] = dict(smoothing)
    if sr_space is not None:
        out["sr_space"] = dict(sr_space)
    if precision != "auto":
        out["precision"] = precision
    if compile != "false":
        out["compile"] = compile
    return out


def cell_key(description: Mapping[str, Any]) -> str:
    return key_hash(dict(description), length=20)


#: The variant of an attack setting that cannot reach its method: what it would attack gives no gradient and the
#: attack needs one. Planned as such, never attempted: its cells are failure rows saying how to attack it.
REFUSED = "refused"


def attack_route(via: str, attacked_differentiable: bool, needs_gradient: bool) -> str:
    """The variant of a setting that reaches its method ``via`` a route (``direct``: the method itself; ``transfer``:
    the matrix's surrogate; ``transfer-from-base``: the wrapper's base card): ``via`` when what it attacks gives the
    gradients the attack needs, else :data:`REFUSED`. The plan calls it with the cards' capabilities, the attack
    stage again with the built methods' (:meth:`bench.runner.stages.attack.Attacker.build`); the two agree."""
    return via if attacked_differentiable or not needs_gradient else REFUSED


def _card_differentiable(name: str) -> bool:
    from bench.methods.cards import load_card

    try:
        return load_card(name).differentiable
    except (KeyError, OSError, ValueError):  # the matrix check has named it; the attack stage fails it again
        return True


def method_threats(
    matrix: Matrix,
    condition: str,
    provenance: Mapping[str, Any],
    differentiable_card: Callable[[str], bool] = _card_differentiable,
) -> list[Threat]:
    """The attack settings of one method under one condition, each with the route the run then takes.

    ``provenance`` is the method card's (:meth:`bench.methods.cards.MethodCard.provenance`): its ``differentiable``
    is the card's :attr:`~bench.methods.cards.MethodCard.capabilities` -- for a median-smoothing card, its base's,
    since the attack differentiates the smoothed output through the selected base prediction (EOT over the noise;
    seed 001 leaves open whether CertSR is attacked through the smoothing or on its base, the run does the first and,
    with ``transfer_from_base``, the second too). Each setting of :meth:`Matrix.threats` becomes:

    * ``direct`` (through the method itself: white-box, or EOT for a stochastic method) when the method is
      differentiable or the attack needs no gradient (``random_sign``);
    * else ``transfer`` from the entry's ``surrogate`` (``differentiable_card(surrogate)`` must hold);
    * else :data:`REFUSED` (no surrogate, or one that is not differentiable either): never attempted, its cells are
      failure rows with the fix.

    With ``transfer_from_base``, a stochastic method whose card names a base card also gets a
    ``transfer-from-base`` setting (made on the base card; :data:`REFUSED` when the base is not differentiable).
    """
    from bench.attacks import ATTACKS

    out: list[Threat] = []
    differentiable = bool(provenance.get("differentiable", True))
    stochastic = bool(provenance.get("stochastic", False))
    base = (provenance.get("args") or {}).get("base")
    base_differentiable = bool((provenance.get("base") or {}).get("differentiable", True))
    for threat in matrix.threats(condition):
        if not threat.attacked:
            out.append(threat)
            continue
        needs_gradient = ATTACKS.get(threat.attack).gradient_needed(threat.params)
        if differentiable or not needs_gradient:
            planned = replace(threat, surrogate=None, variant="direct")
        elif threat.surrogate is not None:
            route = attack_route("transfer", differentiable_card(threat.surrogate), needs_gradient)
            planned = replace(threat, variant=route)
        else:
            planned = replace(threat, variant=REFUSED)
        out.append(planned)
        entry = matrix.attack_entry(threat.name)
        if entry is not None and entry.transfer_from_base and stochastic and isinstance(base, str):
            route = attack_route("transfer-from-base", base_differentiable, needs_gradient)
            via_base = replace(threat, surrogate=base, variant=route)
            if via_base != planned:  # a refused transfer from the same card is one cell
                out.append(via_base)
    return out


def expand_cells(
    matrix: Matrix,
    method_identities: Mapping[str, Mapping[str, Any]],
    provenances: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Cell]:
    """Every cell of ``matrix`` in method-major order (so one method's cells run together and it is loaded once).

    Two settings that compute the same thing (same key: an attack entry with a ``surrogate`` on a differentiable
    method, which is attacked directly, beside the plain entry) are planned once, under the first in matrix order, so
    that one stored cell never carries two labels; the log says so.

    ``provenances`` (card provenance per method: ``differentiable``, ``stochastic``, ``adapter``, ``args``) decides
    the attack variants, the seeds of stochastic methods and which methods carry the ``smoothing`` section; without
    it every method is taken as deterministic, differentiable and unsmoothed.
    """
    provenances = provenances or {}
    smoothing = matrix.smoothing.identity() if matrix.smoothing is not None else None
    cells = []
    planned: dict[str, Cell] = {}
    for method in matrix.methods:
        prov = provenances.get(method, {})
        smoothed = smoothing if prov.get("adapter") == "median_smoothing" else None
        stochastic = bool(prov.get("stochastic", False))
        sr_space = matrix.sr_space.identity() if matrix.sr_space is not None and stochastic else None
        for dataset in matrix.datasets:
            for condition in matrix.conditions:
                for threat in method_threats(matrix, condition.name, prov):
                    for seed in matrix.seeds_for(stochastic):
                        identity = method_identities[method]
                        desc = cell_description(
                            identity,
                            dataset,
                            condition,
                            seed,
                            matrix.scale,
                            threat,
                            matrix.attack_images,
                            _with_sigma_override(matrix, smoothed, dataset, condition, threat),
                            sr_space,
                            matrix.precision,
                            matrix.compile,
                        )
                        cell = Cell(method, dataset, condition, seed, cell_key(desc), desc, threat)
                        if cell.key in planned:  # e.g. a surrogate entry on a differentiable method: attacked directly
                            logger.info(
                                "%s computes what %s computes (same key %s): planned once, shown under the first",
                                cell.label(),
                                planned[cell.key].label(),
                                cell.key,
                            )
                            continue
                        planned[cell.key] = cell
                        cells.append(cell)
    return cells


def _with_sigma_override(
    matrix: Matrix, smoothed: Mapping[str, Any] | None, dataset: DatasetEntry, condition: Condition, threat: Threat
) -> Mapping[str, Any] | None:
    """A smoothed cell's ``smoothing`` key part, with the matrix's per-column sigma (``smoothing.sigmas``) when one
    applies to the cell (so the published per-column sigma is part of the key; matrices without it keep their keys)."""
    if smoothed is None or matrix.smoothing is None or not matrix.smoothing.sigmas:
        return smoothed
    found, value = matrix.smoothing.sigma_for(dataset.name, condition.name, threat.name if threat.attacked else None)
    return {**smoothed, "sigma_override": value} if found else smoothed


def shard(cells: Sequence[Cell], rank: int, world_size: int) -> list[Cell]:
    """The cells of one rank: index i goes to rank ``i % world_size``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid shard rank {rank} of world size {world_size}")
    return [c for i, c in enumerate(cells) if i % world_size == rank]
