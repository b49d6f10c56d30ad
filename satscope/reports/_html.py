"""Render a page (report or comparison) as one self-contained HTML file.

plotly.js is inlined from plotly's offline bundle, so the file opens from disk with no network.
Run text (model names, prompts, error messages) reaches the page two ways, both inert: as HTML
text escaped by jinja2's autoescape, and inside a ``<script type="application/json">`` block in
which ``<``, ``>``, ``&`` and the JavaScript line separators are written as ``\\uXXXX`` escapes,
so ``</script>`` in the data cannot end the block. A Content-Security-Policy allows only the two
inline scripts, by their SHA-256 hashes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = ["Figure", "Page", "Section", "Table", "render_page"]

_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"}

# Draws every figure spec in the JSON block; marks each div when Plotly has rendered it.
_MAIN_JS = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("satscope-data").textContent);
  var config = {displaylogo: false, responsive: true};
  data.figures.forEach(function (fig) {
    var div = document.getElementById(fig.id);
    Plotly.newPlot(div, fig.data, fig.layout, config).then(function () {
      div.setAttribute("data-rendered", "1");
    });
  });
})();
"""


@dataclass(slots=True)
class Figure:
    """A plotly figure as plain JSON (``data`` traces and ``layout``), drawn into div ``id``."""

    id: str
    data: list[dict[str, Any]]
    layout: dict[str, Any]
    height_px: int = 420


@dataclass(slots=True)
class Table:
    """Already-formatted cells; every cell is escaped when rendered."""

    headers: list[str]
    rows: list[list[str]]
    highlight_row: int | None = None
    wrap_last: bool = False  # the last column holds sentences: let it wrap


@dataclass(slots=True)
class Section:
    """A heading with optional paragraphs, figures, a table, a list and a preformatted block."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    table: Table | None = None
    items: list[str] = field(default_factory=list)
    pre: str | None = None


@dataclass(slots=True)
class Page:
    """What ``render_page`` draws: a banner, then sections in order."""

    title: str
    banner: str
    banner_level: str  # "ok", "warn" or "bad": the banner's colour
    sections: list[Section]
    footer: str = ""

    def __post_init__(self) -> None:
        if self.banner_level not in ("ok", "warn", "bad"):
            raise ValueError("banner_level must be ok, warn or bad")


def safe_json(obj: Any) -> str:
    """JSON that can sit inside a <script> element: no ``<``, ``>`` or ``&`` left literally."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).translate(_JSON_ESCAPES)


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


@lru_cache(maxsize=1)
def _plotly_js() -> tuple[str, str]:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    if "</script" in js.lower():  # never true for released bundles; guard rather than trust
        js = js.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")
    return js, _sha256(js)


@lru_cache(maxsize=1)
def _template() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("satscope.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("page.html.j2")


def render_page(page: Page) -> str:
    """The complete HTML document for ``page``."""
    from markupsafe import Markup

    from satscope.reports._stats import clean

    plotly_js, plotly_hash = _plotly_js()
    figures = [{"id": f.id, "data": f.data, "layout": f.layout} for s in page.sections for f in s.figures]
    csp = (
        f"default-src 'none'; script-src '{plotly_hash}' '{_sha256(_MAIN_JS)}'; "
        "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'"
    )
    return _template().render(
        page=page,
        csp=csp,
        plotly_js=Markup(plotly_js),
        main_js=Markup(_MAIN_JS),
        data_json=Markup(safe_json(_finite({"figures": figures}, clean))),
    )


def _finite(obj: Any, clean: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _finite(v, clean) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v, clean) for v in obj]
    return clean(obj)
