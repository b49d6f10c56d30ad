"""Probe samples (long format) turned into one column per metric per time window.

Labels are folded: ratios and counts are averaged across label sets (e.g. GPUs), while power,
bytes and rates add up. A cumulative preemption counter stands in for the rate when the rate
itself was not sampled. ``prefill_tokens_per_s`` is derived here, once: the prompt tokens the
server computed, i.e. those it looked up in its prefix cache less those it found there when it
reports both, else its own prompt-token rate (llama.cpp's excludes the cached tokens).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SUMMED_METRICS", "window_samples"]

SUMMED_METRICS = frozenset(
    {
        "gpu_power_w",
        "gpu_energy_j",
        "gpu_mem_used_bytes",
        "gpu_mem_total_bytes",
        "gpu_pcie_tx_bytes_per_s",
        "gpu_pcie_rx_bytes_per_s",
        "gpu_nvlink_tx_bytes_per_s",
        "gpu_nvlink_rx_bytes_per_s",
        "preemptions_per_s",
        "prompt_tokens_per_s",
        "generation_tokens_per_s",
        "prefix_cache_hit_tokens_per_s",
        "prefix_cache_query_tokens_per_s",
        "loadgen_in_flight",
    }
)


def _with_preemption_rate(samples: pd.DataFrame) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    metrics = set(samples["metric"].unique())
    if "preemptions_per_s" in metrics or "preemptions_total" not in metrics:
        return samples
    total = samples[samples["metric"] == "preemptions_total"].sort_values(["labels", "t"])
    same = total["labels"].to_numpy()[1:] == total["labels"].to_numpy()[:-1]
    dt = np.diff(total["t"].to_numpy())
    dv = np.clip(np.diff(total["value"].to_numpy()), 0.0, None)  # a reset counts as no preemptions
    ok = same & (dt > 0)
    rate = pd.DataFrame(
        {
            "t": total["t"].to_numpy()[1:][ok],
            "source": total["source"].to_numpy()[1:][ok],
            "metric": "preemptions_per_s",
            "value": dv[ok] / dt[ok],
            "labels": total["labels"].to_numpy()[1:][ok],
        }
    )
    return pd.concat([samples, rate], ignore_index=True)


def _with_prefill_rate(folded: pd.DataFrame) -> pd.DataFrame:
    """Adds ``prefill_tokens_per_s`` to the window table when the server's figures give it."""
    query, hits = folded.get("prefix_cache_query_tokens_per_s"), folded.get("prefix_cache_hit_tokens_per_s")
    if query is not None and hits is not None:
        folded["prefill_tokens_per_s"] = (query - hits).clip(lower=0.0)
    elif "prompt_tokens_per_s" in folded:
        folded["prefill_tokens_per_s"] = folded["prompt_tokens_per_s"]
    return folded


def window_samples(samples: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """Rows: window number (``floor(t / window_s)``); columns: metric names (mean in the window)."""
    import numpy as np
    import pandas as pd

    if samples.empty:
        return pd.DataFrame(index=pd.Index([], dtype="int64", name="w"))
    s = _with_preemption_rate(samples)
    w = np.floor(s["t"].to_numpy() / window_s).astype(np.int64)
    per_label = (
        pd.DataFrame(
            {"w": w, "metric": s["metric"].to_numpy(), "labels": s["labels"].to_numpy(), "value": s["value"].to_numpy()}
        )
        .groupby(["metric", "labels", "w"], sort=False, observed=True)["value"]
        .mean()
        .reset_index()
    )
    summed = per_label["metric"].isin(SUMMED_METRICS)
    parts = []
    for is_sum, frame in ((True, per_label[summed]), (False, per_label[~summed])):
        if len(frame):
            grouped = frame.groupby(["w", "metric"], observed=True)["value"]
            parts.append(grouped.sum() if is_sum else grouped.mean())
    folded = pd.concat(parts).unstack("metric")
    folded.index.name = "w"
    return _with_prefill_rate(folded.sort_index())
