"""One run folder, many hazards: gallery crops that must follow their cell, table names that collide once
sanitised, a second run on the same folder, and ``kill -9`` at random moments -- the outputs never mix, nothing
finished is recomputed or lost, and the final tables equal an uninterrupted run's (issue 11, item 6 and the
kill / concurrency cases)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from bench.report.html import write_report
from bench.report.tables import table_paths
from bench.runner.lock import lock_path, run_lock
from bench.runner.matrix import load_matrix
from bench.runner.runner import run_matrix

BENCH = [sys.executable, "-m", "bench"]


def env() -> dict[str, str]:
    """This test's environment (``$BENCH_PROJECT`` and ``$BENCH_HOME`` are set per test) for a child process."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def edit_matrix(project: dict[str, Path], **changes) -> None:
    data = yaml.safe_load(project["matrix"].read_text())
    data.update(changes)
    project["matrix"].write_text(yaml.safe_dump(data, sort_keys=False))


def run_argv(project: dict[str, Path], run: str = "r") -> list[str]:
    return [*BENCH, "run", "--matrix", str(project["matrix"]), "--out", str(project["out"]), "--run", run]


def run_cli(cli, project: dict[str, Path], *extra: str):
    argv = ["run", "--matrix", project["matrix"], "--out", project["out"], "--run", "r", "--device", "cpu"]
    return cli(*argv, "--no-progress", *extra)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.glob("*.json")}


def tables(run_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((run_dir / "tables").glob("*.csv"))}


def reference_tables(project: dict[str, Path], tmp_path: Path) -> dict[str, str]:
    reference = tmp_path / "reference" / "r"
    run_matrix(load_matrix(project["matrix"]), reference, device="cpu", progress=False)
    write_report(reference)
    return tables(reference)


def many_conditions(project: dict[str, Path], n: int = 8) -> int:
    """``n`` conditions x 2 methods, so that a run lasts long enough to be killed mid-way; returns the cell count."""
    noise = [{"name": f"noise{i}", "corruption": "gaussian_noise", "params": {"sigma": 0.01 * i}} for i in range(1, n)]
    edit_matrix(project, conditions=[{"name": "clean", "corruption": "clean"}, *noise])
    return 2 * n


# ---- item 6: gallery crops follow their cell ----------------------------------------------------------------------


def test_gallery_lr_follows_a_parameter_change(project, cli, tmp_path):
    """After the noise level changes, every crop of the noise folder is the new computation's (LR was kept from
    the first run: a stale LR beside a new SR)."""
    assert run_cli(cli, project, "--no-report").code == 0
    folder = project["run_dir"] / "gallery" / "folder" / "noise"
    first = {p.name: p.read_bytes() for p in folder.glob("*.png")}
    data = yaml.safe_load(project["matrix"].read_text())
    data["conditions"][1]["params"]["sigma"] = 0.2
    project["matrix"].write_text(yaml.safe_dump(data, sort_keys=False))
    assert run_cli(cli, project, "--no-report").code == 0
    fresh = tmp_path / "fresh" / "r"
    run_matrix(load_matrix(project["matrix"]), fresh, device="cpu", progress=False)
    expected = {p.name: p.read_bytes() for p in (fresh / "gallery" / "folder" / "noise").glob("*.png")}
    now = {p.name: p.read_bytes() for p in folder.glob("*.png")}
    assert sorted(now) == sorted(expected) == ["HR.png", "LR.png", "sr-bicubic.png", "sr-tiny-rrdb.png"]
    assert now == expected
    assert now["LR.png"] != first["LR.png"]  # the crops did change with sigma
    assert not list(project["run_dir"].rglob("*.tmp"))  # written through temporary files, none left behind


