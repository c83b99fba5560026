"""Building blocks of the configuration models: a frozen strict base, names as safe slugs, ``name`` shorthand.

* :class:`Frozen`: a pydantic v2 model that is immutable and refuses unknown keys (``extra="forbid"``). It also takes
  its fields positionally in declaration order (``Condition("noise", "gaussian_noise", {...})``), as the dataclasses
  it replaces did.
* :data:`Slug`: a name that is safe as a file or folder name (``[A-Za-z0-9][A-Za-z0-9._-]*``, not ``..``): matrix and
  run names end up as folders under ``--out``, so ``../x`` must not pass.
* :data:`AsName` and :data:`NameSchema`: ``Annotated`` markers for list entries that may be a bare name
  (``psnr``) or a mapping (``{name: psnr, crop_border: 4}``): the bare name is read as ``{name: ...}`` and the JSON
  Schema says both.
* :func:`fail_at`: a model validator's cross-field problems, all at once, each at the key it concerns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Frozen(BaseModel):
    """Immutable, strict about keys, and constructible positionally (fields in declaration order)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args:
            names = list(type(self).model_fields)
            if len(args) > len(names):
                raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional arguments")
            for name, value in zip(names, args, strict=False):
                if name in kwargs:
                    raise TypeError(f"{type(self).__name__} got two values for {name!r}")
                kwargs[name] = value
        super().__init__(**kwargs)


def check_slug(value: str) -> str:
    """``value`` when it is a safe file/folder name; ``ValueError`` (with a fix) otherwise."""
    if not isinstance(value, str) or not SLUG_RE.match(value) or set(value) <= {"."}:
        raise ValueError(
            f"{value!r} is not a safe name: use letters, digits, '.', '_' or '-' (starting with a letter or digit), "
            "no '/' or '..'"
        )
    return value


Slug = Annotated[str, AfterValidator(check_slug)]


def _name_to_mapping(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class _NameOrMappingSchema:
    """JSON Schema of a model that may also be written as a bare name: ``anyOf: [string, <model>]``."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        bare = {"type": "string", "description": "a name (all other keys at their defaults)"}
        return {"anyOf": [bare, handler(core_schema)]}


AsName = BeforeValidator(_name_to_mapping)
"""``Annotated[Model, AsName, NameSchema]``: a bare ``"name"`` is read as ``{name: "name"}``."""
NameSchema = _NameOrMappingSchema()
"""The JSON Schema side of :data:`AsName`: ``anyOf: [string, <model>]``."""

Int = Annotated[int, Field(strict=True)]
PositiveInt = Annotated[int, Field(strict=True, gt=0)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
PositiveFloat = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
Bool = Annotated[bool, Field(strict=True)]


def fail_at(model: str, problems: Sequence[tuple[str, str]]) -> NoReturn:
    """Raise every cross-field problem of a model validator at once, each at the key it concerns.

    A ``model_validator(mode="after")`` that raises ``ValueError`` reports one problem at the model's own location
    (``the top level`` for a file's root model). This raises a ``ValidationError`` instead, which pydantic merges into
    the enclosing validation with each location prefixed, so :func:`bench.config.loader.validate_model` reports
    ``pairing.lr: ...`` and ``manual: ...`` as separate, located lines.

    Args:
        model: the model's name (the title of the error).
        problems: ``(dotted key relative to the model, message)`` pairs; a numeric step is a list index.

    Example::

        @model_validator(mode="after")
        def _consistent(self):
            problems = [("scale", "is not one of scales")] if self.scale not in self.scales else []
            if problems:
                fail_at(type(self).__name__, problems)
            return self
    """
    errors = [
        InitErrorDetails(
            type=PydanticCustomError("value_error", "{message}", {"message": message}),
            loc=tuple(int(p) if p.isdigit() else p for p in key.split(".")) if key else (),
            input=None,
        )
        for key, message in problems
    ]
    raise ValidationError.from_exception_data(model, errors)
