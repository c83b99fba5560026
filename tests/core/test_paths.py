"""``bench.paths.safe_filename``: the one file-name sanitiser of the gallery, the tables and the curves."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest

from bench.paths import safe_filename

KEPT = "-_."


def _holds_the_contract(name: str, out: str) -> None:
    assert out, f"{name!r} gave an empty name"
    assert out not in (".", ".."), f"{name!r} gave {out!r}"
    assert "/" not in out and "\\" not in out and "\0" not in out
    assert all(ch.isalnum() or ch in KEPT for ch in out), out


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gaussian_noise-0.05", "gaussian_noise-0.05"),  # alnum, '-', '_', '.' kept as they are
        ("DIV2K.val", "DIV2K.val"),
        ("x4@pgd", "x4_pgd"),
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        ("jpeg q=30, blur σ 2", "jpeg_q_30__blur_σ_2"),  # one '_' per character; Unicode letters are alnum
        ("tab\there\nnul\0", "tab_here_nul_"),
        ("../../etc/passwd", ".._.._etc_passwd"),
        ("", "_"),
        (".", "_"),
        ("..", "__"),
        ("...", "___"),
        ("..x", "..x"),  # a leading-dot name stays one name below the folder
    ],
)
def test_examples(name: str, expected: str) -> None:
    assert safe_filename(name) == expected
    _holds_the_contract(name, expected)


def test_names_of_stored_runs_are_unchanged() -> None:
    """The three copies this replaced: ``"".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))``;
    every name that is not empty and not only dots must still give the same file name."""
    rng = random.Random(0)
    alphabet = string.ascii_letters + string.digits + string.punctuation + " \t\n\0éσ中²"
    for _ in range(2000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        old = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        out = safe_filename(name)
        _holds_the_contract(name, out)
        if old.strip("."):
            assert out == old, name


@pytest.mark.parametrize("name", ["..", ".", "", "../x", "..\\..", "a/../../b", "/abs", "~"])
def test_joined_name_stays_inside_the_folder(tmp_path: Path, name: str) -> None:
    root = tmp_path / "gallery"
    root.mkdir()
    joined = (root / safe_filename(name)).resolve()
    assert joined.parent == root.resolve()


def test_non_strings_are_converted() -> None:
    assert safe_filename(0.05) == "0.05"
    assert safe_filename(None) == "None"
