"""Faults met by ``python -m bench run``: a changed stored asset, an LR of the wrong size, a checkpoint that is not
safetensors, an HR without its LR, a corrupt ``run.json``, an output folder that cannot be written or fills up --
each is a failure row of the cells it touches (the run goes on) or one line naming the file and the fix, never a
traceback, never a lost cell (issue 11, items 1, 3, 4, 5 and 8)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import yaml
from PIL import Image


def edit_matrix(project: dict[str, Path], **changes) -> None:
    data = yaml.safe_load(project["matrix"].read_text())
    data.update(changes)
    project["matrix"].write_text(yaml.safe_dump(data, sort_keys=False))


def run_cli(cli, project: dict[str, Path], *extra: str):
    argv = ["run", "--matrix", project["matrix"], "--out", project["out"], "--run", "r", "--device", "cpu"]
    return cli(*argv, "--no-progress", *extra)


def cells(project: dict[str, Path]) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (project["run_dir"] / "cells").glob("*.json")}


def failure_rows(payloads: dict[str, dict], method: str) -> list[dict]:
    mine = [c for c in payloads.values() if c["labels"]["method"] == method]
    return [r for c in mine for r in c["records"] if r["status"] != "ok"]


def by_method(payloads: dict[str, dict]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for c in payloads.values():
        out.setdefault(c["labels"]["method"], set()).add(c["status"])
    return out


# ---- item 1: a stored asset changed after conversion ------------------------------------------------------------


def test_changed_asset_changes_the_key_and_fails_its_cells(project, tiny_asset, tamper, cli):
    """A run with a stored asset, the asset's bytes change, the run again: new cell keys (provenance is the hash of
    the bytes), the method's cells are failure rows with the IntegrityError and its fix, bicubic's stay ok."""
    card = yaml.safe_load(tiny_asset.card.read_text())
    (project["methods"] / "stored-rrdb.yaml").write_text(yaml.safe_dump(card))
    edit_matrix(project, methods=["bicubic", "stored-rrdb"])
    first = run_cli(cli, project, "--no-report")
    assert first.code == 0, first.err
    before = cells(project)
    assert by_method(before) == {"bicubic": {"ok"}, "stored-rrdb": {"ok"}}

    tamper(tiny_asset.path)
    second = run_cli(cli, project, "--no-report")
    assert second.code == 1 and "Traceback" not in second.err
    after = cells(project)
    new = {k: v for k, v in after.items() if k not in before}
    assert len(new) == 2 and {c["labels"]["method"] for c in new.values()} == {"stored-rrdb"}
    for c in new.values():
        assert c["status"] == "failed"
        assert (
            c["provenance"]["method"]["checkpoint_sha256"]
            == __import__("hashlib").sha256(tiny_asset.path.read_bytes()).hexdigest()
        )
        (row,) = c["records"]
        assert row["error"].startswith("IntegrityError: asset 'tiny-rrdb': ")
        assert "has changed since it was stored" in row["error"] and "\n" not in row["error"]
        assert f"python -m bench assets fetch {tiny_asset.name} --force" in row["error"]
    for key, c in before.items():  # the old cells are untouched (another key), bicubic skipped
        assert after[key] == c


# ---- item 3: an LR larger than HR / scale ------------------------------------------------------------------------


def _lr_folder(project: dict[str, Path], sizes: dict[str, int]) -> Path:
    """An ``lr_path`` folder: image -> LR side (32 // 4 = 8 is right; 32, HR-sized, is not)."""
    lr = project["root"] / "lr"
    lr.mkdir()
    for name, side in sizes.items():
        hr = Image.open(project["hr"] / f"{name}.png")
        hr.resize((side, side), Image.BICUBIC).save(lr / f"{name}.png")
    return lr


@pytest.mark.parametrize("side", [32, 12, 7])
def test_lr_of_the_wrong_size_is_a_failure_row_naming_both_sizes(project, cli, side):
    lr = _lr_folder(project, {"img0": 8, "img1": side, "img2": 8})
    edit_matrix(project, datasets=[{"name": "folder", "path": str(project["hr"]), "lr_path": str(lr)}])
    result = run_cli(cli, project, "--no-report")
    assert result.code == 1 and "Traceback" not in result.err
    payloads = cells(project)
    assert len(payloads) == 4
    for c in payloads.values():
        bad = [r for r in c["records"] if r["status"] != "ok"]
        assert [r["image"] for r in bad] == ["img1"]
        assert f"img1.png is {side}x{side} (HxW) but must be HR / 4 = 8x8" in bad[0]["error"]
        assert "hr/img1.png is 32x32" in bad[0]["error"]
        ok = {r["image"] for r in c["records"] if r["status"] == "ok"}
        assert ok == {"img0", "img2"}


# ---- item 4: a checkpoint that is not safetensors; an HR without its LR ------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage", b"PK\x03\x04 not a zip either", b"\xff" * 64],
    ids=["empty", "bad-header", "zip-magic", "junk"],
)
def test_bad_checkpoint_fails_its_method_only(project, cli, content):
    (project["methods"] / "tiny.safetensors").write_bytes(content)
    result = run_cli(cli, project, "--no-report")
    assert result.code == 1 and "Traceback" not in result.err
    assert "tiny-rrdb" in result.out  # listed among the failed cells
    payloads = cells(project)
    assert by_method(payloads) == {"bicubic": {"ok"}, "tiny-rrdb": {"failed"}}
    rows = failure_rows(payloads, "tiny-rrdb")
    assert len(rows) == 2
    for row in rows:
        assert str(project["methods"] / "tiny.safetensors") in row["error"]
        assert "\n" not in row["error"] and "fix" in row["error"]


