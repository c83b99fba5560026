"""``bench.paths``: the one file-name sanitiser (``safe_filename``), and where things live -- the declaration folders
(``$BENCH_PROJECT``, the checkout, ``./methods``/``./datasets`` holding YAML, the packaged copy) and the writable ones
(reports, schemas, dataset data), for a checkout and for an installed wheel (faked by moving ``PACKAGE_DIR``)."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest

import bench.paths as paths
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


# ------------------------------------------------------------------------------------------ where things live


def _card(folder: Path, name: str = "mine") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text("adapter: bicubic\n", encoding="utf-8")
    return path


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """``bench`` as a wheel installs it (site-packages/bench with the packaged ``_project/``), run from an empty
    current directory, with no ``$BENCH_PROJECT`` / ``$BENCH_DATA`` and an isolated ``$BENCH_HOME``."""
    package = tmp_path / "site-packages" / "bench"
    shipped = package / "_project"
    _card(shipped / "methods", "bicubic")
    (shipped / "datasets").mkdir()
    (shipped / "datasets" / "embedded-eval.yaml").write_text("name: embedded-eval\n", encoding="utf-8")
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.setattr(paths, "PACKAGE_DIR", package)
    monkeypatch.setattr(paths, "SHIPPED_DIR", shipped)
    monkeypatch.delenv("BENCH_PROJECT", raising=False)
    monkeypatch.delenv("BENCH_DATA", raising=False)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(cwd)
    return {"package": package, "shipped": shipped, "cwd": cwd, "home": tmp_path / "home"}


def test_installed_reads_the_packaged_copy_and_writes_under_cwd_and_home(installed) -> None:
    assert paths.checkout_root() is None
    assert paths.methods_dir() == installed["shipped"] / "methods"
    assert paths.datasets_dir() == installed["shipped"] / "datasets"
    assert paths.project_root() == installed["cwd"]
    assert paths.reports_dir() == installed["cwd"] / "reports"
    assert paths.schemas_dir() == installed["cwd"] / "schemas"
    assert paths.data_dir() == installed["home"] / "datasets"
    for writable in (paths.project_root(), paths.reports_dir(), paths.schemas_dir(), paths.data_dir()):
        assert not paths.is_shipped(writable), writable
    assert paths.is_shipped(paths.methods_dir()) and paths.is_shipped(paths.datasets_dir())


def test_cwd_cards_win_over_the_packaged_copy_kind_by_kind(installed) -> None:
    cwd = installed["cwd"]
    _card(cwd / "methods")
    assert paths.methods_dir() == cwd / "methods"
    assert paths.datasets_dir() == installed["shipped"] / "datasets"  # ./methods alone keeps the packaged manifests
    assert paths.data_dir() == installed["home"] / "datasets"
    _card(cwd / "datasets", "my-set")
    assert paths.datasets_dir() == cwd / "datasets"
    assert paths.data_dir() == cwd / "datasets"  # the user's manifests: data lands beside them, as in a checkout


@pytest.mark.parametrize("content", [None, "README.md", "notes.txt"])
def test_cwd_folder_without_yaml_is_not_a_declaration_folder(installed, content) -> None:
    """An unrelated ``./datasets`` (a data folder of images, an empty ``./methods``) does not hide the packaged copy."""
    for kind in ("methods", "datasets"):
        (installed["cwd"] / kind).mkdir()
        if content:
            (installed["cwd"] / kind / content).write_text("x", encoding="utf-8")
    (installed["cwd"] / "datasets" / "0001.png").write_bytes(b"\x89PNG")
    (installed["cwd"] / "methods" / "sub.yaml").mkdir()  # a folder named like a card is not a card
    assert paths.methods_dir() == installed["shipped"] / "methods"
    assert paths.datasets_dir() == installed["shipped"] / "datasets"


def test_bench_project_wins_even_when_empty(installed, tmp_path, monkeypatch) -> None:
    _card(installed["cwd"] / "methods")
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.setenv("BENCH_PROJECT", str(project))
    assert paths.methods_dir() == project / "methods"  # as before: no fallback to cwd or the packaged copy
    assert paths.datasets_dir() == project / "datasets"
    assert paths.reports_dir() == project / "reports"
    assert paths.schemas_dir() == project / "schemas"
    assert paths.data_dir() == project / "datasets"


def test_bench_data_wins_for_the_data(installed, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "big-disk"))
    assert paths.data_dir() == tmp_path / "big-disk"
    from bench.data.store import data_root

    assert data_root() == tmp_path / "big-disk"


def test_checkout_wins_over_cwd(tmp_path, monkeypatch) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "bench").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("[project]\n", encoding="utf-8")
    _card(checkout / "methods", "bicubic")
    cwd = tmp_path / "work"
    _card(cwd / "methods")
    monkeypatch.setattr(paths, "PACKAGE_DIR", checkout / "bench")
    monkeypatch.setattr(paths, "SHIPPED_DIR", checkout / "bench" / "_project")
    monkeypatch.delenv("BENCH_PROJECT", raising=False)
    monkeypatch.delenv("BENCH_DATA", raising=False)
    monkeypatch.chdir(cwd)
    assert paths.checkout_root() == checkout
    assert paths.methods_dir() == checkout / "methods"
    assert paths.datasets_dir() == checkout / "datasets"
    assert paths.reports_dir() == checkout / "reports"
    assert paths.schemas_dir() == checkout / "schemas"
    assert paths.data_dir() == checkout / "datasets"


def test_site_packages_with_a_stray_methods_folder_is_not_a_checkout(installed) -> None:
    """Some other distribution may install a top-level ``methods`` package: without ``pyproject.toml`` beside it,
    site-packages is still not a checkout."""
    _card(installed["package"].parent / "methods", "other")
    assert paths.checkout_root() is None
    assert paths.methods_dir() == installed["shipped"] / "methods"


def test_this_checkout_keeps_its_folders(monkeypatch) -> None:
    """The tests run from the checkout: every folder is where it has always been."""
    monkeypatch.delenv("BENCH_PROJECT", raising=False)
    monkeypatch.delenv("BENCH_DATA", raising=False)
    root = Path(__file__).resolve().parents[2]
    assert paths.checkout_root() == root
    assert (paths.methods_dir(), paths.datasets_dir()) == (root / "methods", root / "datasets")
    assert (paths.reports_dir(), paths.schemas_dir(), paths.data_dir()) == (
        root / "reports",
        root / "schemas",
        root / "datasets",
    )
