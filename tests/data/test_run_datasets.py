"""Fetched datasets through the runner and the report: fetch -> verify -> a one-method matrix (bicubic) on every
manifest dataset; pairing failures per layout as failure rows while the other images are scored; a set without
ground truth scored with no-reference metrics and a "skipped: no ground truth" mark; a dataset that is not fetched
failing its cells with the fetch command while the run goes on."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from bench.cli import main
from bench.results.schema import NO_GROUND_TRUTH, STATUS_FAILED, STATUS_OK, STATUS_SKIPPED
from bench.runner.matrix import load_matrix
from bench.runner.runner import run_matrix
from bench.runner.store import Store

DATASETS_DIR = Path(__file__).resolve().parents[2] / "datasets"
#: Every fetched (archive) manifest dataset of the project.
ARCHIVE_DATASETS = sorted(
    p.stem for p in DATASETS_DIR.glob("*.yaml") if yaml.safe_load(p.read_text()).get("kind", "archive") == "archive"
)
FR_METRICS = ("psnr", "ssim", "lr_psnr")  # need the HR (lr_psnr: the NTIRE 2021 variant downscales the HR)
NR_METRICS = ("piqe", "lr_psnr_input")  # need no HR (lr_psnr_input: SR against the LR input)

#: Per layout: scale, (archive, member pattern) of the HR and of the LR (the LR's member pattern alone when it is in
#: the HR's archive), ``{id}`` the image name.
LAYOUTS = {
    "realsr-v3": (4, ("RealSR(V3).zip", "RealSR(V3)/Nikon/Test/4/{id}_HR.png"), "RealSR(V3)/Nikon/Test/4/{id}_LR4.png"),
    "drealsr": (2, ("DRealSR.zip", "DRealSR/Test_x2/test_HR/{id}_x1.png"), "DRealSR/Test_x2/test_LR/{id}_x2.png"),
    "ntire20-t1-val": (4, ("track1-valid-gt.zip", "track1-valid-gt/{id}.png"), ("Corrupted-va-x.zip", "{id}.png")),
    "aim19-t2-val": (
        4, ("valid-gt-clean.zip", "valid-gt-clean/{id}.png"), ("valid-input-noisy.zip", "valid-input-noisy/{id}.png")
    ),
    "div2k-val-bicubic-x4": (
        4,
        ("DIV2K_valid_HR.zip", "DIV2K_valid_HR/{id}.png"),
        ("DIV2K_valid_LR_bicubic_X4.zip", "DIV2K_valid_LR_bicubic/X4/{id}x4.png"),
    ),
    "super": (3, ("SupER.zip", "SupER/HR/{id}.png"), "SupER/LR_x3/{id}.png"),
    "imagepairs": (2, ("ImagePairs.zip", "ImagePairs/test/HR/{id}.png"), "ImagePairs/test/LR/{id}.png"),
}  # fmt: skip


@pytest.fixture
def project(tmp_path, monkeypatch, server, isolated_home):
    """A project with the real manifests (their archives' checksums and URLs pointed at replicas served on
    127.0.0.1 by each test), bicubic cards at x2, x3 and x4, and an empty data root."""
    root = tmp_path / "project"
    (root / "datasets").mkdir(parents=True)
    for manifest in DATASETS_DIR.glob("*.yaml"):
        shutil.copy(manifest, root / "datasets" / manifest.name)
    methods = root / "methods"
    methods.mkdir()
    (methods / "bicubic.yaml").write_text("title: Bicubic\nadapter: bicubic\ntile: null\n")
    for s in (2, 3):
        card = f"title: Bicubic x{s}\nadapter: bicubic\nargs: {{scale: {s}}}\ntile: null\n"
        (methods / f"bicubic-x{s}.yaml").write_text(card)
    monkeypatch.setenv("BENCH_PROJECT", str(root))
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "data"))
    return root


def _publish(kit, server, project: Path, replica) -> None:
    for file, data in replica.archives.items():
        server.files["/" + file] = data
    kit.write_replica_manifest(replica, project / "datasets", server)


def _matrix(project: Path, datasets: list[str], scale: int, metrics=FR_METRICS + NR_METRICS, attacks=None) -> Path:
    data = {
        "version": 1,
        "name": "datasets-check",
        "description": "bicubic on fetched datasets",
        "scale": scale,
        "datasets": [{"name": d} for d in datasets],
        "methods": ["bicubic" if scale == 4 else f"bicubic-x{scale}"],
        "conditions": [{"name": "clean", "corruption": "clean"}],
        "metrics": list(metrics),
        "seeds": [0],
    }
    if attacks is not None:
        data["attacks"] = attacks
    path = project / f"matrix-{'-'.join(datasets)}-x{scale}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _records(run_dir: Path) -> list[dict]:
    return [r for p in Store(run_dir).iter_payloads() for r in p.records]


@pytest.mark.parametrize("name", ARCHIVE_DATASETS)
def test_fetch_verify_run_each_dataset(kit, name, server, project, tmp_path, capsys) -> None:
    """`datasets fetch` then `datasets verify`, then bicubic through the runner: every image of the dataset has an
    ok row for every metric it can have; full-reference ones are skipped on the set without ground truth."""
    replica = kit.build_replica(name)
    _publish(kit, server, project, replica)
    assert main(["datasets", "fetch", name]) == 0
    assert main(["datasets", "verify", name]) == 0
    assert "ready" in capsys.readouterr().out
    manifest = yaml.safe_load((project / "datasets" / f"{name}.yaml").read_text())
    scale = 4 if 4 in manifest["scales"] else manifest["scales"][0]
    images = sorted(set(replica.hr.get(scale, {})) | set(replica.lr.get(scale, {})))
    run_dir = tmp_path / "run"
    summary = run_matrix(load_matrix(_matrix(project, [name], scale)), run_dir, device="cpu", progress=False)
    assert summary.exit_code == 0 and summary.failed == []
    rows = _records(run_dir)
    assert {r["dataset"] for r in rows} == {name}
    assert all(r["value"] > 5 for r in rows if r["metric"] in ("psnr", "lr_psnr_input") and r["value"] is not None)
    by = {(r["image"], r["metric"]): r for r in rows}
    assert len(by) == len(rows) == len(images) * len(FR_METRICS + NR_METRICS)
    for image in images:
        for metric in NR_METRICS:
            assert by[(image, metric)]["status"] == STATUS_OK and by[(image, metric)]["value"] is not None
        for metric in FR_METRICS:
            row = by[(image, metric)]
            if manifest["ground_truth"]:
                assert row["status"] == STATUS_OK and isinstance(row["value"], float), row
            else:
                assert (row["status"], row["error"], row["value"]) == (STATUS_SKIPPED, NO_GROUND_TRUTH, None)


def _zip_with(archive: bytes, extra: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        for member, data in extra.items():
            dst.writestr(member, data)
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_pairing_failures_through_the_runner(kit, name, server, project, tmp_path) -> None:
    """In each layout, an LR the size of its HR, an HR without LR and an LR without HR are failure rows that name
    both sizes / the missing file; the correctly paired images of the same cell are scored."""
    scale, (hr_zip, hr_member), lr = LAYOUTS[name]
    lr_zip, lr_member = (hr_zip, lr) if isinstance(lr, str) else lr
    replica = kit.build_replica(name)
    hr_png, _ = kit.png(kit.HR_H, kit.HR_W, 7)
    lr_png, _ = kit.png(kit.HR_H // scale, kit.HR_W // scale, 8)
    extra: dict[str, dict[str, bytes]] = {hr_zip: {}, lr_zip: {}}
    extra[hr_zip][hr_member.format(id="x_same")] = hr_png
    extra[lr_zip][lr_member.format(id="x_same")] = hr_png  # LR stored at the HR's size
    extra[hr_zip][hr_member.format(id="x_nolr")] = hr_png
    extra[lr_zip][lr_member.format(id="x_nohr")] = lr_png
    for archive, members in extra.items():
        replica.archives[archive] = _zip_with(replica.archives[archive], members)
    _publish(kit, server, project, replica)
    assert main(["datasets", "fetch", name]) == 0
    run_dir = tmp_path / "run"
    matrix = load_matrix(_matrix(project, [name], scale, metrics=["psnr", "lr_psnr_input"]))
    summary = run_matrix(matrix, run_dir, device="cpu", progress=False)
    assert summary.exit_code == 1 and len(summary.failed) == 1  # the cell is failed (and computed again next run)
    rows = _records(run_dir)
    good = sorted(replica.hr[scale])
    ok = {(r["image"], r["metric"]) for r in rows if r["status"] == STATUS_OK}
    assert ok == {(image, metric) for image in good for metric in ("psnr", "lr_psnr_input")}
    failed = {r["image"]: r["error"] for r in rows if r["status"] == STATUS_FAILED}
    assert set(failed) == {"x_same", "x_nolr", "x_nohr"}
    hw = f"{kit.HR_H}x{kit.HR_W}"
    lr_hw = f"{kit.HR_H // scale}x{kit.HR_W // scale}"
    assert f"is {hw} (HxW) but must be HR / {scale} = {lr_hw}" in failed["x_same"]
    assert f"HR {run_dir.parent / 'data' / name}" in failed["x_same"] and f"is {hw}" in failed["x_same"]
    assert "has no LR" in failed["x_nolr"] and Path(hr_member.format(id="x_nolr")).name in failed["x_nolr"]
    assert "has no HR" in failed["x_nohr"] and Path(lr_member.format(id="x_nohr")).name in failed["x_nohr"]
    assert all(r["value"] is None for r in rows if r["status"] == STATUS_FAILED)


def test_no_ground_truth_set_in_the_report(kit, server, project, tmp_path) -> None:
    """NTIRE 2020 track 2 (DPED, LR only) beside a set with ground truth: no-reference metrics have values, the
    full-reference ones and the attacked cells are skipped (not failed), and the report shows the mark in the boards
    and in the overview, with no failure listed."""
    from bench.report.html import write_report

    for name in ("ntire20-t2-val", "ntire20-t1-val"):
        replica = kit.build_replica(name)
        _publish(kit, server, project, replica)
        assert main(["datasets", "fetch", name]) == 0
    attacks = [{"name": "none"}, {"name": "fgsm", "attack": "fgsm", "epsilons": ["2/255"], "loss": "l1"}]
    path = _matrix(project, ["ntire20-t2-val", "ntire20-t1-val"], 4, metrics=["psnr", "piqe"], attacks=attacks)
    run_dir = tmp_path / "run"
    summary = run_matrix(load_matrix(path), run_dir, device="cpu", progress=False)
    assert summary.exit_code == 0, summary.failed
    rows = _records(run_dir)
    t2 = [r for r in rows if r["dataset"] == "ntire20-t2-val"]
    assert {(r["attack"], r["metric"], r["status"]) for r in t2} == {
        ("none", "piqe", STATUS_OK),
        ("none", "psnr", STATUS_SKIPPED),
        ("fgsm", "piqe", STATUS_SKIPPED),
        ("fgsm", "psnr", STATUS_SKIPPED),
    }
    assert all(r["error"] == NO_GROUND_TRUTH for r in t2 if r["status"] == STATUS_SKIPPED)
    t1 = [r for r in rows if r["dataset"] == "ntire20-t1-val"]
    assert t1 and all(r["status"] == STATUS_OK for r in t1)
    assert {p.status for p in Store(run_dir).iter_payloads()} == {STATUS_OK}
    assert run_matrix(load_matrix(path), run_dir, device="cpu", progress=False).computed == 0  # skipped is stored

    html = write_report(run_dir).read_text()
    mark = '<td class="skipped"'
    board = html.split('id="board-ntire20_t2_val-clean"', 1)[1].split('id="board-', 1)[0]
    assert mark in board and f">{NO_GROUND_TRUTH}<" in board  # psnr: the mark, not a number
    attacked = html.split('id="board-ntire20_t2_val-clean-fgsm', 1)[1].split('id="board-', 1)[0]
    assert attacked.count(f">{NO_GROUND_TRUTH}<") == 2  # psnr and piqe: the attack needs the HR
    overview = html.split('id="overview-ntire20-t2-val-psnr"', 1)[1].split("</table>", 1)[0]
    assert mark in overview and f">{NO_GROUND_TRUTH}<" in overview
    piqe = html.split('id="overview-ntire20-t2-val-piqe"', 1)[1].split("</table>", 1)[0]
    assert NO_GROUND_TRUTH not in piqe.split("</tr>", 1)[1].split("<td", 4)[3]  # the clean column holds a number
    assert "<p>None.</p>" in html.split("<h2>Failures</h2>", 1)[1].split("<h2", 1)[0]  # skipped is not failed
    csv = (run_dir / "results.csv").read_text()
    assert csv.count(f",{STATUS_SKIPPED},{NO_GROUND_TRUTH},") == sum(r["status"] == STATUS_SKIPPED for r in rows)


def test_missing_dataset_fails_its_cells_with_the_fetch_command(kit, server, project, tmp_path) -> None:
    """A matrix naming a dataset that is not fetched: its cells fail with the exact fetch command as ``fix``, the
    other dataset is scored, and the report's board names the command."""
    from bench.report.html import write_report

    _publish(kit, server, project, kit.build_replica("ntire20-t1-val"))
    assert main(["datasets", "fetch", "ntire20-t1-val"]) == 0
    path = _matrix(project, ["div2k-val", "ntire20-t1-val"], 4, metrics=["psnr"])
    run_dir = tmp_path / "run"
    summary = run_matrix(load_matrix(path), run_dir, device="cpu", progress=False)
    assert summary.exit_code == 1 and len(summary.failed) == 1 and "div2k-val" in summary.failed[0]
    payloads = {p.labels.dataset: p for p in Store(run_dir).iter_payloads()}
    missing = payloads["div2k-val"]
    assert missing.status == STATUS_FAILED and missing.fix == "python -m bench datasets fetch div2k-val"
    assert "is missing" in missing.error and missing.records[0]["error"].startswith("dataset div2k-val: ")
    assert payloads["ntire20-t1-val"].ok
    html = write_report(run_dir).read_text()
    assert "python -m bench datasets fetch div2k-val" in html
    info = json.loads((run_dir / "run.json").read_text())
    assert info["finished"]  # the run went on to the end


