"""RRDBMethod: weights from state dicts, BasicSR .pth files, safetensors and assets; strict loading; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from bench.archs.rrdbnet import RRDBNet
from bench.assets import stored_path
from bench.methods import ADAPTERS
from bench.methods.checkpoint import (
    checkpoint_available,
    checkpoint_sha256,
    fetch_command,
    is_path_ref,
    load_weights,
)
from bench.methods.rrdb import RRDBMethod, infer_rrdbnet_args

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def _state(seed: int, **arch: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in RRDBNet(**(arch or TINY)).state_dict().items()}


def _lr() -> torch.Tensor:
    return torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(3))


def test_registered() -> None:
    assert ADAPTERS.get("rrdbnet") is RRDBMethod
    assert RRDBMethod.differentiable is True and RRDBMethod.stochastic is False


def test_state_dict_is_used() -> None:
    sd = _state(1)
    a, b = RRDBMethod(**TINY, state_dict=sd), RRDBMethod(**TINY, state_dict=_state(2))
    ref = RRDBNet(**TINY)
    ref.load_state_dict(sd)
    with torch.no_grad():
        torch.testing.assert_close(a(_lr()), ref(_lr()), rtol=0, atol=0)
        assert not torch.allclose(a(_lr()), b(_lr()))


def test_basicsr_pth_with_params_ema(tmp_path: Path) -> None:
    """A BasicSR training checkpoint holds params (the raw generator) and params_ema (the released one): use ema."""
    ema, raw = _state(1), _state(2)
    path = tmp_path / "net_g_1000.pth"
    torch.save({"params": raw, "params_ema": ema}, path)
    from_file = RRDBMethod(**TINY, checkpoint=path)
    direct = RRDBMethod(**TINY, state_dict=ema)
    with torch.no_grad():
        torch.testing.assert_close(from_file(_lr()), direct(_lr()), rtol=0, atol=0)
    assert from_file.checkpoint == str(path)


def test_basicsr_pth_with_params_only(tmp_path: Path) -> None:
    raw = _state(4)
    torch.save({"params": raw}, tmp_path / "g.pth")
    with torch.no_grad():
        torch.testing.assert_close(
            RRDBMethod(**TINY, checkpoint=tmp_path / "g.pth")(_lr()), RRDBMethod(**TINY, state_dict=raw)(_lr())
        )


def test_safetensors_file(tmp_path: Path) -> None:
    sd = _state(5)
    save_file(sd, str(tmp_path / "tiny.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(
            RRDBMethod(**TINY, checkpoint=str(tmp_path / "tiny.safetensors"))(_lr()),
            RRDBMethod(**TINY, state_dict=sd)(_lr()),
            rtol=0,
            atol=0,
        )


def test_pickled_object_is_refused(tmp_path: Path) -> None:
    """weights_only=True: a checkpoint holding an arbitrary object does not load."""
    path = tmp_path / "evil.pth"
    torch.save({"params": _state(1), "extra": Path("/")}, path)
    with pytest.raises(Exception, match=r"(?i)weights_only|unsupported|global|tensors-only"):
        load_weights(path)


def test_strict_mismatch_names_checkpoint_size() -> None:
    sd = _state(1, num_feat=8, num_block=2, num_grow_ch=4)
    with pytest.raises(RuntimeError, match="'num_block': 2"):
        RRDBMethod(**TINY, state_dict=sd)


def test_missing_key_fails_strict() -> None:
    sd = _state(1)
    del sd["conv_last.bias"]
    with pytest.raises(RuntimeError, match=r"conv_last\.bias"):
        RRDBMethod(**TINY, state_dict=sd)


def test_checkpoint_and_state_dict_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either"):
        RRDBMethod(**TINY, checkpoint=tmp_path / "x.pth", state_dict=_state(1))


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RRDBMethod(**TINY, checkpoint="/nonexistent/dir/model.pth")


def test_missing_asset_names_fetch_command(isolated_home: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"`python -m bench assets fetch realesrgan-x4plus`"):
        RRDBMethod(checkpoint="realesrgan-x4plus")
    assert not checkpoint_available("realesrgan-x4plus")
    assert checkpoint_sha256("realesrgan-x4plus") is None


def test_fetch_command_asks_trust_for_unhashed_official_files(tmp_path: Path, monkeypatch) -> None:
    """esrgan-x4 is verified by the hash prefix of its published file name (no trust needed); a URL with neither a
    sha256 nor such a prefix needs --trust-on-first-use."""
    import yaml

    assert fetch_command("realesrgan-x4plus") == "python -m bench assets fetch realesrgan-x4plus"
    assert fetch_command("esrgan-x4") == "python -m bench assets fetch esrgan-x4"
    source = {"type": "url", "format": "basicsr-pth", "files": [{"role": "weights", "url": "https://h/x.pth"}]}
    asset = {"name": "unhashed", "kind": "rrdbnet", "description": "-", "license": "-", "paper": "-"}
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "assets": [{**asset, "sources": [source]}]}), encoding="utf-8")
    monkeypatch.setenv("BENCH_ASSETS_MANIFEST", str(path))
    assert fetch_command("unhashed") == "python -m bench assets fetch unhashed --trust-on-first-use"


def test_unknown_asset_is_keyerror(isolated_home: Path) -> None:
    with pytest.raises(KeyError, match="unknown asset"):
        RRDBMethod(**TINY, checkpoint="realesrgan-x4pluss")
    assert not checkpoint_available("realesrgan-x4pluss")


def test_stored_asset_loads_without_network(isolated_home: Path) -> None:
    """A converted asset in $BENCH_HOME/assets is found by name (as `bench assets fetch` leaves it)."""
    import hashlib
    import json

    sd = _state(6)
    stored = stored_path("realesrgan-x4plus")
    stored.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(stored))
    digest = hashlib.sha256(stored.read_bytes()).hexdigest()
    stored.with_suffix(".json").write_text(json.dumps({"name": "realesrgan-x4plus", "sha256": digest}))
    assert checkpoint_available("realesrgan-x4plus")
    assert checkpoint_sha256("realesrgan-x4plus") == digest
    method = RRDBMethod(**TINY, checkpoint="realesrgan-x4plus")
    with torch.no_grad():
        torch.testing.assert_close(method(_lr()), RRDBMethod(**TINY, state_dict=sd)(_lr()), rtol=0, atol=0)


def test_local_file_sha256(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "w.safetensors"
    save_file(_state(1), str(path))
    assert checkpoint_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert checkpoint_sha256(tmp_path / "absent.pth") is None


@pytest.mark.parametrize(
    ("ref", "is_path"),
    [("realesrgan-x4plus", False), ("esrgan-x4", False), ("w.pth", True), ("a/b", True), ("x.safetensors", True)],
)
def test_is_path_ref(ref: str, is_path: bool) -> None:
    assert is_path_ref(ref) is is_path
    assert is_path_ref(Path(ref)) is True


@pytest.mark.parametrize(
    ("arch", "expected"), [(TINY, {**TINY, "scale": 4}), ({**TINY, "scale": 2}, {**TINY, "scale": 2})]
)
def test_infer_args(arch: dict, expected: dict) -> None:
    assert infer_rrdbnet_args(_state(0, **arch)) == expected


def test_infer_args_rejects_other_nets() -> None:
    with pytest.raises(ValueError, match="BasicSR"):
        infer_rrdbnet_args({"weight": torch.zeros(1)})


def test_forward_is_unclamped_and_super_resolve_clamps() -> None:
    torch.manual_seed(0)
    method = RRDBMethod(**TINY).eval()
    with torch.no_grad():
        for p in method.parameters():
            p.mul_(2.0)
    lr = _lr()
    with torch.no_grad():
        raw = method(lr)
    sr = method.super_resolve(lr)
    assert raw.min() < 0 or raw.max() > 1  # the test would be vacuous otherwise
    torch.testing.assert_close(sr, raw.clamp(0, 1), rtol=0, atol=0)


@pytest.mark.slow
def test_real_weights_give_a_plausible_sr() -> None:
    """Real-ESRGAN x4plus from the user's asset cache (skipped when not fetched) on a 64x64 LR crop of astronaut.

    Measured: 22.76 dB against the HR crop (bicubic 24.86 dB: a GAN model trades PSNR for texture). Random or
    mis-mapped weights give well under 15 dB.
    """
    from skimage import data

    from bench.assets import is_stored
    from bench.data.imresize import imresize
    from bench.images import uint8_to_tensor
    from bench.methods.cards import build_method

    if not is_stored("realesrgan-x4plus"):
        pytest.skip("realesrgan-x4plus is not stored; run `python -m bench assets fetch realesrgan-x4plus`")
    hr = uint8_to_tensor(data.astronaut())[None][:, :, 100:356, 150:406]
    lr = imresize(hr, scale=0.25).clamp(0, 1)
    method = build_method("realesrgan-x4plus", tile=0)
    sr = method.super_resolve(lr)
    bicubic = build_method("bicubic").super_resolve(lr)

    def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
        return (10 * torch.log10(1 / (a - b).square().mean())).item()

    assert sr.shape == hr.shape
    assert 21.0 < psnr(sr, hr) < 25.0
    assert psnr(sr, hr) > psnr(bicubic, hr) - 4.0
    torch.testing.assert_close(method.super_resolve(lr), sr, rtol=0, atol=0)
