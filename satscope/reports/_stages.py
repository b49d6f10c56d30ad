"""The per-stage table: throughput over each stage's span, latency of the requests it dispatched,
and the probe metrics sampled while it ran."""

from __future__ import annotations

from typing import TYPE_CHECKING

from satscope.reports._measures import cached_prompt_tokens, prompt_time
from satscope.reports._spans import stage_at
from satscope.reports._stats import group_percentiles, slope

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from satscope.reports._load import RunData
    from satscope.reports._requests import Gaps

__all__ = ["PROBE_COLUMNS", "stage_table"]

# (metric, aggregates) carried into the stage table when the run sampled the metric.
PROBE_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kv_cache_usage", ("mean", "max")),
    ("prefix_cache_hit_rate", ("mean",)),
    ("prefill_tokens_per_s", ("",)),
    ("requests_running", ("mean", "max")),
    ("requests_waiting", ("mean", "max")),
    ("preemptions_per_s", ("",)),
    ("batch_size", ("mean",)),
    ("gpu_dram_bw_util", ("mean",)),
    ("gpu_sm_occupancy", ("mean",)),
    ("gpu_sm_active", ("mean",)),
    ("gpu_tensor_active", ("mean",)),
    ("gpu_power_w", ("mean",)),
    ("server_cpu_cores", ("mean",)),
)


def _per_stage(spans: pd.DataFrame, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Sum of weights ``w`` of the events at times ``t`` that fall in each stage's span."""
    import numpy as np

    pos = np.asarray(stage_at(spans, t))
    inside = pos >= 0
    return np.bincount(pos[inside], weights=np.asarray(w, dtype=float)[inside], minlength=len(spans))


def stage_table(
    run: RunData, req: pd.DataFrame, gaps: Gaps, spans: pd.DataFrame, windows: pd.DataFrame
) -> pd.DataFrame:
    """One row per stage in run order; see docs/summary-format.md `stages`."""
    import numpy as np
    import pandas as pd

    ok = req["ok"].to_numpy()
    sent = req["sent"].to_numpy()
    tok_ok = ok[run.tokens["req"].to_numpy()] if len(run.tokens) else np.empty(0, bool)
    unstreamed = ok & (req["streamed_tokens"].to_numpy() == 0)
    out_n = _per_stage(
        spans,
        np.r_[run.tokens["t"].to_numpy()[tok_ok], req["end"].to_numpy()[unstreamed]],
        np.r_[np.ones(int(tok_ok.sum())), req["out_tokens"].to_numpy()[unstreamed]],
    )
    in_n = _per_stage(spans, prompt_time(req)[ok], req["in_tokens"].to_numpy()[ok])
    done_n = _per_stage(spans, req["end"].to_numpy()[ok], np.ones(int(ok.sum())))

    # requests belong to the stage that dispatched them: its position in `spans` (-1: none)
    code = pd.Index(spans["stage"]).get_indexer(req["stage"].astype(str)).astype(float)
    code[code < 0] = np.nan
    lat = [
        group_percentiles(code[ok], req[col].to_numpy()[ok], name)
        for col, name in (
            ("ttft_s", "ttft"),
            ("ttft_intended_s", "ttft_intended"),
            ("ttfo_s", "ttfo"),
            ("ttfo_intended_s", "ttfo_intended"),
            ("e2e_s", "e2e"),
            ("e2e_intended_s", "e2e_intended"),
        )
    ]
    lat.append(group_percentiles(code[gaps.req], gaps.gap_s, "itl"))
    valid = np.isfinite(code)
    ci = np.where(valid, code, 0).astype(np.int64)
    sent_n = np.bincount(ci[valid & sent], minlength=len(spans))
    dropped_n = np.bincount(ci[valid & ~sent], minlength=len(spans))
    ok_n = np.bincount(ci[valid & ok], minlength=len(spans))
    context = (req["in_tokens"] + req["out_tokens"] / 2).to_numpy()
    ctx_sum = np.bincount(ci[valid & ok], weights=context[valid & ok], minlength=len(spans))

    cached, prompted = _cached_tokens(req, ci, valid & ok, len(spans))
    rows = []
    for pos, sp in enumerate(spans.itertuples(index=False)):
        lo, hi = float(sp.start_at_s), float(sp.end_at_s)
        dur = max(hi - lo, 1e-9)
        n_sent, n_ok = int(sent_n[pos]), int(ok_n[pos])
        row = {
            "stage": sp.stage,
            "index": int(sp.index),
            "kind": sp.kind,
            "profile": sp.profile,
            "offered_load": sp.offered_load,
            "start_at_s": lo,
            "end_at_s": hi,
            "duration_s": hi - lo,
            "requests": n_sent,
            "requests_dropped": int(dropped_n[pos]),
            "requests_ok": n_ok,
            "error_rate": (n_sent - n_ok) / n_sent if n_sent else np.nan,
            "requests_per_s": done_n[pos] / dur,
            "output_tokens_per_s": out_n[pos] / dur,
            "total_tokens_per_s": (out_n[pos] + in_n[pos]) / dur,
        }
        for table in lat:
            for col in table.columns:
                row[col] = table[col].get(pos, np.nan)
        row |= _probe_stats(windows, lo, hi)
        row["prompt_tokens_cached_share"] = cached[pos] / prompted[pos] if prompted[pos] > 0 else np.nan
        row["_context_tokens_mean"] = ctx_sum[pos] / n_ok if n_ok else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _cached_tokens(req: pd.DataFrame, ci: np.ndarray, keep: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per stage: prompt tokens the server reported cached, and the prompt tokens of those requests."""
    import numpy as np

    cached, prompt, reported = cached_prompt_tokens(req)
    keep = keep & reported
    return (
        np.bincount(ci[keep], weights=cached[keep], minlength=n),
        np.bincount(ci[keep], weights=prompt[keep], minlength=n),
    )


def _probe_stats(windows: pd.DataFrame, lo: float, hi: float) -> dict[str, float]:
    import numpy as np

    inside = windows[(windows["t_s"] >= lo - 1e-9) & (windows["t_s"] < hi - 1e-9)] if len(windows) else windows
    out: dict[str, float] = {}
    for metric, aggs in PROBE_COLUMNS:
        values = inside.get(metric)
        for agg in aggs:
            name = f"{metric}_{agg}" if agg else metric
            if values is None or values.isna().all():
                out[name] = np.nan
            else:
                out[name] = float(values.max() if agg == "max" else values.mean())
    waiting = inside.get("requests_waiting")
    growth = slope(inside["t_s"], waiting) if waiting is not None else None
    out["requests_waiting_growth_per_s"] = np.nan if growth is None else growth
    return out
