"""Method cards: every card of methods/ parses; validation errors name the file and key; build_method."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from bench.archs.rrdbnet import RRDBNet
from bench.methods import ADAPTERS, Method
from bench.methods.cards import CardError, MethodCard, build_method, cards_dir, list_cards, load_card, parse_card

PROJECT_CARDS = sorted((Path(__file__).resolve().parents[2] / "methods").glob("*.yaml"))
TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
TINY_CARD = """\
title: Tiny RRDBNet
adapter: rrdbnet
args: {num_feat: 8, num_block: 1, num_grow_ch: 4}
checkpoint: weights/tiny.safetensors
paper: {title: ESRGAN, venue: ECCVW, year: 2018, url: https://arxiv.org/abs/1809.00219}
tile: 8
tile_overlap: 20
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder ($BENCH_PROJECT) with a tiny rrdbnet card whose checkpoint is a relative path."""
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "tiny.yaml").write_text(TINY_CARD)
    (tmp_path / "methods" / "bicubic.yaml").write_text("title: Bicubic\nadapter: bicubic\ntile: null\n")
    torch.manual_seed(0)
    (tmp_path / "methods" / "weights").mkdir()
    save_file(RRDBNet(**TINY).state_dict(), str(tmp_path / "methods" / "weights" / "tiny.safetensors"))
    monkeypatch.setenv("BENCH_PROJECT", str(tmp_path))
    return tmp_path


def _write(tmp_path: Path, text: str, name: str = "card.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_project_has_the_cards() -> None:
    names = {p.stem for p in PROJECT_CARDS}
    assert {"bicubic", "realesrgan-x4plus", "realsr-df2k", "realsr-df2k-jpeg", "esrgan"} <= names


@pytest.mark.parametrize("path", PROJECT_CARDS, ids=lambda p: p.stem)
def test_project_card(path: Path) -> None:
    card = parse_card(path)
    assert card.name == path.stem
    assert card.title.strip()
    assert card.adapter in ADAPTERS
    assert issubclass(ADAPTERS.get(card.adapter), Method)
    assert type(card.differentiable) is bool and type(card.stochastic) is bool
    assert card.scale == 4
    assert card.tile is None or card.tile > 0
    assert card.paper.get("title") and str(card.paper.get("url", "")).startswith("https://")
    assert card.description
    record = card.provenance()
    assert record["card"] == card.name and record["adapter"] == card.adapter
    assert len(record["card_sha256"]) == 64


def _asset_checkpoint(path: Path) -> bool:
    from bench.methods.checkpoint import is_path_ref

    checkpoint = parse_card(path).checkpoint
    return checkpoint is not None and not is_path_ref(checkpoint)


@pytest.mark.parametrize("path", [p for p in PROJECT_CARDS if _asset_checkpoint(p)], ids=lambda p: p.stem)
def test_project_checkpoints_are_manifest_assets(path: Path) -> None:
    """Each card's checkpoint asset is in the manifest, and the card's architecture is the asset's (cards of trained
    checkpoints name a file path instead, see tests/train/test_cards.py)."""
    from bench.assets import get_spec

    card = parse_card(path)
    spec = get_spec(card.checkpoint)
    for key, value in card.args.items():
        if key in spec.arch:
            assert spec.arch[key] == value, (
                f"{path.name}: args.{key}={value} but asset {spec.name} has {spec.arch[key]}"
            )


def test_rrdb_cards_are_full_size() -> None:
    for name in ("realesrgan-x4plus", "realsr-df2k", "realsr-df2k-jpeg", "esrgan"):
        card = parse_card(next(p for p in PROJECT_CARDS if p.stem == name))
        assert card.adapter == "rrdbnet" and card.args["num_block"] == 23 and card.checkpoint
    assert parse_card(next(p for p in PROJECT_CARDS if p.stem == "realsr-df2k")).title == "Impressionism (RealSR DF2K)"


def test_esrgan_missing_weights_fail_at_build_not_at_load(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_PROJECT", raising=False)
    card = load_card("esrgan")  # parses offline
    assert not card.checkpoint_available()
    with pytest.raises(FileNotFoundError, match=r"python -m bench assets fetch esrgan-x4"):
        build_method(card)


def test_list_and_load(project: Path) -> None:
    assert cards_dir() == project / "methods"
    assert [c.name for c in list_cards()] == ["bicubic", "tiny"]
    by_path = load_card(project / "methods" / "tiny.yaml")
    by_name = load_card("tiny")
    assert by_name.path == by_path.path and by_name.args == by_path.args
    assert by_name.tile == 8 and by_name.tile_overlap == 20


def test_unknown_card_lists_known(project: Path) -> None:
    with pytest.raises(KeyError, match=r"Did you mean tiny.*Known: bicubic, tiny"):
        load_card("tinny")


def test_card_is_frozen(project: Path) -> None:
    card = load_card("tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.title = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        card.args["num_block"] = 23  # type: ignore[index]


def test_defaults(tmp_path: Path) -> None:
    card = parse_card(_write(tmp_path, "title: T\nadapter: rrdbnet\n"))
    assert card.tile == 512 and card.tile_overlap == 48 and card.checkpoint is None and dict(card.args) == {}
    assert card.checkpoint_available()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "title: T\nadapter: rrdbnet\ncheckpiont: x\n",
            r"card\.yaml: unknown key 'checkpiont' \(did you mean 'checkpoint'",
        ),
        ("title: T\nadapter: rrdbnet\ndifferentiable: true\n", r"'differentiable'.*comes from the adapter"),
        ("adapter: rrdbnet\n", r"card\.yaml: missing required key 'title'"),
        (
            "title: T\nadapter: rrdbnet\nargs: {num_blocks: 3}\n",
            r"card\.yaml: unknown key 'args\.num_blocks' for adapter .*did you mean 'args\.num_block'",
        ),
        ("title: T\nadapter: rrdbnet\nargs: {checkpoint: x}\n", r"args\.checkpoint is set by the card's own"),
        ("title: T\nadapter: rrdbnet\ntile: 0\n", r"card\.yaml: tile: Input should be greater than 0"),
        ("title: T\nadapter: rrdbnet\ntile: true\n", r"card\.yaml: tile: Input should be a valid integer, got True"),
        ("title: T\nadapter: rrdbnet\ntile_overlap: -1\n", r"tile_overlap: Input should be greater than or equal to 0"),
        ("title: T\nadapter: rrdbnet\nargs: [1]\n", r"args: Input should be a valid dictionary"),
        ("title: T\nadapter: rrdbnet\npaper: {title: x, doi: y}\n", r"unknown key 'paper\.doi'"),
        ("title: [1\n", r"card\.yaml: invalid YAML"),
        ("- a\n- b\n", r"card\.yaml: the top level must be a mapping"),
    ],
)
def test_invalid_cards(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(CardError, match=match):
        parse_card(_write(tmp_path, text))


def test_unknown_adapter_names_the_closest(tmp_path: Path) -> None:
    with pytest.raises(
        CardError, match=r"card\.yaml: adapter: unknown method adapter 'rrdbnett'.*Did you mean rrdbnet"
    ):
        parse_card(_write(tmp_path, "title: T\nadapter: rrdbnett\n"))


def test_build_method(project: Path) -> None:
    method = build_method("tiny", "cpu")
    assert method.card.name == "tiny" and method.tile == 8 and method.tile_overlap == 20
    assert not method.training
    assert all(not p.requires_grad for p in method.parameters())
    assert method.device == torch.device("cpu")
    torch.manual_seed(0)  # the fixture's checkpoint is this initialisation
    ref = RRDBNet(**TINY).eval()
    lr = torch.rand(1, 3, 20, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref(lr).clamp(0, 1)
    sr = method.super_resolve(lr)  # 20x12 > tile 8: tiled, overlap 20 covers the receptive field
    assert (sr - expected).abs().max().item() <= 1e-5
    # Gradient to the input flows although the parameters are frozen.
    x = lr.clone().requires_grad_(True)
    method(x).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_build_tile_override(project: Path) -> None:
    assert build_method("tiny", tile=0).tile is None
    assert build_method("tiny", tile=64).tile == 64
    assert build_method("bicubic").tile is None


def test_provenance_hashes_local_checkpoint(project: Path) -> None:
    card = load_card("tiny")
    weights = project / "methods" / "weights" / "tiny.safetensors"
    assert card.checkpoint_ref() == str(weights.resolve())
    record = card.provenance()
    assert record["checkpoint"] == "weights/tiny.safetensors"
    assert record["checkpoint_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert record["card_sha256"] == hashlib.sha256((project / "methods" / "tiny.yaml").read_bytes()).hexdigest()
    assert record["args"] == TINY and record["differentiable"] is True and record["stochastic"] is False
    assert record["tile"] == 8
    import json

    json.dumps(record)  # JSON-able


def test_provenance_carries_recipe(tmp_path: Path) -> None:
    text = "title: T\nadapter: rrdbnet\nrecipe: {name: ad-l-pgd, eps: 0.0549}\nprovenance: {run: r1, commit: abc}\n"
    record = parse_card(_write(tmp_path, text)).provenance()
    assert record["recipe"] == {"name": "ad-l-pgd", "eps": 0.0549} and record["trained"] == {
        "run": "r1",
        "commit": "abc",
    }


def test_missing_local_checkpoint(project: Path) -> None:
    (project / "methods" / "weights" / "tiny.safetensors").unlink()
    card = load_card("tiny")
    assert not card.checkpoint_available()
    with pytest.raises(FileNotFoundError, match=r"tiny\.safetensors"):
        build_method(card)


def test_card_checkpoint_for_adapter_without_one(tmp_path: Path) -> None:
    """Bicubic takes no weights: a card naming a checkpoint for it is an error (unless the adapter accepts one)."""
    import inspect

    if "checkpoint" in inspect.signature(ADAPTERS.get("bicubic")).parameters:
        pytest.skip("this bicubic adapter accepts a checkpoint")
    with pytest.raises(CardError, match="takes no checkpoint"):
        parse_card(_write(tmp_path, "title: T\nadapter: bicubic\ncheckpoint: x.pth\n"))


def test_card_type_is_exported() -> None:
    assert dataclasses.is_dataclass(MethodCard)


def test_wrapper_card_provenance_names_the_base_weights(project: Path) -> None:
    (project / "methods" / "tiny-mrs.yaml").write_text(
        "title: Tiny MRS\nadapter: median_smoothing\nargs: {base: tiny, sigma: 0.05, n: 3}\ntile: null\n"
    )
    card = load_card("tiny-mrs")
    assert card.base_card_name() == "tiny" and not card.sigma_auto
    record = card.provenance()
    base = record["base"]
    assert base["card"] == "tiny" and base["checkpoint"] == "weights/tiny.safetensors"
    expected = hashlib.sha256((project / "methods" / "weights" / "tiny.safetensors").read_bytes()).hexdigest()
    assert base["checkpoint_sha256"] == expected  # the wrapper's results name the weights they ran
    assert load_card("tiny").base_card_name() is None and "base" not in load_card("tiny").provenance()
    # a base card that does not exist is reported in the provenance, and fails only when built
    (project / "methods" / "ghost-mrs.yaml").write_text(
        "title: Ghost MRS\nadapter: median_smoothing\nargs: {base: ghost}\ntile: null\n"
    )
    assert "unknown method card 'ghost'" in load_card("ghost-mrs").provenance()["base"]["error"]


def test_sigma_auto_card_builds_with_smoothing_off(project: Path) -> None:
    (project / "methods" / "tiny-auto.yaml").write_text(
        "title: Tiny MRS auto\nadapter: median_smoothing\nargs: {base: tiny, sigma: auto, n: 3}\ntile: null\n"
    )
    card = load_card("tiny-auto")
    assert card.sigma_auto and card.provenance()["args"]["sigma"] == "auto"
    method = build_method(card)
    assert method.sigma_auto and method.sigma is None and not method.smoothing
    lr = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(method.super_resolve(lr), method.base.super_resolve(lr))  # off until chosen
    method.sigma = 0.05
    assert method.smoothing
    assert not build_method("tiny").sigma_auto


# ------------------------------------------------------------------------------------ readiness, nested bases
def test_smoothing_card_over_a_missing_base_checkpoint_is_missing_with_the_bases_fix(
    project: Path, isolated_home: Path
) -> None:
    """Readiness is one rule on the card: a wrapper is ready only when its base's checkpoint is stored too, and the
    fix named is the base's (here: fetch the base card's asset, which $BENCH_HOME does not hold)."""
    from bench.methods.checkpoint import fetch_command

    methods = project / "methods"
    (methods / "remote.yaml").write_text(
        "title: Remote\nadapter: rrdbnet\nargs: {num_feat: 8, num_block: 1, num_grow_ch: 4}\n"
        "checkpoint: realesrgan-x4plus\n"
    )
    (methods / "remote-mrs.yaml").write_text(
        "title: Remote MRS\nadapter: median_smoothing\nargs: {base: remote, sigma: 0.05, n: 3}\ntile: null\n"
    )
    (methods / "tiny-mrs.yaml").write_text(
        "title: Tiny MRS\nadapter: median_smoothing\nargs: {base: tiny, sigma: 0.05, n: 3}\ntile: null\n"
    )
    wrapper = load_card("remote-mrs")
    assert wrapper.checkpoint is None  # the wrapper's own file names no checkpoint: only its base does
    (missing,) = wrapper.missing_checkpoints()
    assert (missing.card, missing.kind, missing.ref) == ("remote", "weights", "realesrgan-x4plus")
    assert missing.fix == fetch_command("realesrgan-x4plus") and missing.fix.startswith("python -m bench assets fetch")
    assert not wrapper.checkpoint_available()
    with pytest.raises(FileNotFoundError, match=r"python -m bench assets fetch realesrgan-x4plus"):
        build_method(wrapper)  # what readiness predicts is what building does
    # a base that is stored: ready, and it builds
    assert load_card("tiny-mrs").missing_checkpoints() == [] and load_card("tiny-mrs").checkpoint_available()
    build_method("tiny-mrs")
    (methods / "weights" / "tiny.safetensors").unlink()
    (gone,) = load_card("tiny-mrs").missing_checkpoints()
    assert gone.card == "tiny" and gone.kind == "checkpoint" and gone.ref.endswith("tiny.safetensors")
    assert gone.fix == f"place the checkpoint at {gone.ref}"
    # a base card that does not exist is one missing entry with the edit that repairs it
    (methods / "ghost-mrs.yaml").write_text("title: G\nadapter: median_smoothing\nargs: {base: ghost}\ntile: null\n")
    (ghost,) = load_card("ghost-mrs").missing_checkpoints()
    assert ghost.kind == "card" and ghost.ref == "ghost" and "methods/ghost.yaml" in ghost.fix


def test_base_card_trained_by_a_recipe_gives_its_train_command(project: Path, isolated_home: Path) -> None:
    methods = project / "methods"
    (methods / "trained.yaml").write_text(
        "title: Trained\nadapter: rrdbnet\nargs: {num_feat: 8, num_block: 1, num_grow_ch: 4}\n"
        "checkpoint: $BENCH_HOME/checkpoints/esrgan-ft/latest.safetensors\n"
        "recipe: {name: esrgan-ft, data: DIV2K train HR}\n"
    )
    (methods / "trained-mrs.yaml").write_text(
        "title: Trained MRS\nadapter: median_smoothing\nargs: {base: trained, n: 3}\ntile: null\n"
    )
    (missing,) = load_card("trained-mrs").missing_checkpoints()
    assert missing.card == "trained" and missing.recipe == "esrgan-ft" and missing.train_data == "div2k-train"
    assert missing.fix == "python -m bench train esrgan-ft --data div2k-train"
    assert missing.ref == str(isolated_home / "checkpoints" / "esrgan-ft" / "latest.safetensors")


def test_inline_base_checkpoint_is_checked_and_built_from_the_card_folder(project: Path) -> None:
    """CertSR's layout: ``args.base: {adapter, args: {checkpoint}}`` in the wrapper's own file. Its checkpoint is the
    wrapper's to produce (its recipe), resolved against the card's folder both by readiness and by build_method."""
    methods = project / "methods"
    (methods / "inline-mrs.yaml").write_text(
        "title: Inline MRS\nadapter: median_smoothing\n"
        "args: {base: {adapter: rrdbnet, args: {num_feat: 8, num_block: 1, num_grow_ch: 4, "
        "checkpoint: weights/inline.safetensors}}, sigma: 0.05, n: 3}\n"
        "tile: null\nrecipe: {name: certsr, data: DIV2K train HR}\n"
    )
    card = load_card("inline-mrs")
    (missing,) = card.missing_checkpoints()
    assert missing.card == "inline-mrs" and missing.kind == "checkpoint"
    assert missing.ref == str((methods / "weights" / "inline.safetensors").resolve())
    assert missing.fix == "python -m bench train certsr --data div2k-train"
    assert not card.checkpoint_available()
    with pytest.raises(FileNotFoundError, match=r"inline\.safetensors"):
        build_method(card)
    torch.manual_seed(1)
    save_file(RRDBNet(**TINY).state_dict(), str(methods / "weights" / "inline.safetensors"))
    card = load_card("inline-mrs")
    assert card.checkpoint_available() and card.missing_checkpoints() == []
    method = build_method(card)  # found from the card's folder, whatever the working directory
    assert method.capabilities.smoothed and method.capabilities.differentiable


def test_an_inline_base_checkpoint_is_part_of_the_method_identity(project: Path) -> None:
    """Retraining CertSR's inline base must give new cell keys, never reuse results of the old weights."""
    from bench.runner.provenance import method_identity

    methods = project / "methods"
    (methods / "inline-mrs.yaml").write_text(
        "title: Inline MRS\nadapter: median_smoothing\n"
        "args: {base: {adapter: rrdbnet, args: {num_feat: 8, num_block: 1, num_grow_ch: 4, "
        "checkpoint: weights/inline.safetensors}}, sigma: 0.05, n: 3}\ntile: null\n"
    )
    missing = load_card("inline-mrs").provenance()
    assert missing["base_checkpoint_sha256"] is None
    path = methods / "weights" / "inline.safetensors"
    path.parent.mkdir(exist_ok=True)
    identities = [method_identity(missing)]
    for seed in (1, 2):  # trained, then retrained
        torch.manual_seed(seed)
        save_file(RRDBNet(**TINY).state_dict(), str(path))
        provenance = load_card("inline-mrs").provenance()
        assert provenance["base_checkpoint_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        identities.append(method_identity(provenance))
    assert identities[0] != identities[1] != identities[2] != identities[0]


@pytest.mark.parametrize(
    ("first", "second"),
    [("tiny.yaml", "TINY.yaml"), ("tiny-rrdb.yaml", "Tiny_RRDB.yaml"), ("tiny.yaml", "tiny.yml")],
    ids=["case", "dash-underscore", "suffix"],
)
def test_two_cards_of_one_name_are_one_clear_error(project: Path, first: str, second: str) -> None:
    """Card files whose names differ only in case, ``-``/``_`` or suffix: a lookup of that name (any of its
    spellings) is one line naming both files, not whichever file the lookup happens to find first."""
    from bench.errors import NameCollision
    from bench.registry import normalise_name

    folder = project / "methods"
    (folder / "tiny.yaml").unlink()
    for name in (first, second):
        (folder / name).write_text(TINY_CARD)
    if len([p for p in folder.iterdir() if normalise_name(p.stem) == normalise_name(Path(first).stem)]) < 2:
        pytest.skip("a case-insensitive file system cannot hold both files")
    for spelling in {Path(first).stem, Path(second).stem}:
        with pytest.raises(NameCollision) as exc:
            load_card(spelling)
        message = str(exc.value)
        assert "\n" not in message and message.startswith(f"method card {spelling!r} is ambiguous: the cards ")
        assert str(folder / first) in message and str(folder / second) in message
        assert "rename or remove one of them" in message
    assert load_card("bicubic").adapter == "bicubic"  # the other cards still load
    assert load_card(folder / first).name == Path(first).stem  # a card named by its path is not ambiguous
