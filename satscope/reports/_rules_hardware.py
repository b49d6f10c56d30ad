"""Bottleneck rules for the device: memory bandwidth and compute, both only while tokens/s are flat."""

from __future__ import annotations

from typing import Any

from satscope.reports._evidence import (
    THRESHOLDS,
    Context,
    column,
    evidence_item,
    first_hold,
    flat_evidence,
    flat_mask,
    hit,
    miss,
    stage_value,
)

__all__ = ["compute_rule", "memory_bandwidth_rule"]


def memory_bandwidth_rule(ctx: Context) -> dict[str, Any]:
    """DRAM bandwidth utilization ≥ 80% at or after the saturation point."""
    import numpy as np

    w = ctx.windows
    bw = column(w, "gpu_dram_bw_util")
    if bw is None:
        return miss("memory_bandwidth", "no gpu_dram_bw_util samples (no GPU probe, or no GPM/DCGM)")
    pos = first_hold((np.nan_to_num(bw) >= THRESHOLDS.gpu_dram_bw_util) & flat_mask(ctx))
    if pos is None:
        why = "tokens/s kept rising with load" if not ctx.knee_found else f"peaked at {np.nanmax(bw):.0%}"
        return miss("memory_bandwidth", f"DRAM bandwidth never at its limit while tokens/s were flat ({why})")
    t, stage = float(w["t_s"].iloc[pos]), w["stage"].iloc[pos]
    ev = [
        evidence_item(
            "gpu_dram_bw_util",
            bw[pos],
            THRESHOLDS.gpu_dram_bw_util,
            ">=",
            t,
            stage,
            f"DRAM bandwidth utilization {bw[pos]:.0%} at {t:.1f} s",
        ),
        flat_evidence(ctx, t, stage),
    ]
    text = (
        f"memory bandwidth: DRAM bandwidth utilization {bw[pos]:.0%} at {t:.1f} s (stage {stage}) "
        "while tokens/s stayed flat"
    )
    mbu = stage_value(ctx, stage, "mbu")
    if mbu is not None:
        ev.append(evidence_item("mbu", mbu, None, "==", t, stage, f"estimated MBU {mbu:.0%} in stage {stage}"))
        text += f" (estimated MBU {mbu:.0%})"
    return hit("memory_bandwidth", w, pos, text, ev)


def compute_rule(ctx: Context) -> dict[str, Any]:
    """SM or tensor activity at its limit (or, without GPU data, the server busy on every core)."""
    import numpy as np

    w = ctx.windows
    sm, tensor, cpu = column(w, "gpu_sm_active"), column(w, "gpu_tensor_active"), column(w, "server_cpu_cores")
    cores = (ctx.manifest.get("host") or {}).get("cpu_count")
    busy = np.zeros(len(w), bool)
    if sm is not None:
        busy |= np.nan_to_num(sm) >= THRESHOLDS.gpu_sm_active
    if tensor is not None:
        busy |= np.nan_to_num(tensor) >= THRESHOLDS.gpu_tensor_active
    if sm is None and tensor is None:
        if cpu is None or not cores:
            return miss("compute", "no SM/tensor activity samples and no server CPU figures")
        busy |= np.nan_to_num(cpu) >= THRESHOLDS.server_cpu_share * float(cores)
    pos = first_hold(busy & flat_mask(ctx))
    if pos is None:
        return miss("compute", "compute never at its limit while tokens/s were flat")
    t, stage = float(w["t_s"].iloc[pos]), w["stage"].iloc[pos]
    ev, parts = [], []
    if sm is not None:
        ev.append(
            evidence_item(
                "gpu_sm_active", sm[pos], THRESHOLDS.gpu_sm_active, ">=", t, stage, f"SM active {sm[pos]:.0%}"
            )
        )
        parts.append(f"SM active {sm[pos]:.0%}")
    if tensor is not None:
        ev.append(
            evidence_item(
                "gpu_tensor_active",
                tensor[pos],
                THRESHOLDS.gpu_tensor_active,
                ">=",
                t,
                stage,
                f"tensor pipes active {tensor[pos]:.0%}",
            )
        )
        parts.append(f"tensor active {tensor[pos]:.0%}")
    if not parts and cpu is not None:
        ev.append(
            evidence_item(
                "server_cpu_cores",
                cpu[pos],
                THRESHOLDS.server_cpu_share * float(cores),
                ">=",
                t,
                stage,
                f"server busy on {cpu[pos]:.1f} of {cores} cores",
            )
        )
        parts.append(f"server busy on {cpu[pos]:.1f} of {cores} CPU cores")
    ev.append(flat_evidence(ctx, t, stage))
    return hit(
        "compute", w, pos, f"compute: {', '.join(parts)} at {t:.1f} s (stage {stage}) while tokens/s stayed flat", ev
    )
