"""The report's plots as plain plotly JSON (traces + layout), built from the analysis tables.

Timelines are downsampled to at most ``MAX_POINTS`` points (window means), and distributions are
binned here, so the HTML stays small and fast to open whatever the size of the run. The
prefix-cache panels are drawn only when the server reported its prefix cache, and not named as
missing otherwise: most servers under test cache nothing, and that is not a gap in the probes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satscope.reports._html import Figure

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["MAX_POINTS", "distribution_figure", "latency_figure", "throughput_figure", "timeline_figure"]

MAX_POINTS = 1500
TIMELINE: tuple[tuple[tuple[str, ...], str], ...] = (  # (columns, axis title) of each panel, in order
    (("offered_load",), "offered load"),
    (("output_tokens_per_s",), "output tokens/s"),
    (("ttft_p99_s",), "TTFT p99 (s)"),
    (("error_rate",), "error rate"),  # an outage of the target shows here, on the same time axis
    (("kv_cache_usage",), "KV-cache fill"),
    (("prefix_cache_hit_rate",), "prefix-cache hit rate"),
    (("prefix_cache_query_tokens_per_s", "prefix_cache_hit_tokens_per_s"), "prompt tokens/s (cached: dotted)"),
    (("requests_waiting",), "waiting requests"),
    (("preemptions_per_s",), "preemptions/s"),
    (("gpu_dram_bw_util",), "GPU DRAM bandwidth"),
    (("gpu_sm_occupancy",), "SM occupancy"),
)
OPTIONAL_PANELS = frozenset({"prefix-cache hit rate", "prompt tokens/s (cached: dotted)"})  # drawn when sampled
TRACE_NAMES = {  # (name, dash) of a trace; by default the panel's title, solid
    "prefix_cache_query_tokens_per_s": ("prompt tokens/s looked up in the prefix cache", "solid"),
    "prefix_cache_hit_tokens_per_s": ("prompt tokens/s found there (cached)", "dot"),
}
_LAYOUT = {
    "margin": {"l": 70, "r": 30, "t": 40, "b": 50},
    "hovermode": "x unified",
    "legend": {"orientation": "h", "y": -0.2},
}


def _xy(x: Any, y: Any) -> tuple[list[Any], list[Any]]:
    import numpy as np

    from satscope.reports._stats import clean

    return [clean(v) for v in np.asarray(x, dtype=float)], [clean(v) for v in np.asarray(y, dtype=float)]


def throughput_figure(
    levels: pd.DataFrame,
    sat: dict[str, Any],
    load_title: str,
    fig_id: str = "fig-throughput",
    name: str = "",
    curve: dict[str, Any] | None = None,
) -> Figure:
    """Output tokens/s (left axis) and req/s (right axis) against offered load, knee marked; with
    ``curve`` (summary.json's block) the fitted model is drawn beside the measured points."""
    x, tok = _xy(levels["offered_load"], levels["output_tokens_per_s"])
    _, rps = _xy(levels["offered_load"], levels["requests_per_s"])
    data = [
        {"type": "scatter", "mode": "lines+markers", "x": x, "y": tok, "name": f"{name}output tokens/s"},
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": x,
            "y": rps,
            "name": f"{name}req/s",
            "yaxis": "y2",
            "line": {"dash": "dot"},
        },
    ]
    data += _fitted_traces(curve, max((v for v in x if v is not None), default=0.0), name)
    shapes, notes = [], []
    if sat.get("offered_load") is not None:
        label = "saturation point" if sat.get("found") else "highest load (no knee)"
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": sat["offered_load"],
                "x1": sat["offered_load"],
                "y0": 0,
                "y1": 1,
                "line": {"dash": "dash", "color": "#c0392b"},
            }
        )
        notes.append(
            {
                "x": sat["offered_load"],
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "text": label,
                "showarrow": False,
                "yanchor": "bottom",
                "font": {"color": "#c0392b"},
            }
        )
    layout = _LAYOUT | {
        "title": {"text": "Throughput vs offered load"},
        "shapes": shapes,
        "annotations": notes,
        "xaxis": {"title": {"text": load_title}},
        "yaxis": {"title": {"text": "output tokens/s"}, "rangemode": "tozero"},
        "yaxis2": {"title": {"text": "req/s"}, "overlaying": "y", "side": "right", "rangemode": "tozero"},
    }
    return Figure(fig_id, data, layout)


