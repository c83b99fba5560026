"""The one YAML loader: include semantics and cycles, --set parsing and addressing, non-finite numbers, bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pytest
import yaml
from pydantic import Field

from bench.config.errors import ConfigError
from bench.config.loader import (
    apply_overrides,
    load_yaml,
    non_finite,
    parse_set,
    read_yaml,
    set_dotted,
    strip_union_tags,
    validate_model,
)
from bench.config.models import Frozen


def _write(path: Path, data: dict | str) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_include_deep_merges_dicts_replaces_lists_and_the_including_file_wins(tmp_path: Path) -> None:
    _write(tmp_path / "base.yaml", {"a": {"x": 1, "y": 2}, "l": [1, 2, 3], "s": "base", "only_base": True})
    _write(tmp_path / "mid.yaml", {"include": "base.yaml", "a": {"y": 20, "z": 30}, "s": "mid"})
    top = _write(tmp_path / "top.yaml", {"include": "mid", "l": [9], "s": "top"})  # name without .yaml works too
    data = load_yaml(top)
    assert data == {"a": {"x": 1, "y": 20, "z": 30}, "l": [9], "s": "top", "only_base": True}
    assert "include" not in data


def test_a_list_of_includes_is_merged_in_order(tmp_path: Path) -> None:
    _write(tmp_path / "one.yaml", {"k": 1, "a": {"p": 1}})
    _write(tmp_path / "two.yaml", {"k": 2, "a": {"q": 2}})
    top = _write(tmp_path / "top.yaml", {"include": ["one.yaml", "two.yaml"]})
    assert load_yaml(top) == {"k": 2, "a": {"p": 1, "q": 2}}


@pytest.mark.parametrize("length", [1, 3])
def test_include_cycles_are_refused_with_the_chain(tmp_path: Path, length: int) -> None:
    names = [f"f{i}.yaml" for i in range(length)]
    for i, name in enumerate(names):
        _write(tmp_path / name, {"include": names[(i + 1) % length], "k": i})
    with pytest.raises(ConfigError) as info:
        load_yaml(tmp_path / names[0], kind="matrix")
    text = str(info.value)
    assert text.startswith(f"matrix {tmp_path / names[0]}: include: include cycle ")
    assert " -> ".join([*names, names[0]]) in text


def test_missing_include_names_the_file(tmp_path: Path) -> None:
    top = _write(tmp_path / "top.yaml", {"include": "nowhere.yaml"})
    with pytest.raises(ConfigError, match=r"top\.yaml: include: 'nowhere\.yaml' not found"):
        load_yaml(top)


def test_non_utf8_file_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        read_yaml(path, kind="matrix")
    assert str(info.value) == f"matrix {path}: not UTF-8 text (byte 0xe9 at offset 9); save it as UTF-8"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[1, 2\n", "invalid YAML"), ("- a\n- b\n", "the top level must be a mapping of keys, got list")],
)
def test_bad_yaml_files_are_one_error_naming_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert str(info.value).startswith(f"config {path}: {expected}")
    assert "\n" not in str(info.value)


def test_parse_set_values_are_yaml() -> None:
    assert parse_set("train.iters=100") == ("train.iters", 100)
    assert parse_set("a.b=1e-2") == ("a.b", 0.01)  # YAML 1.1 leaves 1e-2 a string; a number is meant
    assert parse_set("init=null") == ("init", None)
    assert parse_set("methods=[bicubic, esrgan]") == ("methods", ["bicubic", "esrgan"])
    assert parse_set("gallery={image: x, size: 8}") == ("gallery", {"image": "x", "size": 8})
    assert parse_set("name=a=b") == ("name", "a=b")


@pytest.mark.parametrize("value", ["[1, 2", "{a: 1", "'unclosed", "a: b: c"])
def test_bad_yaml_in_a_set_value_is_one_line_naming_the_key(value: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_set(f"conditions.noise.params.sigma={value}")
    text = str(info.value)
    assert text.startswith("--set conditions.noise.params.sigma: the value ")
    assert "is not valid YAML" in text and "\n" not in text


@pytest.mark.parametrize("expression", ["nokey", "=3", "  =x"])
def test_malformed_set_expressions(expression: str) -> None:
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_set(expression)


def test_set_dotted_addresses_list_entries_by_name_or_index() -> None:
    data = {"conditions": [{"name": "clean"}, {"name": "noise", "params": {"sigma": 0.1}}], "metrics": ["psnr"]}
    set_dotted(data, "conditions.noise.params.sigma", 0.2)
    set_dotted(data, "conditions.0.params.extra", 1)  # a missing mapping is created
    set_dotted(data, "metrics.psnr.crop_border", 0)  # a bare name becomes {name: ...}
    assert data["conditions"][1]["params"] == {"sigma": 0.2}
    assert data["conditions"][0] == {"name": "clean", "params": {"extra": 1}}
    assert data["metrics"] == [{"name": "psnr", "crop_border": 0}]


def test_set_on_an_unknown_entry_suggests_the_closest() -> None:
    data = {"conditions": [{"name": "clean"}, {"name": "noise"}]}
    with pytest.raises(KeyError) as info:
        set_dotted(data, "conditions.nosie.params.sigma", 1)
    assert "no entry named 'nosie' (did you mean 'noise'?)" in info.value.args[0]
    assert "entries: clean, noise" in info.value.args[0]


def test_apply_overrides_collects_every_problem() -> None:
    data = {"conditions": [{"name": "clean"}], "seeds": [0], "scale": 4}
    problems = apply_overrides(data, ["conditions.fog.params.s=1", "seeds=[0, 1]", "bad", "scale.x=2", "k=[1,"])
    assert data["seeds"] == [0, 1]
    assert len(problems) == 4
    assert problems[0].startswith("--set conditions.fog.params.s=1: conditions: no entry named 'fog'")
    assert "expected KEY=VALUE" in problems[1]
    assert problems[2] == "--set scale.x=2: scale is 4, not a mapping or a list: it has no key 'x'"
    assert problems[3].startswith("--set k: the value '[1,' is not valid YAML")


def test_non_finite_numbers_are_found_by_dotted_key() -> None:
    data = yaml.safe_load("a: .nan\nb: {c: [1.0, -.inf]}\nconditions: [{name: noise, params: {sigma: .inf}}]\n")
    assert non_finite(data) == [
        "a: nan is not a finite number",
        "b.c.1: -inf is not a finite number",
        "conditions.noise.params.sigma: inf is not a finite number",
    ]


class _Url(Frozen):
    type: Literal["url"]
    files: tuple[str, ...]


class _Pypi(Frozen):
    type: Literal["pypi"]
    package: str


class _Sources(Frozen):
    sources: tuple[Annotated[_Url | _Pypi, Field(discriminator="type")], ...]


class _Smart(Frozen):
    source: _Url | _Pypi


def test_union_members_are_not_keys_and_tag_errors_name_the_tags() -> None:
    data = {"sources": [{"type": "url", "fils": []}, {"type": "pypi", "package": 3}, {"type": "ftp"}, {"x": 1}]}
    _, problems = validate_model(_Sources, data)
    assert problems == [
        "unknown key 'sources.0.fils' (did you mean 'sources.0.files'?)",  # not 'sources.0.url.fils'
        "sources.1.package: Input should be a valid string, got 3",
        "sources.2: type must be one of url, pypi, got 'ftp'",
        "missing required key 'sources.3.type'",
    ]
    assert strip_union_tags(_Sources, ("sources", 0, "url", "files", 1)) == ("sources", 0, "files", 1)
    assert strip_union_tags(_Smart, ("source", "_Pypi", "package")) == ("source", "package")
    assert strip_union_tags(_Smart, ("source",)) == ("source",)


def test_fail_at_reports_every_cross_field_problem_at_its_key() -> None:
    """A model validator's problems come out one per key, under the list entry's name (not 'the top level')."""
    from pydantic import model_validator

    from bench.config.models import fail_at

    class Entry(Frozen):
        name: str
        low: int = 0
        high: int = 1

        @model_validator(mode="after")
        def _ordered(self) -> Entry:
            problems = []
            if self.low >= self.high:
                problems.append(("high", f"must be above low ({self.low}), got {self.high}"))
            if self.low < 0:
                problems.append(("low", "must be >= 0 (with {braces} kept as written)"))
            if problems:
                fail_at(type(self).__name__, problems)
            return self

    class File(Frozen):
        entries: list[Entry]

    data = {"entries": [{"name": "ok"}, {"name": "bad", "low": -1, "high": -2}]}
    model, problems = validate_model(File, data)
    assert model is None
    assert problems == [
        "entries.bad.high: must be above low (-1), got -2",
        "entries.bad.low: must be >= 0 (with {braces} kept as written)",
    ]