def test_matrix_refuses_a_scale_the_manifest_lacks(project) -> None:
    from bench.runner.matrix import MatrixError

    with pytest.raises(MatrixError, match=r"datasets.imagepairs: the dataset's manifest has scales \[2\], not the"):
        load_matrix(_matrix(project, ["imagepairs"], 4, metrics=["psnr"]))


def test_train_data_resolves_through_the_manifest(kit, server, project) -> None:
    """`bench train --data div2k-train`: the recipe's data name is the manifest's; not fetched -> the exact fetch
    command; fetched -> patches of its HR images; a set without ground truth cannot train."""
    from types import SimpleNamespace

    from bench.train.base import Trainer
    from bench.train.data import PatchSampler

    def load(data: str):
        return Trainer.load_dataset(SimpleNamespace(config={"data": data}, scale=4, recipe=SimpleNamespace(name="t")))

    with pytest.raises(FileNotFoundError, match=r"run: python -m bench datasets fetch div2k-train$"):
        load("div2k-train")
    for name in ("div2k-train", "ntire20-t2-val"):
        _publish(kit, server, project, kit.build_replica(name))
        assert main(["datasets", "fetch", name]) == 0
    dataset = load("div2k-train")
    assert dataset.names() == ["0001", "0002", "0003"] and dataset.has_ground_truth
    lr, hr = PatchSampler(dataset, gt_size=16, batch=2, scale=4).sample(torch.Generator().manual_seed(0))
    assert hr.shape == (2, 3, 16, 16) and lr.shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match="has no ground truth"):
        load("ntire20-t2-val")


