"""The ncnn reader and RRDBNet converter on tiny models written by the test (fp16 and fp32 blobs)."""

from __future__ import annotations

import pytest
import torch

from bench.archs.rrdbnet import RRDBNet
from bench.assets.errors import ConversionError
from bench.assets.layouts import check_layout
from bench.assets.ncnn import load_ncnn_rrdbnet, parse_param, rrdbnet_names

TINY = {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def test_names_order_and_count():
    names = rrdbnet_names(23)
    assert len(names) == 351
    assert names[:3] == ["conv_first", "body.0.rdb1.conv1", "body.0.rdb1.conv2"]
    assert names[15] == "body.0.rdb3.conv5" and names[16] == "body.1.rdb1.conv1"
    assert names[-5:] == ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


@pytest.mark.parametrize("fp16", [True, False], ids=["fp16", "fp32"])
def test_converted_weights_equal_the_originals(tiny_ncnn, fp16):
    sd, param, bin_ = tiny_ncnn(fp16=fp16)
    out = load_ncnn_rrdbnet(param, bin_)
    assert set(out) == set(sd)
    for k, v in sd.items():
        want = v.half().float() if (fp16 and k.endswith(".weight")) else v  # biases are always fp32
        assert out[k].dtype == torch.float32
        assert torch.equal(out[k], want), k
    if fp16:  # the rounding really happened: not bit-identical to the fp32 originals
        assert not torch.equal(out["conv_first.weight"], sd["conv_first.weight"])
    facts = check_layout("rrdbnet", out, {"scale": 4})
    assert facts["arch"] == TINY
    net = RRDBNet(**TINY)
    net.load_state_dict(out, strict=True)


@pytest.mark.parametrize("delta", [-1, -4, 1, 4], ids=["cut1", "cut4", "extra1", "extra4"])
def test_truncated_or_extra_bytes_raise(tiny_ncnn, delta):
    _, param, bin_ = tiny_ncnn(fp16=True)
    data = bin_.read_bytes()
    bin_.write_bytes(data[:delta] if delta < 0 else data + b"\0" * delta)
    with pytest.raises(ConversionError, match=r"truncated|left after"):
        load_ncnn_rrdbnet(param, bin_)


def test_unknown_weight_tag_raises(tiny_ncnn):
    _, param, bin_ = tiny_ncnn(fp16=False)
    data = bytearray(bin_.read_bytes())
    data[0:4] = (0xDEADBEEF).to_bytes(4, "little")
    bin_.write_bytes(bytes(data))
    with pytest.raises(ConversionError, match="unknown weight tag 0xDEADBEEF"):
        load_ncnn_rrdbnet(param, bin_)


def test_wrong_activation_pattern_is_detected(tiny_ncnn):
    """A graph whose convs are in another order shows up as LeakyReLU flags in the wrong places."""
    _, param, bin_ = tiny_ncnn(fp16=True)
    text = param.read_text().replace(" 9=2 -23310=1,2.000000e-01", "", 1)  # drop the fused act of rdb1.conv1
    param.write_text(text)
    with pytest.raises(ConversionError, match=r"body\.0\.rdb1\.conv1"):
        load_ncnn_rrdbnet(param, bin_)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("123\n1 1\nInput in 0 1 data\n", "not an ncnn param"),
        ("7767517\n2 1\nInput in 0 1 data\n", "declares 2 layers"),
        ("7767517\n1 1\nInput in 0\n", "needs 'Type name n_in n_out'"),
        ("7767517\n1 1\nConvolution c 1 1 a\n", "fewer blob names"),
        ("7767517\n1 2\nConvolution c 1 1 a b 0=x\n", "bad number"),
        ("7767517\n1 2\nConvolution c 1 1 a b -23310=2,0.2\n", "declares 2 values"),
        ("7767517\n1 2\nConvolution c 1 1 a b 0\n", "not k=v"),
    ],
)
def test_malformed_param_raises(text, match):
    with pytest.raises(ConversionError, match=match):
        parse_param(text, "bad.param")


def test_param_arrays_and_numbers():
    (layer,) = parse_param("7767517\n1 2\nConvolution c 1 1 a b 0=64 1=3 9=2 -23310=1,2.000000e-01\n")
    assert layer.inputs == ("a",) and layer.outputs == ("b",)
    assert layer.params == {0: 64, 1: 3, 9: 2, 10: [0.2]}


def test_not_an_rrdbnet_graph(tiny_ncnn, tmp_path):
    _, param, bin_ = tiny_ncnn(fp16=False)
    lines = param.read_text().splitlines()
    convs = [i for i, ln in enumerate(lines) if ln.startswith("Convolution")]
    # drop the last convolution (and its bytes): 20 convs is not 15 * n + 6
    last = lines[convs[-1]]
    size = int(next(t for t in last.split() if t.startswith("6=")).split("=")[1])
    out_ch = int(next(t for t in last.split() if t.startswith("0=")).split("=")[1])
    del lines[convs[-1]]
    lines[1] = f"{len(lines) - 2} 99"
    param.write_text("\n".join(lines) + "\n")
    bin_.write_bytes(bin_.read_bytes()[: -(4 + 4 * size + 4 * out_ch)])
    with pytest.raises(ConversionError, match="not 15 \\* num_block \\+ 6"):
        load_ncnn_rrdbnet(param, bin_)


@pytest.mark.parametrize("fp16", [True, False], ids=["fp16", "fp32"])
def test_tiny_model_matches_the_ncnn_runtime(tiny_ncnn, fp16):
    """The files the test writes are real ncnn models: the runtime and the converted torch model agree."""
    ncnn = pytest.importorskip("ncnn")
    import numpy as np

    _, param, bin_ = tiny_ncnn(fp16=fp16)
    net = RRDBNet(**TINY).eval()
    net.load_state_dict(load_ncnn_rrdbnet(param, bin_), strict=True)
    x = torch.rand(3, 16, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = net(x[None])[0].numpy()
    runtime = ncnn.Net()
    runtime.opt.use_vulkan_compute = False
    runtime.opt.use_fp16_storage = runtime.opt.use_fp16_packed = runtime.opt.use_fp16_arithmetic = False
    runtime.opt.num_threads = 1
    assert runtime.load_param(str(param)) == 0 and runtime.load_model(str(bin_)) == 0
    data = np.ascontiguousarray(x.numpy())  # keep a reference: ncnn.Mat does not own numpy memory
    with runtime.create_extractor() as ex:
        ex.input("data", ncnn.Mat(data))
        ret, out = ex.extract("output")
    assert ret == 0
    got = np.array(out)
    assert got.shape == want.shape == (3, 64, 48)
    assert np.abs(got - want).max() <= 1e-5
