"""Read ncnn models (``.param`` + ``.bin``) and convert RRDBNet graphs to BasicSR state dicts.

The ncnn files of Real-ESRGAN / RealSR (as shipped by ``realesrgan-ncnn-vulkan``, ``realsr-ncnn-vulkan`` and the PyPI
carriers) hold an RRDBNet x4: ``conv_first``, ``num_block`` x 3 x 5 dense-block convs, ``conv_body``, ``conv_up1``,
``conv_up2``, ``conv_hr``, ``conv_last`` -- ``15 * num_block + 6`` convolutions, in this order in the file.

Format (ncnn "7767517"):

- ``.param`` is text: the magic ``7767517``; ``layer_count blob_count``; then one layer a line,
  ``Type name n_in n_out in_blobs... out_blobs... k=v ...``. A key ``-233NN=count,v1,...`` is the array of id ``NN``.
  Convolution ids: 0 num_output, 1 kernel, 2 dilation, 3 stride, 4 pad, 5 bias_term, 6 weight_data_size,
  8 int8 scale term, 9 fused activation (2 = LeakyReLU, slope in array 10).
- ``.bin`` holds, for each Convolution in file order, a 4-byte tag then the weights (OIHW), then the bias. Tag
  ``0x01306B47`` means float16 weights padded to 4 bytes, tag 0 float32. Biases are raw float32 without a tag.
  A correct reader consumes the file to its last byte.

The converted weights are the values of the file (float16-rounded when the file is float16), stored as float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.assets import CONVERTERS
from bench.assets.base import Converter
from bench.assets.errors import ConversionError

logger = logging.getLogger(__name__)

MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0
TAG_INT8 = 0x000D4B38
LEAKY_RELU = 2
RDB_ACTIVATED = (1, 2, 3, 4)  # conv1..conv4 of each dense block carry a fused LeakyReLU(0.2)


@dataclass(frozen=True)
class NcnnLayer:
    """One line of a ``.param`` file: ``params`` maps an id to an int, a float or a list (for ``-233NN`` arrays)."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, Any] = field(default_factory=dict)


def _number(text: str, where: str) -> int | float:
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise ConversionError(f"{where}: bad number {text!r}") from None


def parse_param(text: str, source: str = "<param>") -> list[NcnnLayer]:
    """Parse the text of a ``.param`` file; :class:`ConversionError` names the line of a malformed file."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != str(MAGIC):
        raise ConversionError(f"{source}: not an ncnn param file (first line must be {MAGIC})")
    if len(lines) < 2:
        raise ConversionError(f"{source}: missing the 'layer_count blob_count' line")
    head = lines[1].split()
    if len(head) != 2:
        raise ConversionError(f"{source}:2: expected 'layer_count blob_count', got {lines[1]!r}")
    layer_count = int(_number(head[0], f"{source}:2"))
    layers = []
    for lineno, line in enumerate(lines[2:], start=3):
        where = f"{source}:{lineno}"
        tok = line.split()
        if len(tok) < 4:
            raise ConversionError(f"{where}: a layer line needs 'Type name n_in n_out', got {line!r}")
        n_in, n_out = int(_number(tok[2], where)), int(_number(tok[3], where))
        blobs_end = 4 + n_in + n_out
        if len(tok) < blobs_end:
            raise ConversionError(f"{where}: {n_in} inputs and {n_out} outputs declared, fewer blob names given")
        params: dict[int, Any] = {}
        for kv in tok[blobs_end:]:
            key, sep, value = kv.partition("=")
            if not sep:
                raise ConversionError(f"{where}: parameter {kv!r} is not k=v")
            k = int(_number(key, where))
            if k <= -23300:
                items = value.split(",")
                count = int(_number(items[0], where))
                if len(items) - 1 != count:
                    raise ConversionError(f"{where}: array {key} declares {count} values, has {len(items) - 1}")
                params[-k - 23300] = [_number(v, where) for v in items[1:]]
            else:
                params[k] = _number(value, where)
        layers.append(NcnnLayer(tok[0], tok[1], tuple(tok[4 : 4 + n_in]), tuple(tok[4 + n_in : blobs_end]), params))
    if len(layers) != layer_count:
        raise ConversionError(f"{source}: header declares {layer_count} layers, the file has {len(layers)}")
    return layers


@dataclass(frozen=True)
class NcnnConv:
    """A convolution read from an ncnn model: weight (O, I, k, k) and bias (O,) as float32 numpy arrays."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    activation: int
    activation_params: tuple[float, ...]
    stored_fp16: bool
    geometry: tuple[int, int, int] = (1, 1, 0)  # dilation, stride, pad


