"""What a matrix file may say: the declared pydantic models (structure, types, bounds) behind its JSON Schema.

These models check what can be checked without the registries: known keys (``extra="forbid"``), types, positive
counts, safe names, budgets, exclusive keys. :mod:`bench.runner.matrix_checks` then checks the names against the
registries and builds the resolved :class:`bench.runner.matrix.Matrix` the runner uses. The keys are documented in
:mod:`bench.runner.matrix`; the descriptions below end up in the JSON Schema (``python -m bench schema``), i.e. in the
editor's hover text.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bench.config.epsilon import parse_epsilon
from bench.config.models import (
    AsName,
    Bool,
    Frozen,
    Int,
    NameSchema,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Slug,
)

NO_ATTACK = "none"
DEFAULT_ATTACK_LOSS: dict[str, Any] = {"name": "l1_perceptual"}
# Set by the runner from an attack entry's own keys, so they may not appear in ``params`` (EOT takes its restarts).
RESERVED_ATTACK_PARAMS = ("loss", "surrogate", "eot_samples", "restarts")


def _epsilon(value: Any) -> float:
    return parse_epsilon(value)


Epsilon = Annotated[float, Field(description="a budget: a number or a fraction like 10/255")]


def _unique(values: list[Any] | None, what: str) -> list[Any] | None:
    if values is not None:
        dups = sorted({str(v) for v in values if values.count(v) > 1})
        if dups:
            raise ValueError(f"repeated {what}: {', '.join(dups)}")
    return values


class DatasetSpec(BaseModel):
    """A dataset: a registered name, an optional HR centre crop; other keys go to the dataset factory (``path``)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str = Field(description="a registered dataset (embedded-eval, embedded-train, folder, ...)")
    crop: PositiveInt | None = Field(None, description="HR centre crop side in pixels (null: whole images)")


class ConditionSpec(Frozen):
    """A corruption applied to the LR input, with its parameters or a list of severity levels."""

    name: str = Field(min_length=1, description="the condition's label in tables")
    corruption: str = Field("clean", description="a registered corruption")
    params: dict[str, Any] = Field(default_factory=dict, description="the corruption's constructor arguments")
    severity: Any = Field(None, description="the value on severity curves (default: the single parameter's value)")
    severities: list[PositiveInt] | None = Field(
        None, min_length=1, description="levels of the severity table; one condition <name>-s<level> per level"
    )
    attack: Literal["none"] = Field("none", description="reserved: attacks are declared in 'attacks:'")
    epsilon: Literal[0] = Field(0, description="reserved: attacks are declared in 'attacks:'")

    @field_validator("attack", "epsilon", mode="before")
    @classmethod
    def _reserved(cls, value: Any) -> Any:
        if value not in (NO_ATTACK, 0, 0.0):
            raise ValueError(
                "a condition is a corruption; declare attacks in the matrix's 'attacks:' list "
                "(attack must be 'none' and epsilon 0 here)"
            )
        return value

    @model_validator(mode="after")
    def _severities_alone(self) -> ConditionSpec:
        if self.severities is not None and (self.params or self.severity is not None):
            raise ValueError("give either severities or params/severity, not both")
        if self.severities is not None:
            _unique(self.severities, "severities")
        return self


class MetricSpec(Frozen):
    """A metric and its border crop (default: the metric class's ``default_crop``: the scale for PSNR/SSIM, else 0)."""

    name: str = Field(description="a registered metric")
    crop_border: NonNegativeInt | None = Field(None, description="pixels cut from each side before scoring")