@pytest.mark.parametrize("content", [b"", b"not a zip, not a pickle"], ids=["empty", "junk"])
def test_bad_pth_checkpoint_fails_its_method_only(project, cli, content):
    (project["methods"] / "tiny.pth").write_bytes(content)
    card = project["methods"] / "tiny-rrdb.yaml"
    card.write_text(yaml.safe_dump({**yaml.safe_load(card.read_text()), "checkpoint": "tiny.pth"}))
    result = run_cli(cli, project, "--no-report")
    assert result.code == 1 and "Traceback" not in result.err
    payloads = cells(project)
    assert by_method(payloads) == {"bicubic": {"ok"}, "tiny-rrdb": {"failed"}}
    for row in failure_rows(payloads, "tiny-rrdb"):
        assert str(project["methods"] / "tiny.pth") in row["error"] and "fix" in row["error"]


def test_hr_without_lr_is_a_failure_row(project, cli):
    lr = _lr_folder(project, {"img0": 8, "img2": 8})
    edit_matrix(project, datasets=[{"name": "folder", "path": str(project["hr"]), "lr_path": str(lr)}])
    result = run_cli(cli, project, "--no-report")
    assert result.code == 1 and "Traceback" not in result.err
    payloads = cells(project)
    assert len(payloads) == 4
    for c in payloads.values():
        (bad,) = [r for r in c["records"] if r["status"] != "ok"]
        assert bad["image"] == "img1" and "img1" in bad["error"] and "no LR" in bad["error"]


# ---- item 5: an output folder that cannot be written, or fills up ------------------------------------------------


