"""A full disk or an unwritable folder while the report is written (``results.csv``, ``tables/``, ``paper_tables/``,
``figures/``, ``index.html``) and while ``schema`` writes its files: one ``error:`` line naming the file, with the
fix, exit 1; no partial file under any name (the previous complete file stays); the stored cells untouched; the
next ``report`` succeeds (issue 11, item 5, for the report's outputs)."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import yaml

import bench.atomic as atomic

NO_SPACE = (errno.ENOSPC, "No space left on device", "free some space")
NO_PERMISSION = (errno.EACCES, "Permission denied", "make the folder writable")


def edit_matrix(project: dict[str, Path], **changes) -> None:
    data = yaml.safe_load(project["matrix"].read_text())
    data.update(changes)
    project["matrix"].write_text(yaml.safe_dump(data, sort_keys=False))


def run_cli(cli, project: dict[str, Path], *extra: str):
    argv = ["run", "--matrix", project["matrix"], "--out", project["out"], "--run", "r", "--device", "cpu"]
    return cli(*argv, "--no-progress", *extra)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.glob("*.json"))}


def report_files(run_dir: Path) -> dict[str, bytes]:
    names = ["results.csv", "index.html", "tables/*.csv", "paper_tables/*", "figures/*.png"]
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for n in names for p in sorted(run_dir.glob(n))}


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture
def report_project(project):
    """The tiny project as a paper table's matrix (``certsr-t1``: ``paper_tables/`` is written) with a corruption
    declared by ``severities:`` (a curve under ``figures/``)."""
    edit_matrix(
        project,
        name="certsr-t1",
        conditions=[
            {"name": "clean", "corruption": "clean"},
            {"name": "noise", "corruption": "gaussian_noise", "severities": [1, 2]},
        ],
    )
    return project


#: The report's outputs: a glob under the run folder that names the file whose write fails.
TARGETS = {
    "results.csv": "results.csv",
    "table": "tables/*.csv",
    "paper-csv": "paper_tables/*.csv",
    "paper-latex": "paper_tables/*.tex",
    "curve": "figures/*.png",
    "index.html": "index.html",
}


def fail_writes(monkeypatch: pytest.MonkeyPatch, target: Path, err: int, text: str) -> list[Path]:
    """Writes of ``target`` (its temporary file) fail with ``OSError(err)``: half the data reaches the disk first,
    then the device fails, as a disk that fills up mid-file; EACCES fails at ``open`` as a folder without write
    permission does (this suite may run as root, which chmod does not stop). Returns the temporary files opened."""
    real = open
    opened: list[Path] = []

    class Filling:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise OSError(err, text)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def guarded(file, mode="r", *args, **kwargs):
        path = Path(file)
        if "w" in mode and path.parent == target.parent and path.name.startswith(f".{target.name}."):
            opened.append(path)
            if err in (errno.EACCES, errno.EPERM):
                raise PermissionError(err, text, str(file))
            return Filling(real(file, mode, *args, **kwargs))
        return real(file, mode, *args, **kwargs)

    monkeypatch.setattr(atomic, "open", guarded, raising=False)
    return opened


def _one(run_dir: Path, pattern: str) -> Path:
    matches = sorted(run_dir.glob(pattern))
    assert matches, f"the report wrote no {pattern}"
    return matches[0]


@pytest.mark.parametrize("fault", [NO_SPACE, NO_PERMISSION], ids=["enospc", "eacces"])
@pytest.mark.parametrize("what", list(TARGETS))
def test_report_write_fails_cleanly(report_project, cli, one_line_error, monkeypatch, what, fault):
    """A report rendered again over a complete one fails on one file: every previous report file is still complete
    (byte for byte), no temporary file is left, the cells are untouched, and the next ``report`` succeeds."""
    err, text, fix = fault
    run_dir = report_project["run_dir"]
    assert run_cli(cli, report_project).code == 0
    before = report_files(run_dir)
    assert {"results.csv", "index.html"} <= set(before)
    cells = snapshot(run_dir / "cells")
    target = _one(run_dir, TARGETS[what])
    opened = fail_writes(monkeypatch, target, err, text)

    result = cli("report", run_dir)
    line = one_line_error(result, 1, f"cannot write {target}: {text}", f"fix: {fix}")
    assert f"then run `python -m bench report {run_dir}` again" in line
    assert opened, "the write of the target was not attempted"
    assert report_files(run_dir) == before  # nothing truncated, under the final name or any other
    assert temporaries(run_dir) == []
    assert snapshot(run_dir / "cells") == cells  # bytes and mtimes

    monkeypatch.setattr(atomic, "open", open, raising=False)
    again = cli("report", run_dir)
    assert again.code == 0, again.err
    assert report_files(run_dir).keys() == before.keys()
    assert report_files(run_dir)["index.html"].rstrip().endswith(b"</html>")
    assert snapshot(run_dir / "cells") == cells


@pytest.mark.parametrize("what", ["table", "paper-csv", "index.html"])
def test_first_report_on_a_full_disk_leaves_no_partial_file(report_project, cli, one_line_error, monkeypatch, what):
    """The report of ``run`` itself fails (disk full) where no report existed: ``run`` exits 1 with one line after
    storing every cell; the file that failed does not exist under any name; ``report`` afterwards writes it whole."""
    run_dir = report_project["run_dir"]
    reference = report_project["out"] / "reference"
    assert run_cli(cli, report_project, "--no-report").code == 0  # where the names will be
    assert cli("report", run_dir).code == 0
    expected = report_files(run_dir)
    target = _one(run_dir, TARGETS[what])
    run_dir.rename(reference)
    opened = fail_writes(monkeypatch, target, errno.ENOSPC, "No space left on device")

    result = run_cli(cli, report_project)
    one_line_error(result, 1, f"cannot write {target}: No space left on device", "free some space")
    assert opened
    assert not target.exists() and temporaries(run_dir) == []
    cells = snapshot(run_dir / "cells")
    assert len(cells) == 6 and all(json.loads(c)["status"] == "ok" for c, _ in cells.values())

    monkeypatch.setattr(atomic, "open", open, raising=False)
    assert cli("report", run_dir).code == 0
    written = target.read_bytes()
    if target.suffix == ".csv":  # the same numbers as the run before (the page carries the run's times)
        assert written == expected[target.relative_to(run_dir).as_posix()]
    else:
        assert written.rstrip().endswith(b"</html>")
    assert snapshot(run_dir / "cells") == cells


def test_old_tables_stay_when_the_new_ones_cannot_be_written(report_project, cli, one_line_error, monkeypatch):
    """The tables of an earlier matrix are removed only once the new ones are written: a report that fails on a
    table leaves the previous set whole."""
    run_dir = report_project["run_dir"]
    assert run_cli(cli, report_project).code == 0
    stale = run_dir / "tables" / "earlier__matrix.csv"
    stale.write_text("method,psnr\nx,1\n")
    before = report_files(run_dir)
    target = _one(run_dir, "tables/folder__clean.csv")
    fail_writes(monkeypatch, target, errno.ENOSPC, "No space left on device")
    one_line_error(cli("report", run_dir), 1, f"cannot write {target}")
    assert report_files(run_dir) == before
    monkeypatch.setattr(atomic, "open", open, raising=False)
    assert cli("report", run_dir).code == 0
    assert not stale.exists() and target.is_file()


def test_schema_on_a_full_disk(cli, one_line_error, monkeypatch, tmp_path):
    out = tmp_path / "schemas"
    assert cli("schema", "--out", out).code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    target = out / "matrix.schema.json"
    fail_writes(monkeypatch, target, errno.ENOSPC, "No space left on device")
    one_line_error(cli("schema", "--out", out), 1, f"cannot write {target}: No space", "choose another --out")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_atomic_write_keeps_the_old_file_on_any_failure(tmp_path, monkeypatch):
    """The writer itself: an error in the caller's block (not an OSError) propagates as it is, an OSError becomes
    :class:`OutputError`; in both cases the old content stays and no temporary file is left."""
    from bench.errors import OutputError

    path = tmp_path / "out.csv"
    atomic.atomic_write(path, "old\n")
    with pytest.raises(ZeroDivisionError), atomic.atomic_open(path) as fh:
        fh.write("new, half")
        _ = 1 / 0
    full = f"cannot write {path}: No space left on device"
    with pytest.raises(OutputError, match=full) as exc, atomic.atomic_open(path) as fh:
        fh.write("new, half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert exc.value.fix.startswith("free some space")
    assert path.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [path]
    atomic.atomic_write(path, b"new\n")
    assert path.read_bytes() == b"new\n" and sorted(tmp_path.iterdir()) == [path]
