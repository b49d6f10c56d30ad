"""Which resource hit its limit first, and the numbers that show it (rules in docs/reports.md).

Each kind has a condition over the time windows; it *holds* when it is true for
``MIN_WINDOWS`` windows in a row. The verdict is the kind that held first (ties go by
``PRIORITY``), except that a saturated load generator overrides everything: then the client, not
the server, limited the run. Bandwidth and compute also need throughput to be flat — the window
must be at or after the saturation point, with a knee found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reports._stats import clean

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LABELS", "THRESHOLDS", "Context", "attribute"]

LABELS = {
    "kv_cache": "KV cache",
    "memory_bandwidth": "memory bandwidth",
    "compute": "compute",
    "batch_limit": "scheduler batch limit",
    "client": "client (load generator)",
    "errors": "errors",
    "none": "none",
    "unknown": "unknown",
}
PRIORITY = ("client", "kv_cache", "batch_limit", "memory_bandwidth", "compute", "errors")
THRESHOLDS = {
    "kv_cache_usage": 0.95,
    "kv_room": 0.90,
    "bw_room": 0.80,
    "requests_waiting": 1.0,
    "running_at_cap": 0.90,
    "gpu_dram_bw_util": 0.80,
    "gpu_sm_active": 0.90,
    "gpu_tensor_active": 0.70,
    "server_cpu_share": 0.90,
    "error_rate": 0.05,
}
MIN_WINDOWS = 2


@dataclass(slots=True)
class Context:
    """What the rules look at."""

    windows: pd.DataFrame
    stages: pd.DataFrame
    manifest: dict[str, Any]
    knee_found: bool
    saturation_at_s: float | None
    knee_efficiency: float | None
    top_error: str | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)


def _ev(metric: str, value: Any, threshold: Any, op: str, at_s: Any, stage: Any, text: str) -> dict[str, Any]:
    return {
        "metric": metric,
        "value": clean(value),
        "threshold": clean(threshold),
        "op": op,
        "at_s": clean(at_s),
        "stage": stage,
        "text": text,
    }


def _first_hold(mask: Any) -> int | None:
    import numpy as np

    m = np.asarray(mask, dtype=bool)
    need = min(MIN_WINDOWS, len(m))
    if need == 0:
        return None
    run = np.convolve(m.astype(int), np.ones(need, dtype=int), mode="valid")
    hits = np.flatnonzero(run >= need)
    return int(hits[0]) if len(hits) else None


def _col(w: pd.DataFrame, name: str) -> Any:
    return w[name].to_numpy(dtype=float) if name in w and w[name].notna().any() else None


def _miss(kind: str, reason: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "label": LABELS[kind],
        "hit": False,
        "at_s": None,
        "stage": None,
        "sentence": None,
        "evidence": [],
        "reason_not": reason,
    }


def _hit(kind: str, w: pd.DataFrame, pos: int, sentence: str, evidence: list[dict[str, Any]]) -> dict[str, Any]:
    row = w.iloc[pos]
    return {
        "kind": kind,
        "label": LABELS[kind],
        "hit": True,
        "at_s": clean(row["t_s"]),
        "stage": row["stage"],
        "sentence": sentence,
        "evidence": evidence,
        "reason_not": None,
    }


def _stage_value(ctx: Context, stage: Any, col: str) -> Any:
    s = ctx.stages
    if stage is None or s.empty or col not in s:
        return None
    match = s.loc[s["stage"] == stage, col]
    return clean(match.iloc[0]) if len(match) else None


def _kv(ctx: Context) -> dict[str, Any]:
    import numpy as np

    w = ctx.windows
    kv, pre, wait = _col(w, "kv_cache_usage"), _col(w, "preemptions_per_s"), _col(w, "requests_waiting")
    if kv is None:
        return _miss("kv_cache", "no kv_cache_usage samples")
    if pre is None and wait is None:
        return _miss("kv_cache", "no preemption or queue samples to confirm the KV cache limited the batch")
    pressure = np.zeros(len(w), bool)
    if pre is not None:
        pressure |= np.nan_to_num(pre) > 0
    if wait is not None:
        pressure |= np.nan_to_num(wait) >= THRESHOLDS["requests_waiting"]
    full = np.nan_to_num(kv) >= THRESHOLDS["kv_cache_usage"]
    share = _sequence_share(w)
    if share is not None and wait is not None:
        # block-granular pools are "full" below 95% when the free part cannot hold one more sequence
        full |= (np.nan_to_num(wait) >= THRESHOLDS["requests_waiting"]) & (1.0 - np.nan_to_num(kv) < share)
    pos = _first_hold(full & pressure)
    if pos is None:
        return _miss(
            "kv_cache",
            f"KV cache usage peaked at {np.nanmax(kv):.0%}, under "
            f"{THRESHOLDS['kv_cache_usage']:.0%} with preemptions or a queue, with room for another sequence",
        )
    t, stage = float(w["t_s"].iloc[pos]), w["stage"].iloc[pos]
    rate = _stage_value(ctx, stage, "preemptions_per_s")
    growth = _stage_value(ctx, stage, "requests_waiting_growth_per_s")
    waiting = _stage_value(ctx, stage, "requests_waiting_mean")
    ev = [
        _ev(
            "kv_cache_usage",
            kv[pos],
            THRESHOLDS["kv_cache_usage"],
            ">=",
            t,
            stage,
            f"KV cache usage {kv[pos]:.0%} at {t:.1f} s",
        )
    ]
    parts = [f"KV cache full: usage {kv[pos]:.0%} at {t:.1f} s (stage {stage})"]
    if kv[pos] < THRESHOLDS["kv_cache_usage"] and share is not None:
        ev.append(
            _ev(
                "kv_cache_free",
                1.0 - kv[pos],
                share,
                "<",
                t,
                stage,
                f"free KV {1.0 - kv[pos]:.0%} is less than one sequence holds (about {share:.0%})",
            )
        )
        parts[0] += f", too little left for another sequence (one holds about {share:.0%})"
    if rate is not None and rate > 0:
        ev.append(_ev("preemptions_per_s", rate, 0.0, ">", t, stage, f"{rate:.2g} preemptions/s in stage {stage}"))
        parts.append(f"{rate:.2g} preemptions/s")
    if waiting is not None:
        ev.append(
            _ev(
                "requests_waiting",
                waiting,
                THRESHOLDS["requests_waiting"],
                ">=",
                t,
                stage,
                f"{waiting:.1f} requests waiting on average in stage {stage}",
            )
        )
        parts.append(f"{waiting:.1f} requests waiting")
    if growth is not None:
        ev.append(
            _ev(
                "requests_waiting_growth_per_s",
                growth,
                0.0,
                ">",
                t,
                stage,
                f"waiting queue changing by {growth:+.2f} requests/s in stage {stage}",
            )
        )
    return _hit("kv_cache", w, pos, parts[0] + (" with " + " and ".join(parts[1:]) if parts[1:] else ""), ev)


def _sequence_share(w: pd.DataFrame) -> float | None:
    """Median share of the KV pool one running sequence holds (usage ÷ running), or None."""
    import numpy as np

    kv, run = _col(w, "kv_cache_usage"), _col(w, "requests_running")
    if kv is None or run is None:
        return None
    ok = np.isfinite(kv) & np.isfinite(run) & (run >= 1) & (kv > 0)
    return float(np.median(kv[ok] / run[ok])) if ok.any() else None


def _batch(ctx: Context) -> dict[str, Any]:
    import numpy as np

    w = ctx.windows
    run, wait, kv, bw = (
        _col(w, m) for m in ("requests_running", "requests_waiting", "kv_cache_usage", "gpu_dram_bw_util")
    )
    if run is None or wait is None:
        return _miss("batch_limit", "no requests_running / requests_waiting samples")
    if kv is None:
        return _miss("batch_limit", "no kv_cache_usage samples, so KV room cannot be shown")
    cap = float(np.nanmax(run))
    room = np.nan_to_num(kv, nan=1.0) < THRESHOLDS["kv_room"]
    share = _sequence_share(w)
    if share is not None:  # room for at least two more sequences, not just a few free blocks
        room &= 1.0 - np.nan_to_num(kv, nan=1.0) >= 2.0 * share
    if bw is not None:
        room &= np.nan_to_num(bw, nan=1.0) < THRESHOLDS["bw_room"]
    mask = (
        (np.nan_to_num(wait) >= THRESHOLDS["requests_waiting"])
        & (np.nan_to_num(run) >= THRESHOLDS["running_at_cap"] * cap)
        & room
    )
    pos = _first_hold(mask)
    if pos is None:
        return _miss(
            "batch_limit",
            "the queue never grew while the running batch sat at its maximum with KV cache and bandwidth to spare",
        )
    t, stage = float(w["t_s"].iloc[pos]), w["stage"].iloc[pos]
    ev = [
        _ev(
            "requests_running",
            run[pos],
            cap,
            ">=",
            t,
            stage,
            f"{run[pos]:.0f} sequences running (most seen: {cap:.0f})",
        ),
        _ev(
            "requests_waiting",
            wait[pos],
            THRESHOLDS["requests_waiting"],
            ">=",
            t,
            stage,
            f"{wait[pos]:.1f} requests waiting at {t:.1f} s",
        ),
        _ev("kv_cache_usage", kv[pos], THRESHOLDS["kv_room"], "<", t, stage, f"KV cache usage only {kv[pos]:.0%}"),
    ]
    text = (
        f"scheduler batch limit: the running batch stayed at {cap:.0f} sequences with {wait[pos]:.1f} "
        f"waiting at {t:.1f} s (stage {stage}) while KV cache usage was {kv[pos]:.0%}"
    )
    if bw is not None:
        ev.append(
            _ev("gpu_dram_bw_util", bw[pos], THRESHOLDS["bw_room"], "<", t, stage, f"DRAM bandwidth {bw[pos]:.0%}")
        )
        text += f" and DRAM bandwidth {bw[pos]:.0%}"
    growth = _stage_value(ctx, stage, "requests_waiting_growth_per_s")
    if growth is not None:
        ev.append(
            _ev(
                "requests_waiting_growth_per_s",
                growth,
                0.0,
                ">",
                t,
                stage,
                f"waiting queue changing by {growth:+.2f} requests/s in stage {stage}",
            )
        )
    return _hit("batch_limit", w, pos, text, ev)


def _flat_mask(ctx: Context) -> Any:
    import numpy as np

    t = ctx.windows["t_s"].to_numpy(dtype=float)
    if not ctx.knee_found or ctx.saturation_at_s is None:
        return np.zeros(len(t), bool)
    return t >= ctx.saturation_at_s - 1e-9


def _flat_evidence(ctx: Context, t: float, stage: Any) -> dict[str, Any]:
    eff = ctx.knee_efficiency
    return _ev(
        "scaling_efficiency",
        eff,
        0.5,
        "<",
        t,
        stage,
        f"tokens/s flat past the saturation point (scaling efficiency {eff:.2f} at the knee)"
        if eff is not None
        else "tokens/s flat past the saturation point",
    )


def _bandwidth(ctx: Context) -> dict[str, Any]:
    import numpy as np

    w = ctx.windows
    bw = _col(w, "gpu_dram_bw_util")
    if bw is None:
        return _miss("memory_bandwidth", "no gpu_dram_bw_util samples (no GPU probe, or no GPM/DCGM)")
    pos = _first_hold((np.nan_to_num(bw) >= THRESHOLDS["gpu_dram_bw_util"]) & _flat_mask(ctx))
    if pos is None:
        why = "tokens/s kept rising with load" if not ctx.knee_found else f"peaked at {np.nanmax(bw):.0%}"
        return _miss("memory_bandwidth", f"DRAM bandwidth never at its limit while tokens/s were flat ({why})")
    t, stage = float(w["t_s"].iloc[pos]), w["stage"].iloc[pos]
    ev = [
        _ev(
            "gpu_dram_bw_util",
            bw[pos],
            THRESHOLDS["gpu_dram_bw_util"],
            ">=",
            t,
            stage,
            f"DRAM bandwidth utilization {bw[pos]:.0%} at {t:.1f} s",
        ),
        _flat_evidence(ctx, t, stage),
    ]
    text = (
        f"memory bandwidth: DRAM bandwidth utilization {bw[pos]:.0%} at {t:.1f} s (stage {stage}) "
        "while tokens/s stayed flat"
    )
    mbu = _stage_value(ctx, stage, "mbu")
    if mbu is not None:
        ev.append(_ev("mbu", mbu, None, "==", t, stage, f"estimated MBU {mbu:.0%} in stage {stage}"))
        text += f" (estimated MBU {mbu:.0%})"
    return _hit("memory_bandwidth", w, pos, text, ev)


def _compute(ctx: Context) -> dict[str, Any]:
    import numpy as np

    w = ctx.windows
    sm, tensor, cpu = _col(w, "gpu_sm_active"), _col(w, "gpu_tensor_active"), _col(w, "server_cpu_cores")
    cores = (ctx.manifest.get("host") or {}).get("cpu_count")
    busy = np.zeros(len(w), bool)
    if sm is not None:
        busy |= np.nan_to_num(sm) >= THRESHOLDS["gpu_sm_active"]
    if tensor is not None:
        busy |= np.nan_to_num(tensor) >= THRESHOLDS["gpu_tensor_active"]
    if sm is None and tensor is None:
        if cpu is None or not cores:
            return _miss("compute", "no SM/tensor activity samples and no server CPU figures")
        busy |= np.nan_to_num(cpu) >= THRESHOLDS["server_cpu_share"] * float(cores)
    pos = _first_hold(busy & _flat_mask(ctx))
    if pos is None:
        return _miss("compute", "compute never at its limit while tokens/s were flat")
    t, stage = float(w["t_s"].iloc[pos]), w["stage"].iloc[pos]
    ev, parts = [], []
    if sm is not None:
        ev.append(
            _ev("gpu_sm_active", sm[pos], THRESHOLDS["gpu_sm_active"], ">=", t, stage, f"SM active {sm[pos]:.0%}")
        )
        parts.append(f"SM active {sm[pos]:.0%}")
    if tensor is not None:
        ev.append(
            _ev(
                "gpu_tensor_active",
                tensor[pos],
                THRESHOLDS["gpu_tensor_active"],
                ">=",
                t,
                stage,
                f"tensor pipes active {tensor[pos]:.0%}",
            )
        )
        parts.append(f"tensor active {tensor[pos]:.0%}")
    if not parts and cpu is not None:
        ev.append(
            _ev(
                "server_cpu_cores",
                cpu[pos],
                THRESHOLDS["server_cpu_share"] * float(cores),
                ">=",
                t,
                stage,
                f"server busy on {cpu[pos]:.1f} of {cores} cores",
            )
        )
        parts.append(f"server busy on {cpu[pos]:.1f} of {cores} CPU cores")
    ev.append(_flat_evidence(ctx, t, stage))
    return _hit(
        "compute", w, pos, f"compute: {', '.join(parts)} at {t:.1f} s (stage {stage}) while tokens/s stayed flat", ev
    )


def _errors(ctx: Context) -> dict[str, Any]:
    import numpy as np

    w = ctx.windows
    rate = _col(w, "error_rate")
    if rate is None:
        return _miss("errors", "no requests ended")
    pos = _first_hold(np.nan_to_num(rate) >= THRESHOLDS["error_rate"])
    if pos is None:
        return _miss("errors", f"error rate stayed under {THRESHOLDS['error_rate']:.0%}")
    t, stage = float(w["t_s"].iloc[pos]), w["stage"].iloc[pos]
    stage_rate = _stage_value(ctx, stage, "error_rate")
    shown = stage_rate if stage_rate is not None else rate[pos]
    text = f"errors: {shown:.0%} of requests failed in stage {stage} (from {t:.1f} s)"
    if ctx.top_error:
        text += f", most often: {ctx.top_error[:200]}"
    ev = [
        _ev("error_rate", shown, THRESHOLDS["error_rate"], ">=", t, stage, f"error rate {shown:.0%} in stage {stage}")
    ]
    return _hit("errors", w, pos, text, ev)


def _client(ctx: Context) -> dict[str, Any]:
    validity = ctx.manifest.get("validity") or {}
    if not validity.get("loadgen_saturated"):
        return _miss("client", "run.json does not mark the load generator saturated")
    reason = validity.get("loadgen_saturated_reason") or "no reason recorded"
    lg = ctx.manifest.get("loadgen") or {}
    ev = [_ev("loadgen_saturated", True, None, "==", None, None, f"load generator saturated: {reason}")]
    if lg.get("cpu_max") is not None:
        ev.append(
            _ev("loadgen_cpu", lg["cpu_max"], None, "==", None, None, f"load generator CPU max {lg['cpu_max']:.0%}")
        )
    return {
        "kind": "client",
        "label": LABELS["client"],
        "hit": True,
        "at_s": None,
        "stage": None,
        "sentence": f"client (load generator) saturated, so the server's limit was not measured: {reason}",
        "evidence": ev,
        "reason_not": None,
    }


def attribute(ctx: Context) -> dict[str, Any]:
    """The `bottleneck` block of summary.json."""
    checks = [_client(ctx), _kv(ctx), _batch(ctx), _bandwidth(ctx), _compute(ctx), _errors(ctx)]
    hits = [c for c in checks if c["hit"]]
    if checks[0]["hit"]:
        best = checks[0]
    elif hits:
        best = min(
            hits, key=lambda c: (c["at_s"] if c["at_s"] is not None else float("inf"), PRIORITY.index(c["kind"]))
        )
    else:
        kind = "unknown" if ctx.knee_found else "none"
        sentence = (
            "throughput flattened but no probe metric reached its limit"
            if ctx.knee_found
            else "no resource reached its limit"
        )
        if ctx.knee_found and ctx.windows.filter(like="kv_cache").empty and "gpu_sm_active" not in ctx.windows:
            sentence += " (the run has no probe data to tell why)"
        best = {
            "kind": kind,
            "label": LABELS[kind],
            "hit": False,
            "at_s": None,
            "stage": None,
            "sentence": sentence,
            "evidence": [],
        }
    return {
        "kind": best["kind"],
        "label": best["label"],
        "stage": best["stage"],
        "at_s": best["at_s"],
        "sentence": best["sentence"],
        "evidence": best["evidence"],
        "candidates": checks,
    }
