"""Local checkpoints: BasicSR ``.pth`` (params_ema / params), safetensors, and refusal of arbitrary pickles."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from bench.archs.rrdbnet import RRDBNet
from bench.assets import load_checkpoint, load_state_dict
from bench.assets.errors import ConversionError

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def _sd(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return RRDBNet(**TINY).state_dict()


@pytest.mark.parametrize("layout", ["params_ema", "params", "plain", "module"])
def test_basicsr_pth_layouts(tmp_path, layout):
    ema, raw = _sd(0), _sd(1)
    if layout == "params_ema":
        obj = {"params": raw, "params_ema": ema}
        want = ema
    elif layout == "params":
        obj = {"params": raw}
        want = raw
    elif layout == "plain":
        obj = raw
        want = raw
    else:
        obj = {"params": {f"module.{k}": v for k, v in raw.items()}}
        want = raw
    path = tmp_path / "net_g.pth"
    torch.save(obj, path)
    out = load_checkpoint(path)
    assert out.keys() == want.keys()
    assert all(torch.equal(out[k], want[k]) for k in want)
    RRDBNet(**TINY).load_state_dict(out, strict=True)
    # load_state_dict accepts the path in place of an asset name
    via_api = load_state_dict(path)
    assert all(torch.equal(via_api[k], want[k]) for k in want)


def test_safetensors_file(tmp_path):
    sd = _sd(0)
    save_file(sd, str(tmp_path / "w.safetensors"))
    out = load_state_dict(str(tmp_path / "w.safetensors"))
    assert all(torch.equal(out[k], sd[k]) for k in sd)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo owned > /dev/null",))


def test_arbitrary_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"params": {"w": torch.zeros(1)}, "x": _Evil()}, path)
    with pytest.raises(ConversionError, match="tensors-only"):
        load_checkpoint(path)


def test_missing_and_non_tensor_entries(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.pth")
    torch.save({"params": {"w": torch.zeros(1), "step": 3}}, tmp_path / "mixed.pth")
    with pytest.raises(ConversionError, match="'step' is a int"):
        load_checkpoint(tmp_path / "mixed.pth")
