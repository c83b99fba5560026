"""A run folder is written by one single run or by the ranks of one sharded run, never both, never two jobs: a plain
``run`` refuses while any rank of a sharded run holds the folder (rank 0 gone or not), a rank refuses while a single
run or another sharded job holds it, the ranks of one job share it, and a killed holder never blocks (issue 11, two
runs on one folder). Holders are real processes; the refusal is one line naming the holder's pid, host, rank and
lock file, with the fix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from bench.runner.lock import RunLocked, lock_path, run_lock, shard_job

SINGLE = (0, 1, None)  # (rank, world size, torchrun job): a plain run


def job_env(job: str | None) -> dict[str, str]:
    """The environment ``torchrun`` gives the ranks of job ``job`` (none for a plain run)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")}
    if job is not None:
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29500", TORCHELASTIC_RUN_ID=job)
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


_HOLD = """
import sys, time
from bench.runner.lock import run_lock
folder, (rank, world), (start, hold) = sys.argv[1], map(int, sys.argv[2:4]), map(float, sys.argv[4:6])
time.sleep(max(0.0, start - time.time()))
try:
    with run_lock(folder, rank, world):
        print("held", flush=True)
        time.sleep(hold)
except Exception as exc:
    print("refused", exc, flush=True)
"""


def spawn(folder: Path, holder: tuple[int, int, str | None], start: float = 0.0, hold: float = 120.0):
    rank, world, job = holder
    argv = [sys.executable, "-c", _HOLD, str(folder), str(rank), str(world), str(start), str(hold)]
    return subprocess.Popen(argv, env=job_env(job), stdout=subprocess.PIPE, text=True)


@pytest.fixture
def hold(tmp_path):
    """``hold(folder, (rank, world, job))``: a process holding the folder's lock as that rank, until the test ends."""
    procs = []

    def start(folder: Path, holder: tuple[int, int, str | None]) -> subprocess.Popen:
        proc = spawn(folder, holder)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def take(folder: Path, me: tuple[int, int, str | None], monkeypatch: pytest.MonkeyPatch) -> None:
    """Take and release the folder's lock in this process as ``me`` (the job from the torchrun environment)."""
    rank, world, job = me
    for key, value in job_env(job).items():
        monkeypatch.setenv(key, value)
    for key in {"MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"} - job_env(job).keys():
        monkeypatch.delenv(key, raising=False)
    with run_lock(folder, rank, world):
        pass


REFUSED = [  # (holder, newcomer, the lock named in the refusal, how the holder is described)
    pytest.param(SINGLE, SINGLE, 0, "", id="single-vs-single"),
    pytest.param(SINGLE, (1, 2, "a"), 0, "", id="single-vs-rank1"),
    pytest.param((0, 2, "a"), SINGLE, 0, ", rank 0 of 2 of a sharded run", id="rank0-vs-single"),
    pytest.param((1, 2, "a"), SINGLE, 1, ", rank 1 of 2 of a sharded run", id="rank1-vs-single"),
    pytest.param((3, 4, "a"), SINGLE, 3, ", rank 3 of 4 of a sharded run", id="rank3-vs-single"),
    pytest.param((1, 2, "a"), (0, 2, "b"), 1, ", rank 1 of 2 of a sharded run", id="another-job"),
    pytest.param((1, 2, "a"), (0, 4, "a"), 1, ", rank 1 of 2 of a sharded run", id="another-world-size"),
    pytest.param((1, 2, "a"), (1, 2, "a"), 1, ", rank 1 of 2 of a sharded run", id="same-rank-twice"),
]


@pytest.mark.parametrize(("holder", "newcomer", "locked_rank", "described"), REFUSED)
def test_refused(tmp_path, hold, monkeypatch, holder, newcomer, locked_rank, described):
    proc = hold(tmp_path, holder)
    lock = lock_path(tmp_path, locked_rank)
    with pytest.raises(RunLocked) as exc:
        take(tmp_path, newcomer, monkeypatch)
    message = str(exc.value)
    assert f"run folder {tmp_path} is in use by another run (pid {proc.pid} on " in message
    assert f"{described}; lock {lock})" in message
    assert exc.value.fix == "wait for that run to finish, or give this run another --run name"
    assert "\n" not in message
    mine = lock_path(tmp_path, newcomer[0])
    if mine != lock:  # the newcomer took its own lock, then let it go: no owner record of it, nothing held
        assert not mine.with_name(mine.name + ".owner").exists()
        assert not FileLock(str(mine), timeout=0, is_singleton=True).is_locked


