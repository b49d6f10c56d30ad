"""`compare_runs`: two runs (before / after a change) overlaid, with the differences in words."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["COMPARE_FILE", "CompareResult", "compare_runs", "differences"]

COMPARE_FILE = "compare.html"

# (path in the summary, words, unit format, higher is better)
_FIGURES: tuple[tuple[tuple[str, str], str, str, bool], ...] = (
    (("saturation", "offered_load"), "offered load at saturation", "g", True),
    (("saturation", "output_tokens_per_s"), "output tokens/s at saturation", ".1f", True),
    (("saturation", "requests_per_s"), "req/s at saturation", ".2f", True),
    (("saturation", "ttft_p99_s"), "TTFT p99 at saturation (s)", ".3f", False),
    (("saturation", "itl_p99_s"), "ITL p99 at saturation (s)", ".4f", False),
    (("saturation", "peak_output_tokens_per_s"), "peak output tokens/s", ".1f", True),
    (("goodput", "best_goodput_per_s"), "best goodput (req/s)", ".2f", True),
    (("percentiles", "ttft_s"), "TTFT p99 over the run (s)", ".3f", False),
    (("percentiles", "itl_s"), "ITL p99 over the run (s)", ".4f", False),
)


@dataclass(slots=True)
class CompareResult:
    """The comparison page and its findings."""

    html_path: Path
    differences: list[str]
    summary_a: dict[str, Any]
    summary_b: dict[str, Any]


def _get(summary: dict[str, Any], path: tuple[str, str]) -> float | None:
    value = summary[path[0]][path[1]]
    return value.get("p99") if isinstance(value, dict) else value


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Sentences, A → B, for every figure both runs have, plus a changed bottleneck."""
    out = []
    ba, bb = a["bottleneck"], b["bottleneck"]
    if ba["kind"] != bb["kind"]:
        out.append(f"bottleneck changed: {ba['label']} → {bb['label']}")
    else:
        out.append(f"bottleneck unchanged: {ba['label']}")
    if a["saturation"]["found"] != b["saturation"]["found"]:
        out.append("saturation " + ("found in A only" if a["saturation"]["found"] else "found in B only"))
    for path, words, spec, higher_better in _FIGURES:
        va, vb = _get(a, path), _get(b, path)
        if va is None or vb is None:
            continue
        change = "" if va == 0 else f" ({(vb - va) / abs(va):+.1%})"
        if abs(vb - va) <= 0.005 * max(abs(va), abs(vb)):  # within half a percent: noise, not a change
            verdict = "about the same"
        else:
            verdict = "better" if (vb > va) == higher_better else "worse"
        out.append(f"{words}: {va:{spec}} → {vb:{spec}}{change}, {verdict}")
    return out


def compare_runs(
    run_a: str | Path, run_b: str | Path, out: str | Path | None = None, slos: Any = None, window_s: float = 1.0
) -> CompareResult:
    """Analyse both runs and write the comparison page (default ``run_b/compare.html``)."""
    from satscope.reports._analyze import run_analysis
    from satscope.reports._figures import latency_figure, throughput_figure
    from satscope.reports._html import Figure, Page, Section, Table, render_page
    from satscope.reports._report_page import fmt, load_title
    from satscope.run_format import write_bytes_atomic

    an_a, an_b = run_analysis(run_a, slos, window_s), run_analysis(run_b, slos, window_s)
    sa, sb = an_a.summary, an_b.summary
    diffs = differences(sa, sb)
    lt = load_title(sb)
    tp_a = throughput_figure(an_a.levels, sa["saturation"], lt, "fig-tp-a", name="A ")
    tp_b = throughput_figure(an_b.levels, sb["saturation"], lt, "fig-tp-b", name="B ")
    overlay = Figure(
        "fig-throughput",
        tp_a.data[:1] + tp_b.data[:1],
        tp_a.layout | {"shapes": [], "annotations": [], "title": {"text": "Output tokens/s vs load: A and B"}},
    )
    lat_a, lat_b = latency_figure(an_a.levels, lt, "a"), latency_figure(an_b.levels, lt, "b")
    for trace in lat_a.data:
        trace["name"] = "A " + trace["name"]
    for trace in lat_b.data:
        trace["name"] = "B " + trace["name"]
        trace["line"] = {"dash": "dash"}
    latency = Figure(
        "fig-latency", lat_a.data + lat_b.data, lat_a.layout | {"title": {"text": "Latency vs load: A and B"}}
    )
    timeline = Figure(
        "fig-timeline",
        [
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{name} output tokens/s",
                "x": an.windows["t_s"].tolist(),
                "y": [None if v != v else v for v in an.windows["output_tokens_per_s"]],
            }
            for name, an in (("A", an_a), ("B", an_b))
        ],
        {"title": {"text": "Output tokens/s over elapsed run time"}, "xaxis": {"title": {"text": "seconds"}}},
    )
    rows = [[words, fmt(_get(sa, p), spec), fmt(_get(sb, p), spec)] for p, words, spec, _ in _FIGURES]
    rows.insert(0, ["bottleneck", sa["bottleneck"]["label"], sb["bottleneck"]["label"]])
    page = Page(
        f"satscope compare: {sa['run_id']} (A) vs {sb['run_id']} (B)",
        "; ".join(diffs[:4]) + ".",
        "ok" if sa["validity"]["ok"] and sb["validity"]["ok"] else "bad",
        [
            Section("Differences, A → B", items=diffs),
            Section("Verdicts", items=[f"A ({sa['run_id']}): {sa['verdict']}", f"B ({sb['run_id']}): {sb['verdict']}"]),
            Section("Throughput vs offered load", figures=[overlay]),
            Section("Latency vs offered load", figures=[latency]),
            Section("Timeline", figures=[timeline]),
            Section("Side by side", table=Table(["figure", "A", "B"], rows)),
            Section(
                "Validity",
                items=[f"A [{w['severity']}] {w['message']}" for w in sa["validity"]["warnings"]]
                + [f"B [{w['severity']}] {w['message']}" for w in sb["validity"]["warnings"]]
                or ["no warnings"],
            ),
        ],
    )
    html_path = Path(out) if out is not None else Path(run_b) / COMPARE_FILE
    write_bytes_atomic(html_path, render_page(page).encode())
    return CompareResult(html_path, diffs, sa, sb)
