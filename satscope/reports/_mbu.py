"""Model bandwidth and FLOPs utilization (MBU, MFU) from the run's model description.

Decoding reads every weight once per engine step and each sequence's KV cache once per token, so
  bytes/s = weight_bytes × steps/s + kv_bytes_per_token × mean context × output tokens/s,
  steps/s = output tokens/s ÷ mean batch size,
and MBU = bytes/s ÷ peak memory bandwidth; MFU = flops_per_token × total tokens/s ÷ peak FLOPs.
Peaks come from the datasheet table below (dense, no sparsity) for a GPU, or from a host memory
bandwidth recorded with the run for a CPU server. Both figures are estimates, stated as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GPU_PEAKS", "GpuPeak", "add_utilization", "find_peak"]


@dataclass(slots=True, frozen=True)
class GpuPeak:
    """Datasheet peaks: HBM/GDDR bandwidth, dense 16-bit tensor FLOPs, FP32 FLOPs."""

    memory_bandwidth_bytes_per_s: float
    flops_16bit: float
    flops_fp32: float

    def __post_init__(self) -> None:
        if min(self.memory_bandwidth_bytes_per_s, self.flops_16bit, self.flops_fp32) <= 0:
            raise ValueError("peaks must be positive")


# Order matters: the first key found in the GPU's name wins (H200 before H100 before A100).
GPU_PEAKS: dict[str, GpuPeak] = {
    "H200": GpuPeak(4.8e12, 989e12, 67e12),
    "H100 PCIe": GpuPeak(2.0e12, 756e12, 51e12),
    "H100": GpuPeak(3.35e12, 989e12, 67e12),
    "A100-SXM4-40GB": GpuPeak(1.555e12, 312e12, 19.5e12),
    "A100-PCIE-40GB": GpuPeak(1.555e12, 312e12, 19.5e12),
    "A100": GpuPeak(2.039e12, 312e12, 19.5e12),
    "A10G": GpuPeak(600e9, 70e12, 31.2e12),
    "L4": GpuPeak(300e9, 121e12, 30.3e12),
}


def _host_bandwidth(manifest: dict[str, Any], probes: dict[str, Any]) -> float | None:
    for holder in (probes.get("host") or {}, manifest.get("host") or {}, probes):
        value = holder.get("memory_bandwidth_bytes_per_s") if isinstance(holder, dict) else None
        if value is None and isinstance(holder, dict):
            value = holder.get("host_memory_bandwidth_bytes_per_s")
        if isinstance(value, int | float) and value > 0:
            return float(value)
    return None


def find_peak(manifest: dict[str, Any], probes: dict[str, Any]) -> dict[str, Any]:
    """The ``utilization`` block of summary.json, without the per-stage maxima."""
    model = probes.get("model") or {}
    gpus = probes.get("gpus") or []
    device = str(model.get("device") or ("gpu" if gpus else "")).lower() or None
    if device and device.startswith("cuda"):
        device = "gpu"
    params = model.get("parameters")
    flops = model.get("flops_per_token") or (2.0 * params if isinstance(params, int | float) else None)
    out: dict[str, Any] = {
        "device": device,
        "gpu_name": gpus[0].get("name") if gpus else None,
        "peak_memory_bandwidth_bytes_per_s": None,
        "peak_flops_per_s": None,
        "peak_source": None,
        "weight_bytes": model.get("weight_bytes"),
        "kv_bytes_per_token": model.get("kv_bytes_per_token"),
        "flops_per_token": flops,
        "mbu_max": None,
        "mfu_max": None,
        "note": None,
    }
    if gpus and device != "cpu":  # a CPU server on a GPU host reads host memory, not HBM
        name = str(gpus[0].get("name") or "")
        key = next((k for k in GPU_PEAKS if k.lower() in name.lower()), None)
        if key is None:
            out["peak_source"] = f"no peak figures for GPU {name!r}"
        else:
            peak = GPU_PEAKS[key]
            fp32 = str(model.get("dtype") or "").lower() in ("float32", "fp32", "torch.float32")
            out |= {
                "peak_memory_bandwidth_bytes_per_s": peak.memory_bandwidth_bytes_per_s,
                "peak_flops_per_s": peak.flops_fp32 if fp32 else peak.flops_16bit,
                "peak_source": f"table:{key}",
            }
    else:
        bandwidth = _host_bandwidth(manifest, probes)
        if bandwidth is not None:
            out |= {"peak_memory_bandwidth_bytes_per_s": bandwidth, "peak_source": "run:host_memory_bandwidth"}
        else:
            out["peak_source"] = "no GPU and no host memory bandwidth recorded with the run"
    if not model:
        out["note"] = "the server published no model description, so MBU and MFU are unknown"
    elif out["peak_memory_bandwidth_bytes_per_s"] is None:
        out["note"] = f"MBU and MFU are unknown: {out['peak_source']}"
    return out


def add_utilization(stages: pd.DataFrame, util: dict[str, Any]) -> None:
    """Add ``mbu`` and ``mfu`` columns to the stage table (NaN where an input is missing)."""
    import numpy as np

    bw = util["peak_memory_bandwidth_bytes_per_s"]
    weights, kv = util["weight_bytes"], util["kv_bytes_per_token"]
    stages["mbu"] = np.nan
    stages["mfu"] = np.nan
    if stages.empty:
        return
    out_tps = stages["output_tokens_per_s"].to_numpy(dtype=float)
    if bw and weights:
        batch = stages["batch_size_mean"].fillna(stages["requests_running_mean"]).to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            steps = np.where(batch > 0, out_tps / np.maximum(batch, 1.0), np.nan)
            kv_bytes = (kv or 0.0) * stages["_context_tokens_mean"].to_numpy(dtype=float) * out_tps
            stages["mbu"] = (weights * steps + np.nan_to_num(kv_bytes)) / bw
    if util["peak_flops_per_s"] and util["flops_per_token"]:
        stages["mfu"] = (
            util["flops_per_token"] * stages["total_tokens_per_s"].to_numpy(dtype=float) / util["peak_flops_per_s"]
        )
    for col in ("mbu", "mfu"):
        if stages[col].notna().any():
            util[f"{col}_max"] = float(stages[col].max())
