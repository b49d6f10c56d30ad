"""The report's search path: the load of each level over time, saturated levels marked (plotly JSON)."""

from __future__ import annotations

from typing import Any

from satscope.reports._html import Figure, Section

__all__ = ["search_figure", "search_section"]


def search_figure(search: dict[str, Any], fig_id: str = "fig-search") -> Figure:
    """A step line of load per level over elapsed seconds; red crosses on saturated levels."""
    x: list[float] = []
    y: list[float] = []
    for lv in search["levels"]:
        x += [lv["start_s"], lv["end_s"]]
        y += [lv["load"], lv["load"]]
    mids = [(lv["start_s"] + lv["end_s"]) / 2 for lv in search["levels"]]
    marks = {
        True: ("saturated", "x", "#d62728"),
        False: ("not saturated", "circle", "#2ca02c"),
        None: ("too few to decide (run again)", "circle-open", "#7f7f7f"),
    }
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines", "x": x, "y": y, "name": "load", "line": {"color": "#1f77b4"}}
    ]
    for decision, (name, symbol, color) in marks.items():
        pick = [i for i, lv in enumerate(search["levels"]) if lv["saturated"] is decision]
        if pick:
            data.append({
                "type": "scatter", "mode": "markers", "name": name,
                "x": [mids[i] for i in pick], "y": [search["levels"][i]["load"] for i in pick],
                "text": [f"{search['levels'][i]['stage']}: {search['levels'][i]['reason']}" for i in pick],
                "marker": {"symbol": symbol, "size": 11, "color": color},
            })  # fmt: skip
    layout = {
        "title": {"text": "Search path: load per level"},
        "margin": {"l": 70, "r": 30, "t": 40, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
        "xaxis": {"title": {"text": "elapsed (s)"}},
        "yaxis": {"title": {"text": search["unit"]}, "rangemode": "tozero"},
    }
    return Figure(fig_id, data, layout)


def search_section(summary: dict[str, Any]) -> list[Section]:
    """The search's section, or none when the run was not a search."""
    search = summary.get("search")
    if not search:
        return []
    good, bad = (("none" if v is None else f"{v:g}") for v in (search["good"], search["saturated"]))
    if search.get("goal") == "slo":
        from satscope.reports._search import slo_text

        found = (f"the max goodput load: last level with {search['attainment']:.0%} of requests within "
                 f"{slo_text(search['slos'])} {good}, first below it {bad}")  # fmt: skip
    else:
        found = f"last good {good}, first saturated {bad}"
    text = (
        f"{search['levels_run']} levels in {search['wall_s']:.0f} s; {found} "
        f"{search['unit']}; stopped: {search['stopped']}. Each level was decided while it ran (docs/loadgen.md, "
        "the search)."
    )
    return [Section("Search path", paragraphs=[text], figures=[search_figure(search)])]