def _fitted_traces(curve: dict[str, Any] | None, x_max: float, name: str) -> list[dict[str, Any]]:
    """The fitted curve of each throughput series as a thin dashed line on the series' axis."""
    from satscope.reports._curve import fitted_line

    model = {"usl": "USL fit", "two_segment": "two-segment fit"}.get((curve or {}).get("model") or "", "fit")
    out = []
    for series, axis, label, colour in (
        ("output_tokens", "y", "output tokens/s", "#1f77b4"),
        ("requests", "y2", "served req/s" if model == "two-segment fit" else "req/s", "#ff7f0e"),
    ):
        line = fitted_line(curve, series, x_max)
        if line is None:
            continue
        x, y = _xy(*line)
        trace = {"type": "scatter", "mode": "lines", "x": x, "y": y, "name": f"{name}{model} ({label})"}
        trace |= {"line": {"dash": "dash", "width": 1.5, "color": colour}, "opacity": 0.7}
        out.append(trace | ({"yaxis": "y2"} if axis == "y2" else {}))
    return out


def latency_figure(levels: pd.DataFrame, load_title: str, fig_id: str = "fig-latency") -> Figure:
    """TTFT, ITL and E2E percentiles against offered load (log scale)."""
    data = []
    for col, label, dash in (
        ("ttft_p50_s", "TTFT p50", "solid"),
        ("ttft_p99_s", "TTFT p99", "solid"),
        ("ttft_intended_p99_s", "TTFT p99 (from intended send)", "dot"),
        ("itl_p50_s", "ITL p50", "solid"),
        ("itl_p99_s", "ITL p99", "solid"),
        ("e2e_p99_s", "E2E p99", "dash"),
        ("e2e_intended_p99_s", "E2E p99 (from intended send)", "dot"),
    ):
        if col in levels and levels[col].notna().any():
            x, y = _xy(levels["offered_load"], levels[col])
            data.append(
                {"type": "scatter", "mode": "lines+markers", "x": x, "y": y, "name": label, "line": {"dash": dash}}
            )
    layout = _LAYOUT | {
        "title": {"text": "Latency percentiles vs offered load"},
        "xaxis": {"title": {"text": load_title}},
        "yaxis": {"title": {"text": "seconds"}, "type": "log"},
    }
    return Figure(fig_id, data, layout)


