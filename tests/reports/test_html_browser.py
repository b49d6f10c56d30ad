"""The HTML report in headless Chromium: renders every plot, logs no errors, runs no injected script."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from satscope.reports import build_report, compare_runs
from tests.reports.browser import open_html, require_chromium, screenshot_stats

SCRIPT_MODEL = "<script>window.__pwned = 'model'</script>"
SCRIPT_ERROR = "</script><script>window.__pwned = 'error'</script><img src=x onerror=\"window.__pwned='img'\">"
SCRIPT_PROMPT = "</script><script>window.__pwned = 'prompt'</script>"


def test_report_renders_every_plot_without_errors(synth: Callable[..., Path], tmp_path: Path) -> None:
    require_chromium()
    html = build_report(synth(kind="kv_cache"), out=tmp_path / "report.html", slos=["ttft=0.5"]).html_path
    with open_html(html) as opened:
        page = opened.page
        plots = page.evaluate(
            "Array.from(document.querySelectorAll('.plot')).map("
            "d => [d.id, d.querySelectorAll('svg.main-svg').length, d.querySelectorAll('path').length])"
        )
        assert {p[0] for p in plots} == {
            "fig-throughput",
            "fig-latency",
            "fig-timeline",
            "fig-ttft-dist",
            "fig-itl-dist",
        }
        assert all(n_svg >= 1 and n_path > 5 for _, n_svg, n_path in plots), plots
        # the knee is marked on the throughput plot
        assert "saturation point" in page.inner_text("#fig-throughput")
        # the fitted curve model is drawn beside the measured points, and said in one line
        assert "USL fit (output tokens/s)" in page.inner_text("#fig-throughput")
        assert "Curve model (USL" in page.inner_text("body")
        assert "Saturates at 8 users" in page.inner_text("#verdict")
        assert page.locator("tr.highlight td").first.inner_text() == "users-8"
        assert opened.errors() == []
        stats = screenshot_stats(opened)
        assert stats["colours"] > 20 and stats["ink"] > 0.02, stats


def test_injected_script_in_run_text_does_not_execute(synth: Callable[..., Path], tmp_path: Path) -> None:
    require_chromium()
    run = synth(kind="errors", model=SCRIPT_MODEL, error_text=SCRIPT_ERROR, prompt_text=SCRIPT_PROMPT)
    html = build_report(run, out=tmp_path / "report.html").html_path
    raw = html.read_text()
    assert "<script>window.__pwned" not in raw and "<img src=x" not in raw  # escaped before any browser
    with open_html(html) as opened:
        page = opened.page
        assert page.evaluate("window.__pwned") is None
        text = page.inner_text("body")
        # shown to the reader as text, exactly as the run stored it
        assert SCRIPT_MODEL in text and "window.__pwned = 'prompt'" in text and "onerror" in text
        assert page.evaluate("document.querySelectorAll('script').length") == 3
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        assert opened.errors() == []


def test_content_security_policy_blocks_foreign_scripts(synth: Callable[..., Path], tmp_path: Path) -> None:
    require_chromium()
    html = build_report(synth(kind="kv_cache"), out=tmp_path / "report.html").html_path
    with open_html(html) as opened:
        page = opened.page
        page.evaluate(
            "() => { const s = document.createElement('script'); s.textContent = 'window.__csp = 1';"
            " document.body.appendChild(s); }"
        )
        assert page.evaluate("window.__csp") is None
        assert any("Content Security Policy" in text for _, text in opened.console)


@pytest.mark.parametrize("probes", [False])
def test_degraded_report_still_renders(synth: Callable[..., Path], tmp_path: Path, probes: bool) -> None:
    require_chromium()
    html = build_report(synth(kind="kv_cache", probes=probes), out=tmp_path / "r.html").html_path
    with open_html(html) as opened:
        assert opened.errors() == []
        assert opened.page.evaluate("document.querySelectorAll('.plot[data-rendered]').length") == 5


def test_compare_page_renders(synth: Callable[..., Path], tmp_path: Path) -> None:
    require_chromium()
    html = compare_runs(synth(kind="kv_cache"), synth(kind="none"), out=tmp_path / "c.html").html_path
    with open_html(html) as opened:
        assert opened.errors() == []
        assert opened.page.evaluate("document.querySelectorAll('.plot .main-svg').length") >= 3
