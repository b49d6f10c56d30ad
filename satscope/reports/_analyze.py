"""From a run directory to the summary (docs/summary-format.md) and the tables the HTML draws."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satscope.reports._bottleneck import Context, attribute
from satscope.reports._client import client_rule
from satscope.reports._curve import curve_block
from satscope.reports._goodput import Slos, add_stage_goodput, good_requests, goodput_block, parse_slos
from satscope.reports._host import host_load
from satscope.reports._knee import find_knee
from satscope.reports._levels import load_levels
from satscope.reports._little import little_block, little_warnings
from satscope.reports._load import RunData, load_run
from satscope.reports._mbu import add_utilization, find_peak
from satscope.reports._percentiles import as_json, percentile_levels
from satscope.reports._replay import replay_block
from satscope.reports._report_settings import ReportSettings
from satscope.reports._requests import inter_token_gaps, reasoning_counts, request_frame
from satscope.reports._saturation import saturation_block
from satscope.reports._search import search_block
from satscope.reports._sessions import sessions_block
from satscope.reports._spans import load_kind, stage_spans
from satscope.reports._stages import stage_table
from satscope.reports._stats import clean, distribution
from satscope.reports._validity import probes_block, validity_block
from satscope.reports._verdict import verdict_sentence
from satscope.reports._warmup import Warmup, clip_spans, exclude_warmup
from satscope.reports._windows import window_table

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["SUMMARY_FORMAT_VERSION", "Analysis", "run_analysis"]

SUMMARY_FORMAT_VERSION = 1
RESOURCE_METRICS = (
    "kv_cache_usage",
    "requests_running",
    "requests_waiting",
    "preemptions_per_s",
    "batch_size",
    "gpu_dram_bw_util",
    "gpu_sm_occupancy",
    "gpu_sm_active",
    "gpu_tensor_active",
    "gpu_time_busy",
    "gpu_mem_time_busy",
    "gpu_power_w",
    "server_cpu_cores",
    "host_cpu_util",
)
CORRELATED_WITH = ("output_tokens_per_s", "requests_per_s", "ttft_p99_s", "itl_p99_s")


@dataclass(slots=True)
class Analysis:
    """The summary plus the frames behind it (for the HTML)."""

    summary: dict[str, Any]
    windows: pd.DataFrame
    stages: pd.DataFrame
    levels: pd.DataFrame
    ttft_s: np.ndarray
    itl_s: np.ndarray
    ttfo_s: np.ndarray  # ok requests' time to first visible output (NaN: none arrived)
    manifest: dict[str, Any]
    top_errors: list[tuple[str, int]]


def run_analysis(
    run_dir: str | Path,
    slos: Any = None,
    window_s: float = 1.0,
    *,
    warmup_s: float | None = None,
    percentiles: Any = None,
) -> Analysis:
    """Load ``run_dir`` and compute everything; raises ReportInputError for bad files.

    ``warmup_s`` and ``percentiles`` (``"50,90,99.9"`` or a list) override what the run recorded
    (``run.json`` ``config.report``); None takes the recorded value, else no warm-up and the default
    levels."""
    if not window_s > 0:
        raise ValueError("window_s must be positive")
    slo = parse_slos(slos)
    run = load_run(run_dir)
    settings = ReportSettings.of_run(run.manifest, warmup_s, percentiles)
    run, warm = exclude_warmup(run, settings.warmup_s)
    with percentile_levels(settings.percentiles):
        return _analysis(run, slo, window_s, warm, settings)


def _analysis(run: RunData, slo: Slos, window_s: float, warm: Warmup, settings: ReportSettings) -> Analysis:
    import numpy as np

    req = request_frame(run)
    gaps = inter_token_gaps(run)
    spans = clip_spans(stage_spans(run), warm.end_at_s)
    windows = window_table(run, req, gaps, spans, window_s)
    stages = stage_table(run, req, gaps, spans, windows)
    util = find_peak(run.manifest, run.probes)
    add_utilization(stages, util)
    good = good_requests(req, slo) if slo.given else None
    add_stage_goodput(stages, req, good)

    kind = load_kind(spans)
    levels, method = load_levels(stages, windows, req, window_s)
    knee = find_knee(levels, method, open_loop=kind == "rate_rps")
    if knee.method == "stages" and len(knee.levels):
        stages["scaling_efficiency"] = stages["stage"].map(knee.levels.set_index("stage")["scaling_efficiency"])
    else:
        stages["scaling_efficiency"] = np.nan
    saturation = saturation_block(knee, kind)
    failed = req.loc[req["sent"] & ~req["ok"], "error"].dropna()
    host = host_load(run, windows, window_s)
    itl_p50 = float(np.median(gaps.gap_s)) if len(gaps.gap_s) else None
    client = client_rule(run, req, itl_p50, host.spare_cores)
    ctx = Context(
        windows,
        stages,
        run.manifest,
        knee.found,
        saturation["at_s"],
        saturation["knee_scaling_efficiency"],
        top_error=str(failed.value_counts().index[0]) if len(failed) else None,
        client=client,
        has_probe_data=bool(len(run.samples)),
    )
    bottleneck = attribute(ctx)
    ok = req["ok"].to_numpy()
    summary: dict[str, Any] = {
        "summary_format_version": SUMMARY_FORMAT_VERSION,
        "run_id": run.manifest.get("run_id") or run.run_dir.name,
        "run_dir": str(run.run_dir.resolve()),
        "generated_at_unix_s": time.time(),
        "satscope_version": _version(),
        "window_s": window_s,
        "slos": slo.as_dict(),
        "percentile_levels": as_json(settings.percentiles),
        "verdict": "",
        "run": _run_block(run, req, spans, warm),
        "saturation": saturation,
        "bottleneck": bottleneck,
        "goodput": goodput_block(stages, req, good, slo),
        "percentiles": {
            "ttft_s": distribution(req["ttft_s"][ok]),
            "ttft_intended_s": distribution(req["ttft_intended_s"][ok]),
            "ttfo_s": distribution(req["ttfo_s"][ok]),
            "ttfo_intended_s": distribution(req["ttfo_intended_s"][ok]),
            "itl_s": distribution(gaps.gap_s),
            "e2e_s": distribution(req["e2e_s"][ok]),
            "e2e_intended_s": distribution(req["e2e_intended_s"][ok]),
            "output_tokens": distribution(req["out_tokens"][ok]),
        },
        "stages": _records(stages[[c for c in stages.columns if not c.startswith("_")]]),
        "correlations": _correlations(windows),
        "utilization": util,
        "probes": probes_block(run),
        "validity": validity_block(run, req, len(knee.levels), bottleneck, host.warning),
        "search": search_block(run.run_dir, float(run.manifest["clock"]["monotonic_origin_s"])),
        "sessions": sessions_block(req, (run.manifest.get("config") or {}).get("workload")),
        "replay": replay_block(req, run.manifest.get("config")),
    }
    summary["curve"] = curve_block(knee.levels, saturation, kind)
    summary["little"] = little_block(knee.levels, knee.method, req, kind, run.manifest, warm.end_at_s)
    summary["validity"]["warnings"].extend(little_warnings(summary["little"]))
    summary["verdict"] = verdict_sentence(summary)
    top_errors = [(str(k), int(v)) for k, v in failed.value_counts().head(10).items()]
    return Analysis(
        summary,
        windows,
        stages,
        knee.levels,
        req["ttft_s"][ok].to_numpy(dtype=float),
        gaps.gap_s,
        req["ttfo_s"][ok].to_numpy(dtype=float),
        run.manifest,
        top_errors,
    )


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("satscope")
    except Exception:  # an uninstalled checkout still reports
        return "unknown"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: clean(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _run_block(run: Any, req: pd.DataFrame, spans: pd.DataFrame, warm: Warmup) -> dict[str, Any]:
    m = run.manifest
    target = m.get("target") or {}
    start, end = m.get("start_s"), m.get("end_s")
    duration = (
        (float(end) - float(start))
        if start is not None and end is not None
        else (float(req["end"].max() - req["intended_start"].min()) if len(req) else 0.0)
    )
    dropped = int((req["status"] == "dropped").sum())
    reasoning, reasoning_only = reasoning_counts(req)
    return {
        "status": m.get("status"),
        "model": target.get("model") or (run.probes.get("model") or {}).get("name"),
        "endpoint": target.get("endpoint"),
        "url": target.get("url"),
        "duration_s": duration,
        "load_kind": load_kind(spans),
        "requests_total": len(req),
        "requests_ok": int(req["ok"].sum()),
        "requests_failed": int((~req["ok"]).sum()) - dropped,
        "requests_dropped": dropped,
        "error_rate": (int((~req["ok"]).sum()) - dropped) / (len(req) - dropped) if len(req) > dropped else None,
        "output_tokens_total": int(req["out_tokens"].sum()),
        "reasoning_requests": reasoning,
        "reasoning_only_requests": reasoning_only,
        "stage_count": len(spans),
        "warmup_s": warm.seconds,
        "warmup_end_at_s": warm.end_at_s,
        "requests_warmup": warm.requests,
    }


def _correlations(windows: pd.DataFrame) -> list[dict[str, Any]]:
    import numpy as np

    out = []
    for metric in RESOURCE_METRICS:
        if metric not in windows or windows[metric].notna().sum() < 3:
            continue
        x = windows[metric].to_numpy(dtype=float)
        item: dict[str, Any] = {"metric": metric, "windows": int(np.isfinite(x).sum())}
        for other in CORRELATED_WITH:
            y = windows[other].to_numpy(dtype=float) if other in windows else np.full(len(x), np.nan)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
                item[other] = None
            else:
                item[other] = clean(np.corrcoef(x[ok], y[ok])[0, 1])
        out.append(item)
    return out
