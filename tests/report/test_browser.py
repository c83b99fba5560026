"""The report in a real browser: headless Chromium opens a small report from ``file://`` and a self-test script, added
to a copy of the page, drives it (clicks a header, types in a filter, moves the slider) and records what it saw and
every error; ``--dump-dom`` hands the record back. A screenshot of the page is kept as a test artefact (under
``$BENCH_ARTIFACTS`` when set, else the test's tmp dir).

Why ``--dump-dom`` and an injected script rather than the DevTools protocol: it needs no websocket client, no port and
no async driver, only the browser binary and a subprocess, so it runs the same in CI and on a laptop; the checks run
inside the page with the same DOM events a user's click or drag fires. Errors are caught by listeners installed
before any of the page's own code: uncaught exceptions, rejected promises, ``console.error`` and resources that fail
to load (a missing full-size image, say).
"""

from __future__ import annotations

import html as htmllib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.report.html import write_report


def _chromium() -> str | None:
    for name in (os.environ.get("BENCH_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = _chromium()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium; .ci/run installs it)"
    ),
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

# Installed first in <head>: records every error the page raises or logs.
CATCH = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) { window.__errors.push("failed to load " + (t.src || t.href)); }
  else { window.__errors.push("uncaught: " + e.message); }
}, true);
window.addEventListener("unhandledrejection", function (e) { window.__errors.push("rejection: " + e.reason); });
(function () { var orig = console.error; console.error = function () {
  window.__errors.push("console.error: " + Array.prototype.join.call(arguments, " ")); orig.apply(console, arguments);
}; })();
</script>"""

# Appended at the end of <body>, after the page's script; runs once the page is set up, drives it and writes the record
# into the DOM.
DRIVE = """<script>
document.addEventListener("DOMContentLoaded", function () {  // after the page's own init (registered earlier)
  var out = {};
  function methods(table) {
    return Array.prototype.slice.call(table.rows, 1).filter(function (r) { return !r.hidden; })
      .map(function (r) { return r.querySelector("td.method").textContent.trim().split(/\\s/)[0]; });
  }
  function header(table, text) {
    return Array.prototype.filter.call(table.rows[0].cells, function (th) {
      return th.textContent.trim().indexOf(text) === 0; })[0];
  }
  var ov = document.querySelector("#overview table.overview");
  out.overview = !!ov && ov.offsetHeight > 0;
  out.overviewRanked = methods(ov);
  header(ov, "method").click();
  out.overviewByName = methods(ov);
  header(ov, "worst").click();
  out.overviewByWorst = methods(ov);
  var filter = ov.previousElementSibling;
  filter.value = "smo";
  filter.dispatchEvent(new Event("input"));
  out.filtered = methods(ov);
  filter.value = "";
  filter.dispatchEvent(new Event("input"));
  var metric = document.querySelector("select.ov-metric");
  metric.value = "dist";
  metric.dispatchEvent(new Event("change"));
  var shown = document.querySelector('.ov-table[data-metric="dist"]');
  out.distShown = !shown.hidden && shown.offsetHeight > 0;
  out.distRanked = methods(shown.querySelector("table"));
  out.boards = document.querySelectorAll("h3[id^=board-]").length;
  out.brokenLinks = Array.prototype.filter.call(document.querySelectorAll('a[href^="#"]'), function (a) {
    return !document.getElementById(a.getAttribute("href").slice(1)); }).map(function (a) { return a.href; });
  var board = document.getElementById("board-ds-clean").nextElementSibling;
  while (board && board.tagName !== "TABLE") board = board.nextElementSibling;
  out.boardBefore = methods(board);
  header(board, "psnr").click();
  out.boardPsnrFirst = methods(board);
  header(board, "psnr").click();
  out.boardPsnrSecond = methods(board);
  out.boardMarksKept = board.querySelectorAll("td.best").length;
  var group = document.querySelector(".g-group");
  var cmp = group.querySelector(".cmp"), slider = cmp.querySelector(".cmp-slider");
  var imgA = cmp.querySelector(".cmp-img-a"), imgB = cmp.querySelector(".cmp-img-b");
  out.clipBefore = getComputedStyle(imgA).clipPath;
  slider.value = "20";
  slider.dispatchEvent(new Event("input"));
  out.clipAfter = getComputedStyle(imgA).clipPath;
  cmp.querySelector(".cmp-toggle").click();
  out.sliderAfterToggle = slider.value;
  out.pixelated = getComputedStyle(imgA).imageRendering;
  var selA = cmp.querySelector(".cmp-a");
  var srcBefore = imgA.getAttribute("src");
  selA.value = "0";
  selA.dispatchEvent(new Event("change"));
  out.srcChanged = imgA.getAttribute("src") !== srcBefore;
  cmp.querySelector(".cmp-zoom").value = "4";
  cmp.querySelector(".cmp-zoom").dispatchEvent(new Event("change"));
  function finish() {
    out.naturalWidth = imgA.naturalWidth;
    out.stageWidth = cmp.querySelector(".cmp-stage").getBoundingClientRect().width;
    out.errors = window.__errors;
    var pre = document.createElement("pre");
    pre.id = "selftest-result";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  if (imgA.complete && imgB.complete) { finish(); } else { window.addEventListener("load", finish); }
});
</script>"""


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ["BENCH_ARTIFACTS"]) if os.environ.get("BENCH_ARTIFACTS") else tmp_path / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("inline", [False, True], ids=["linked-files", "single-file"])
def test_report_works_in_headless_chromium(board_run, tmp_path, inline):
    index = write_report(board_run, inline=inline)
    page = index.read_text(encoding="utf-8")
    assert page.count("<head>") == 1 and page.count("</body>") == 1
    selftest = index.with_name("selftest.html")  # beside index.html: the same relative links
    selftest.write_text(page.replace("<head>", "<head>" + CATCH, 1).replace("</body>", DRIVE + "</body>", 1))
    proc = _run(["--virtual-time-budget=5000", "--dump-dom", selftest.as_uri()], tmp_path / "profile-a")
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<pre id="selftest-result">(.*?)</pre>', proc.stdout, flags=re.S)
    assert found, f"the self-test did not finish (the page threw before it?): {proc.stdout[-1500:]}"
    out = json.loads(htmllib.unescape(found.group(1)))

    assert out["errors"] == []
    assert out["overview"] and out["overviewRanked"] == ["smooth", "sharp", "fragile"]
    assert out["overviewByName"] == ["fragile", "sharp", "smooth"]  # text: A to Z first
    assert out["overviewByWorst"] == ["fragile", "smooth", "sharp"]  # worst psnr 28 (partial), 21, 16: best first
    assert out["filtered"] == ["smooth"]
    assert out["distShown"] and out["distRanked"] == ["sharp", "smooth", "fragile"]
    assert out["boards"] == 6 and out["brokenLinks"] == []
    assert out["boardBefore"] == ["sharp", "smooth", "fragile"]  # the matrix's order
    assert out["boardPsnrFirst"] == ["fragile", "sharp", "smooth"]  # higher is better: best first (31, 30, 28)
    assert out["boardPsnrSecond"] == ["smooth", "sharp", "fragile"]
    assert out["boardMarksKept"] == 2  # psnr and dist best marks moved with their rows
    assert out["clipBefore"] != out["clipAfter"] and "80%" in out["clipAfter"]
    assert out["sliderAfterToggle"] in ("0", "100")
    assert out["pixelated"] == "pixelated" and out["srcChanged"]
    assert out["naturalWidth"] == 32 and out["stageWidth"] == pytest.approx(4 * 32)  # the full-size file, zoomed

    assert ("data-full=" in page) is not inline

    shot = _artifacts(tmp_path) / f"report-overview-{'single-file' if inline else 'linked-files'}.png"
    proc = _run(["--window-size=1280,1400", f"--screenshot={shot}", index.as_uri()], tmp_path / "profile-b")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
