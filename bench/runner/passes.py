"""The one counting rule of model passes: forward and backward passes of SR networks per image of a planned cell.

``python -m bench run --matrix X --dry-run`` (:func:`bench.runner.cost.plan_matrix`) and ``python -m bench reproduce
TABLE --dry-run`` count with it (:func:`count_cells`); :mod:`bench.runner.cost` only times a pass.

**Counts** (:func:`cell_passes`, the one rule; no model runs): forward and backward passes of SR networks per image
of a planned cell, in *base-model passes* -- a median-smoothing copy, an EOT draw, an SR sample, an attack step each
count one pass of the network that does the work:

* inference: 1 pass; median smoothing with a sigma: its ``n`` copies; with the matrix's ``smoothing.certify`` (on
  data with ground truth): the certificate's samples (``n_samples``, or :func:`bench.certify.bounds.certify`'s
  automatic count from the largest budget, sigma and alpha), plus the copies it lacks and the clean copy of
  ``include_clean``;
* SR-space samples (``sr_space:``, stochastic methods): ``samples - 1`` further inferences;
* an attack (the attack's own :meth:`~bench.attacks.base.Attack.objective_calls` per run): per EOT draw (a stochastic
  attacked model: ``eot_samples``, default 8) and per smoothing copy, one forward for the clean loss, one per draw of
  a ``target: clean`` reference, and per restart ``g`` forward+backward and ``v`` forwards; attacked cells keep
  ``attack_images`` images; an attack refused at run time (:func:`refused`) or a cell skipped (no ground truth)
  counts nothing;
* transfer (``surrogate``, ``transfer-from-base``): the attack's passes are the surrogate's
  (:attr:`Passes.surrogate_forwards`), plus the evaluation on the target: two forwards (clean and adversarial loss)
  and the ``target: clean`` reference per draw;
* sigma selection (``sigma: auto``), once per (method, condition, attack setting) -- not per cell -- on the first
  cell that needs it: for every sigma of the grid and every validation image, the inference at that sigma and, for an
  attacked cell, the attack (nothing when the setting is ``refused``: the selection fails before any pass). A cell
  whose sigma is ``auto`` is counted at the grid's largest count (:func:`counted_sigma`, an upper bound).

Counts are per image whatever ``batch_images``: a call on a batch of b images counts b passes (a model evaluation per
image), so batching (:mod:`bench.runner.batches`) changes the time of a pass, which :mod:`bench.runner.cost` probes
at each batch size, never a count.

Every forward of an SR network the runner makes is one of these (``tests/runner/test_passes.py`` counts the calls of
the networks in real runs and compares); the metrics' own networks (LPIPS, the attack loss's VGG) are not SR passes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

AUTO = "auto"


@dataclass(frozen=True)
class Passes:
    """Passes of SR networks: of the cell's own method (a smoothing copy or an EOT draw counts one) and of a transfer
    surrogate."""

    forwards: int = 0
    backwards: int = 0
    surrogate_forwards: int = 0
    surrogate_backwards: int = 0

    def __add__(self, other: Passes) -> Passes:
        return Passes(
            self.forwards + other.forwards,
            self.backwards + other.backwards,
            self.surrogate_forwards + other.surrogate_forwards,
            self.surrogate_backwards + other.surrogate_backwards,
        )

    def times(self, k: int) -> Passes:
        return Passes(self.forwards * k, self.backwards * k, self.surrogate_forwards * k, self.surrogate_backwards * k)

    @property
    def all_forwards(self) -> int:
        return self.forwards + self.surrogate_forwards

    @property
    def all_backwards(self) -> int:
        return self.backwards + self.surrogate_backwards


@dataclass(frozen=True)
class ModelSpec:
    """What counting needs of a method card: whether it is stochastic, differentiable, median smoothing (``n``
    copies, ``sigma`` -- a number, ``None`` for off or ``"auto"`` --, ``include_clean``)."""

    name: str
    stochastic: bool = False
    differentiable: bool = True
    smoothed: bool = False
    n: int = 1
    sigma: float | str | None = None
    include_clean: bool = False

    @classmethod
    def from_provenance(cls, name: str, provenance: Mapping[str, Any]) -> ModelSpec:
        """From a card's provenance (:meth:`bench.methods.cards.MethodCard.provenance`, or a partial one)."""
        from bench.methods import ADAPTERS

        adapter = str(provenance.get("adapter") or "")
        try:
            adapter_cls = ADAPTERS.get(adapter) if adapter else None
            adapter = ADAPTERS.canonical(adapter) if adapter else adapter
        except KeyError:
            adapter_cls = None
        stochastic = provenance.get("stochastic")
        differentiable = provenance.get("differentiable")
        if stochastic is None:  # a partial provenance: the adapter's class says
            stochastic = bool(getattr(adapter_cls, "stochastic", False))
        if differentiable is None:
            differentiable = bool(getattr(adapter_cls, "differentiable", True))
        spec = cls(name, bool(stochastic), bool(differentiable))
        if adapter != "median_smoothing":
            return spec
        from bench.methods.smoothing import DEFAULT_N

        args = provenance.get("args") or {}
        sigma = args.get("sigma", 0.05)
        if isinstance(sigma, str):
            sigma = AUTO if sigma.strip().lower() == AUTO else float(sigma)
        elif sigma is not None:
            sigma = float(sigma) if sigma > 0 else None
        n = int(args.get("n", DEFAULT_N))
        # a card's ``differentiable`` already follows its base (MethodCard.capabilities)
        return cls(name, True, spec.differentiable, True, n, sigma, bool(args.get("include_clean", False)))

    @classmethod
    def from_card(cls, name: str) -> ModelSpec:
        """From the card ``name`` (a surrogate); a card that does not load counts as a plain method (its cells fail
        when the surrogate is built)."""
        from bench.methods.cards import load_card

        try:
            card = load_card(name)
        except (KeyError, OSError, ValueError) as exc:
            logger.warning("surrogate %s: no card (%s); counted as one plain pass per call", name, exc)
            return cls(name)
        prov = {"adapter": card.adapter, "args": dict(card.args), "stochastic": card.stochastic}
        prov["differentiable"] = card.differentiable
        spec = cls.from_provenance(name, prov)
        # built from its card: sigma auto means smoothing off until a runner sets it, which no surrogate gets
        return spec if spec.sigma != AUTO else cls(**{**vars(spec), "sigma": None})

    def copies(self, sigma: float | str | None) -> int:
        """Base passes of one call at ``sigma``: ``n`` when smoothing is on, else 1."""
        return self.n if self.smoothed and sigma is not None else 1