def read_convolutions(layers: list[NcnnLayer], data: bytes, source: str = "<bin>") -> list[NcnnConv]:
    """Read the weights of every Convolution of ``layers`` from the ``.bin`` bytes ``data``, in file order.

    Only graphs whose weighted layers are all Convolutions are supported (other weighted layers would shift the
    offsets); the whole file must be consumed.
    """
    weighted = {"InnerProduct", "ConvolutionDepthWise", "Deconvolution", "BatchNorm", "Scale", "PReLU", "Embed"}
    bad = sorted({ly.type for ly in layers} & weighted)
    if bad:
        raise ConversionError(f"{source}: layers of type {bad} carry weights this reader does not handle")
    convs = []
    pos = 0
    for ly in layers:
        if ly.type != "Convolution":
            continue
        p = ly.params
        num_output, kernel = int(p.get(0, 0)), int(p.get(1, 0))
        kernel_h = int(p.get(11, kernel))
        size = int(p.get(6, 0))
        if num_output <= 0 or kernel <= 0 or size <= 0:
            raise ConversionError(f"{source}: convolution {ly.name} lacks num_output/kernel/weight_data_size")
        if int(p.get(8, 0)):
            raise ConversionError(f"{source}: convolution {ly.name} is int8-quantised; not supported")
        if size % (num_output * kernel * kernel_h):
            raise ConversionError(f"{source}: convolution {ly.name}: weight_data_size {size} is not O*I*k*k")
        in_ch = size // (num_output * kernel * kernel_h)
        if pos + 4 > len(data):
            raise ConversionError(f"{source}: truncated at convolution {ly.name} (offset {pos})")
        tag = int.from_bytes(data[pos : pos + 4], "little")
        pos += 4
        if tag == TAG_FP16:
            nbytes = size * 2
            if pos + nbytes > len(data):
                raise ConversionError(f"{source}: truncated in the weights of {ly.name}")
            w = np.frombuffer(data, dtype="<f2", count=size, offset=pos).astype(np.float32)
            pos += (nbytes + 3) // 4 * 4
        elif tag == TAG_FP32:
            nbytes = size * 4
            if pos + nbytes > len(data):
                raise ConversionError(f"{source}: truncated in the weights of {ly.name}")
            w = np.frombuffer(data, dtype="<f4", count=size, offset=pos).astype(np.float32)
            pos += nbytes
        elif tag == TAG_INT8:
            raise ConversionError(f"{source}: convolution {ly.name} has int8 weights; not supported")
        else:
            raise ConversionError(
                f"{source}: unknown weight tag 0x{tag:08X} at convolution {ly.name} (offset {pos - 4})"
            )
        bias = None
        if int(p.get(5, 0)):
            if pos + num_output * 4 > len(data):
                raise ConversionError(f"{source}: truncated in the bias of {ly.name}")
            bias = np.frombuffer(data, dtype="<f4", count=num_output, offset=pos).astype(np.float32)
            pos += num_output * 4
        act = int(p.get(9, 0))
        act_params = tuple(float(v) for v in p.get(10, []))
        geometry = (int(p.get(2, 1)), int(p.get(3, 1)), int(p.get(4, 0)))
        w = w.reshape(num_output, in_ch, kernel_h, kernel)
        convs.append(NcnnConv(ly.name, w, bias, act, act_params, tag == TAG_FP16, geometry))
    if pos != len(data):
        raise ConversionError(f"{source}: {len(data) - pos} bytes left after the last convolution (file {len(data)} B)")
    return convs


