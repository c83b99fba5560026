"""``python -m bench datasets list | fetch | verify | info`` end to end on replicas served on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.cli import main

DATASETS_DIR = Path(__file__).resolve().parents[2] / "datasets"


@pytest.fixture
def project(tmp_path, monkeypatch, server, kit):
    """A project whose datasets/ holds the real manifests, div2k-val's checksums replaced by its replica's (served)."""
    root = tmp_path / "project"
    (root / "datasets").mkdir(parents=True)
    for manifest in DATASETS_DIR.glob("*.yaml"):
        shutil.copy(manifest, root / "datasets" / manifest.name)
    for name in ("div2k-val", "ntire20-t2-val"):
        replica = kit.build_replica(name)
        for file, data in replica.archives.items():
            server.files["/" + file] = data
        kit.write_replica_manifest(replica, root / "datasets", server)
    monkeypatch.setenv("BENCH_PROJECT", str(root))
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "data"))
    return root


def test_list_fetch_verify_info(project, tmp_path, capsys) -> None:
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert "div2k-val " in out and "missing" in out and "manual (--from)" in out
    assert "embedded-eval" in out

    assert main(["datasets", "fetch", "div2k-val"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ready   div2k-val") and "x4: 3 images" in out
    assert main(["datasets", "fetch", "div2k-val"]) == 0
    assert "already fetched" in capsys.readouterr().out

    assert main(["datasets", "fetch", "ntire20-t2-val"]) == 0
    capsys.readouterr()
    assert (project / "datasets" / "checksums.lock").is_file()

    assert main(["datasets", "list"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:] if line.strip()}
    assert rows["div2k-val"][1] == "ready" and rows["div2k-val"][4] == "3"
    assert rows["ntire20-t2-val"][1] == "ready" and rows["ntire20-t2-val"][-2] == "no"

    assert main(["datasets", "verify"]) == 0
    out = capsys.readouterr().out
    assert "ok      div2k-val" in out and "ok      ntire20-t2-val" in out
    (tmp_path / "data" / "div2k-val" / "DIV2K_valid_HR" / "0801.png").write_bytes(b"tampered")
    assert main(["datasets", "verify", "div2k-val"]) == 1
    assert "BAD     div2k-val" in capsys.readouterr().out
    assert main(["datasets", "list"]) == 0
    assert "modified" in capsys.readouterr().out

    assert main(["datasets", "info", "ntire20-t2-val"]) == 0
    out = capsys.readouterr().out
    assert "ground_truth: false" in out and "DPEDiphone-va/{id}.png" in out and "Lugmayr" in out
    assert "recorded in" in out and "DPEDiphone-va.zip: sha256" in out


def test_errors_are_one_line(project, capsys) -> None:
    assert main(["datasets", "info", "div2k-vall"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean div2k-val" in err
    assert main(["datasets", "fetch", "drealsr"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: drealsr: DRealSR.zip cannot be downloaded by a script") and "--from PATH" in err
    assert main(["datasets", "fetch", "div2k-val", "--from", str(project / "nope.zip")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_invalid_manifest_is_listed(project, capsys) -> None:
    (project / "datasets" / "broken.yaml").write_text("name: broken\n", encoding="utf-8")
    assert main(["datasets", "list"]) == 1
    assert "INVALID broken.yaml" in capsys.readouterr().out


def test_invalid_manifest_names_every_problem_with_its_key(project, capsys) -> None:
    """``info``/``fetch`` of an invalid manifest: one error line with the file and each located problem."""
    text = (project / "datasets" / "div2k-val.yaml").read_text(encoding="utf-8")
    text = text.replace("title:", "titel:").replace("split: val", "split: dev")
    (project / "datasets" / "div2k-val.yaml").write_text(text, encoding="utf-8")
    for command in (["datasets", "info", "div2k-val"], ["datasets", "fetch", "div2k-val"]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert (
            len(err) == 1 and err[0].startswith("error: dataset manifest ") and "div2k-val.yaml: 2 problems" in err[0]
        )
        assert "unknown key 'titel' (did you mean 'title'?)" in err[0] and "split: Input should be" in err[0]
    assert main(["datasets", "list"]) == 1
    assert "INVALID div2k-val.yaml: dataset manifest" in capsys.readouterr().out
