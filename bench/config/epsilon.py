"""Attack budgets as people write them: ``10/255`` or ``0.039`` (parsing, and formatting for tables and labels)."""

from __future__ import annotations

import math
from typing import Any


def format_epsilon(eps: float) -> str:
    """``0.0392..`` -> ``"10/255"`` when it is a whole number of 8-bit levels, else ``"0.05"`` (``%g``)."""
    levels = eps * 255
    if eps > 0 and abs(levels - round(levels)) < 1e-6:
        return f"{round(levels)}/255"
    return f"{eps:g}"


def parse_epsilon(value: Any) -> float:
    """A number, or a string ``"a/b"`` (``"10/255"``) -> float.

    Raises:
        ValueError: not a number or fraction, negative, NaN or infinite.
    """
    if isinstance(value, bool):
        raise ValueError(f"not an epsilon: {value!r}")
    if isinstance(value, str):
        num, sep, den = value.partition("/")
        try:
            eps = float(num) / float(den) if sep else float(num)
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"not an epsilon: {value!r} (write 10/255 or 0.039)") from exc
    elif isinstance(value, (int, float)):
        eps = float(value)
    else:
        raise ValueError(f"not an epsilon: {value!r}")
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"epsilon must be a finite number >= 0, got {value!r}")
    return eps
