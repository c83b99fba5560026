"""The gallery: compressed thumbnails in the page, full-size files beside it (or everything inlined), the amplified
perturbation of an attacked input, and a report of a small run under the size budget."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from bench.report.gallery import gallery_context, perturbation, thumbnail
from bench.report.html import write_report
from bench.report.tables import load_run


def _decode(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_thumbnail_is_lossy_and_at_most_display_size(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "big.png"
    Image.fromarray(rng.integers(0, 256, (400, 300, 3), dtype=np.uint8)).save(path)
    uri = thumbnail(path, size=192)
    assert uri.startswith(("data:image/webp;base64,", "data:image/jpeg;base64,"))
    im = _decode(uri)
    assert im.size == (144, 192)  # the long side at display size, aspect kept


def test_perturbation_is_amplified_to_the_full_range(board_run):
    folder = board_run / "gallery" / "ds" / "clean@pgd"
    png, k = perturbation(folder / "adv-sharp--white-box.png", folder / "LR.png")
    assert k == pytest.approx(0.5 / (8 / 255))
    out = np.asarray(Image.open(io.BytesIO(png)))
    assert out[0, 0].tolist() == [255, 255, 255]  # the moved pixel: 0.5 + k * 8/255 = 1
    assert set(np.unique(out[1:, :])) == {128} and set(np.unique(out[0, 1:])) == {128}  # unchanged: mid grey


def test_perturbation_needs_the_same_spot(tmp_path):
    for name, size in (("a.png", 8), ("b.png", 16)):
        Image.new("RGB", (size, size)).save(tmp_path / name)
    with pytest.raises(ValueError, match="differ in size"):
        perturbation(tmp_path / "a.png", tmp_path / "b.png")


def test_gallery_groups_link_files_or_inline(board_run):
    data = load_run(board_run)
    groups = gallery_context(data)
    assert [g["condition"] for g in groups] == ["clean", "clean + pgd (largest budget)", "noise"]
    attacked = groups[1]["tiles"]
    kinds = [t["kind"] for t in attacked]
    assert kinds == ["hr", "lr", "sr_clean", "adv", "perturbation", "sr"]
    assert attacked[4]["label"].startswith("perturbation ×15.9")
    for tile in (t for g in groups for t in g["tiles"]):
        assert (board_run / tile["full"]).is_file() and tile["thumb"].startswith("data:image/")
        assert not tile["thumb"].startswith("data:image/png")  # compressed thumbnails
    inline = gallery_context(data, inline=True)
    for tile in (t for g in inline for t in g["tiles"]):
        assert tile["full"] is None and _decode(tile["thumb"]).format == "PNG"  # lossless, one file


def test_default_report_is_small_and_inline_holds_everything(board_run):
    html = write_report(board_run).read_text()
    assert len(html.encode()) < 1_500_000
    assert "image-rendering: pixelated" in html and 'class="cmp-slider"' in html
    full = re.findall(r'data-full="([^"]+)"', html)
    assert full and all((board_run / f).is_file() for f in full)
    inline = write_report(board_run, inline=True).read_text()
    assert "data-full=" not in inline and not (board_run / "report_files").exists()


def test_report_command_inline_and_primary(board_run, capsys):
    from bench.cli import main

    assert main(["report", str(board_run), "--inline", "--primary", "dist"]) == 0
    index = board_run / "index.html"
    assert capsys.readouterr().out.strip() == str(index)
    html = index.read_text()
    assert "data-full=" not in html and "Ranked by <strong>mean dist ↓</strong>" in html
    assert main(["report", str(board_run), "--primary", "nope"]) == 2  # one clear line, no traceback
    assert "'nope' is not a metric of this run" in capsys.readouterr().err
