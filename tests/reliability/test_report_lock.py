"""``bench report`` takes the run folder's lock, as a single run: it never re-renders a folder that a run -- or any
rank of a sharded run -- is writing. It waits a few seconds for the holder, renders when the holder lets go in that
time, and otherwise refuses with one ``error:`` line naming the holder's process and lock, exit 2, nothing written.
The holders are real processes (:func:`tests.reliability.test_shard_lock.spawn`)."""

from __future__ import annotations

import time

import pytest

import bench.report.html  # imported now: the waits below time the lock, not the imports
import bench.runner.lock
from bench.runner.lock import lock_path
from tests.reliability.test_shard_lock import SINGLE, spawn


@pytest.fixture
def stored_run(project, cli):
    """The tiny project's run ``r``, computed without its report (cells and run.json only)."""
    argv = ["run", "--matrix", project["matrix"], "--out", project["out"], "--run", "r", "--device", "cpu"]
    assert cli(*argv, "--no-progress", "--no-report").code == 0
    assert not (project["run_dir"] / "index.html").exists()
    return project


@pytest.fixture
def holders():
    procs = []

    def start(folder, holder, hold=120.0):
        proc = spawn(folder, holder, hold=hold)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("holder", "described"),
    [
        pytest.param(SINGLE, "", id="single-run"),
        pytest.param((1, 2, "a"), ", rank 1 of 2 of a sharded run", id="rank1-of-a-sharded-run"),
    ],
)
def test_report_refuses_while_a_run_holds_the_folder(stored_run, cli, one_line_error, holders, monkeypatch, holder,
                                                     described):  # fmt: skip
    run_dir = stored_run["run_dir"]
    proc = holders(run_dir, holder)
    monkeypatch.setattr(bench.runner.lock, "REPORT_WAIT", 0.6)
    t0 = time.monotonic()
    result = cli("report", "r", "--out", stored_run["out"])
    waited = time.monotonic() - t0
    one_line_error(
        result,
        2,
        f"run folder {run_dir} is in use by another run (pid {proc.pid} on ",
        f"{described}; lock {lock_path(run_dir, holder[0])})",
        "fix: wait for that run to finish (it writes its report when it ends, unless it has --no-report), then run "
        "`python -m bench report r` again",
    )
    assert waited >= 0.6  # a short wait first
    assert not (run_dir / "index.html").exists() and not (run_dir / "results.csv").exists()  # nothing rendered
    proc.kill()
    proc.wait()
    result = cli("report", "r", "--out", stored_run["out"])  # the holder is gone (killed): the report renders
    assert result.code == 0 and (run_dir / "index.html").is_file(), result.err


def test_report_waits_for_a_run_that_lets_go(stored_run, cli, holders, monkeypatch):
    """A holder that lets go within the wait: the report waits for it, then renders (exit 0)."""
    run_dir = stored_run["run_dir"]
    holders(run_dir, SINGLE, hold=2.0)
    monkeypatch.setattr(bench.runner.lock, "REPORT_WAIT", 30.0)
    t0 = time.monotonic()
    result = cli("report", str(run_dir))
    assert result.code == 0, result.err
    assert time.monotonic() - t0 >= 1.0 and (run_dir / "index.html").is_file()  # it waited for the holder
    assert result.out.strip() == str(run_dir / "index.html")