def test_no_ground_truth_rescore_and_gallery(kit, server, project, tmp_path) -> None:
    """On a set without ground truth, a metric added to a stored cell is scored from the stored outputs (no model
    run): a full-reference one is skipped there too; the gallery holds the LR and SR crops and no HR."""
    _publish(kit, server, project, kit.build_replica("ntire20-t2-val"))
    assert main(["datasets", "fetch", "ntire20-t2-val"]) == 0
    path = _matrix(project, ["ntire20-t2-val"], 4, metrics=["piqe"])
    data = yaml.safe_load(path.read_text())
    data.update(store_outputs=True, gallery={"image": "0002", "size": 4})
    path.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run"
    assert run_matrix(load_matrix(path), run_dir, device="cpu", progress=False).exit_code == 0
    (payload,) = Store(run_dir).iter_payloads()
    assert {g.kind for g in payload.gallery} == {"lr", "sr"}
    assert all((run_dir / g.path).is_file() for g in payload.gallery)
    data["metrics"] = ["piqe", "psnr", "lr_psnr_input"]
    path.write_text(yaml.safe_dump(data))
    from bench.methods import cards

    def no_model(*args, **kwargs):
        raise AssertionError("the method was built: the stored outputs should have been scored")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cards, "build_method", no_model)
        summary = run_matrix(load_matrix(path), run_dir, device="cpu", progress=False)
    assert summary.exit_code == 0 and summary.computed == 1
    rows = _records(run_dir)
    status = {(r["image"], r["metric"]): (r["status"], r["error"]) for r in rows}
    for image in ("0001", "0002", "0003"):
        assert status[(image, "psnr")] == (STATUS_SKIPPED, NO_GROUND_TRUTH)
        assert status[(image, "lr_psnr_input")] == (STATUS_OK, None)
        assert status[(image, "piqe")] == (STATUS_OK, None)


def test_matrix_refuses_sigma_selection_without_ground_truth(project) -> None:
    from bench.runner.matrix import MatrixError

    path = _matrix(project, ["ntire20-t1-val"], 4, metrics=["psnr"])
    data = yaml.safe_load(path.read_text())
    data["smoothing"] = {"sigma_grid": [0.01], "validation": {"dataset": "ntire20-t2-val", "images": 1}}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(MatrixError, match=r"smoothing\.validation\.dataset: 'ntire20-t2-val' has no ground truth"):
        load_matrix(path)
