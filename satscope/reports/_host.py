"""Noisy neighbours: host CPU used by processes other than the server and the load generator.

Per time window: ``host_cpu_util`` × cores, less the server's cores (``server_cpu_cores``) and
the load generator's (``loadgen_cpu`` of every worker, from ``loadgen.parquet``). Other work on
the machine slows a CPU server and steals the client's cores, so a reader must know. Without the
server's own CPU figure the rest cannot be told apart from the server, and nothing is said.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from satscope.reports._evidence import first_hold
from satscope.reports._thresholds import THRESHOLDS

if TYPE_CHECKING:
    import pandas as pd

    from satscope.reports._load import RunData

__all__ = ["HostLoad", "host_load"]


@dataclass(slots=True, frozen=True)
class HostLoad:
    """``warning`` is the validity message (None when the host was not contended)."""

    cores: int | None
    spare_cores: bool  # at least one core was free most of the time (p90 of the host's use)
    others_share_p50: float | None
    warning: str | None


def host_load(run: RunData, windows: pd.DataFrame, window_s: float) -> HostLoad:
    import numpy as np

    cores = (run.manifest.get("host") or {}).get("cpu_count")
    host = windows["host_cpu_util"].to_numpy(dtype=float) if "host_cpu_util" in windows else None
    if not cores or host is None or not np.isfinite(host).any():
        return HostLoad(cores, True, None, None)
    busy = host * float(cores)
    spare = bool(np.nanquantile(busy, 0.9) <= float(cores) - 1.0)
    if "server_cpu_cores" not in windows or not windows["server_cpu_cores"].notna().any():
        return HostLoad(cores, spare, None, None)
    client = np.zeros(len(windows))
    lg = run.loadgen
    if lg is not None and len(lg):
        cpu = lg[lg["metric"] == "loadgen_cpu"]
        w = np.floor(cpu["t"].to_numpy(dtype=float) / window_s).astype(np.int64)
        # mean per worker in each window, summed over workers
        per = cpu.assign(w=w).groupby(["w", "labels"], observed=True)["value"].mean().groupby(level="w").sum()
        client = per.reindex(windows.index).fillna(0.0).to_numpy()
    server = np.nan_to_num(windows["server_cpu_cores"].to_numpy(dtype=float))
    others = np.clip(busy - server - client, 0.0, None) / float(cores)
    others[windows["stage"].isna().to_numpy() | ~np.isfinite(host)] = np.nan  # under load only
    if not np.isfinite(others).any():
        return HostLoad(cores, spare, None, None)
    median = float(np.nanmedian(others))
    # from the first sustained stretch over the limit after which the median stays over it too
    limit = THRESHOLDS.host_others_share
    held = np.nan_to_num(others) >= limit
    pos = next(
        (i for i in range(len(others)) if first_hold(held[i:]) == 0 and np.nanmedian(others[i:]) >= limit), None
    )
    if pos is None:
        return HostLoad(cores, spare, median, None)
    t = float(windows["t_s"].iloc[pos])
    share = float(np.nanmedian(others[pos:]))
    text = (
        f"host contended: {share:.0%} of CPU ({share * cores:.1f} of {cores} cores) used by other processes "
        f"than the server and the load generator from {t:.0f} s (limit {THRESHOLDS.host_others_share:.0%}); "
        "latencies and the knee may reflect the neighbours, not the server"
    )
    return HostLoad(cores, spare, median, text)
