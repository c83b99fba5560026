"""Packaging: what a wheel and an sdist carry, and a wheel installed outside the checkout.

The wheel holds the package and a read-only copy of the checkout's declarations -- method cards and dataset manifests
(with their ``checksums.lock`` when there is one) -- under ``bench/_project/`` (``pyproject.toml``: hatchling's
``sources`` mapping; :mod:`bench.paths` finds them there). Fetched data, reports and other files beside the cards never
ship. Installed into a fresh virtual environment and run from an empty folder with ``$BENCH_PROJECT`` unset, ``bench``
lists the packaged cards and manifests, plans and runs a matrix, and writes its reports and schemas under the current
folder and nothing at all into the environment. An editable install reads the checkout's own files.

Everything is built offline, without build isolation (hatchling from this environment: the ``test`` extra), and
installed with ``--no-deps --no-index``; the new environments reach this environment's dependencies through a
``.pth`` line written after the install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("hatchling", reason="the build backend (hatchling, in the `test` extra) is not installed")
pytestmark = pytest.mark.skipif(os.name != "posix", reason="the virtual environments are laid out for POSIX")

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = "bench/_project/"
SUFFIXES = (".yaml", ".yml")


def _declared(root: Path) -> set[str]:
    """The declaration files a wheel must carry: what ``bench`` reads from ``methods/`` and ``datasets/``."""
    out = {f"methods/{p.name}" for p in (root / "methods").iterdir() if p.is_file() and p.suffix in SUFFIXES}
    out |= {f"datasets/{p.name}" for p in (root / "datasets").iterdir() if p.is_file() and p.suffix in SUFFIXES}
    if (root / "datasets" / "checksums.lock").is_file():
        out.add("datasets/checksums.lock")
    return out


def _package_files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in (root / "bench").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return {n for n in z.namelist() if ".dist-info/" not in n}


def _build_wheel(source: Path, out: Path) -> Path:
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run(
        [*pip, "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


def _hatchling_hook(hook: str, source: Path, out: Path) -> Path:
    """A PEP 517/660 hook of the backend (``build_sdist``, ``build_editable``), run in ``source`` as pip would."""
    out.mkdir(parents=True, exist_ok=True)
    code = f"import sys; from hatchling.build import {hook}; print({hook}(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)], cwd=source, check=True, capture_output=True, text=True
    )
    return out / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(ROOT, tmp_path_factory.mktemp("wheel"))


def test_wheel_carries_the_package_cards_and_manifests(wheel: Path) -> None:
    names = _wheel_names(wheel)
    declared = _declared(ROOT)
    assert len([d for d in declared if d.startswith("methods/")]) >= 20
    assert "datasets/embedded-eval.yaml" in declared and "datasets/div2k-val.yaml" in declared
    assert {n.removeprefix(SHIPPED) for n in names if n.startswith(SHIPPED)} == declared
    assert {n for n in names if not n.startswith(SHIPPED)} == _package_files(ROOT)  # matrices, templates, recipes
    with zipfile.ZipFile(wheel) as z:
        for rel in declared:
            assert z.read(SHIPPED + rel) == (ROOT / rel).read_bytes(), rel
    assert not (ROOT / "bench" / "_project").exists()  # the checkout reads its own methods/ and datasets/


def test_fetched_data_and_other_files_never_ship(tmp_path: Path) -> None:
    """A checkout with fetched data, downloads, reports and notes beside the cards: the wheel takes only the YAML."""
    src = _mkdir(tmp_path / "src")
    for name in ("pyproject.toml", "README.md", ".gitignore"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "bench", src / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    for kind in ("methods", "datasets"):  # the files only: not this checkout's own fetched data
        shutil.copytree(ROOT / kind, src / kind, ignore=lambda d, names: [n for n in names if Path(d, n).is_dir()])
    planted = {
        "datasets/div2k-val/DIV2K_valid_HR/0801.png": b"\x89PNG",
        "datasets/div2k-val/.ready.json": b"{}",
        "datasets/.downloads/DIV2K_valid_HR.zip.part": b"PK",
        "datasets/checksums.lock": b"# sha256  size  dataset/file\n",
        "methods/notes.txt": b"draft",
        "reports/default/index.html": b"<html>",
        "schemas/matrix.schema.json": b"{}",
    }
    for rel, data in planted.items():
        _mkdir((src / rel).parent)
        (src / rel).write_bytes(data)
    names = _wheel_names(_build_wheel(src, tmp_path / "out"))
    assert SHIPPED + "datasets/checksums.lock" in names  # read by bench: it ships
    assert {n.removeprefix(SHIPPED) for n in names if n.startswith(SHIPPED)} == _declared(src)
    assert {n for n in names if not n.startswith(SHIPPED)} == _package_files(src)  # and nothing else anywhere


def test_sdist_carries_the_checkout_and_builds_the_same_wheel(tmp_path: Path, wheel: Path) -> None:
    sdist = _hatchling_hook("build_sdist", ROOT, tmp_path / "sdist")
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        members = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        tar.extractall(tmp_path / "x", filter="data")
    assert _declared(ROOT) <= members
    assert {"pyproject.toml", "README.md", "datasets/README.md"} <= members
    assert not any(m.startswith(("reports/", "schemas/", ".venv/")) and m != "reports/README.md" for m in members)
    rebuilt = _build_wheel(tmp_path / "x" / top, tmp_path / "from-sdist")
    assert _wheel_names(rebuilt) == _wheel_names(wheel)


# ------------------------------------------------------------------------------------------------- installs
def _venv(path: Path) -> tuple[Path, Path]:
    """A bare virtual environment: (its python, its site-packages)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return python, Path(purelib)


