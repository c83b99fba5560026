"""``python -m bench schema``: the JSON Schemas validate every shipped YAML; every shipped YAML loads; ``--check``."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from bench.cli import main
from bench.config.schema import SCHEMA_KINDS, SchemaKind, json_schema, write_schemas
from bench.paths import PACKAGE_DIR

ROOT = PACKAGE_DIR.parent
SHIPPED = {k.name: sorted(ROOT.glob(k.files)) for k in SCHEMA_KINDS}
SHIPPED_FILES = [(kind, path) for kind, paths in SHIPPED.items() for path in paths]
LOADED_KINDS = ("matrix", "method-card", "training-recipe", "asset-manifest")


@pytest.fixture(autouse=True)
def _checkout_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_PROJECT", raising=False)


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("schemas")
    assert main(["schema", "--out", str(out)]) == 0
    written = {p.name.removesuffix(".schema.json"): json.loads(p.read_text()) for p in out.glob("*.schema.json")}
    assert set(LOADED_KINDS) <= set(written)
    return written


def test_there_are_shipped_files_of_each_kind() -> None:
    assert all(SHIPPED[kind] for kind in LOADED_KINDS)
    assert {"smoke.yaml", "default.yaml", "full.yaml", "certsr.yaml"} <= {p.name for p in SHIPPED["matrix"]}


@pytest.mark.parametrize(("kind", "path"), SHIPPED_FILES, ids=lambda v: getattr(v, "name", v))
def test_every_shipped_yaml_validates_against_its_json_schema(schemas: dict, kind: str, path: Path) -> None:
    if kind not in schemas:
        pytest.skip(f"no {kind} model in this checkout")
    schema = schemas[kind]
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize(
    ("kind", "path"), [(k, p) for k, p in SHIPPED_FILES if k in LOADED_KINDS], ids=lambda v: getattr(v, "name", v)
)
def test_every_shipped_yaml_loads(kind: str, path: Path) -> None:
    from bench.config.schema import check_file

    check_file(path, next(k for k in SCHEMA_KINDS if k.name == kind))


def test_the_json_schema_catches_a_typod_matrix_key(schemas: dict) -> None:
    data = yaml.safe_load((ROOT / "bench/matrices/smoke.yaml").read_text())
    data["metircs"] = data.pop("metrics")
    data["seeds"] = "zero"
    messages = sorted(e.message for e in jsonschema.Draft202012Validator(schemas["matrix"]).iter_errors(data))
    assert "Additional properties are not allowed ('metircs' was unexpected)" in messages
    assert "'metrics' is a required property" in messages
    assert "'zero' is not of type 'array'" in messages


def test_an_including_matrix_needs_only_what_differs(schemas: dict) -> None:
    validator = jsonschema.Draft202012Validator(schemas["matrix"])
    assert not list(validator.iter_errors({"include": "default.yaml", "name": "x"}))
    assert list(validator.iter_errors({"name": "x"}))  # without include the required keys are required
    assert list(validator.iter_errors({"include": "default.yaml", "metircs": []}))


def test_recipe_schema_knows_every_trainer(schemas: dict) -> None:
    from bench.train import TRAINERS

    assert set(schemas["training-recipe"]["properties"]["trainer"]["enum"]) == set(TRAINERS.names())


def test_a_missing_model_is_skipped_with_a_note(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kinds = (
        SchemaKind("method-card", "bench.methods.card_spec:CardFile", "methods/*.yaml"),
        SchemaKind("not-there", "bench.no_such_module:Model", "x/*.yaml"),
    )
    with caplog.at_level("INFO", logger="bench.config.schema"):
        written = write_schemas(tmp_path, kinds)
    assert list(written) == ["method-card"] and (tmp_path / "method-card.schema.json").is_file()
    assert "no JSON Schema for not-there: bench.no_such_module:Model is not available" in caplog.text
    assert json_schema(kinds[1]) is None


def test_check_names_the_file_the_key_and_the_closest_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = yaml.safe_load((ROOT / "bench/matrices/smoke.yaml").read_text())
    data["metircs"] = data.pop("metrics")
    bad = tmp_path / "typo.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert main(["schema", "--check", str(bad), "--kind", "matrix"]) == 1
    assert capsys.readouterr().err.strip() == f"error: matrix {bad}: unknown key 'metircs' (did you mean 'metrics'?)"
    assert main(["schema", "--check", str(ROOT / "bench/matrices/smoke.yaml")]) == 0
    assert "ok:" in capsys.readouterr().out


def test_recipes_report_every_problem_at_once(tmp_path: Path) -> None:
    from bench.train.recipe import RecipeError, load_recipe

    bad = tmp_path / "bad.yaml"
    bad.write_text("include: ad-l-pgd\ntrainer: adversarial\ntrain: {iter: 5, batch: '16', use_hflip: 1}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(bad)
    assert info.value.problems == [
        "train.batch: Input should be a valid integer, got '16'",
        "train.use_hflip: Input should be a valid boolean, got 1",
        "unknown key 'train.iter' (did you mean 'train.iters'?)",
    ]
    assert str(info.value).startswith(f"recipe {bad}: 3 problems")


def test_recipe_include_cycle_is_refused(tmp_path: Path) -> None:
    from bench.train.recipe import RecipeError, load_recipe

    (tmp_path / "a.yaml").write_text("include: b\ntrainer: esrgan\n")
    (tmp_path / "b.yaml").write_text("include: a\ntrainer: esrgan\n")
    with pytest.raises(RecipeError, match=r"include cycle a\.yaml -> b\.yaml -> a\.yaml"):
        load_recipe(tmp_path / "a.yaml")


def test_cards_report_every_problem_at_once(tmp_path: Path) -> None:
    from bench.methods.cards import CardError, parse_card

    card = tmp_path / "card.yaml"
    card.write_text("title: T\nadapter: rrdbnet\nargs: {num_blocks: 3}\ntile: -1\nlicence: MIT\n")
    with pytest.raises(CardError) as info:
        parse_card(card)
    problems = info.value.problems
    assert len(problems) == 3, problems
    assert "unknown key 'licence' (did you mean 'license'?)" in problems
    assert "tile: Input should be greater than 0, got -1" in problems
    assert any(p.startswith("unknown key 'args.num_blocks' for adapter") and "'args.num_block'" in p for p in problems)