def cell_sigma(cell: Any, matrix: Any, model: ModelSpec) -> float | str | None:
    """The sigma a smoothed cell runs at: the matrix's ``smoothing.sigmas`` for its column, else the card's
    (``"auto"``: chosen by the runner); ``None`` for a method that is not median smoothing."""
    if not model.smoothed:
        return None
    if matrix.smoothing is not None:
        found, value = matrix.smoothing.sigma_for(
            cell.dataset.name, cell.condition.name, cell.threat.name if cell.threat.attacked else None
        )
        if found:
            return AUTO if isinstance(value, str) else value
    return model.sigma


def certify_passes(model: ModelSpec, sigma: float, settings: Any) -> int:
    """Base passes of :func:`bench.certify.bounds.certify` on one image (the certified inference)."""
    from bench.certify.bounds import MAX_SAMPLES, required_samples

    n_samples = settings.n_samples
    if n_samples is None:
        need = required_samples(max(settings.epsilons), sigma, settings.alpha)
        n_samples = int(min(max(model.n, need), MAX_SAMPLES))
    n_pred = model.n - 1 if model.include_clean else model.n
    return n_samples + max(0, n_pred - n_samples) + (1 if model.include_clean else 0)


def inference_passes(model: ModelSpec, sigma: float | None, matrix: Any, ground_truth: bool = True) -> int:
    """Base passes of the infer stage on one image (certified when the matrix asks and the image has an HR)."""
    sm = matrix.smoothing
    if model.smoothed and sigma is not None and ground_truth and sm is not None and sm.certify is not None:
        return certify_passes(model, sigma, sm.certify)
    return model.copies(sigma)


def build_cell_attack(cell: Any, model: ModelSpec) -> Any:
    """The attack object of an attacked cell as the runner builds it (loss and surrogate left out: they change no
    count)."""
    from bench.attacks import build_attack

    return build_attack(cell.threat.attack, **cell.threat.attack_kwargs(model.stochastic))


def refused(attack: Any, attacked: ModelSpec) -> bool:
    """Whether ``attack`` refuses the model it attacks before any pass (as :meth:`bench.attacks.base.Attack.__call__`
    does): gradients through a non-differentiable model, or a gradient attack from the clean input against the
    clean output of a deterministic model (no gradient there)."""
    if not attack.needs_gradient:
        return False
    no_gradient = attack.target == "clean" and not attack.random_start and not attacked.stochastic
    return not attacked.differentiable or no_gradient