def _install(python: Path, purelib: Path, artifact: Path) -> None:
    """Install ``artifact`` alone, then let the environment import this one's dependencies (torch, ...) by a ``.pth``
    line per site-packages folder (a plain path: the ``.pth`` files in there, e.g. an editable ``bench``, stay
    inactive). Written after the install, so pip never sees this environment's own ``robust-sr-bench``."""
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    subprocess.run(
        [*pip, str(artifact)],
        check=True,
        capture_output=True,
        text=True,
    )
    shared = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    (purelib / "zz_shared_dependencies.pth").write_text("\n".join(shared) + "\n", encoding="utf-8")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(BENCH_HOME=str(home), PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1")
    return env


def _bench(python: Path, cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(python), "-m", "bench", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"bench {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _where(python: Path, cwd: Path, env: dict[str, str]) -> dict[str, str | None]:
    code = (
        "import json, bench, bench.paths as p; print(json.dumps({'bench': bench.__file__, 'checkout': "
        "None if p.checkout_root() is None else str(p.checkout_root()), **{f: str(getattr(p, f)()) for f in "
        "('methods_dir', 'datasets_dir', 'reports_dir', 'schemas_dir', 'data_dir')}}))"
    )
    done = subprocess.run([str(python), "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.slow
def test_installed_wheel_runs_from_an_empty_folder(wheel: Path, tmp_path: Path) -> None:
    python, purelib = _venv(tmp_path / "venv")
    _install(python, purelib, wheel)
    cwd, home = _mkdir(tmp_path / "work"), tmp_path / "home"
    env = _env(home)
    before = _snapshot(tmp_path / "venv")

    where = _where(python, cwd, env)
    shipped = purelib / "bench" / "_project"
    assert where == {
        "bench": str(purelib / "bench" / "__init__.py"),
        "checkout": None,
        "methods_dir": str(shipped / "methods"),
        "datasets_dir": str(shipped / "datasets"),
        "reports_dir": str(cwd / "reports"),
        "schemas_dir": str(cwd / "schemas"),
        "data_dir": str(home / "datasets"),
    }

    cards = {json.loads(line)["name"] for line in _bench(python, cwd, env, "methods", "--json").splitlines()}
    assert cards == {Path(rel).stem for rel in _declared(ROOT) if rel.startswith("methods/")}

    listing = _bench(python, cwd, env, "datasets", "list")
    rows = {line.split()[0] for line in listing.splitlines()[2:] if line.strip() and not line.startswith("manifests:")}
    assert rows == {Path(rel).stem for rel in _declared(ROOT) if rel.startswith("datasets/") and rel.endswith(SUFFIXES)}
    assert f"manifests: {shipped / 'datasets'}   data: {home / 'datasets'}" in listing

    plan = _bench(python, cwd, env, "run", "--matrix", "smoke", "--dry-run", "--set", "metrics=[psnr]")
    assert "total: 4 cells" in plan
    assert {line.split()[0] for line in plan.splitlines() if "none" in line.split()} == {"bicubic", "realesrgan-x4plus"}
    assert not (cwd / "reports").exists()  # a plan writes nothing

    out = _bench(python, cwd, env, "run", "--matrix", "smoke", "--set", "methods=[bicubic]", "--set", "metrics=[psnr]")
    assert out.strip().splitlines()[-1] == str(cwd / "reports" / "smoke" / "index.html")
    run = json.loads((cwd / "reports" / "smoke" / "run.json").read_text(encoding="utf-8"))
    assert run["environment"]["git"] is None  # not the commit of whatever repository holds the environment
    assert len(list((cwd / "reports" / "smoke" / "cells").glob("*.json"))) == 2

    _bench(python, cwd, env, "schema")
    assert (cwd / "schemas" / "method-card.schema.json").is_file()
    checked = _bench(python, cwd, env, "schema", "--check", str(shipped / "methods" / "bicubic.yaml"))
    assert checked.startswith("ok:") and "(method-card)" in checked

    assert sorted(p.name for p in cwd.iterdir()) == ["reports", "schemas"]
    assert _snapshot(tmp_path / "venv") == before  # nothing written into the environment, site-packages included


def test_editable_install_reads_the_checkout(tmp_path: Path) -> None:
    editable = _hatchling_hook("build_editable", ROOT, tmp_path / "editable")
    python, purelib = _venv(tmp_path / "venv")
    _install(python, purelib, editable)
    assert not (purelib / "bench").exists()
    where = _where(python, _mkdir(tmp_path / "work"), _env(tmp_path / "home"))
    assert where == {
        "bench": str(ROOT / "bench" / "__init__.py"),
        "checkout": str(ROOT),
        "methods_dir": str(ROOT / "methods"),
        "datasets_dir": str(ROOT / "datasets"),
        "reports_dir": str(ROOT / "reports"),
        "schemas_dir": str(ROOT / "schemas"),
        "data_dir": str(ROOT / "datasets"),
    }
    # only `bench` is mapped: the checkout's other folders are not importable (a `datasets` namespace package would
    # pass for Hugging Face's `datasets` with importlib.util.find_spec)
    code = "import importlib.util as u; print([n for n in ('tests', 'methods', 'datasets') if u.find_spec(n)])"
    done = subprocess.run(
        [str(python), "-c", code], cwd=tmp_path / "work", env=_env(tmp_path / "home"), capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