def rrdbnet_names(num_block: int) -> list[str]:
    """BasicSR module names of RRDBNet's convolutions, in forward (and ncnn file) order."""
    names = ["conv_first"]
    names += [f"body.{b}.rdb{k}.conv{j}" for b in range(num_block) for k in (1, 2, 3) for j in (1, 2, 3, 4, 5)]
    return [*names, "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def _expects_lrelu(name: str) -> bool:
    if name.startswith("body."):
        return int(name[-1]) in RDB_ACTIVATED
    return name in ("conv_up1", "conv_up2", "conv_hr")


def rrdbnet_state_dict(
    layers: list[NcnnLayer], convs: list[NcnnConv], source: str = "<ncnn>"
) -> dict[str, torch.Tensor]:
    """Map the convolutions of an ncnn RRDBNet graph to BasicSR names; checks count, fused activations and Interps."""
    n = len(convs)
    if n < 21 or (n - 6) % 15:
        raise ConversionError(f"{source}: {n} convolutions is not 15 * num_block + 6 (not an RRDBNet graph)")
    interps = [ly for ly in layers if ly.type == "Interp"]
    if len(interps) != 2 or any(int(ly.params.get(0, 0)) != 1 for ly in interps):
        raise ConversionError(f"{source}: an RRDBNet x4 graph has 2 nearest Interp layers, found {len(interps)}")
    names = rrdbnet_names((n - 6) // 15)
    out: dict[str, torch.Tensor] = {}
    for name, conv in zip(names, convs, strict=True):
        lrelu = conv.activation == LEAKY_RELU
        if lrelu != _expects_lrelu(name) or (lrelu and not np.isclose(conv.activation_params[:1], 0.2).all()):
            raise ConversionError(
                f"{source}: convolution {conv.name} mapped to {name} has activation {conv.activation} "
                f"{conv.activation_params}; expected {'LeakyReLU(0.2)' if _expects_lrelu(name) else 'none'}"
            )
        if conv.geometry != (1, 1, 1) or conv.weight.shape[-2:] != (3, 3):
            raise ConversionError(
                f"{source}: convolution {conv.name} ({name}) is not a 3x3 conv with dilation 1, stride 1, pad 1"
            )
        if conv.bias is None:
            raise ConversionError(f"{source}: convolution {conv.name} ({name}) has no bias")
        out[f"{name}.weight"] = torch.from_numpy(conv.weight.copy())
        out[f"{name}.bias"] = torch.from_numpy(conv.bias.copy())
    return out


def load_ncnn_rrdbnet(param: str | Path, bin_: str | Path) -> dict[str, torch.Tensor]:
    """Read an ncnn RRDBNet model and return its BasicSR state dict (float32)."""
    param, bin_ = Path(param), Path(bin_)
    try:
        text = param.read_bytes().decode("ascii")
    except UnicodeDecodeError as exc:
        raise ConversionError(f"{param.name}: not a text ncnn param file ({exc.reason} at byte {exc.start})") from None
    layers = parse_param(text, param.name)
    convs = read_convolutions(layers, bin_.read_bytes(), bin_.name)
    fp16 = sum(c.stored_fp16 for c in convs)
    logger.info("%s: %d convolutions (%d float16, %d float32)", bin_.name, len(convs), fp16, len(convs) - fp16)
    return rrdbnet_state_dict(layers, convs, param.name)


@CONVERTERS.register("ncnn-rrdbnet")
class NcnnRRDBNet(Converter):
    """An ncnn ``.param``/``.bin`` pair holding an RRDBNet (Real-ESRGAN, RealSR) -> BasicSR keys, float32."""

    roles = ("param", "bin")
    kinds = ("rrdbnet",)

    def convert(self, files, spec):
        return load_ncnn_rrdbnet(files["param"], files["bin"])
