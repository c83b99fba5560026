"""Fixtures of the data tests: a local HTTP server (ranges, a cut first response) and tiny replicas of every manifest
dataset, built in the dataset's real layout and file names (tiny random PNGs), zipped like the official archives."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.loopback import serve

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "datasets"


@dataclass
class Server:
    """What the server serves (URL path -> bytes) and what it saw; ``cut_first`` paths get a truncated first answer."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    cut_first: set[str] = field(default_factory=set)
    log: list[dict] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def requests_for(self, path: str) -> list[dict]:
        return [r for r in self.log if r["path"] == path]


def _handler(state: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path not in state.files:
                state.log.append({"path": path, "range": None, "status": 404, "sent": 0})
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = state.files[path]
            m = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
            start = int(m.group(1)) if m else 0
            body = data[start:]
            cut = path in state.cut_first and not state.requests_for(path)
            sent = len(body) // 2 if cut else len(body)
            status = 206 if m else 200
            state.log.append({"path": path, "range": self.headers.get("Range"), "status": status, "sent": sent})
            self.send_response(206 if m else 200)
            if m:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.wfile.write(body[:sent])
            if cut:  # the connection drops mid-body
                self.wfile.flush()
                self.close_connection = True

    return Handler


@pytest.fixture
def kit():
    """This module, for its helpers: ``kit.build_replica(name)``, ``kit.write_replica_manifest(...)``, ..."""
    import sys

    return sys.modules[__name__]


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()
    with serve(_handler(state)) as base:
        state.base = base
        yield state


# ---------------------------------------------------------------------------------------------------- images
def png(h: int, w: int, seed: int) -> tuple[bytes, np.ndarray]:
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue(), arr


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@dataclass
class Replica:
    """A tiny copy of a dataset: its archives (file name -> bytes) and the pixels expected per scale and image."""

    name: str
    archives: dict[str, bytes]
    hr: dict[int, dict[str, np.ndarray]]  # scale -> image -> HR array (None-less: sets with ground truth)
    lr: dict[int, dict[str, np.ndarray]]  # scale -> image -> LR array (empty when LR is synthesised)

    def sha(self, file: str) -> str:
        return hashlib.sha256(self.archives[file]).hexdigest()


HR_H, HR_W = 24, 36  # a multiple of 2, 3 and 4


def _pair(seed: int, scale: int) -> tuple[tuple[bytes, np.ndarray], tuple[bytes, np.ndarray]]:
    return png(HR_H, HR_W, seed), png(HR_H // scale, HR_W // scale, seed + 1000)


def build_replica(name: str) -> Replica:
    """The replica of manifest dataset ``name`` in its real layout (see the manifests' patterns and assumptions)."""
    hr: dict[int, dict[str, np.ndarray]] = {}
    lr: dict[int, dict[str, np.ndarray]] = {}
    if name in ("div2k-train", "div2k-val"):
        ids = ["0001", "0002", "0003"] if name == "div2k-train" else ["0801", "0802", "0803"]
        folder = "DIV2K_train_HR" if name == "div2k-train" else "DIV2K_valid_HR"
        members = {}
        for i, k in enumerate(ids):
            data, arr = png(HR_H + 2, HR_W + 3, i)  # not a multiple of 4: modcropped
            members[f"{folder}/{k}.png"] = data
            for s in (2, 3, 4):
                hr.setdefault(s, {})[k] = arr[: (HR_H + 2) // s * s, : (HR_W + 3) // s * s]
        return Replica(name, {f"{folder}.zip": zip_bytes(members)}, hr, lr)
    if name == "div2k-val-bicubic-x4":
        hr_m, lr_m = {}, {}
        for i, k in enumerate(["0801", "0802"]):
            (h, ha), (lo, la) = _pair(i, 4)
            hr_m[f"DIV2K_valid_HR/{k}.png"] = h
            lr_m[f"DIV2K_valid_LR_bicubic/X4/{k}x4.png"] = lo
            hr.setdefault(4, {})[k], lr.setdefault(4, {})[k] = ha, la
        return Replica(
            name, {"DIV2K_valid_HR.zip": zip_bytes(hr_m), "DIV2K_valid_LR_bicubic_X4.zip": zip_bytes(lr_m)}, hr, lr
        )
    if name == "ntire20-t1-val":
        lr_m, gt_m = {}, {}
        for i, k in enumerate(["0801", "0802"]):
            (h, ha), (lo, la) = _pair(i, 4)
            gt_m[f"track1-valid-gt/{k}.png"] = h
            lr_m[f"{k}.png"] = lo  # flat: the archive unpacks with -d Corrupted-va-x
            hr.setdefault(4, {})[k], lr.setdefault(4, {})[k] = ha, la
        return Replica(name, {"Corrupted-va-x.zip": zip_bytes(lr_m), "track1-valid-gt.zip": zip_bytes(gt_m)}, hr, lr)
    if name == "ntire20-t2-val":
        lr_m = {}
        for i, k in enumerate(["0001", "0002", "0003"]):
            data, arr = png(7 + i, 9, i)  # real smartphone LR, any size
            lr_m[f"{k}.png"] = data
            lr.setdefault(4, {})[k] = arr
        return Replica(name, {"DPEDiphone-va.zip": zip_bytes(lr_m)}, hr, lr)
    if name == "aim19-t2-val":
        lr_m, gt_m = {}, {}
        for i, k in enumerate(["0801", "0802"]):
            (h, ha), (lo, la) = _pair(i, 4)
            gt_m[f"valid-gt-clean/{k}.png"] = h
            lr_m[f"valid-input-noisy/{k}.png"] = lo
            hr.setdefault(4, {})[k], lr.setdefault(4, {})[k] = ha, la
        return Replica(name, {"valid-input-noisy.zip": zip_bytes(lr_m), "valid-gt-clean.zip": zip_bytes(gt_m)}, hr, lr)
    if name == "realsr-v3":
        m = {}
        for c, cam in enumerate(("Canon", "Nikon")):
            for j in (1, 2):
                k = f"{cam}_{j:03d}"
                for s in (2, 3, 4):
                    (h, ha), (lo, la) = _pair(100 * s + 10 * c + j, s)
                    m[f"RealSR(V3)/{cam}/Test/{s}/{k}_HR.png"] = h
                    m[f"RealSR(V3)/{cam}/Test/{s}/{k}_LR{s}.png"] = lo
                    hr.setdefault(s, {})[k], lr.setdefault(s, {})[k] = ha, la
        return Replica(name, {"RealSR(V3).zip": zip_bytes(m)}, hr, lr)
    if name == "drealsr":
        m = {}
        for s in (2, 3, 4):
            for j, k in enumerate(["canon_1", "sony_7"]):
                (h, ha), (lo, la) = _pair(10 * s + j, s)
                m[f"DRealSR/Test_x{s}/test_HR/{k}_x1.png"] = h
                m[f"DRealSR/Test_x{s}/test_LR/{k}_x{s}.png"] = lo
                hr.setdefault(s, {})[k], lr.setdefault(s, {})[k] = ha, la
        return Replica(name, {"DRealSR.zip": zip_bytes(m)}, hr, lr)
    if name == "super":
        m = {}
        for j, k in enumerate(["scene01", "scene02"]):
            h, ha = png(HR_H, HR_W, j)
            m[f"SupER/HR/{k}.png"] = h
            for s in (2, 3, 4):
                lo, la = png(HR_H // s, HR_W // s, 100 * s + j)
                m[f"SupER/LR_x{s}/{k}.png"] = lo
                hr.setdefault(s, {})[k], lr.setdefault(s, {})[k] = ha, la
        return Replica(name, {"SupER.zip": zip_bytes(m)}, hr, lr)
    if name == "imagepairs":
        m = {}
        for j, k in enumerate(["a", "b"]):
            (h, ha), (lo, la) = _pair(j, 2)
            m[f"ImagePairs/test/HR/{k}.png"] = h
            m[f"ImagePairs/test/LR/{k}.png"] = lo
            hr.setdefault(2, {})[k], lr.setdefault(2, {})[k] = ha, la
        return Replica(name, {"ImagePairs.zip": zip_bytes(m)}, hr, lr)
    raise KeyError(name)


def manifest_data(name: str) -> dict:
    return yaml.safe_load((MANIFESTS / f"{name}.yaml").read_text(encoding="utf-8"))


def write_replica_manifest(replica: Replica, folder: Path, server: Server | None = None) -> Path:
    """The real manifest of the replica's dataset, with the published sha256/size replaced by the replica's (a
    ``lock`` source stays ``lock``) and, with ``server``, every URL pointing at it. Layout and pairing are the real
    manifest's."""
    data = manifest_data(replica.name)
    for src in data["sources"]:
        if src["sha256"] != "lock":
            src["sha256"] = replica.sha(src["file"])
            src["size"] = len(replica.archives[src["file"]])
        if server is not None:
            src["url"] = server.url("/" + src["file"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{replica.name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
