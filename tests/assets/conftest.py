"""Fixtures of the asset tests: a local HTTP server (ranges, PEP 691 pages) and tiny ncnn / checkpoint writers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.archs.rrdbnet import RRDBNet
from tests.loopback import serve

PEP691 = "application/vnd.pypi.simple.v1+json"


@dataclass
class LocalServer:
    """What the test server serves and what it saw. ``files``/``pages`` map URL paths to bytes / JSON objects."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    pages: dict[str, dict] = field(default_factory=dict)
    ignore_range: bool = False
    log: list[dict] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def requests_for(self, path: str) -> list[dict]:
        return [r for r in self.log if r["path"] == path]


def _handler(state: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # silence the default stderr log
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            # logged before answering, so the client cannot see the answer before the log has it
            state.log.append(
                {"path": self.path, "range": self.headers.get("Range"), "status": status, "sent": len(body)}
            )
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in state.pages:
                if PEP691 not in self.headers.get("Accept", ""):
                    return self._send(406, b"", {})
                return self._send(200, json.dumps(state.pages[path]).encode(), {"Content-Type": PEP691})
            if path not in state.files:
                return self._send(404, b"not found", {"Content-Type": "text/plain"})
            data = state.files[path]
            m = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range") or "")
            if m and not state.ignore_range:
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else len(data) - 1
                if start >= len(data):
                    return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}", "Accept-Ranges": "bytes"}
                return self._send(206, data[start : end + 1], headers)
            return self._send(200, data, {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"})

    return Handler


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    """A threaded HTTP server on 127.0.0.1 (random port) serving ``state.files``; stopped at teardown."""
    state = LocalServer()
    with serve(_handler(state)) as base:
        state.base = base
        yield state


# ---- tiny RRDBNet in ncnn format -------------------------------------------------------------------------------

TINY_ARCH = {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}
FP16_TAG = 0x01306B47


def tiny_rrdbnet(seed: int = 0) -> RRDBNet:
    torch.manual_seed(seed)
    net = RRDBNet(**TINY_ARCH)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
    return net


class _Graph:
    """A tiny ncnn graph builder; blobs consumed more than once get the Split layers ncnn requires."""

    def __init__(self) -> None:
        self.layers: list[list] = []  # [type, name, inputs, outputs, params]
        self.count = 0

    def add(self, type_: str, inputs: list[str], params: str = "", out: str | None = None) -> str:
        out = out or f"b{self.count}"
        self.layers.append([type_, f"{type_.lower()}_{self.count}", list(inputs), [out], params])
        self.count += 1
        return out

    def text(self) -> str:
        uses: dict[str, int] = {}
        for ly in self.layers:
            for b in ly[2]:
                uses[b] = uses.get(b, 0) + 1
        final: list[list] = []
        taken: dict[str, int] = {}
        for ly in self.layers:
            ins = []
            for b in ly[2]:
                if uses[b] > 1:
                    ins.append(f"{b}_s{taken.get(b, 0)}")
                    taken[b] = taken.get(b, 0) + 1
                else:
                    ins.append(b)
            final.append([ly[0], ly[1], ins, ly[3], ly[4]])
            for b in ly[3]:
                if uses.get(b, 0) > 1:
                    final.append(["Split", f"split_{b}", [b], [f"{b}_s{i}" for i in range(uses[b])], ""])
        blobs = {b for ly in final for b in ly[2] + ly[3]}
        lines = [
            f"{t} {n} {len(i)} {len(o)} {' '.join(i + o)} {p}".rstrip().replace("  ", " ") for t, n, i, o, p in final
        ]
        return f"7767517\n{len(lines)} {len(blobs)}\n" + "\n".join(lines) + "\n"


def write_ncnn(state_dict: dict[str, torch.Tensor], param: Path, bin_: Path, *, fp16: bool) -> None:
    """Write an RRDBNet state dict as a runnable ncnn ``.param``/``.bin`` pair shaped like the Real-ESRGAN exports."""
    num_block = len({k.split(".")[1] for k in state_dict if k.startswith("body.")})
    payload = bytearray()
    g = _Graph()
    lrelu = " 9=2 -23310=1,2.000000e-01"

    def conv(x: str | list[str], name: str, act: bool, out: str | None = None) -> str:
        nonlocal payload
        w, b = state_dict[f"{name}.weight"].numpy(), state_dict[f"{name}.bias"].numpy()
        if fp16:
            payload += FP16_TAG.to_bytes(4, "little") + w.astype("<f2").tobytes()
            payload += b"\0" * (-len(payload) % 4)
        else:
            payload += (0).to_bytes(4, "little") + w.astype("<f4").tobytes()
        payload += b.astype("<f4").tobytes()
        if isinstance(x, list):
            x = g.add("Concat", x, "0=0")
        return g.add("Convolution", [x], f"0={w.shape[0]} 1=3 4=1 5=1 6={w.size}" + (lrelu if act else ""), out)

    g.add("Input", [], "", "data")
    first = conv("data", "conv_first", False)
    feat = first
    for blk in range(num_block):
        cur = feat
        for k in (1, 2, 3):
            p = f"body.{blk}.rdb{k}"
            xs = [cur]
            for j in (1, 2, 3, 4):
                xs.append(conv(xs if len(xs) > 1 else cur, f"{p}.conv{j}", True))
            x5 = conv(xs, f"{p}.conv5", False)
            cur = g.add("Eltwise", [x5, cur], "0=1 -23301=2,2.000000e-01,1.000000e+00")
        feat = g.add("Eltwise", [cur, feat], "0=1 -23301=2,2.000000e-01,1.000000e+00")
    body = conv(feat, "conv_body", False)
    feat = g.add("BinaryOp", [first, body], "0=0")
    for name in ("conv_up1", "conv_up2"):
        feat = conv(g.add("Interp", [feat], "0=1 1=2.000000e+00 2=2.000000e+00"), name, True)
    feat = conv(feat, "conv_hr", True)
    conv(feat, "conv_last", False, out="output")
    param.write_text(g.text(), encoding="utf-8")
    bin_.write_bytes(bytes(payload))


@pytest.fixture
def tiny_ncnn(tmp_path: Path):
    """(state_dict, param_path, bin_path, fp16) factory for a tiny RRDBNet (num_block=1, 8 features)."""

    def make(fp16: bool = True, seed: int = 0):
        sd = {k: v.detach().clone() for k, v in tiny_rrdbnet(seed).state_dict().items()}
        tag = "fp16" if fp16 else "fp32"
        param, bin_ = tmp_path / f"tiny-{tag}.param", tmp_path / f"tiny-{tag}.bin"
        write_ncnn(sd, param, bin_, fp16=fp16)
        return sd, param, bin_

    return make


def fp16_rounded(t: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(t.numpy().astype(np.float16).astype(np.float32))