class LossSpec(BaseModel):
    """An attack loss: a registered name and its constructor arguments."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str = Field(description="a registered attack loss (l1_perceptual, l1, ...)")


class AttackSpec(Frozen):
    """One entry of ``attacks:``; ``name: none`` (or ``attack: none``) is the unattacked cells."""

    name: str = Field(min_length=1, description="the entry's label (and the attack when 'attack' is absent)")
    attack: str | None = Field(None, description="a registered attack (default: the name)")
    params: dict[str, Any] = Field(default_factory=dict, description="the attack's constructor arguments")
    epsilons: list[Annotated[float, Field(strict=False)] | str] | None = Field(
        None, min_length=1, description="budgets (numbers or fractions like 10/255), one setting each"
    )
    conditions: list[str] | None = Field(None, description="the conditions attacked (default: all)")
    eot_samples: PositiveInt | None = Field(None, description="EOT samples for stochastic methods")
    restarts: PositiveInt = Field(1, description="restarts for stochastic methods (the worst is kept)")
    surrogate: str | None = Field(None, description="a method card attacked instead of non-differentiable methods")
    transfer_from_base: Bool = Field(False, description="also attack wrapper methods through their base card")
    loss: Annotated[LossSpec, AsName, NameSchema] = Field(
        default_factory=lambda: LossSpec(**DEFAULT_ATTACK_LOSS), description="the loss the attack maximises"
    )

    @property
    def kind(self) -> str:
        return self.attack if self.attack is not None else self.name

    @field_validator("epsilons")
    @classmethod
    def _budgets(cls, value: list[Any] | None) -> list[Any] | None:
        if value is None:
            return None
        return _unique([_epsilon(v) for v in value], "epsilons")

    @model_validator(mode="after")
    def _consistent(self) -> AttackSpec:
        if self.kind == NO_ATTACK:
            extra = sorted(self.model_fields_set - {"name", "attack", "conditions"})
            if extra:
                raise ValueError(f"'none' (no attack) takes no {', '.join(extra)}")
            return self
        if self.epsilons is not None and "eps" in self.params:
            raise ValueError("give the budget either as epsilons or as params.eps, not both")
        for reserved in RESERVED_ATTACK_PARAMS:
            if reserved in self.params and not (self.kind == "eot" and reserved == "restarts"):
                raise ValueError(f"params.{reserved} is set by the runner (use the entry's own key {reserved!r})")
        return self


class ValidationSpec(BaseModel):
    """The sigma-selection split; keys other than these go to the dataset factory (``path``)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    dataset: str = Field("embedded-train", description="a registered dataset, disjoint from the evaluated ones")
    crop: PositiveInt | None = Field(128, description="HR centre crop side (null: whole images)")
    images: PositiveInt | list[str] = Field(3, description="a count (the first N) or a list of image names")


class CertifySpecFile(Frozen):
    """Certified columns of median smoothing."""

    epsilons: list[Annotated[float, Field(strict=False)] | str] = Field(
        min_length=1, description="L2 budgets in LR [0, 1] units"
    )
    n_samples: PositiveInt | None = Field(None, description="noise samples per image (null: the method's n)")
    alpha: float = Field(0.001, gt=0, lt=0.5, description="miscoverage of each bound")

    @field_validator("epsilons")
    @classmethod
    def _budgets(cls, value: list[Any]) -> list[float]:
        return [_epsilon(v) for v in value]


class SmoothingSpec(Frozen):
    """CertSR median smoothing: sigma selection for ``sigma: auto`` cards and the certified columns."""

    sigma_grid: list[PositiveFloat | None] = Field(min_length=1, description="candidate sigmas (null: no smoothing)")
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    metric: str = Field("lpips_alex", description="the metric sigma is chosen by")
    certify: CertifySpecFile | None = None
    seed: Int = 0
    sigmas: dict[str, PositiveFloat | Literal["auto"] | None] | None = Field(
        None,
        description=(
            "per-column sigma override of every smoothed method: an attack entry, condition or dataset name -> "
            "sigma (null: no smoothing, auto: chosen on the validation split); the attack wins over the condition, "
            "the condition over the dataset (CertSR's published per-column sigmas)"
        ),
    )


#: ``sr_space.columns`` names -> the keys of :func:`bench.metrics.diversity.diversity_score` they record (each key is
#: stored under its spec's name: ``score`` as ``diversity_score``, ``lpips_mean`` as ``diversity_lpips_mean`` ...).
SR_SPACE_COLUMNS: dict[str, tuple[str, ...]] = {
    "diversity": ("score",),
    "lpips": ("lpips_mean",),
    "lr_psnr": ("lr_psnr_mean", "lr_psnr_worst"),
    "diversity_score": ("score",),
    "diversity_lpips_mean": ("lpips_mean",),
    "lr_psnr_mean": ("lr_psnr_mean",),
    "lr_psnr_worst": ("lr_psnr_worst",),
    "diversity_global_best": ("global_best",),
    "diversity_local_best": ("local_best",),
}
#: The NTIRE 2021 SR-space columns (LPIPS mean, LR-PSNR mean and worst, diversity score) and samples per image.
DEFAULT_SR_SPACE_COLUMNS = ("lpips", "lr_psnr", "diversity")
DEFAULT_SR_SPACE_SAMPLES = 10


