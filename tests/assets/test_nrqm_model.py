"""The NRQM model converter: a tiny ``model.mat`` in the release's layout (regRF_train structs in a cell, written with
scipy.io.savemat), read back into flat forests, served from 127.0.0.1 through the asset fetch path, and bad files."""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from bench.assets import AssetError, ConversionError, fetch, load_state_dict
from bench.assets.manifest import parse_manifest
from bench.assets.nrqm import read_nrqm_mat
from bench.metrics.nrqm import NRQM, forest_predict

LINEAR = [0.25, 1.0, -0.5, 2.0]


def rf_struct(n_features: int, shift: float, *, names: bool = True, coef: tuple[float, float] = (0.0, 0.0)) -> dict:
    """Two trees as regRF_train returns them (fields in its order; arrays (nrnodes=5, ntree=2), 1-based, 0 = none).

    Tree 1: x(n) <= 0.5 ? shift + 1 : shift + 2 (n = n_features, the last variable); tree 2: a single leaf shift + 4.
    """
    ldau = np.array([[2, 0], [0, 0], [0, 0], [0, 0], [0, 0]], dtype=np.int32)
    rdau = np.array([[3, 0], [0, 0], [0, 0], [0, 0], [0, 0]], dtype=np.int32)
    status = np.array([[-3, -1], [-1, 0], [-1, 0], [0, 0], [0, 0]], dtype=np.int32)
    upper = np.array([[0.5, 0], [0, 0], [0, 0], [0, 0], [0, 0]], dtype=np.float64)
    avnode = np.array([[9, shift + 4], [shift + 1, 0], [shift + 2, 0], [0, 0], [0, 0]], dtype=np.float64)
    mbest = np.array([[n_features, 0], [0, 0], [0, 0], [0, 0], [0, 0]], dtype=np.int32)
    fields = [
        ("lDau", ldau),
        ("rDau", rdau),
        ("nodestatus", status),
        ("nrnodes", np.array([[5.0]])),
        ("upper", upper),
        ("avnode", avnode),
        ("mbest", mbest),
        ("ndtree", np.array([[3], [1]], dtype=np.int32)),
        ("ntree", np.array([[2.0]])),
        ("mse", np.zeros((2, 1))),
        ("coef", np.array(coef, dtype=np.float64).reshape(1, 2)),
    ]
    return {(k if names else f"field{i}"): v for i, (k, v) in enumerate(fields)}


def mat_bytes(*, names: bool = True, n_forests: int = 3, coef: tuple[float, float] = (0.0, 0.0)) -> bytes:
    cell = np.empty((1, n_forests), dtype=object)
    for i, n in enumerate((18, 45, 75)[:n_forests]):
        cell[0, i] = rf_struct(n, 10.0 * i, names=names, coef=coef)
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"model": {"rf": cell, "linear": np.array(LINEAR).reshape(4, 1)}})
    return buf.getvalue()


def write(tmp_path: Path, data: bytes, name: str = "model.mat") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_release_layout_is_read_into_flat_forests(tmp_path: Path) -> None:
    sd = read_nrqm_mat(write(tmp_path, mat_bytes()))
    assert sd["linear"].tolist() == LINEAR and sd["linear"].dtype == torch.float64
    assert sd["rf1.left"].tolist() == [[1, -1, -1, -1, -1], [-1, -1, -1, -1, -1]]  # (trees, nodes), 0-based
    assert sd["rf1.right"].tolist() == [[2, -1, -1, -1, -1], [-1] * 5]
    assert sd["rf3.feature"][0, 0].item() == 74 and sd["rf2.feature"][0, 0].item() == 44
    assert sd["rf2.value"][:, 0].tolist() == [9.0, 14.0] and sd["rf2.threshold"][0, 0].item() == 0.5
    assert sd["rf1.bias"].tolist() == [0.0, 1.0]  # coef all zero: no bias correction
    x = torch.zeros(3, 75, dtype=torch.float64)
    x[1, 74] = 0.5
    x[2, 74] = 0.51
    forest = {k.split(".", 1)[1]: v for k, v in sd.items() if k.startswith("rf3.")}
    assert forest_predict(x, forest).tolist() == [22.5, 22.5, 23.0]  # (20 + 1 + 20 + 4) / 2, then (22 + 24) / 2


