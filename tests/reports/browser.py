"""Open an HTML file in headless Debian Chromium through Playwright (never a downloaded browser)."""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip (with the reason) when the browser or Playwright is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[dev]')")


@dataclass
class Opened:
    """What the page did while it loaded."""

    page: Any
    console: list[tuple[str, str]] = field(default_factory=list)

    def errors(self) -> list[str]:
        return [f"{kind}: {text}" for kind, text in self.console if kind in ("error", "pageerror")]


@contextmanager
def open_html(path: Path, wait_for_plots: bool = True) -> Iterator[Opened]:
    """The page of ``path`` after every plot div is marked rendered (or 30 s)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="satscope-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
                viewport={"width": 1280, "height": 900},
                offline=True,
            )
            try:
                page = context.new_page()
                opened = Opened(page)
                page.on("console", lambda m: opened.console.append((m.type, m.text)))
                page.on("pageerror", lambda e: opened.console.append(("pageerror", str(e))))
                page.goto(path.resolve().as_uri())
                if wait_for_plots:
                    page.wait_for_function(
                        "document.querySelectorAll('.plot').length === "
                        "document.querySelectorAll('.plot[data-rendered]').length",
                        timeout=30_000,
                    )
                yield opened
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot_stats(opened: Opened) -> dict[str, float]:
    """Decode a screenshot in the browser itself: distinct colours and the share of non-white pixels."""
    png = opened.page.screenshot(full_page=False)
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    probe = opened.page.context.new_page()
    try:
        return probe.evaluate(
            """async (url) => {
                const img = new Image(); img.src = url; await img.decode();
                const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
                const g = c.getContext('2d'); g.drawImage(img, 0, 0);
                const d = g.getImageData(0, 0, c.width, c.height).data;
                const colours = new Set(); let ink = 0;
                for (let i = 0; i < d.length; i += 4) {
                    colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
                    if (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240) ink++;
                }
                return {colours: colours.size, ink: ink / (d.length / 4)};
            }""",
            url,
        )
    finally:
        probe.close()
