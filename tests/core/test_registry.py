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


@pytest.mark.parametrize(
    ("first", "second"),
    [("fancy-widget", "Fancy_Widget"), ("fancy_widget", "FANCY-WIDGET"), ("fancy-widget", "fancy-widget")],
)
def test_a_second_class_under_a_colliding_name_is_one_clear_error(first: str, second: str) -> None:
    """Names ignore case, ``-`` and ``_``: a second class whose name differs from a registered one only so is
    refused with one line naming both classes and their files, and a lookup of that name refuses the same way
    (never the first class in silence, e.g. after the second's module failed to import on it)."""
    from bench.errors import NameCollision

    reg: Registry = Registry("widget", base=Base)

    @reg.register(first)
    class First(Base):
        pass

    class Second(Base):
        pass

    with pytest.raises(NameCollision) as exc:
        reg.register(second)(Second)
    message = str(exc.value)
    assert "\n" not in message and isinstance(exc.value, ValueError) and isinstance(exc.value, KeyError)
    assert message.startswith(f"widget {second!r} (tests.core.test_registry.")
    assert f"Second in {__file__}) is registered twice: {first!r} (" in message
    assert f"First in {__file__}) has the same name (names ignore case, '-' and '_')" in message
    with pytest.raises(NameCollision, match="is registered twice"):
        reg.get(first)


def test_an_alias_colliding_with_a_name_is_refused() -> None:
    from bench.errors import NameCollision

    reg: Registry = Registry("widget")
    reg.register("psnr-y")(Base)
    with pytest.raises(NameCollision, match=r"widget 'PSNR_Y' \(.*\) is registered twice: 'psnr-y'"):
        reg.register("psnr_rgb", aliases=("PSNR_Y",))(lambda: None)


def test_a_module_that_collides_fails_its_lookups_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry module whose import registers a colliding name: the module is reported as failed and the name
    itself refuses (the first registration does not answer for both)."""
    from bench.errors import NameCollision

    reg: Registry = Registry("widget", modules=("bench_test_colliding_mod",))
    reg.register("good-one")(Base)
    module = types.ModuleType("bench_test_colliding_mod")

    def import_module(name: str):
        reg.register("Good_One")(type("Other", (Base,), {}))  # what the module's decorator does on import
        return module

    monkeypatch.setattr("importlib.import_module", import_module)
    assert "bench_test_colliding_mod" in reg.failed_modules
    with pytest.raises(NameCollision, match=r"'Good_One' .* is registered twice: 'good-one'"):
        reg.get("good-one")