def _no_permission(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Writes into ``folder`` fail with EACCES, as in a folder without write permission (this suite may run as root,
    which chmod does not stop)."""
    import bench.atomic as atomic

    real = open

    def guarded(file, mode="r", *args, **kwargs):
        if "w" in mode and Path(file).parent == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real(file, mode, *args, **kwargs)

    monkeypatch.setattr(atomic, "open", guarded, raising=False)


@pytest.mark.parametrize("where", ["cells", "run_dir", "gallery"])
def test_unwritable_output_folder_fails_before_computing(project, cli, one_line_error, monkeypatch, where):
    folder = {"cells": project["run_dir"] / "cells", "run_dir": project["run_dir"]}.get(where)
    if where == "gallery":
        folder = project["run_dir"] / "gallery"
        folder.mkdir(parents=True)
    _no_permission(monkeypatch, folder)
    computed = []
    import bench.runner.runner as runner

    real = runner.Runner.compute_cell
    monkeypatch.setattr(runner.Runner, "compute_cell", lambda *a, **k: computed.append(1) or real(*a, **k))
    result = run_cli(cli, project)
    one_line_error(result, 1, f"cannot write {folder}/", "Permission denied", "make the folder writable")
    assert computed == []  # refused before any model ran: nothing computed, nothing lost
    assert not list(project["run_dir"].rglob("*.tmp"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="chmod does not stop root (see the test above)")
def test_read_only_cells_folder(project, cli, one_line_error):
    cells_dir = project["run_dir"] / "cells"
    cells_dir.mkdir(parents=True)
    cells_dir.chmod(0o500)
    try:
        result = run_cli(cli, project)
        one_line_error(result, 1, f"cannot write {cells_dir}/", "make the folder writable")
        assert not list(cells_dir.iterdir())
    finally:
        cells_dir.chmod(0o700)


def test_cells_folder_that_is_a_file(project, cli, one_line_error):
    """A real failure even for root: ``cells`` exists as a plain file."""
    project["run_dir"].mkdir(parents=True)
    (project["run_dir"] / "cells").write_text("not a folder")
    result = run_cli(cli, project)
    one_line_error(result, 1, f"cannot write {project['run_dir'] / 'cells'}", "choose another --out")


@pytest.mark.parametrize("fail_at", [0, 2])
def test_disk_full_while_storing_a_cell(project, cli, one_line_error, monkeypatch, fail_at):
    """The cell file's write runs out of space halfway: one line with the fix, exit 1 (as for every command whose
    disk fills), the partial temporary file removed, the cells stored before intact; the next run resumes."""
    import bench.atomic as atomic

    cells_dir = project["run_dir"] / "cells"
    real = open
    writes = []

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, text):
            self.fh.write(text[: len(text) // 2])
            self.fh.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def filling(file, mode="r", *args, **kwargs):
        fh = real(file, mode, *args, **kwargs)
        if "w" in mode and Path(file).parent == cells_dir and "write-probe" not in Path(file).name:
            writes.append(file)
            if len(writes) > fail_at:
                return Full(fh)
        return fh

    monkeypatch.setattr(atomic, "open", filling, raising=False)
    result = run_cli(cli, project)
    one_line_error(result, 1, f"cannot write {cells_dir}/", "No space left on device", "free some space")
    stored = {p.name: p.read_bytes() for p in cells_dir.glob("*.json")}
    assert len(stored) == fail_at and all(json.loads(b)["status"] == "ok" for b in stored.values())
    assert sorted(p.name for p in cells_dir.iterdir()) == sorted(stored)  # no partial temporary file left

    monkeypatch.setattr(atomic, "open", real, raising=False)
    again = run_cli(cli, project, "--no-report")
    assert again.code == 0, again.err
    after = {p.name: p.read_bytes() for p in cells_dir.glob("*.json")}
    assert len(after) == 4 and all(after[name] == content for name, content in stored.items())


# ---- item 8: a corrupt run.json --------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b'{"run": "r", "cells": [', b"[1, 2]", b"\xff\xfe\x00garbage"])
def test_corrupt_run_json(project, cli, one_line_error, content):
    """``report`` names the file and the fix; ``run`` warns naming it and writes it again."""
    assert run_cli(cli, project, "--no-report").code == 0
    run_file = project["run_dir"] / "run.json"
    run_file.write_bytes(content)
    result = cli("report", project["run_dir"])
    one_line_error(result, 2, str(run_file), "the next `python -m bench run` on this folder writes it again")
    again = run_cli(cli, project)
    assert again.code == 0 and "Traceback" not in again.err
    assert json.loads(run_file.read_text())["run"] == "r"


def test_disk_full_while_writing_a_gallery_crop(project, cli, one_line_error, monkeypatch):
    """A crop's write runs out of space: one line naming the crop, exit 1, no partial file, no cell stored for the
    cell that could not finish, the next run completes."""
    from PIL import Image as PILImage

    gallery = project["run_dir"] / "gallery"
    real_save = PILImage.Image.save

    def full_disk(self, fp, *args, **kwargs):
        if gallery in Path(fp).parents:
            Path(fp).write_bytes(b"\x89PNG\r\n")  # a partial file, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(PILImage.Image, "save", full_disk)
    result = run_cli(cli, project)
    one_line_error(result, 1, f"cannot write {gallery}/folder/clean/HR.png", "No space left", "free some space")
    assert not [p for p in gallery.rglob("*") if p.is_file()]
    assert not list((project["run_dir"] / "cells").glob("*.json"))
    monkeypatch.setattr(PILImage.Image, "save", real_save)
    assert run_cli(cli, project, "--no-report").code == 0
    assert len(cells(project)) == 4


# ---- item 3, the runner's own check (any dataset, not only the folder one) ---------------------------------------


class _OneSample:
    def __init__(self, hr_side: int, lr_side: int) -> None:
        import torch

        from bench.data.base import Sample

        self.sample = Sample(name="x", hr=torch.rand(3, hr_side, hr_side), lr=torch.rand(3, lr_side, lr_side))

    def load(self, name):
        return self.sample


@pytest.mark.parametrize(("hr", "lr"), [(32, 32), (32, 16), (34, 9), (32, 7)])
def test_prepare_refuses_an_lr_that_is_not_hr_over_scale(hr, lr):
    import torch

    from bench.errors import PairingError
    from bench.runner.stages.prepare import prepare

    with pytest.raises(PairingError) as exc:
        prepare(_OneSample(hr, lr), "x", 4, torch.device("cpu"))
    message = str(exc.value)  # both sizes named (the HR modcropped to the scale)
    assert f"LR {(lr, lr)}" in message and f"HR {(hr // 4 * 4,) * 2}" in message and "\n" not in message


def test_disk_full_while_storing_outputs(project, cli, one_line_error, monkeypatch):
    """``store_outputs: true`` and the SR outputs' file cannot be written: one line naming it, exit 1, no partial
    file, the cells stored before intact."""
    import bench.atomic as atomic

    edit_matrix(project, store_outputs=True)
    calls = []

    def full_disk(file, mode="r", *args, **kwargs):  # the second outputs file: 16 bytes written, then the disk is full
        if "w" in mode and ".safetensors." in Path(file).name:
            calls.append(file)
            if len(calls) > 1:
                Path(file).write_bytes(b"\x00" * 16)
                raise OSError(errno.ENOSPC, "No space left on device")
        return open(file, mode, *args, **kwargs)

    monkeypatch.setattr(atomic, "open", full_disk, raising=False)
    result = run_cli(cli, project)
    outputs = project["run_dir"] / "outputs"
    one_line_error(result, 1, f"cannot write {outputs}/", "No space left on device", "free some space")
    assert [p.suffix for p in outputs.iterdir()] == [".safetensors"]  # the first cell's; no temporary file
    (stored,) = cells(project).values()
    assert stored["status"] == "ok" and stored["outputs"] == f"outputs/{stored['key']}.safetensors"
