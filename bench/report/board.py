"""What the report adds on top of the per-scenario boards: the overview, the gallery comparison, sortable tables.

:func:`board_context` returns the template variables of the partials ``_overview.html.j2`` and ``_gallery.html.j2``
and the static ``board.css`` / ``board.js`` (inlined in the page: nothing is loaded from the network, the page works
from ``file://``). With ``inline=False`` (the default) the gallery's full-size PNGs and the curve figures stay files
beside ``index.html`` (``gallery/``, ``report_files/``, ``figures/``) and the page holds compressed thumbnails only;
``inline=True`` embeds every image losslessly for a single-file report.
"""

from __future__ import annotations

import base64
import logging
import shutil
from pathlib import Path
from typing import Any

from bench.report.gallery import ASSETS, gallery_context
from bench.report.overview import board_anchor, overview_context
from bench.report.tables import RunData

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def _curves(data: RunData, curves: list[dict[str, Any]], inline: bool) -> list[dict[str, Any]]:
    out = []
    for c in curves:
        written = data.run_dir / "figures" / c["file"] if c.get("file") else None
        if not inline and written is not None and written.is_file():
            src = f"figures/{c['file']}"
        else:
            src = "data:image/png;base64," + base64.b64encode(c["png"]).decode("ascii")
        out.append({"title": c["title"], "src": src})
    return out


def board_context(
    data: RunData, curves: list[dict[str, Any]] | None = None, *, inline: bool = False, primary: str | None = None
) -> dict[str, Any]:
    """Template variables: ``overview``, ``gallery``, ``curves`` (when given), ``board_css``, ``board_js``,
    ``inline``; old ``report_files/`` of the run are replaced."""
    assets = data.run_dir / ASSETS
    if assets.is_dir():
        shutil.rmtree(assets)
    context: dict[str, Any] = {
        "overview": overview_context(data, primary),
        "gallery": gallery_context(data, inline=inline),
        "board_css": (TEMPLATES_DIR / "board.css").read_text(encoding="utf-8"),
        "board_js": (TEMPLATES_DIR / "board.js").read_text(encoding="utf-8"),
        "inline": inline,
    }
    if curves is not None:
        context["curves"] = _curves(data, curves, inline)
    return context


def template_globals() -> dict[str, Any]:
    """Functions the templates call (``board_anchor`` for the per-scenario boards' ids)."""
    return {"board_anchor": board_anchor}