@pytest.mark.parametrize("damage", ["truncated", "deleted", "emptied"])
def test_damaged_gallery_crop_is_written_again(project, cli, damage):
    """A truncated (or lost) crop of a finished cell does not stay: the next run computes that cell again, only it."""
    assert run_cli(cli, project, "--no-report").code == 0
    crop = project["run_dir"] / "gallery" / "folder" / "clean" / "sr-tiny-rrdb.png"
    good = crop.read_bytes()
    cells_dir = project["run_dir"] / "cells"
    before = snapshot(cells_dir)
    if damage == "truncated":
        crop.write_bytes(good[: len(good) // 2])
    elif damage == "deleted":
        crop.unlink()
    else:
        crop.write_bytes(b"")
    result = run_cli(cli, project, "--no-report")
    assert result.code == 0 and "Traceback" not in result.err
    assert crop.read_bytes() == good
    with Image.open(crop) as img:
        img.load()
    after = snapshot(cells_dir)
    changed = [name for name in before if after[name] != before[name]]
    assert len(changed) == 1
    payload = json.loads(after[changed[0]][0])
    assert (payload["labels"]["method"], payload["labels"]["condition"]) == ("tiny-rrdb", "clean")


# ---- item 6: table names that collide once sanitised ---------------------------------------------------------------


def test_colliding_table_names_get_distinct_files(project, cli):
    noise = {"corruption": "gaussian_noise"}
    edit_matrix(
        project,
        conditions=[
            {"name": "noise 1", **noise, "params": {"sigma": 0.01}},
            {"name": "noise_1", **noise, "params": {"sigma": 0.1}},
            {"name": "noise:1", **noise, "params": {"sigma": 0.2}},
        ],
    )
    result = run_cli(cli, project)
    assert result.code == 0, result.err
    written = tables(project["run_dir"])
    assert len(written) == 3 and all(name.startswith("folder__noise_1__") for name in written)
    assert len(set(written.values())) == 3  # three different tables, none overwritten


def test_table_paths_unique_and_stable(tmp_path):
    scenarios = [("d", "a b", "none", 0.0), ("d", "a_b", "none", 0.0), ("d", "c", "none", 0.0), ("d", "c", "pgd", 1.0)]
    paths = table_paths(tmp_path, scenarios)
    assert len(set(paths.values())) == 4
    assert paths[scenarios[2]].name == "d__c.csv"  # names that do not collide keep their plain form
    assert paths == table_paths(tmp_path, list(reversed(scenarios)))  # not order-dependent


# ---- two runs on one folder ---------------------------------------------------------------------------------------


_HOLD = (
    "import sys, time\nfrom bench.runner.lock import run_lock\n"
    "with run_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n"
)


def test_second_run_on_a_held_folder_refuses(project, cli, one_line_error):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(project["run_dir"])], env=env(), stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        result = run_cli(cli, project)
        lock = lock_path(project["run_dir"])
        one_line_error(result, 2, f"lock {lock}", f"pid {holder.pid} on ", "in use by another run", "--run name")
        assert not (project["run_dir"] / "cells").exists()  # refused before anything was written
    finally:
        holder.kill()
        holder.wait()
    assert run_cli(cli, project, "--no-report").code == 0  # the lock goes with its process (even killed)


_TRY = (
    "import sys\nfrom bench.runner.lock import RunLocked, run_lock\n"
    "try:\n    with run_lock(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]): print('acquired')\n"
    "except RunLocked as exc:\n    print('refused', exc.fix)\n"
)


def _try_lock(folder: Path, rank: int = 0, world: int = 1, job: str = "job") -> str:
    argv = [sys.executable, "-c", _TRY, str(folder), str(rank), str(world), job]
    return subprocess.run(argv, env=env(), capture_output=True, text=True, timeout=120).stdout.strip()


def test_lock_is_reentrant_in_a_process_and_per_rank(tmp_path):
    """Re-entrant in one process; per rank for the ranks of one sharded job (single runs and other jobs: see
    ``test_shard_lock.py``)."""
    refused = "refused wait for that run to finish, or give this run another --run name"
    with run_lock(tmp_path, 0, 2, "job") as first, run_lock(tmp_path, 0):  # the CLI around the runner, the runner in it
        assert first == tmp_path / "run.lock" and (tmp_path / "run.lock.owner").is_file()
        assert _try_lock(tmp_path) == refused
        assert _try_lock(tmp_path, 1, 2) == "acquired"  # the ranks of one torchrun each hold their own
    assert not (tmp_path / "run.lock.owner").exists()
    assert _try_lock(tmp_path) == "acquired"  # released


@pytest.mark.skipif(os.name != "posix", reason="two processes started together")
def test_two_concurrent_runs_on_one_folder(project, tmp_path):
    """Two ``run`` processes started together on one folder: one computes, the other refuses with the lock message
    (exit 2, naming the lock file and the other's pid) -- or, should it reach the lock only after the first has
    finished, finds every cell stored and computes nothing. Either way the tables equal a single run's and a rerun
    computes nothing."""
    total = many_conditions(project, 12)
    argv = [*run_argv(project), "--device", "cpu", "--no-progress"]
    procs = [subprocess.Popen(argv, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    results = [(p, *p.communicate(timeout=300)) for p in procs]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes in ([0, 0], [0, 2]), [err for _, _, err in results]
    for proc, _, err in results:
        assert "Traceback" not in err
        if proc.returncode == 2:
            (line,) = [x for x in err.splitlines() if "error:" in x]
            other = next(p for p in procs if p is not proc)
            assert f"in use by another run (pid {other.pid} on " in line
            assert str(lock_path(project["run_dir"])) in line
    if codes == [0, 0]:  # one after the other: the later one computed nothing
        assert any(f"{total} already stored (skipped), 0 to compute" in err for _, _, err in results)
    assert len(list((project["run_dir"] / "cells").glob("*.json"))) == total
    assert tables(project["run_dir"]) == reference_tables(project, tmp_path)
    rerun = subprocess.run([*argv, "--no-report"], env=env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and f"{total} already stored (skipped), 0 to compute" in rerun.stderr
    print(f"two concurrent runs: exit codes {codes}")


# ---- kill -9 at random moments -------------------------------------------------------------------------------------


def _started(proc: subprocess.Popen, run_dir: Path) -> float:
    """Wait until ``proc`` holds ``run_dir``'s lock (imports done, matrix loaded); the time it did."""
    owner = lock_path(run_dir).with_name("run.lock.owner")  # a killed run's stays behind: wait for this pid's
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if json.loads(owner.read_text())["pid"] == proc.pid:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    return time.monotonic()


@pytest.mark.skipif(os.name != "posix", reason="uses SIGKILL")
def test_kill_at_random_moments_then_resume(project, tmp_path):
    """A run killed with SIGKILL at five random moments of its work (after it took the folder's lock), resumed each
    time, then finished: no stored cell is ever rewritten (bytes and mtime) or lost, every stored cell is complete,
    no temporary file survives a resume, and the tables equal an uninterrupted run's."""
    total = many_conditions(project, 12)
    rng = random.Random(20261130)
    for i in range(3, 12):  # more and larger images: each cell takes a while, so kills land mid-run
        pixels = rng.getrandbits(8 * 96 * 96 * 3).to_bytes(96 * 96 * 3, "little")
        Image.frombytes("RGB", (96, 96), pixels).save(project["hr"] / f"img{i}.png")
    argv = [*run_argv(project), "--device", "cpu", "--no-progress"]
    cells_dir = project["run_dir"] / "cells"
    timing_argv = [*run_argv(project, "timing"), "--device", "cpu", "--no-progress", "--no-report"]
    timing = subprocess.Popen(timing_argv, env=env())
    window = -_started(timing, project["out"] / "timing")
    assert timing.wait(timeout=300) == 0
    window += time.monotonic()
    kept: dict[str, tuple[bytes, int]] = {}
    counts = []
    for _ in range(5):
        proc = subprocess.Popen([*argv, "--no-report"], env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _started(proc, project["run_dir"])
        delay = rng.uniform(0.0, 0.6) * window
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        now = snapshot(cells_dir) if cells_dir.is_dir() else {}
        for name, (content, mtime) in kept.items():
            assert now[name] == (content, mtime), f"{name} was recomputed or lost"
        assert all(json.loads(content)["status"] == "ok" for content, _ in now.values())
        kept = now
        counts.append(len(now))
    assert any(0 < n < total for n in counts), f"no kill landed mid-run: {counts}"
    final = subprocess.run(argv, env=env(), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert f"{len(kept)} already stored (skipped)" in final.stderr
    after = snapshot(cells_dir)
    assert len(after) == total
    assert all(after[name] == state for name, state in kept.items())
    assert not list(project["run_dir"].rglob("*.tmp"))
    assert not list(project["run_dir"].rglob(".write-probe.*"))  # a kill during the start-up probe leaves one
    assert tables(project["run_dir"]) == reference_tables(project, tmp_path)
    print(f"cells stored after each kill: {counts} of {total} (compute window {window:.2f} s)")