def test_positional_fields_and_bias_correction(tmp_path: Path) -> None:
    by_name = read_nrqm_mat(write(tmp_path, mat_bytes()))
    by_position = read_nrqm_mat(write(tmp_path, mat_bytes(names=False), "renamed.mat"))
    for key in by_name:
        if not key.endswith(".bias"):
            assert torch.equal(by_name[key], by_position[key]), key
    corrected = read_nrqm_mat(write(tmp_path, mat_bytes(coef=(0.5, 2.0)), "bias.mat"))
    assert corrected["rf2.bias"].tolist() == [0.5, 2.0]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"MATLAB 5.0 MAT-file, not really", "not a MATLAB .mat file"),
        (None, "no variable 'model'"),
        ("two", "cell of 3 forests"),
    ],
)
def test_bad_files_are_refused(tmp_path: Path, data, match: str) -> None:
    if data is None:
        buf = io.BytesIO()
        scipy.io.savemat(buf, {"other": np.zeros(3)})
        data = buf.getvalue()
    elif data == "two":
        data = mat_bytes(n_forests=2)
    with pytest.raises(ConversionError, match=match):
        read_nrqm_mat(write(tmp_path, data))


@pytest.mark.parametrize(
    ("field", "forest", "match"),
    [("mbest", 1, r"split variable lies outside 1\.\.45"), ("rDau", 0, r"child index lies outside 1\.\.5")],
)
def test_out_of_range_indices_are_refused(tmp_path: Path, field: str, forest: int, match: str) -> None:
    cell = np.empty((1, 3), dtype=object)
    for i, n in enumerate((18, 45, 75)):
        cell[0, i] = rf_struct(n, 0.0)
    cell[0, forest][field] = cell[0, forest][field] + np.int32(6 if field == "rDau" else 1) * (
        cell[0, forest][field] > 0
    )
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"model": {"rf": cell, "linear": np.array(LINEAR).reshape(4, 1)}})
    with pytest.raises(ConversionError, match=match):
        read_nrqm_mat(write(tmp_path, buf.getvalue()))


def _asset(source: dict) -> object:
    raw = {"name": "nrqm-test", "kind": "nrqm", "description": "t", "license": "MIT", "paper": "-", "sources": [source]}
    return parse_manifest({"version": 1, "assets": [raw]}).assets[0]


def test_fetch_from_a_local_server(http_server, isolated_home) -> None:
    data = mat_bytes()
    http_server.files["/releases/NRQM_model.mat"] = data
    source = {
        "type": "url",
        "format": "nrqm-mat",
        "files": [
            {
                "role": "weights",
                "url": http_server.url("/releases/NRQM_model.mat"),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        ],
    }
    sd = load_state_dict(_asset(source))
    assert sd["rf3.left"].shape == (2, 5) and sd["rf3.left"].dtype == torch.int64
    metric = NRQM(weights=sd)
    out = metric(torch.rand(1, 3, 96, 96))
    assert math.isfinite(out.item())
    assert metric.spec.backbone.startswith("3 regression random forests (2/2/2 trees)")


def test_unverified_url_needs_trust_on_first_use(http_server, isolated_home) -> None:
    http_server.files["/m.mat"] = mat_bytes()
    source = {
        "type": "url",
        "format": "nrqm-mat",
        "files": [{"role": "weights", "url": http_server.url("/m.mat"), "sha256": None}],
    }
    with pytest.raises(AssetError, match="trust-on-first-use"):
        fetch(_asset(source))
    path = fetch(_asset(source), trust_on_first_use=True)
    assert path.suffix == ".safetensors" and load_state_dict(path)["linear"].tolist() == LINEAR
