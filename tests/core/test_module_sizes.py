"""No module of the package grows past ~500 lines without saying why in its docstring (issue 9's layout rule)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bench

LIMIT = 500
PACKAGE = Path(bench.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_long_module_states_why_in_its_docstring(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n")
    if lines <= LIMIT:
        return
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert "Length (over ~500 lines):" in doc, (
        f"{path.relative_to(PACKAGE.parent)} has {lines} lines: split it, or add a paragraph "
        "'Length (over ~500 lines): <reason>' to its module docstring"
    )


def test_the_rule_sees_the_package() -> None:
    assert len(MODULES) > 100 and any(p.name == "registry.py" for p in MODULES)
