"""The single-run report page: which sections, in which order, filled from an Analysis."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from satscope.reports._figures import distribution_figure, latency_figure, throughput_figure, timeline_figure
from satscope.reports._html import Page, Section, Table
from satscope.reports._search_figure import search_section
from satscope.reports._sessions_table import sessions_section

if TYPE_CHECKING:
    from satscope.reports._analyze import Analysis

__all__ = ["fmt", "load_title", "report_page"]

STAGE_COLUMNS = (  # (column, header, format)
    ("stage", "stage", "s"),
    ("offered_load", "offered load", "g"),
    ("requests", "requests", "d"),
    ("error_rate", "errors", "%"),
    ("requests_per_s", "req/s", ".2f"),
    ("output_tokens_per_s", "out tok/s", ".0f"),
    ("total_tokens_per_s", "total tok/s", ".0f"),
    ("scaling_efficiency", "scaling eff.", ".2f"),
    ("ttft_p50_s", "TTFT p50", ".3f"),
    ("ttft_p99_s", "TTFT p99", ".3f"),
    ("ttft_intended_p99_s", "TTFT p99 (intended)", ".3f"),
    ("ttfo_p50_s", "TTFO p50", ".3f"),
    ("ttfo_p99_s", "TTFO p99", ".3f"),
    ("itl_p50_s", "ITL p50", ".4f"),
    ("itl_p99_s", "ITL p99", ".4f"),
    ("e2e_p99_s", "E2E p99", ".3f"),
    ("goodput_per_s", "goodput req/s", ".2f"),
    ("kv_cache_usage_max", "KV max", "%"),
    ("requests_running_mean", "running", ".1f"),
    ("requests_waiting_mean", "waiting", ".1f"),
    ("preemptions_per_s", "preempt/s", ".2f"),
    ("gpu_dram_bw_util_mean", "DRAM bw", "%"),
    ("gpu_sm_occupancy_mean", "SM occ.", "%"),
    ("gpu_sm_active_mean", "SM active", "%"),
    ("gpu_power_w_mean", "power W", ".0f"),
    ("mbu", "MBU", "%"),
    ("mfu", "MFU", "%"),
)


def fmt(value: Any, spec: str) -> str:
    """A table cell: ``–`` for missing, percentages for ratios."""
    import math

    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if spec == "s":
        return str(value)
    if spec == "%":
        return f"{float(value):.0%}"
    if spec == "d":
        return f"{int(value):d}"
    return f"{float(value):{spec}}"


def load_title(summary: dict[str, Any]) -> str:
    kind = summary["saturation"]["load_kind"]
    return {"users": "offered load (concurrent users)", "rate_rps": "offered load (req/s)"}.get(kind, "offered load")


def _banner_level(summary: dict[str, Any]) -> str:
    if not summary["validity"]["ok"]:
        return "bad"
    if summary["bottleneck"]["kind"] in ("errors", "unknown", "client"):
        return "warn"
    return "ok"


def _reasoning(summary: dict[str, Any]) -> bool:
    """Whether the run had reasoning: only then does TTFO (first visible output) differ from TTFT."""
    return bool(summary["run"].get("reasoning_requests"))


def _stage_table(an: Analysis) -> Table:
    rows = [{k: v for k, v in r.items()} for r in an.summary["stages"]]
    shown = [c for c in STAGE_COLUMNS if _reasoning(an.summary) or not c[0].startswith("ttfo_")]
    cols = [c for c in shown if any(r.get(c[0]) is not None for r in rows) or c[0] == "stage"]
    sat_stage = an.summary["saturation"]["stage"]
    highlight = next((i for i, r in enumerate(rows) if r["stage"] == sat_stage), None)
    return Table([h for _, h, _ in cols], [[fmt(r.get(c), f) for c, _, f in cols] for r in rows], highlight)


def _bottleneck_section(summary: dict[str, Any]) -> Section:
    bn = summary["bottleneck"]
    rows = [
        [
            c["label"],
            "yes" if c["hit"] else "no",
            fmt(c["at_s"], ".1f"),
            c["stage"] or "–",
            c["sentence"] if c["hit"] else (c["reason_not"] or ""),
        ]
        for c in bn["candidates"]
    ]
    return Section(
        "Bottleneck and evidence",
        paragraphs=[f"Verdict: {bn['label']}. {bn['sentence']}."],
        items=[e["text"] for e in bn["evidence"]],
        table=Table(["resource", "at its limit", "from (s)", "stage", "figures / why not"], rows, wrap_last=True),
    )


def _correlation_table(summary: dict[str, Any]) -> Table:
    rows = [
        [
            c["metric"],
            str(c["windows"]),
            *(fmt(c[k], "+.2f") for k in ("output_tokens_per_s", "requests_per_s", "ttft_p99_s", "itl_p99_s")),
        ]
        for c in summary["correlations"]
    ]
    return Table(["resource metric", "windows", "vs output tok/s", "vs req/s", "vs TTFT p99", "vs ITL p99"], rows)


def _meta(an: Analysis) -> Section:
    s, m = an.summary, an.manifest
    run = s["run"]
    items = [f"[{w['severity']}] {w['message']}" for w in s["validity"]["warnings"]] or ["no validity warnings"]
    facts = {k: m.get(k) for k in ("run_id", "status", "command", "target", "versions", "host", "config")}
    facts["probes"] = s["probes"]
    return Section(
        "Run metadata and validity",
        paragraphs=[
            f"Model {run['model']} at {run['url']} ({run['endpoint']}); {run['requests_total']} requests "
            f"({run['requests_ok']} ok, {run['requests_failed']} failed, {run['requests_dropped']} dropped) "
            f"over {run['duration_s']:.1f} s in {run['stage_count']} stages."
        ],
        items=items,
        pre=json.dumps(facts, indent=2, default=str),
    )


def _timeline_marks(summary: dict[str, Any]) -> list[tuple[float, str]]:
    marks = []
    if summary["saturation"]["found"] and summary["saturation"]["at_s"] is not None:
        marks.append((summary["saturation"]["at_s"], "saturation level starts"))
    if summary["bottleneck"]["at_s"] is not None:
        marks.append((summary["bottleneck"]["at_s"], f"{summary['bottleneck']['label']} limit"))
    return marks


def _distributions(an: Analysis) -> Section:
    if not _reasoning(an.summary):
        return Section(
            "TTFT and ITL distributions",
            figures=[
                distribution_figure(an.ttft_s, "TTFT", "fig-ttft-dist"),
                distribution_figure(an.itl_s, "ITL", "fig-itl-dist"),
            ],
        )
    run = an.summary["run"]
    return Section(
        "TTFT, TTFO and ITL distributions",
        paragraphs=[
            f"{run['reasoning_requests']} requests reasoned: TTFT is their first token of any kind, TTFO "
            "(time to first output) their first visible one, content or a tool call"
            + (
                f"; {run['reasoning_only_requests']} ended before any visible output and have no TTFO."
                if run["reasoning_only_requests"]
                else "."
            )
        ],
        figures=[
            distribution_figure(an.ttft_s, "TTFT", "fig-ttft-dist"),
            distribution_figure(an.ttfo_s, "TTFO", "fig-ttfo-dist"),
            distribution_figure(an.itl_s, "ITL", "fig-itl-dist"),
        ],
    )


def report_page(an: Analysis) -> Page:
    """All sections of issue #6's report, in order."""
    s = an.summary
    lt = load_title(s)
    good, util = s["goodput"], s["utilization"]
    goodput_text = (
        [
            f"SLOs {good['slos']}: best goodput {fmt(good['best_goodput_per_s'], '.2f')} req/s at "
            f"{fmt(good['best_offered_load'], 'g')} "
            f"({fmt(good['best_goodput_fraction'], '%')} of requests within SLO); "
            f"{fmt(good['run_goodput_fraction'], '%')} of the whole run."
        ]
        if good["best_goodput_per_s"] is not None
        else ["No SLOs given (use --slo ttft=0.5 --slo itl=0.05)."]
    )
    util_text = [
        f"Device {util['device'] or 'unknown'}, GPU {util['gpu_name'] or 'none'}, peaks from "
        f"{util['peak_source']}; MBU max {fmt(util['mbu_max'], '%')}, MFU max {fmt(util['mfu_max'], '%')}."
    ]
    if util["note"]:
        util_text.append(util["note"])
    sections = [
        Section(
            "Throughput vs offered load",
            paragraphs=[f"Saturation rule: {s['saturation']['rule']}.", s["curve"]["note"]],
            figures=[throughput_figure(an.levels, s["saturation"], lt, curve=s["curve"])],
        ),
        *search_section(s),
        *sessions_section(s),
        Section("Latency vs offered load", figures=[latency_figure(an.levels, lt)]),
        _bottleneck_section(s),
        Section("Timeline", figures=[timeline_figure(an.windows, marks=_timeline_marks(s))]),
        _distributions(an),
        Section("Per-stage table", table=_stage_table(an)),
        Section("Goodput", paragraphs=goodput_text),
        Section("Correlation with throughput and latency (per window, Pearson r)", table=_correlation_table(s)),
        Section("Model bandwidth and FLOPs utilization", paragraphs=util_text),
    ]
    if an.top_errors:
        sections.append(
            Section(
                "Most common errors",
                table=Table(["count", "error"], [[str(n), e] for e, n in an.top_errors], wrap_last=True),
            )
        )
    sections.append(_meta(an))
    return Page(
        f"satscope report: {s['run_id']}",
        s["verdict"],
        _banner_level(s),
        sections,
        footer=f"satscope {s['satscope_version']} · summary format {s['summary_format_version']}",
    )
