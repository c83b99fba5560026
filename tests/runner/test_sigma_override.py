"""The matrix's per-column sigma of median smoothing (``smoothing.sigmas``): the value the cell is computed with, its
source in the cell, ``auto`` columns chosen on the validation split, the card's sigma elsewhere."""

from __future__ import annotations

import shutil

import yaml

from bench.report.tables import load_run
from bench.runner.matrix import load_matrix
from bench.runner.runner import run_matrix


def test_per_column_sigma_is_applied_recorded_and_restored(tiny_project, tmp_path):
    methods = tiny_project["methods"]
    card = {"title": "Tiny MRS", "adapter": "median_smoothing", "tile": None,
            "args": {"base": "tiny-rrdb", "sigma": 0.04, "n": 3}}  # fmt: skip
    (methods / "tiny-mrs.yaml").write_text(yaml.safe_dump(card))
    val = tmp_path / "val"  # a disjoint validation folder (another image name)
    val.mkdir()
    shutil.copy(tiny_project["hr"] / "img0.png", val / "val0.png")
    matrix = yaml.safe_load(tiny_project["matrix"].read_text())
    matrix["methods"] = ["tiny-mrs"]
    matrix["conditions"].append({"name": "blur", "corruption": "gaussian_blur", "params": {"size": 3, "sigma": 0.5}})
    matrix["smoothing"] = {
        "sigma_grid": [None, 0.05],
        "validation": {"dataset": "folder", "path": str(val), "crop": 16, "images": 1},
        "metric": "psnr",
        "sigmas": {"clean": None, "noise": "auto"},  # blur: not named -> the card's 0.04
    }
    path = tmp_path / "mrs.yaml"
    path.write_text(yaml.safe_dump(matrix))
    summary = run_matrix(load_matrix(path), tmp_path / "run", device="cpu", progress=False)
    assert summary.exit_code == 0
    data = load_run(tmp_path / "run")
    by_condition = {p.labels.condition: p.smoothing for p in data.payloads}
    assert by_condition["clean"]["sigma"] is None and by_condition["clean"]["sigma_source"] == "matrix"
    assert by_condition["noise"]["sigma_source"] == "selection"
    assert by_condition["noise"]["sigma"] == by_condition["noise"]["selection"]["sigma"]
    assert by_condition["blur"]["sigma"] == 0.04 and by_condition["blur"]["sigma_source"] == "card"
    sigma = data.records.groupby("condition")["sigma"].first()
    assert sigma["blur"] == 0.04 and sigma[["clean"]].isna().all()
