"""Hash prefixes in published file names verify a download (torch.hub's check_hash), and the ``rrdbnet-pth``
converter stores a KAIR-layout checkpoint in BasicSR names -- against a 127.0.0.1 server."""

from __future__ import annotations

import hashlib
import io

import pytest
import torch

from bench.archs.rrdbnet import RRDBNet
from bench.assets import AssetError, ChecksumError, ManifestError, fetch, load_state_dict, read_metadata
from bench.assets.manifest import name_hash_prefix, parse_manifest

TINY = {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 12, "num_block": 2, "num_grow_ch": 8}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pth(sd: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


def _spec(url: str, fmt: str = "basicsr-pth", **file_fields):
    source = {"type": "url", "format": fmt, "files": [{"role": "weights", "url": url, "sha256": None, **file_fields}]}
    asset = {"name": "tiny", "kind": "rrdbnet", "description": "t", "license": "MIT", "paper": "-", "arch": TINY}
    return parse_manifest({"version": 1, "assets": [{**asset, "sources": [source]}]}).assets[0]


def test_name_prefix_is_read_like_torch_hub() -> None:
    assert name_hash_prefix("https://h/x/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth") == "ff704c30"
    assert name_hash_prefix("https://h/vgg16-397923af.pth?download=1") == "397923af"
    assert name_hash_prefix("https://h/net-abc.pth") is None  # fewer than 8 hex digits
    assert name_hash_prefix("https://h/RealESRNet_x4plus.pth") is None


def test_a_file_named_with_its_hash_prefix_is_fetched_without_trust_on_first_use(http_server, isolated_home) -> None:
    torch.manual_seed(0)
    data = _pth({"params_ema": RRDBNet(**TINY).state_dict()})
    http_server.files[f"/net-{_sha(data)[:8]}.pth"] = data
    spec = _spec(http_server.url(f"/net-{_sha(data)[:8]}.pth"))
    assert spec.sources[0].verified  # the prefix is taken from the name even when the manifest omits it
    fetch(spec)
    (entry,) = read_metadata(spec)["source"]["files"]
    assert entry["verified_by"] == "name-prefix" and not entry["trusted_on_first_use"] and entry["sha256"] == _sha(data)


def test_a_wrong_name_prefix_is_refused_and_nothing_is_stored(http_server, isolated_home) -> None:
    data = _pth({"params": RRDBNet(**TINY).state_dict()})
    wrong = "0123abcd" if not _sha(data).startswith("0123abcd") else "fedcba98"
    http_server.files[f"/net-{wrong}.pth"] = data
    spec = _spec(http_server.url(f"/net-{wrong}.pth"))
    with pytest.raises((ChecksumError, AssetError), match=wrong):
        fetch(spec)
    with pytest.raises(AssetError, match="not stored"):
        read_metadata(spec)


def test_a_prefix_that_is_not_in_the_name_does_not_verify(http_server, isolated_home) -> None:
    data = _pth(RRDBNet(**TINY).state_dict())
    http_server.files["/net.pth"] = data
    spec = _spec(http_server.url("/net.pth"), sha256_prefix=_sha(data)[:8])
    with pytest.raises(AssetError, match="trust-on-first-use"):
        fetch(spec)
    with pytest.raises(ManifestError, match="differs from the prefix"):
        _spec("https://h/net-ff704c30.pth", sha256_prefix="00000000")


def test_kair_layout_checkpoint_is_stored_in_basicsr_names(http_server, isolated_home) -> None:
    torch.manual_seed(1)
    basic = RRDBNet(**TINY).state_dict()
    kair = {}
    for k, v in basic.items():  # write the same tensors under KAIR's names
        k = k.replace("conv_body", "trunk_conv").replace("body.", "RRDB_trunk.").replace(".rdb", ".RDB")
        k = k.replace("conv_up", "upconv").replace("conv_hr", "HRconv")
        kair[k] = v
    data = _pth(kair)
    http_server.files["/BSRGAN.pth"] = data
    spec = _spec(http_server.url("/BSRGAN.pth"), fmt="rrdbnet-pth", sha256=_sha(data))
    fetch(spec)
    stored = load_state_dict(spec)
    assert set(stored) == set(basic) and all(torch.equal(stored[k], basic[k]) for k in basic)