def attack_passes(attack: Any, model: ModelSpec, sigma: float | None, surrogate: ModelSpec | None = None) -> Passes:
    """Passes of ``attack`` on one image of ``model`` at ``sigma`` (through ``surrogate`` when given)."""
    from bench.attacks.base import DEFAULT_EOT_SAMPLES

    def draws(m: ModelSpec) -> int:
        return (attack.eot_samples if attack.eot_samples is not None else DEFAULT_EOT_SAMPLES) if m.stochastic else 1

    attacked = surrogate if surrogate is not None else model
    copies = model.copies(sigma) if surrogate is None else surrogate.copies(surrogate.sigma)
    grads, values = attack.objective_calls()
    reference = 1 if attack.target == "clean" else 0
    k = draws(attacked)
    forwards = copies * k * (reference + 1 + attack.restarts * (grads + values))
    backwards = copies * k * attack.restarts * grads
    if surrogate is None:
        return Passes(forwards, backwards)
    evaluation = model.copies(sigma) * draws(model) * (reference + 2)  # clean and adversarial loss on the target
    return Passes(evaluation, 0, forwards, backwards)


def passes_at(
    cell: Any, matrix: Any, model: ModelSpec, sigma: float | None, surrogate: ModelSpec | None, ground_truth: bool
) -> Passes:
    """Passes per image of ``cell`` with its method at ``sigma`` (:func:`cell_passes` once sigma is known)."""
    from bench.runner.cells import REFUSED

    out = Passes()
    if cell.threat.attacked:
        if cell.threat.variant == REFUSED:
            return out  # planned refused: the images fail before any pass
        if not ground_truth:
            return out  # skipped: the attack's loss needs the HR
        attack = build_cell_attack(cell, model)
        if refused(attack, surrogate if surrogate is not None else model):
            return out  # the images fail before any pass
        out = out + attack_passes(attack, model, sigma, surrogate)
    out = out + Passes(inference_passes(model, sigma, matrix, ground_truth))
    if matrix.sr_space is not None and model.stochastic:
        out = out + Passes((matrix.sr_space.samples - 1) * model.copies(sigma))
    return out


def _grid(matrix: Any) -> list[float | None]:
    return list(matrix.smoothing.sigma_grid) if matrix.smoothing is not None else [None]


def counted_sigma(
    cell: Any, matrix: Any, model: ModelSpec, surrogate: ModelSpec | None = None, ground_truth: bool = True
) -> float | None:
    """The sigma a cell's passes are counted at: :func:`cell_sigma`, or for ``auto`` the grid value with the largest
    count (the first among equals; an upper bound of what the selection picks). ``None`` for smoothing off or a
    method that is not median smoothing."""
    sigma = cell_sigma(cell, matrix, model)
    if sigma != AUTO:
        return sigma

    def weight(s: float | None) -> tuple[int, int]:
        p = passes_at(cell, matrix, model, s, surrogate, ground_truth)
        return p.all_forwards + p.all_backwards, p.all_backwards

    return max(_grid(matrix), key=weight)


def cell_passes(
    cell: Any, matrix: Any, model: ModelSpec, surrogate: ModelSpec | None = None, ground_truth: bool = True
) -> Passes:
    """Passes per image of ``cell`` (see the module docstring): the one counting rule of ``bench run --dry-run`` and
    ``bench reproduce --dry-run``.

    Args:
        cell: a planned :class:`~bench.runner.cells.Cell`.
        matrix: its :class:`~bench.runner.matrix.Matrix`.
        model: the cell's method (:meth:`ModelSpec.from_provenance`).
        surrogate: the cell's transfer surrogate (:meth:`ModelSpec.from_card`), ``None`` when it attacks directly.
        ground_truth: whether the dataset has HR images (without, attacked cells are skipped, nothing certified).
    """
    sigma = counted_sigma(cell, matrix, model, surrogate, ground_truth)
    return passes_at(cell, matrix, model, sigma, surrogate, ground_truth)


def selection_key(cell: Any) -> tuple[str, str, str | None]:
    """What a sigma selection is shared by (as the runner's cache): method, condition, attack setting."""
    from bench.seeding import canonical_json

    threat = canonical_json(cell.threat.identity()) if cell.threat.attacked else None
    return cell.method, canonical_json(cell.condition.identity()), threat


def validation_images(matrix: Any) -> int:
    """The number of validation images a sigma selection reads (``smoothing.validation.images``)."""
    val = matrix.smoothing.validation
    return val.images if isinstance(val.images, int) else len(val.images)


