"""The generic registry: decorator registration, aliases, suggestions, base-class check, broken modules."""

from __future__ import annotations

import sys
import types

import pytest

from bench.registry import Registry


class Base:
    pass


def test_register_get_alias_and_normalisation() -> None:
    reg: Registry = Registry("widget", base=Base)

    @reg.register("Fancy-Widget", aliases=("fw",))
    class Fancy(Base):
        pass

    assert reg.get("fancy_widget") is Fancy
    assert reg.get("FW") is Fancy
    assert reg.names() == ["fancy_widget"]
    assert "fancy-widget" in reg and "other" not in reg and 3 not in reg


def test_unknown_name_suggests_nearest() -> None:
    reg: Registry = Registry("widget")
    reg.register("psnr")(lambda: None)
    with pytest.raises(KeyError, match="Did you mean psnr"):
        reg.get("psnrr")


def test_base_class_and_duplicates_are_refused() -> None:
    reg: Registry = Registry("widget", base=Base)
    with pytest.raises(TypeError, match="not a subclass"):
        reg.register("x")(int)
    reg.register("y")(Base)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("Y")(Base)


def test_broken_module_is_reported_without_breaking_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    reg: Registry = Registry("widget", modules=("bench_test_good_mod", "bench_test_broken_mod"))
    good = types.ModuleType("bench_test_good_mod")
    reg.register("good")(Base)
    monkeypatch.setitem(sys.modules, "bench_test_good_mod", good)
    assert reg.get("good") is Base  # the broken module does not stop lookups of what loaded
    assert "bench_test_broken_mod" in reg.failed_modules
    with pytest.raises(KeyError, match="bench_test_broken_mod failed to import"):
        reg.get("missing")