class SrSpaceSpec(Frozen):
    """The NTIRE 2021 SR-space protocol: stochastic methods sampled ``samples`` times per image, scored by
    :func:`bench.metrics.diversity.diversity_score` (deterministic methods: one forward pass, diversity 0)."""

    samples: PositiveInt = Field(
        DEFAULT_SR_SPACE_SAMPLES, ge=2, description="SR samples per image of a stochastic method (the challenge: 10)"
    )
    columns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SR_SPACE_COLUMNS),
        min_length=1,
        description="columns: diversity, lpips (mean over samples), lr_psnr (mean and worst, ntire21), or one of "
        "diversity_score, diversity_lpips_mean, lr_psnr_mean, lr_psnr_worst, diversity_global_best, "
        "diversity_local_best",
    )

    @field_validator("columns")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in SR_SPACE_COLUMNS]
        if unknown:
            raise ValueError(f"unknown SR-space column(s) {unknown}; known: {', '.join(SR_SPACE_COLUMNS)}")
        return _unique(value, "columns")


class GallerySpec(Frozen):
    """The image shown as crops in the report."""

    image: str = Field(description="an image name of the evaluated dataset")
    size: PositiveInt = Field(48, description="LR crop side in pixels")
    dataset: str | None = Field(None, description="the dataset it comes from (default: any)")


class MatrixFile(Frozen):
    """An evaluation matrix: methods x datasets x conditions (x attacks) x seeds, scored by metrics."""

    model_config = ConfigDict(title="Evaluation matrix")

    version: Literal[1] = Field(1, description="the matrix format version")
    name: Slug = Field(description="the run's default folder name under --out (a safe slug)")
    description: str = ""
    scale: PositiveInt = Field(4, description="the upscaling factor; every method card must match it")
    datasets: list[Annotated[DatasetSpec, AsName, NameSchema]] = Field(min_length=1)
    methods: list[str] = Field(min_length=1, description="method card names (methods/*.yaml)")
    conditions: list[ConditionSpec] = Field(min_length=1)
    metrics: list[Annotated[MetricSpec, AsName, NameSchema]] = Field(min_length=1)
    seeds: list[Int] = Field([0], min_length=1)
    gallery: GallerySpec | None = None
    batch_images: PositiveInt = Field(
        1,
        description="images of one size per forward pass of a deterministic method, attacked cells included (each "
        "image's attack draws from its own generator); stochastic methods run one image per pass; not in the cell key",
    )
    attacks: list[Annotated[AttackSpec, AsName, NameSchema]] | None = Field(None, min_length=1)
    attack_images: PositiveInt | None = Field(None, description="attacked cells use the first N images")
    stochastic_seeds: list[Int] | None = Field(None, min_length=1, description="seeds of stochastic methods")
    smoothing: SmoothingSpec | None = None
    store_outputs: Bool = Field(False, description="keep the SR outputs so re-scoring runs no model")
    sr_space: SrSpaceSpec | None = Field(None, description="NTIRE 2021 SR-space columns over n samples per image")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="compute precision of the methods (bench.methods.precision): auto = bf16+channels_last behind the "
        "accuracy guard on CUDA, fp32 elsewhere (resolved per device, stamped on every row); fp32; bf16 on any device",
    )
    compile: Bool | Literal["auto"] = Field(
        False,
        description="run the fast path of `precision` through torch.compile: false (default), true (wherever the fast "
        "path runs), auto (on CUDA only); stamped as +compile in the precision label; a compile error falls back to "
        "the eager fast path, recorded in precision_fallback",
    )

    @model_validator(mode="after")
    def _compile_needs_the_fast_path(self) -> MatrixFile:
        if self.compile is not False and self.precision == "fp32":
            raise ValueError(
                f"compile: {str(self.compile).lower()} compiles the bf16 fast path, which precision: fp32 never "
                "runs; set precision: auto or bf16, or compile: false"
            )
        return self

    # Repeated dataset/condition/attack names are reported by bench.runner.matrix_checks (on every entry, even when
    # another entry is malformed).
    @field_validator("methods", "seeds", "stochastic_seeds")
    @classmethod
    def _no_repeats(cls, value: list[Any] | None) -> list[Any] | None:
        return _unique(value, "entries")