def selection_steps(
    cell: Any, matrix: Any, model: ModelSpec, surrogate: ModelSpec | None = None
) -> list[tuple[float | None, Passes]]:
    """Per grid value, the passes of the sigma selection ``cell`` needs on one validation image (``sigma: auto``;
    an empty list otherwise): the inference at that sigma (never certified) and, for an attacked cell, the attack.
    A ``refused`` setting, or an attack that refuses the model (:func:`refused`), fails the selection before any
    pass: nothing."""
    from bench.runner.cells import REFUSED

    if cell_sigma(cell, matrix, model) != AUTO or matrix.smoothing is None:
        return []
    attack = None
    if cell.threat.attacked:
        if cell.threat.variant == REFUSED:
            return []
        attack = build_cell_attack(cell, model)
        if refused(attack, surrogate if surrogate is not None else model):
            return []
    out = []
    for sigma in _grid(matrix):
        one = Passes(model.copies(sigma))  # select_sigma's super_resolve
        if attack is not None:
            one = one + attack_passes(attack, model, sigma, surrogate)
        out.append((sigma, one))
    return out


def selection_passes(
    cell: Any, matrix: Any, model: ModelSpec, surrogate: ModelSpec | None = None
) -> tuple[Passes, int]:
    """``(passes, images)`` of the sigma selection ``cell`` needs (:func:`selection_steps` over all its validation
    images; ``images``: validation images x grid values; nothing when it needs none)."""
    steps = selection_steps(cell, matrix, model, surrogate)
    return _selection_total(steps, validation_images(matrix)) if steps else (Passes(), 0)


def _selection_total(steps: list[tuple[float | None, Passes]], n: int) -> tuple[Passes, int]:
    return sum((one for _, one in steps), Passes()).times(n), n * len(steps)


@dataclass
class CellCount:
    """The counted work of one cell: passes per image (at :attr:`sigma`), its images, and the sigma selection it runs
    first (its total, and :attr:`selection_steps` -- per grid value, the passes on one validation image)."""

    cell: Any
    images: int | None  # the images the cell computes (attacked: at most ``attack_images``); None: unknown
    per_image: Passes
    selection: Passes = field(default_factory=Passes)
    selection_images: int = 0  # validation images x grid values of the selection
    sigma: float | None = None  # the smoothing sigma ``per_image`` is counted at (None: off, or not smoothing)
    selection_steps: list[tuple[float | None, Passes]] = field(default_factory=list)

    @property
    def total(self) -> Passes:
        return self.per_image.times(self.images or 0) + self.selection


def count_cells(
    cells: Sequence[Any],
    matrix: Any,
    provenances: Mapping[str, Mapping[str, Any]],
    images: Callable[[Any], int | None],
    ground_truth: Callable[[Any], bool] = lambda cell: True,
) -> list[CellCount]:
    """:func:`cell_passes` of every cell, with its number of images and its sigma selection (counted on the first
    cell of each :func:`selection_key`).

    Args:
        cells, matrix, provenances: the plan (:func:`bench.runner.stages.plan.plan`).
        images: ``cell -> number of images of its dataset`` (``None``: unknown; counted as 0).
        ground_truth: ``cell -> whether its dataset has HR images``.
    """
    models = {name: ModelSpec.from_provenance(name, prov) for name, prov in provenances.items()}
    surrogates: dict[str, ModelSpec] = {}
    selected: set[tuple[str, str, str | None]] = set()
    out = []
    for cell in cells:
        model = models.get(cell.method) or ModelSpec(cell.method)
        surrogate = None
        if cell.threat.attacked and cell.threat.surrogate is not None:
            name = cell.threat.surrogate
            surrogate = surrogates.setdefault(name, ModelSpec.from_card(name))
        gt = ground_truth(cell)
        n = images(cell)
        if n is not None and cell.threat.attacked:
            n = 0 if not gt else (min(n, matrix.attack_images) if matrix.attack_images is not None else n)
        sigma = counted_sigma(cell, matrix, model, surrogate, gt)
        count = CellCount(cell, n, passes_at(cell, matrix, model, sigma, surrogate, gt), sigma=sigma)
        key = selection_key(cell)
        if key not in selected and not (cell.threat.attacked and not gt):
            steps = selection_steps(cell, matrix, model, surrogate)
            if steps:
                count.selection, count.selection_images = _selection_total(steps, validation_images(matrix))
                count.selection_steps = steps
                selected.add(key)
        out.append(count)
    return out