@pytest.mark.parametrize(
    ("holders", "newcomer"),
    [
        pytest.param([(1, 2, "a")], (0, 2, "a"), id="rank0-joins-rank1"),
        pytest.param([(0, 2, "a")], (1, 2, "a"), id="rank1-joins-rank0"),
        pytest.param([(0, 4, "a"), (2, 4, "a"), (3, 4, "a")], (1, 4, "a"), id="four-ranks"),
    ],
)
def test_ranks_of_one_job_share_the_folder(tmp_path, hold, monkeypatch, holders, newcomer):
    for holder in holders:
        hold(tmp_path, holder)
    take(tmp_path, newcomer, monkeypatch)


@pytest.mark.skipif(os.name != "posix", reason="uses SIGKILL")
@pytest.mark.parametrize("holder", [SINGLE, (1, 2, "a")], ids=["single", "rank1"])
@pytest.mark.parametrize("newcomer", [SINGLE, (1, 2, "b")], ids=["single", "another-job"])
def test_a_killed_holder_does_not_block(tmp_path, hold, monkeypatch, holder, newcomer):
    """``kill -9`` leaves the lock file and its owner record behind; neither keeps anyone out."""
    proc = hold(tmp_path, holder)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock_path(tmp_path, holder[0]).is_file()
    take(tmp_path, newcomer, monkeypatch)


def test_plain_run_refuses_while_a_shard_above_rank_0_writes(project, cli, one_line_error, hold):
    """The command line: rank 0 of a sharded run is gone (finished its shard, or failed), rank 1 still holds the
    folder; a plain ``run`` (which would also remove the temporary files rank 1 is writing) refuses before writing
    anything, naming rank 1's process, and runs once it is gone."""
    run_dir = project["run_dir"]
    proc = hold(run_dir, (1, 2, "a"))
    argv = ["run", "--matrix", project["matrix"], "--out", project["out"], "--run", "r", "--device", "cpu"]
    result = cli(*argv, "--no-progress", "--no-report")
    one_line_error(
        result,
        2,
        f"in use by another run (pid {proc.pid} on ",
        f"rank 1 of 2 of a sharded run; lock {lock_path(run_dir, 1)})",
        "fix: wait for that run to finish, or give this run another --run name",
    )
    assert not (run_dir / "cells").exists() and not (run_dir / "run.json").exists()
    proc.kill()
    proc.wait()
    assert cli(*argv, "--no-progress", "--no-report").code == 0


def test_rank_refuses_while_a_plain_run_writes(project, cli, one_line_error, hold, monkeypatch):
    """The command line under torchrun's environment: rank 1 of a new sharded run refuses while a plain run holds
    the folder (the plain run holds only ``run.lock``, not ``run.rank1.lock``)."""
    import bench.runner.commands

    run_dir = project["run_dir"]
    proc = hold(run_dir, SINGLE)
    for key, value in {**job_env("a"), "RANK": "1", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(bench.runner.commands, "_barrier", lambda world: pytest.fail("rank 1 ran; it must refuse"))
    argv = ["run", "--matrix", project["matrix"], "--out", project["out"], "--run", "r", "--device", "cpu"]
    result = cli(*argv, "--no-progress", "--no-report")
    one_line_error(result, 2, f"in use by another run (pid {proc.pid} on ", f"; lock {lock_path(run_dir)})")
    assert not (run_dir / "cells").exists()


@pytest.mark.skipif(os.name != "posix", reason="processes started together")
def test_single_and_sharded_started_together(tmp_path):
    """A plain run and rank 1 of a sharded run try the folder at the same instant, several times: exactly one gets
    it each time (the check and the taking happen under the gate)."""
    for round_ in range(4):
        folder = tmp_path / f"round{round_}"
        start = time.time() + 1.5  # both processes imported and waiting by then
        procs = [spawn(folder, who, start=start, hold=2.0) for who in (SINGLE, (1, 2, "a"))]
        outcomes = sorted(p.communicate(timeout=60)[0].split()[0] for p in procs)
        assert outcomes == ["held", "refused"], outcomes
        with run_lock(folder):  # and both are gone
            pass


def test_shard_job_from_the_torchrun_environment(monkeypatch):
    for key in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    assert shard_job() is None
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29400")
    assert shard_job() == "10.0.0.1:29400/None"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job7")
    assert shard_job() == "10.0.0.1:29400/job7"


@pytest.mark.parametrize(("rank", "world"), [(1, 1), (-1, 2), (2, 2), (0, 0)])
def test_invalid_rank(tmp_path, rank, world):
    expected = f"invalid shard rank {rank} of world size {world}"
    with pytest.raises(ValueError, match=expected), run_lock(tmp_path, rank, world):
        pass
