"""Foreign RRDBNet key layouts: a tiny generator written in each original architecture reproduces its own output
after loading through the renaming loader (to 1e-6), from .pth and .safetensors files; bad keys are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from bench.archs.rrdbnet_keys import RRDB_KEY_LAYOUTS, KeyLayoutError, detect_layout, to_basicsr
from bench.methods.rrdb import RRDBMethod

TINY = {"num_feat": 12, "num_block": 2, "num_grow_ch": 8}


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2)


class _DenseBlock(nn.Module):
    """The residual dense block, written independently of bench.archs; ``wrap`` puts each conv in a Sequential with
    its activation as the original ESRGAN code did (keys ``convJ.0.weight``)."""

    def __init__(self, nf: int, gc: int, wrap: bool) -> None:
        super().__init__()
        for j in range(1, 6):
            conv = nn.Conv2d(nf + (j - 1) * gc, gc if j < 5 else nf, 3, 1, 1)
            if wrap:
                conv = nn.Sequential(conv, _lrelu()) if j < 5 else nn.Sequential(conv)
            setattr(self, f"conv{j}", conv)
        self.wrap = wrap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for j in range(1, 6):
            out = getattr(self, f"conv{j}")(torch.cat(feats, 1))
            if not self.wrap and j < 5:
                out = F.leaky_relu(out, 0.2)
            feats.append(out)
        return feats[-1] * 0.2 + x


class _RRDB(nn.Module):
    def __init__(self, nf: int, gc: int, wrap: bool) -> None:
        super().__init__()
        self.RDB1, self.RDB2, self.RDB3 = (_DenseBlock(nf, gc, wrap) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x


class RRDBTrunkNet(nn.Module):
    """ESRGAN-repository / mmsr / KAIR naming: conv_first, RRDB_trunk, trunk_conv, upconv1/2, HRconv, conv_last."""

    def __init__(self, nf: int, nb: int, gc: int) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
        self.RRDB_trunk = nn.Sequential(*[_RRDB(nf, gc, wrap=False) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.HRconv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
        for up in (self.upconv1, self.upconv2):
            fea = F.leaky_relu(up(F.interpolate(fea, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.HRconv(fea), 0.2))


class _Shortcut(nn.Module):
    def __init__(self, sub: nn.Sequential) -> None:
        super().__init__()
        self.sub = sub

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sub(x)


class OldESRGANNet(nn.Module):
    """The original ESRGAN ``nn.Sequential`` (keys ``model.0``, ``model.1.sub.N.RDBK.convJ.0``, ..., ``model.10``)."""

    def __init__(self, nf: int, nb: int, gc: int) -> None:
        super().__init__()
        trunk = nn.Sequential(*[_RRDB(nf, gc, wrap=True) for _ in range(nb)], nn.Conv2d(nf, nf, 3, 1, 1))
        up = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(nf, nf, 3, 1, 1), _lrelu()]
        up2 = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(nf, nf, 3, 1, 1), _lrelu()]
        hr = [nn.Conv2d(nf, nf, 3, 1, 1), _lrelu(), nn.Conv2d(nf, 3, 3, 1, 1)]
        self.model = nn.Sequential(nn.Conv2d(3, nf, 3, 1, 1), _Shortcut(trunk), *up, *up2, *hr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _foreign(cls: type[nn.Module], seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = cls(TINY["num_feat"], TINY["num_block"], TINY["num_grow_ch"]).eval()
    with torch.no_grad():  # weights large enough that a misplaced tensor shows in the output
        for p in net.parameters():
            p.mul_(2.0)
    return net


def _lr() -> torch.Tensor:
    return torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(7))


CASES = [(RRDBTrunkNet, "rrdb_trunk"), (OldESRGANNet, "esrgan_old")]


@pytest.mark.parametrize(("cls", "layout"), CASES)
@pytest.mark.parametrize("fmt", ["pth", "pth_params", "safetensors"])
def test_foreign_layout_reproduces_reference_output(tmp_path: Path, cls, layout: str, fmt: str) -> None:
    net = _foreign(cls, seed=3)
    with torch.no_grad():
        want = net(_lr())
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    assert detect_layout(sd) == layout
    path = tmp_path / ("w.safetensors" if fmt == "safetensors" else "w.pth")
    if fmt == "safetensors":
        save_file(sd, str(path))
    else:
        torch.save({"params": sd} if fmt == "pth_params" else sd, path)
    method = RRDBMethod(**TINY, checkpoint=str(path))
    assert method.key_layout == layout
    with torch.no_grad():
        got = method(_lr())
    assert got.shape == (1, 3, 64, 64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_every_layout_renames_onto_the_basicsr_state_dict() -> None:
    """Each foreign layout's renamed keys are exactly BasicSR RRDBNet's, with the same shapes."""
    from bench.archs.rrdbnet import RRDBNet

    want = {k: v.shape for k, v in RRDBNet(**TINY).state_dict().items()}
    for cls, layout in CASES:
        out, found = to_basicsr(_foreign(cls, seed=2).state_dict())
        assert found == layout and {k: v.shape for k, v in out.items()} == want


def test_basicsr_keys_pass_through_unchanged() -> None:
    from bench.archs.rrdbnet import RRDBNet

    sd = RRDBNet(**TINY).state_dict()
    out, layout = to_basicsr(sd)
    assert layout == "basicsr" and list(out) == list(sd) and all(out[k] is sd[k] for k in sd)
    assert set(RRDB_KEY_LAYOUTS.names()) == {"basicsr", "rrdb_trunk", "esrgan_old"}


def test_unknown_and_stray_keys_are_refused() -> None:
    with pytest.raises(KeyLayoutError, match="known key layout"):
        to_basicsr({"encoder.weight": torch.zeros(1)})
    sd = _foreign(RRDBTrunkNet, seed=1).state_dict()
    sd["attention.weight"] = torch.zeros(1)
    with pytest.raises(KeyLayoutError, match=r"attention\.weight"):
        to_basicsr(sd)
    with pytest.raises(KeyLayoutError, match="checkpoint state_dict"):
        RRDBMethod(**TINY, state_dict=sd)
    old = _foreign(OldESRGANNet, seed=1).state_dict()
    del old["model.1.sub.0.RDB1.conv1.0.weight"], old["model.1.sub.0.RDB1.conv1.0.bias"]
    with pytest.raises(KeyLayoutError):
        to_basicsr(old)
