"""The per-stage table: throughput over each stage's span, latency of the requests it dispatched,
and the probe metrics sampled while it ran."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reports._stats import group_percentiles, slope

if TYPE_CHECKING:
    import pandas as pd

    from reports._load import RunData
    from reports._requests import Gaps

__all__ = ["PROBE_COLUMNS", "stage_table"]

# (metric, aggregates) carried into the stage table when the run sampled the metric.
PROBE_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kv_cache_usage", ("mean", "max")),
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


def _count_in(sorted_t: object, weights_cum: object, lo: float, hi: float) -> float:
    import numpy as np

    a, b = np.searchsorted(sorted_t, [lo, hi], side="left")
    return float(weights_cum[b] - weights_cum[a])


def _sorted_cum(t: object, w: object) -> tuple[object, object]:
    import numpy as np

    t = np.asarray(t, dtype=float)
    w = np.asarray(w, dtype=float)
    keep = np.isfinite(t)
    order = np.argsort(t[keep], kind="stable")
    return t[keep][order], np.r_[0.0, np.cumsum(w[keep][order])]


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
    out_t, out_c = _sorted_cum(
        np.r_[run.tokens["t"].to_numpy()[tok_ok], req["end"].to_numpy()[unstreamed]],
        np.r_[np.ones(int(tok_ok.sum())), req["out_tokens"].to_numpy()[unstreamed]],
    )
    prompt_time = req["first_token"].fillna(req["end"]).to_numpy()
    in_t, in_c = _sorted_cum(prompt_time[ok], req["in_tokens"].to_numpy()[ok])
    done_t, done_c = _sorted_cum(req["end"].to_numpy()[ok], np.ones(int(ok.sum())))

    stage_of = req["stage"].astype(str).to_numpy()
    lat = [
        group_percentiles(stage_of[ok], req[col].to_numpy()[ok], name)
        for col, name in (("ttft_s", "ttft"), ("ttft_intended_s", "ttft_intended"), ("e2e_s", "e2e"),
                          ("e2e_intended_s", "e2e_intended"))
    ]
    lat.append(group_percentiles(stage_of[gaps.req], gaps.gap_s, "itl"))
    sent_n = pd.Series(sent, index=stage_of).groupby(level=0).sum()
    ok_n = pd.Series(ok, index=stage_of).groupby(level=0).sum()

    rows = []
    for sp in spans.itertuples(index=False):
        lo, hi = float(sp.start_at_s), float(sp.end_at_s)
        dur = max(hi - lo, 1e-9)
        n_sent = int(sent_n.get(sp.stage, 0))
        n_ok = int(ok_n.get(sp.stage, 0))
        out = _count_in(out_t, out_c, lo, hi) / dur
        row = {
            "stage": sp.stage, "index": int(sp.index), "kind": sp.kind, "offered_load": sp.offered_load,
            "start_at_s": lo, "end_at_s": hi, "duration_s": hi - lo,
            "requests": n_sent, "requests_ok": n_ok,
            "error_rate": (n_sent - n_ok) / n_sent if n_sent else np.nan,
            "requests_per_s": _count_in(done_t, done_c, lo, hi) / dur,
            "output_tokens_per_s": out,
            "total_tokens_per_s": out + _count_in(in_t, in_c, lo, hi) / dur,
        }
        for table in lat:
            for col in table.columns:
                row[col] = table[col].get(sp.stage, np.nan)
        row |= _probe_stats(windows, lo, hi)
        ok_rows = req[ok & (stage_of == sp.stage)]
        row["_context_tokens_mean"] = float(
            (ok_rows["in_tokens"] + ok_rows["out_tokens"] / 2).mean()) if len(ok_rows) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _probe_stats(windows: pd.DataFrame, lo: float, hi: float) -> dict[str, float]:
    import numpy as np

    inside = windows[(windows["t_s"] >= lo - 1e-9) & (windows["t_s"] < hi - 1e-9)] if len(windows) else windows
    out: dict[str, float] = {}
    for metric, aggs in PROBE_COLUMNS:
        values = inside[metric] if metric in inside else None
        for agg in aggs:
            name = f"{metric}_{agg}" if agg else metric
            if values is None or values.isna().all():
                out[name] = np.nan
            else:
                out[name] = float(values.max() if agg == "max" else values.mean())
    waiting = inside["requests_waiting"] if "requests_waiting" in inside else None
    growth = slope(inside["t_s"], waiting) if waiting is not None else None
    out["requests_waiting_growth_per_s"] = np.nan if growth is None else growth
    return out