def downsample(windows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """At most MAX_POINTS rows: consecutive windows averaged in equal groups."""
    import numpy as np

    frame = windows[["t_s", *columns]]
    if len(frame) <= MAX_POINTS:
        return frame
    group = np.arange(len(frame)) // int(np.ceil(len(frame) / MAX_POINTS))
    return frame.groupby(group).mean()


def timeline_figure(
    windows: pd.DataFrame, fig_id: str = "fig-timeline", marks: list[tuple[float, str]] | None = None
) -> Figure:
    """Stacked panels sharing one time axis; panels whose metric the run lacks are listed, not drawn
    (the prefix-cache ones are neither: most servers cache no prefixes).

    ``marks``: (elapsed seconds, label) drawn as vertical lines across every panel, e.g. when the
    saturation level started and when the bottleneck first held.
    """

    def sampled(col: str) -> bool:
        return col in windows and bool(windows[col].notna().any())

    present = [(tuple(c for c in cols if sampled(c)), t) for cols, t in TIMELINE if any(map(sampled, cols))]
    shown = {t for _, t in present}
    missing = [t for _, t in TIMELINE if t not in shown and t not in OPTIONAL_PANELS]
    frame = downsample(windows, [c for cols, _ in present for c in cols])
    n = max(len(present), 1)
    gap = 0.02
    height = (1.0 - gap * (n - 1)) / n
    data, layout = [], dict(_LAYOUT)
    layout |= {"title": {"text": "Timeline (elapsed run seconds)"}, "showlegend": False}
    for i, (cols, title) in enumerate(present):
        axis = "" if i == 0 else str(i + 1)
        for col in cols:
            x, y = _xy(frame["t_s"], frame[col])
            name, dash = TRACE_NAMES.get(col, (title, "solid"))
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": x,
                    "y": y,
                    "name": name,
                    "line": {"dash": dash},
                    "xaxis": "x",
                    "yaxis": f"y{axis}",
                    "connectgaps": False,
                }
            )
        top = 1.0 - i * (height + gap)
        layout[f"yaxis{axis}"] = {
            "domain": [max(top - height, 0.0), top],
            "title": {"text": title, "font": {"size": 10}},
        }
    layout["xaxis"] = {"anchor": f"y{len(present) if len(present) > 1 else ''}", "title": {"text": "seconds"}}
    layout["annotations"] = []
    layout["shapes"] = []
    span_s = float(windows["t_s"].max()) if len(windows) else 0.0
    for at_s, label in _merge_marks(marks or [], span_s):
        layout["shapes"].append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": at_s,
                "x1": at_s,
                "y0": 0,
                "y1": 1,
                "line": {"dash": "dot", "color": "#c0392b", "width": 1},
            }
        )
        layout["annotations"].append(
            {
                "text": label,
                "x": at_s,
                "xref": "x",
                "y": 1.0,
                "yref": "paper",
                "xanchor": "left",
                "yanchor": "top",
                "showarrow": False,
                "font": {"size": 10, "color": "#c0392b"},
            }
        )
    if missing:
        layout["annotations"] += [
            {
                "text": "not sampled in this run: " + ", ".join(missing),
                "xref": "paper",
                "yref": "paper",
                "x": 0,
                "y": 1.0,
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 10, "color": "#6b7380"},
            }
        ]
    return Figure(fig_id, data, layout, height_px=max(220, 150 * n))


def _merge_marks(marks: list[tuple[float, str]], span_s: float) -> list[tuple[float, str]]:
    """Marks closer than 3% of the run are one line with both labels (they would overprint)."""
    merged: list[tuple[float, str]] = []
    for at_s, label in sorted(marks):
        if merged and at_s - merged[-1][0] < 0.03 * max(span_s, 1e-9):
            merged[-1] = (merged[-1][0], f"{merged[-1][1]}; {label}")
        else:
            merged.append((at_s, label))
    return merged


def distribution_figure(values: np.ndarray, title: str, fig_id: str, bins: int = 60) -> Figure:
    """A histogram binned here (log-spaced bins when values span over two decades)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    data: list[dict[str, Any]] = []
    log = False
    if len(v):
        lo, hi = float(v.min()), float(v.max())
        log = hi / lo > 100
        edges = np.geomspace(lo, hi, bins + 1) if log else np.linspace(lo, hi if hi > lo else lo + 1e-9, bins + 1)
        counts, edges = np.histogram(v, bins=edges)
        x, y = _xy((edges[:-1] + edges[1:]) / 2, counts)
        bar: dict[str, Any] = {"type": "bar", "x": x, "y": y, "name": title}
        if not log:  # on a log axis plotly sizes bars itself; widths in seconds would be wrong there
            bar["width"] = np.diff(edges).tolist()
        data.append(bar)
    layout = _LAYOUT | {
        "title": {"text": f"{title} distribution ({len(v)} values)"},
        "xaxis": {"title": {"text": "seconds"}, "type": "log" if log else "linear"},
        "yaxis": {"title": {"text": "count"}},
        "bargap": 0,
    }
    return Figure(fig_id, data, layout, height_px=340)
